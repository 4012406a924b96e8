"""Facts the checks judge, gathered with I/O in one place.

Checks never open files or sockets: this module stats the files a configuration names,
reads TLS certificates and keys (certs.py), asks the real `postmap` to compile
regexp/pcre tables (its warnings carry the line) and to look up the legitimate sample
lines, and collects the results of `postharden lint` and of the relay analysis when those
capabilities are present. Everything it returns is immutable.
"""

from __future__ import annotations

import atexit
import datetime as dt
import importlib
import os
import pwd
import re
import shutil
import stat
import subprocess
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from postharden.checks.certs import (
    DerError,
    KeyProblem,
    first_certificate,
    key_matches,
    openssl_key_matches,
    parse_certificate,
)
from postharden.checks.samples import LEGITIMATE_BODY, LEGITIMATE_HEADERS
from postharden.checks.tables import TableRef, table_refs
from postharden.config import PostfixConfig
from postharden.config.defaults import find_postfix_tool

# Parameters whose tables are matched against message content.
CONTENT_PARAMETERS = {
    "header_checks": LEGITIMATE_HEADERS,
    "mime_header_checks": LEGITIMATE_HEADERS,
    "nested_header_checks": LEGITIMATE_HEADERS,
    "body_checks": LEGITIMATE_BODY,
}
CERT_PAIRS = (
    ("smtpd_tls_cert_file", "smtpd_tls_key_file"),
    ("smtpd_tls_eccert_file", "smtpd_tls_eckey_file"),
    ("smtpd_tls_dcert_file", "smtpd_tls_dkey_file"),
)
_POSTMAP_TIMEOUT = 10.0
_POSTMAP_WARNING = re.compile(r"^postmap: (warning|fatal|error): (?:\S+ map )?(.*)$")
_MAP_LINE = re.compile(r"^(\S+), line (\d+): (.*)$")


class FileFact(NamedTuple):
    path: str
    exists: bool
    is_file: bool = False
    is_dir: bool = False
    mode: int = 0  # permission bits (0o7777)
    uid: int = -1
    gid: int = -1
    mtime: float = 0.0
    error: str | None = None

    @property
    def owner(self) -> str:
        try:
            return pwd.getpwuid(self.uid).pw_name
        except KeyError:
            return str(self.uid)

    def describe(self) -> str:
        if not self.exists:
            return f"{self.path}: {self.error or 'missing'}"
        return f"{self.path}: owner {self.owner}, mode {self.mode:04o}"


class TableProblem(NamedTuple):
    line: int | None
    message: str


class PatternTableFact(NamedTuple):
    """A regexp/pcre table as the real postmap compiled it."""

    spec: str
    checked: bool
    reason: str | None  # why it was not checked
    problems: tuple[TableProblem, ...] = ()
    # legitimate sample line -> the table's answer
    matches: tuple[tuple[str, str], ...] = ()


class CertificateFact(NamedTuple):
    cert_file: str
    key_file: str
    error: str | None = None  # the certificate could not be read
    subject: str | None = None
    dns_names: tuple[str, ...] = ()
    not_before: dt.datetime | None = None
    not_after: dt.datetime | None = None
    key_error: str | None = None
    key_matches: bool | None = None
    key_description: str | None = None


class Answer(NamedTuple):
    """The result of another capability (lint, relay analysis), or why there is none."""

    value: Any
    reason: str | None = None

    @property
    def available(self) -> bool:
        return self.reason is None


class Facts(NamedTuple):
    config: PostfixConfig
    now: dt.datetime
    files: Mapping[str, FileFact]
    tables: tuple[TableRef, ...]
    pattern_tables: Mapping[str, PatternTableFact]
    certificates: Mapping[tuple[str, str], CertificateFact]
    lint: Answer
    relay: Answer
    postmap: str | None = None
    extra: Mapping[str, Any] = MappingProxyType({})

    def file(self, path: str) -> FileFact:
        found = self.files.get(path)
        if found is None:
            # A path the gatherer did not know about: say so rather than guess.
            return FileFact(path, exists=False, error="not examined")
        return found


