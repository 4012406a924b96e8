"""Files: ownership and modes of the configuration, lookup tables and secrets; tables
that were edited but not rebuilt; the queue directory."""

from __future__ import annotations

import shlex
from collections.abc import Iterable

from postharden.checks.catalog import check, readme_ref
from postharden.checks.env import CheckEnv
from postharden.checks.facts import FileFact
from postharden.checks.model import Category, Evidence, Fix, Hit, NotApplicable, Reference, Severity

POSTFIX_FILES_REF = Reference(
    "Postfix postfix-files (ownership and modes)",
    "https://www.postfix.org/postconf.5.html#meta_directory",
)


def _writable_by_others(fact: FileFact) -> bool:
    return fact.uid != 0 or bool(fact.mode & 0o022)


def _postmap_command(env: CheckEnv, spec: str) -> str:
    directory = str(env.config.config_dir)
    prefix = "postmap" if directory == "/etc/postfix" else f"postmap -c {shlex.quote(directory)}"
    return f"{prefix} {shlex.quote(spec)}"


@check(
    "PH-FIL-001",
    "main.cf or master.cf can be changed by others than root",
    Category.FILES,
    Severity.HIGH,
    implements=("checklist:files",),
    references=(POSTFIX_FILES_REF, readme_ref("postfix.1")),
)
def config_files(env: CheckEnv) -> Iterable[Hit]:
    """main.cf and master.cf must be owned by root and not writable by group or others.

    Whoever can write them runs commands as root at the next reload (`mailbox_command`,
    pipe services in master.cf). `postfix check` warns about the same.
    """
    for path in (str(env.config.main_cf), str(env.config.master_cf)):
        fact = env.facts.file(path)
        if not fact.exists or not _writable_by_others(fact):
            continue
        yield Hit(
            f"{path}: owner {fact.owner}, mode {fact.mode:04o}",
            evidence=(
                Evidence(
                    origin=path,
                    text=fact.describe(),
                    note="should be owner root, not group/other writable",
                ),
            ),
            fix=Fix(
                f"make {path} root's",
                commands=(f"chown root {shlex.quote(path)}", f"chmod go-w {shlex.quote(path)}"),
            ),
            key=path.rsplit("/", 1)[-1],
            location=(path, None),
        )


@check(
    "PH-FIL-002",
    "A lookup table can be changed by others than root",
    Category.FILES,
    Severity.HIGH,
    implements=("checklist:files",),
    references=(POSTFIX_FILES_REF, readme_ref("DATABASE_README")),
)
def table_writable(env: CheckEnv) -> Iterable[Hit]:
    """A table source or its compiled file (`.db`, `.lmdb`) is not owned by root or is
    writable by group or others.

    Access tables decide who may relay (`OK` for a client opens the relay); alias and
    transport tables decide where mail goes. Whoever writes them controls that.
    """
    if not env.facts.tables:
        raise NotApplicable("the configuration names no file-based table")
    seen: set[str] = set()
    for ref in env.facts.tables:
        for path in (ref.path, ref.compiled_path):
            if path is None or path in seen or not path.startswith("/"):
                continue
            seen.add(path)
            fact = env.facts.file(path)
            if not fact.exists or not _writable_by_others(fact):
                continue
            yield Hit(
                f"{path} ({ref.parameter}): owner {fact.owner}, mode {fact.mode:04o}",
                parameter=ref.parameter,
                evidence=(
                    Evidence(origin=ref.origin, text=f"{ref.parameter} uses {ref.spec}"),
                    Evidence(origin=path, text=fact.describe()),
                ),
                fix=Fix(
                    f"make {path} root's",
                    commands=(f"chown root {shlex.quote(path)}", f"chmod go-w {shlex.quote(path)}"),
                ),
                key=path,
                location=(path, None),
            )