def stat_file(path: str) -> FileFact:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return FileFact(path, exists=False, error="no such file")
    except PermissionError:
        return FileFact(path, exists=False, error="permission denied")
    except OSError as error:
        return FileFact(path, exists=False, error=error.strerror or str(error))
    return FileFact(
        path,
        exists=True,
        is_file=stat.S_ISREG(info.st_mode),
        is_dir=stat.S_ISDIR(info.st_mode),
        mode=stat.S_IMODE(info.st_mode),
        uid=info.st_uid,
        gid=info.st_gid,
        mtime=info.st_mtime,
    )


def certificate_paths(config: PostfixConfig) -> set[tuple[str, str]]:
    """(cert, key) pairs named by main.cf or an smtpd service; chain files pair with self."""
    pairs: set[tuple[str, str]] = set()
    contexts = [config.main, *(config.effective(s) for s in config.smtpd_services())]
    for context in contexts:
        for cert_name, key_name in CERT_PAIRS:
            cert = context.expanded(cert_name).strip()
            if cert:
                pairs.add((cert, context.expanded(key_name).strip() or cert))
        for chain in context.list_value("smtpd_tls_chain_files"):
            pairs.add((chain, chain))
    return pairs


def read_certificate(
    cert_file: str, key_file: str, files: Mapping[str, FileFact]
) -> CertificateFact:
    def read(path: str) -> bytes | str:
        fact = files.get(path)
        if fact is not None and not fact.exists:
            return fact.error or "missing"
        try:
            with open(path, "rb") as handle:
                return handle.read(1024 * 1024)
        except OSError as error:
            return error.strerror or str(error)

    cert_data = read(cert_file)
    if isinstance(cert_data, str):
        return CertificateFact(cert_file, key_file, error=cert_data)
    try:
        der = first_certificate(cert_data)
        if der is None:
            return CertificateFact(cert_file, key_file, error="no PEM certificate in the file")
        certificate = parse_certificate(der)
    except DerError as error:
        return CertificateFact(cert_file, key_file, error=f"unreadable certificate: {error}")
    key_data = cert_data if key_file == cert_file else read(key_file)
    key_error: str | None = None
    matches: bool | None = None
    if isinstance(key_data, str):
        key_error = key_data
    else:
        try:
            matches = key_matches(certificate, key_data)
        except KeyProblem as error:
            key_error = str(error)
        else:
            if matches is None:  # the file holds no public part: ask OpenSSL
                verdict = openssl_key_matches(cert_file, key_file)
                if isinstance(verdict, str):
                    key_error = verdict
                else:
                    matches = verdict
    return CertificateFact(
        cert_file,
        key_file,
        subject=", ".join(certificate.common_names) or certificate.subject,
        dns_names=certificate.dns_names or certificate.common_names,
        not_before=certificate.not_before,
        not_after=certificate.not_after,
        key_error=key_error,
        key_matches=matches,
        key_description=certificate.key.description,
    )


_POSTMAP_CONFIG: str | None = None


def _postmap_config_dir() -> str:
    """An empty configuration for postmap: the audited one may make every program fatal."""
    global _POSTMAP_CONFIG
    if _POSTMAP_CONFIG is None or not os.path.isfile(os.path.join(_POSTMAP_CONFIG, "main.cf")):
        import tempfile  # only when there are tables to compile

        directory = tempfile.mkdtemp(prefix="postharden-postmap-")
        atexit.register(shutil.rmtree, directory, True)
        main_cf = Path(directory, "main.cf")
        main_cf.write_text("", encoding="utf-8")
        # Postfix sleeps while main.cf looks freshly written (a guard against reading a
        # file mid-edit): date it back so postmap starts at once.
        old = main_cf.stat().st_mtime - 3600
        os.utime(main_cf, (old, old))
        _POSTMAP_CONFIG = directory
    return _POSTMAP_CONFIG


def compile_pattern_table(
    postmap: str, kind: str, path: str, samples: tuple[str, ...]
) -> PatternTableFact:
    """Ask the real postmap to open (compile) the table and to look up the samples.

    postmap prints its warnings only to a terminal, so its stderr is a pseudo-terminal.
    """
    spec = f"{kind}:{path}"
    master, slave = os.openpty()
    try:
        completed = subprocess.run(
            [postmap, "-c", _postmap_config_dir(), "-q", "-", spec],
            input=("\n".join(samples) + "\n").encode(),
            stdout=subprocess.PIPE,
            stderr=slave,
            timeout=_POSTMAP_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        os.close(slave)
        os.close(master)
        return PatternTableFact(spec, checked=False, reason=f"postmap failed: {error}")
    os.close(slave)
    chunks: list[bytes] = []
    try:
        while True:
            chunk = os.read(master, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError:
        pass
    finally:
        os.close(master)
    problems: list[TableProblem] = []
    for raw in b"".join(chunks).decode("utf-8", "replace").splitlines():
        found = _POSTMAP_WARNING.match(raw.strip())
        if not found:
            continue
        message = found.group(2)
        located = _MAP_LINE.match(message)
        if located:
            problems.append(TableProblem(int(located.group(2)), located.group(3)))
        else:
            problems.append(TableProblem(None, message))
    matches: list[tuple[str, str]] = []
    for line in completed.stdout.decode("utf-8", "replace").splitlines():
        key, tab, value = line.partition("\t")
        if tab:
            matches.append((key, value))
    return PatternTableFact(
        spec, checked=True, reason=None, problems=tuple(problems), matches=tuple(matches)
    )


def _lint_answer(config: PostfixConfig) -> Answer:
    try:
        module = importlib.import_module("postharden.config.lint")
    except ImportError:
        return Answer(None, "postharden lint is not available in this installation")
    function = getattr(module, "lint", None)
    if function is None:
        return Answer(None, "postharden.config.lint has no lint() function")
    return Answer(list(function(config)))


def _relay_answer(config: PostfixConfig) -> Answer:
    try:
        module = importlib.import_module("postharden.access")
    except ImportError:
        return Answer(
            None, "the relay analysis (postharden.access) is not available in this installation"
        )
    function = getattr(module, "analyze_relay", None)
    if function is None:
        return Answer(None, "postharden.access has no analyze_relay()")
    return Answer(function(config))


def gather_facts(
    config: PostfixConfig,
    *,
    now: dt.datetime | None = None,
    lint: Answer | None = None,
    relay: Answer | None = None,
) -> Facts:
    """Collect every fact the catalog needs for this configuration."""
    paths: set[str] = {str(config.main_cf), str(config.master_cf)}
    queue = config.main.expanded("queue_directory").strip()
    if queue:
        paths.add(queue)
    refs = table_refs(config)
    for ref in refs:
        if ref.path.startswith("/"):
            paths.add(ref.path)
            if ref.compiled_path:
                paths.add(ref.compiled_path)
    pairs = certificate_paths(config)
    for cert, key in pairs:
        paths.update((cert, key))
    files = {path: stat_file(path) for path in sorted(paths)}

    postmap = find_postfix_tool("postmap")
    pattern_tables: dict[str, PatternTableFact] = {}
    for ref in refs:
        if ref.type not in ("regexp", "pcre") or ref.spec in pattern_tables:
            continue
        # Every content sample: one table may serve header and body checks.
        samples = LEGITIMATE_HEADERS + LEGITIMATE_BODY
        fact = files.get(ref.path)
        if not ref.path.startswith("/"):
            pattern_tables[ref.spec] = PatternTableFact(
                ref.spec, checked=False, reason="relative path: depends on the daemon's directory"
            )
        elif fact is None or not fact.exists:
            pattern_tables[ref.spec] = PatternTableFact(
                ref.spec,
                checked=True,
                reason=None,
                problems=(
                    TableProblem(
                        None, f"cannot open {ref.path}: {fact.error if fact else 'missing'}"
                    ),
                ),
            )
        elif postmap is None:
            pattern_tables[ref.spec] = PatternTableFact(
                ref.spec, checked=False, reason="postmap is not installed: cannot compile the table"
            )
        else:
            pattern_tables[ref.spec] = compile_pattern_table(postmap, ref.type, ref.path, samples)

    certificates = {pair: read_certificate(pair[0], pair[1], files) for pair in sorted(pairs)}
    return Facts(
        config=config,
        now=now or dt.datetime.now(dt.UTC),
        files=files,
        tables=tuple(refs),
        pattern_tables=pattern_tables,
        certificates=certificates,
        lint=lint if lint is not None else _lint_answer(config),
        relay=relay if relay is not None else _relay_answer(config),
        postmap=postmap,
    )