@check(
    "PH-FIL-003",
    "A table with passwords is readable by others",
    Category.FILES,
    Severity.HIGH,
    implements=("checklist:files",),
    references=(readme_ref("SASL_README", "client_sasl_enable"),),
)
def secrets_readable(env: CheckEnv) -> Iterable[Hit]:
    """`smtp_sasl_password_maps` (sasl_passwd and its `.db`) or a database client file
    (`mysql:`, `pgsql:`, `ldap:`) can be read by group or others.

    They hold passwords in clear text. Postfix opens them as root before dropping
    privileges (or through proxymap): mode 0600, owner root.
    """
    secret = [ref for ref in env.facts.tables if ref.secret]
    if not secret:
        raise NotApplicable("no table holds passwords")
    seen: set[str] = set()
    for ref in secret:
        for path in (ref.path, ref.compiled_path):
            if path is None or path in seen or not path.startswith("/"):
                continue
            seen.add(path)
            fact = env.facts.file(path)
            if not fact.exists or (fact.uid == 0 and not fact.mode & 0o077):
                continue
            yield Hit(
                f"{path} ({ref.parameter}) holds passwords: owner {fact.owner}, "
                f"mode {fact.mode:04o}",
                parameter=ref.parameter,
                evidence=(
                    Evidence(origin=ref.origin, text=f"{ref.parameter} uses {ref.spec}"),
                    Evidence(origin=path, text=fact.describe()),
                ),
                fix=Fix(
                    f"make {path} readable by root only",
                    commands=(
                        f"chown root:root {shlex.quote(path)}",
                        f"chmod 0600 {shlex.quote(path)}",
                    ),
                ),
                key=path,
                location=(path, None),
            )


@check(
    "PH-FIL-004",
    "A lookup table is missing or older than its source (postmap not run)",
    Category.FILES,
    Severity.HIGH,
    implements=("checklist:files",),
    references=(readme_ref("DATABASE_README"), readme_ref("postmap.1")),
)
def stale_tables(env: CheckEnv) -> Iterable[Hit]:
    """For `hash:`, `btree:`, `lmdb:`, `cdb:` tables Postfix reads the compiled file
    (`access.db`), not the text you edit.

    When the compiled file is older than the source, the last edit is not in effect
    (a removed `OK` still opens the relay); when it is missing, every lookup fails and
    Postfix answers `451 4.3.0` (temporary lookup failure). Run `postmap` after each edit.
    Missing sources of any file-based table are reported too.
    """
    if not env.facts.tables:
        raise NotApplicable("the configuration names no file-based table")
    seen: set[str] = set()
    for ref in env.facts.tables:
        if ref.spec in seen or not ref.path.startswith("/"):
            continue
        seen.add(ref.spec)
        source = env.facts.file(ref.path)
        compiled = env.facts.file(ref.compiled_path) if ref.compiled_path else None
        problem: str | None = None
        fix: Fix
        if not source.exists and (compiled is None or not compiled.exists):
            problem = f"{ref.path}: {source.error or 'missing'}"
            fix = Fix(f"create {ref.path} (and postmap it) or remove it from {ref.parameter}")
        elif compiled is not None and not compiled.exists and source.exists:
            problem = f"{ref.compiled_path} is missing: postmap was never run"
            fix = Fix("build the table", commands=(_postmap_command(env, ref.spec),))
        elif compiled is not None and source.exists and compiled.mtime < source.mtime:
            problem = (
                f"{ref.compiled_path} is older than {ref.path}: the last edit is not in effect"
            )
            fix = Fix("rebuild the table", commands=(_postmap_command(env, ref.spec),))
        if problem is None:
            continue
        yield Hit(
            problem,
            parameter=ref.parameter,
            evidence=(
                Evidence(origin=ref.origin, text=f"{ref.parameter} uses {ref.spec}"),
                Evidence(origin=ref.path, text=source.describe()),
                *(
                    (Evidence(origin=compiled.path, text=compiled.describe()),)
                    if compiled is not None
                    else ()
                ),
            ),
            fix=fix,
            key=ref.spec,
            location=(ref.path, None),
        )


@check(
    "PH-FIL-005",
    "Queue directory ownership or mode is wrong",
    Category.FILES,
    Severity.MEDIUM,
    implements=("checklist:files",),
    references=(POSTFIX_FILES_REF,),
)
def queue_directory(env: CheckEnv) -> Iterable[Hit]:
    """`queue_directory` must be owned by root and not writable by group or others.

    Postfix's subdirectories inside it belong to the postfix user; the top directory is
    root's so that the postfix user cannot replace what the chrooted daemons see.
    """
    path = env.main.expanded("queue_directory").strip()
    fact = env.facts.file(path)
    if not fact.exists:
        raise NotApplicable(f"queue directory {path} does not exist here (a copied configuration?)")
    if not _writable_by_others(fact):
        return
    yield Hit(
        f"{path}: owner {fact.owner}, mode {fact.mode:04o}",
        parameter="queue_directory",
        evidence=(
            env.evidence(env.main, "queue_directory"),
            Evidence(origin=path, text=fact.describe()),
        ),
        fix=Fix(
            "make the queue directory root's",
            commands=(f"chown root {shlex.quote(path)}", f"chmod 0755 {shlex.quote(path)}"),
        ),
        key="queue_directory",
        location=(path, None),
    )
