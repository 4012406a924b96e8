"""A throw-away real Postfix instance on loopback, asked through XCLIENT what it would do.

The sandbox runs the installed Postfix binaries (`postfix -c DIR start`) on a copy of a
configuration, so its answers are ground truth for the decision engine and for `verify`.

Building one
------------
``Sandbox(main_cf, master_cf=None, *, maps=None, files=None)`` takes main.cf and master.cf
as text (``master_cf=None`` gives a minimal master.cf with one ``smtp inet`` smtpd), plus
map sources (``maps={"access": "1.2.3.4 OK\\n"}``: written to ``DIR/access`` and compiled
with ``postmap`` when main.cf or master.cf names them as ``hash:`` or ``lmdb:`` maps) and
other files (``files={"helo.pcre": "..."}``). Inside the configuration refer to them as
``$config_directory/access``: the sandbox directory is the config directory.

``Sandbox.from_config_dir(path)`` copies a production configuration directory (files and
subdirectories, never writing to it) and runs it.

What the sandbox rewrites, and nothing else:

- ``queue_directory``, ``data_directory`` (owned by the ``postfix`` user), ``maillog_file =
  DIR/maillog``, ``maillog_file_prefixes = DIR``, ``inet_interfaces = 127.0.0.1``,
  ``inet_protocols`` (IPv4, plus IPv6 when the machine has ``::1``, so that XCLIENT
  accepts IPv6 client addresses); when main.cf does not set ``mynetworks``, the value
  production computes from its own ``inet_interfaces`` and ``mynetworks_style`` is pinned
  (the rewritten ``inet_interfaces`` would change it);
- every ``inet`` row of master.cf listens on ``127.0.0.1:<free port>``; chroot is off;
- ``smtpd_authorized_xclient_hosts`` gets ``127.0.0.1`` in front of what the config says
  (main.cf and any ``-o`` override);
- a ``postlog unix-dgram`` row is added when absent (needed for ``maillog_file``);
- ``smtpd_soft_error_limit``, ``smtpd_hard_error_limit`` and ``smtpd_junk_command_limit``
  are raised so that one session can carry many cases (Postfix otherwise sleeps after
  10 errors and hangs up after 20), and ``in_flow_delay = 0s`` (each accepted RCPT opens a
  queue file that RSET discards; inflow control would pause up to 1 s per case) - none of
  these changes an access decision.

By default nothing in the sandbox looks names up: every query gives XCLIENT a NAME, and
the real peer (127.0.0.1) resolves through /etc/hosts; RBLs, ``reject_unknown_*`` and MX
checks in the configuration would use the system resolver (``dns=None`` or ``"system"``).

DNS isolation
-------------
``Sandbox(..., dns=Zone(...))`` (``postharden.sandbox.dns``) starts a stub DNS server on a
free 127.53.x.y port 53 that answers from the zone, and starts Postfix inside a private
mount namespace (``unshare --mount``) where /etc/resolv.conf is a bind-mounted file naming
only the stub (``postharden.sandbox.namespace``): master and every daemon it forks resolve
through the stub, and nothing reaches an outside resolver. ``sandbox.dns_queries()`` is
the stub's log (``Query(name, rrtype, transport, source, status)``); ``sandbox.namespace``
is master's mount namespace (start fails if it is the caller's own). The mount goes away
with the last process of the instance.

In this mode a ``Case`` may give ``source_addr`` (a loopback address such as
``127.54.0.9``): the session then connects from that address and sends no XCLIENT, so
smtpd looks the client up itself (PTR, then the forward confirmation) through the stub,
and client-address restrictions (RBLs, ``check_client_access``) see that address. HELO is
sent as given; SASL logins cannot be impersonated this way.

``Sandbox(..., outside_services={...})`` rewrites every policy service, milter,
before-queue proxy filter and network lookup table of the configuration to the endpoint
the caller gives for it, keyed by the endpoint as written (``{"inet:127.0.0.1:10023":
"inet:127.0.0.1:40123"}``), and refuses to start (``SandboxError``, naming each one)
when one has no replacement; ``outside_services={}`` thus means "fail unless the
configuration contacts nothing outside" (``postharden.sandbox.outside``). The default
(None) leaves them as configured: the sandbox would talk to a production postgrey.

Asking it
---------
``sandbox.query(service="smtp", client_addr=..., client_name=..., helo=..., sasl_login=None,
sender=..., recipient=...) -> Outcome`` opens one session, impersonates the client with
``XCLIENT ADDR NAME [LOGIN]``, says ``EHLO helo``, ``MAIL FROM``, ``RCPT TO``, and returns
the first refusal: ``Outcome(command="connect"|"helo"|"mail"|"rcpt", code, text)``; command
``"rcpt"`` with a 2xx code means accepted; ``code=None`` with an available service means the
case could not be asked (XCLIENT refused the attributes, e.g. ``ADDR=0.0.0.1``, or the
session broke; ``text`` says why). ``Outcome.as_dict()`` is
``{"command", "code", "text"}``. A service whose smtpd refuses to run (master keeps the
port, no greeting) gives ``Outcome(available=False, command="connect", code=None,
text=<fatal line from the maillog>)``.

``sandbox.run(cases, workers=4) -> list[Outcome]`` is the fast batch path for thousands of
cases: cases (``Case`` objects) with the same service and client attributes share a
session (MAIL/RCPT/RSET pipelined, RSET between cases, a new session whenever the
XCLIENT attributes change - once XCLIENT has set an address outside
``smtpd_authorized_xclient_hosts`` Postfix refuses a second XCLIENT), sessions run on
``workers`` threads, and the outcomes come back in the order of ``cases``.
``Case.verb`` may be ``"VRFY"``, ``"EXPN"`` or ``"ETRN"`` instead of ``"RCPT"``.

``Sandbox(..., authorize_xclient=False)`` leaves ``smtpd_authorized_xclient_hosts`` as the
configuration has it: a plain instance for live-probe tests (``query``/``run`` need XCLIENT).

Other helpers: ``ports`` (service name -> loopback port of each smtpd/postscreen inet
service), ``check()`` (``postfix check`` messages), ``maillog()``, ``stop()``.

Lifetime
--------
Use it as a context manager. ``stop()`` stops master and its children and removes the
directory; it also runs at interpreter exit (atexit), on SIGTERM (turned into SystemExit),
and - when this process is killed with SIGKILL - a small reaper process that waits on a
pipe from this process stops the instance and removes the directory.
"""

from __future__ import annotations

import atexit
import contextlib
import grp
import os
import pwd
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from postharden.errors import EXIT_UNEVALUATED, PostHardenError
from postharden.sandbox.dns import Query, StubDns, Zone
from postharden.sandbox.namespace import (
    mount_namespace,
    namespace_members,
    namespace_unavailable,
    namespaced,
    process_start,
    resolv_conf_text,
)
from postharden.sandbox.outside import OutsideContactError, isolate
from postharden.sandbox.sasl import DovecotAuthStub, dovecot_sockets
from postharden.smtp import Reply, SmtpClient, SmtpError

POSTFIX = "postfix"
POSTMAP = "postmap"
POSTCONF = "postconf"


class SandboxError(PostHardenError):
    """The sandbox cannot be built or started."""

    exit_code = EXIT_UNEVALUATED


# A master.cf that runs an smtpd and the daemons it talks to, all without chroot.
MINIMAL_MASTER_CF = """\
smtp      inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

# Raised in every sandbox so that one session can carry many cases (see module docstring).
SESSION_LIMITS = {
    "smtpd_soft_error_limit": "100000",
    "smtpd_hard_error_limit": "100000",
    "smtpd_junk_command_limit": "100000",
    # Every accepted RCPT opens a queue file that RSET throws away; no mail is delivered,
    # so Postfix's inflow control would pause each new one for up to a second.
    "in_flow_delay": "0s",
}

DEFAULT_CLIENT_ADDR = "203.0.113.9"
DEFAULT_CLIENT_NAME = "client.example.net"
VERBS = ("RCPT", "VRFY", "EXPN", "ETRN")
_SMTPD_COMMANDS = ("smtpd", "postscreen")
_MAP_TYPES_TO_COMPILE = ("hash", "lmdb", "btree", "cdb")


@dataclass(frozen=True)
class Case:
    """One question to the sandbox: this client, on this service, tries this."""

    service: str = "smtp"
    client_addr: str = DEFAULT_CLIENT_ADDR
    client_name: str = DEFAULT_CLIENT_NAME
    helo: str | None = DEFAULT_CLIENT_NAME
    sasl_login: str | None = None
    sender: str = "sender@example.net"
    recipient: str = "user@example.com"
    verb: str = "RCPT"
    tls: bool = False
    # Connect from this loopback address without XCLIENT (DNS-isolated mode only).
    source_addr: str | None = None

    def session_key(self) -> tuple[object, ...]:
        return (
            self.service,
            self.client_addr,
            self.client_name,
            self.helo,
            self.sasl_login,
            self.tls,
            self.source_addr,
        )


@dataclass(frozen=True)
class Outcome:
    """The first refusal of a case, or the verb's (RCPT/VRFY/...) answer when none refused."""

    command: str
    code: int | None
    text: str
    available: bool = True

    @property
    def accepted(self) -> bool:
        return (
            self.available
            and self.code is not None
            and 200 <= self.code < 300
            and self.command in ("rcpt", "vrfy", "expn", "etrn")
        )

    def as_dict(self) -> dict[str, object]:
        return {"command": self.command, "code": self.code, "text": self.text}


@dataclass(frozen=True)
class CheckResult:
    """`postfix check` on the sandbox copy: its exit status and what it printed."""

    returncode: int
    messages: tuple[str, ...]

    @property
    def clean(self) -> bool:
        return self.returncode == 0 and not self.messages


@dataclass(frozen=True)
class Service:
    """An inet service of master.cf as moved into the sandbox."""

    name: str
    port: int
    command: str
    implicit_tls: bool


@dataclass
class _MasterEntry:
    lines: list[str]
    fields: list[str] = field(default_factory=list)


# -- configuration rewriting (pure) ---------------------------------------------------


def _logical_main_cf(text: str) -> dict[str, str]:
    """main.cf parameters as Postfix reads them: continuation lines, last definition wins."""
    params: dict[str, str] = {}
    current: list[str] = []

    def flush() -> None:
        if current:
            joined = " ".join(part.strip() for part in current)
            name, sep, value = joined.partition("=")
            if sep:
                params[name.strip()] = value.strip()
            current.clear()

    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace():
            current.append(line)
        else:
            flush()
            current.append(line)
    flush()
    return params


def _comment_out(text: str, names: set[str]) -> str:
    """main.cf with every definition of `names` (continuation lines included) commented
    out, so that the sandbox's own values are the only ones (no "overriding earlier entry"
    warnings in `postfix check`)."""
    out: list[str] = []
    inside = False
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#") and not line[0].isspace():
            inside = line.partition("=")[0].strip() in names
        if inside and line.strip() and not line.lstrip().startswith("#"):
            out.append("#postharden-sandbox# " + line)
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def _master_entries(text: str) -> tuple[list[str], list[_MasterEntry]]:
    """Split master.cf into leading lines and entries; a whitespace line continues the entry."""
    head: list[str] = []
    entries: list[_MasterEntry] = []
    for line in text.splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            entries.append(_MasterEntry([line]))
        elif entries:
            entries[-1].lines.append(line)
        else:
            head.append(line)
    for entry in entries:
        words: list[str] = []
        for line in entry.lines:
            if line.strip().startswith("#") or not line.strip():
                continue
            words.extend(line.split())
        entry.fields = words
    return head, entries


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _option_values(fields: Sequence[str]) -> dict[str, str]:
    """`-o name=value` overrides of one master.cf entry (the simple, ungrouped form)."""
    values: dict[str, str] = {}
    for index, word in enumerate(fields):
        if word == "-o" and index + 1 < len(fields):
            name, sep, value = fields[index + 1].partition("=")
            if sep:
                values[name] = value
        elif word.startswith("-o") and "=" in word and len(word) > 2:
            name, _, value = word[2:].partition("=")
            values[name] = value
    return values


def _rewrite_master_cf(
    text: str, main_params: Mapping[str, str], *, authorize_xclient: bool = True
) -> tuple[str, dict[str, Service]]:
    head, entries = _master_entries(text)
    services: dict[str, Service] = {}
    out = list(head)
    has_postlog = False
    for entry in entries:
        fields = entry.fields
        if len(fields) < 8:
            out.extend(entry.lines)
            continue
        name, kind, private, unpriv, _chroot, wakeup, maxproc = fields[:7]
        rest = list(fields[7:])
        if kind == "unix-dgram" and rest[0] == "postlogd":
            has_postlog = True
        if kind == "inet":
            port = _free_port()
            listen = f"127.0.0.1:{port}"
            command = rest[0]
            options = _option_values(rest)
            wrapper = options.get(
                "smtpd_tls_wrappermode", main_params.get("smtpd_tls_wrappermode", "no")
            )
            if command in _SMTPD_COMMANDS:
                services[name] = Service(name, port, command, wrapper.lower() == "yes")
        else:
            listen = name
        if authorize_xclient:
            rest = _with_xclient_override(rest)
        row = [listen, kind, private, unpriv, "n", wakeup, maxproc, *rest]
        out.append(" ".join(row))
    if not has_postlog:
        out.append("postlog   unix-dgram n  -       n       -       1       postlogd")
    return "\n".join(out) + "\n", services


def _with_xclient_override(args: list[str]) -> list[str]:
    """Keep a per-service smtpd_authorized_xclient_hosts, with the sandbox's address first."""
    result = []
    for word in args:
        if word.startswith("smtpd_authorized_xclient_hosts="):
            value = word.partition("=")[2]
            word = (
                f"smtpd_authorized_xclient_hosts=127.0.0.1,{value}"
                if value
                else ("smtpd_authorized_xclient_hosts=127.0.0.1")
            )
        result.append(word)
    return result


def _referenced_maps(text: str) -> set[str]:
    """Basenames of `hash:`/`lmdb:`... maps under $config_directory named in the text."""
    names = set()
    pattern = r"(?:%s):(?:\$config_directory|\$\{config_directory\})/([\w.\-/]+)"
    for match in re.finditer(pattern % "|".join(_MAP_TYPES_TO_COMPILE), text):
        names.add(match.group(1).rstrip(","))
    return names


def _map_types(text: str, name: str) -> set[str]:
    types = set()
    for kind in _MAP_TYPES_TO_COMPILE:
        if re.search(
            rf"{kind}:(?:\$config_directory|\$\{{config_directory\}})/{re.escape(name)}\b", text
        ):
            types.add(kind)
    return types


def _create_directories(queue: Path, data: Path, main_params: Mapping[str, str]) -> bool:
    """The queue and data directories as postfix-files declares them (what `post-install
    create-missing` would make, without its second and a half of postconf calls)."""
    meta = main_params.get("meta_directory", "/etc/postfix")
    owner = pwd.getpwnam(main_params.get("mail_owner", "postfix"))
    try:
        group_id = grp.getgrnam(main_params.get("setgid_group", "postdrop")).gr_gid
    except KeyError:
        group_id = owner.pw_gid
    try:
        declared = Path(meta, "postfix-files").read_text(encoding="utf-8").splitlines()
    except OSError:
        declared = []
    queue.mkdir(mode=0o755)
    data.mkdir(mode=0o700)
    os.chown(data, owner.pw_uid, owner.pw_gid)
    for line in declared:
        parts = line.split(":")
        if len(parts) < 5 or parts[1] != "d" or not parts[0].startswith("$queue_directory/"):
            continue
        path = queue / parts[0].removeprefix("$queue_directory/")
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, int(parts[4], 8))
        uid = 0 if parts[2] == "root" else owner.pw_uid
        gid = (
            group_id if parts[3] == "$setgid_group" else (0 if parts[2] == "root" else owner.pw_gid)
        )
        os.chown(path, uid, gid)
    return bool(declared)


# -- lifetime bookkeeping -------------------------------------------------------------

_LIVE: set[Sandbox] = set()
_LIVE_LOCK = threading.Lock()
_SIGNALS_INSTALLED = False

_REAPER_SCRIPT = r"""
dir="$1"
cat >/dev/null 2>&1
[ -d "$dir" ] || exit 0
pidfile="$dir/queue/pid/master.pid"
if [ -f "$pidfile" ]; then
    pid=$(awk '{ print $1; exit }' "$pidfile")
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
        kill -9 -"$pid" 2>/dev/null
    fi
fi
rm -rf "$dir"
"""


def _stop_all() -> None:
    with _LIVE_LOCK:
        live = list(_LIVE)
    for sandbox in live:
        sandbox.stop()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _install_signal_handlers() -> None:
    """SIGTERM becomes SystemExit so `with Sandbox(...)` blocks unwind and stop the instance."""
    global _SIGNALS_INSTALLED
    if _SIGNALS_INSTALLED or threading.current_thread() is not threading.main_thread():
        return
    _SIGNALS_INSTALLED = True
    atexit.register(_stop_all)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) in (signal.SIG_DFL, None):
            signal.signal(signum, _on_sigterm)


def postfix_available() -> str | None:
    """None when a sandbox can run here, else the one-line reason why not."""
    if os.geteuid() != 0:
        return "the sandbox needs root to start a Postfix instance"
    for tool in (POSTFIX, POSTMAP, POSTCONF):
        if shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
            return f"Postfix is not installed ({tool} not found)"
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        return "the postfix user does not exist"
    return None


def _tool(name: str) -> str:
    found = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if found is None:
        raise SandboxError(f"Postfix is not installed ({name} not found)")
    return found


def postfix_version() -> str:
    result = subprocess.run(
        [_tool(POSTCONF), "-dh", "mail_version"], capture_output=True, text=True, timeout=30
    )
    return result.stdout.strip()


# -- the sandbox ----------------------------------------------------------------------


class Sandbox:
    """A real Postfix instance on loopback; see the module docstring for the API."""

    def __init__(
        self,
        main_cf: str,
        master_cf: str | None = None,
        *,
        maps: Mapping[str, str] | None = None,
        files: Mapping[str, str | bytes] | None = None,
        source_dir: Path | None = None,
        greeting_timeout: float = 5.0,
        read_timeout: float = 10.0,
        full_checks: bool = False,
        authorize_xclient: bool = True,
        dns: Zone | str | None = None,
        outside_services: Mapping[str, str] | None = None,
    ) -> None:
        self.main_cf = main_cf
        self.master_cf = master_cf if master_cf is not None else MINIMAL_MASTER_CF
        self.maps = dict(maps or {})
        self.files = dict(files or {})
        self.source_dir = source_dir
        self.greeting_timeout = greeting_timeout
        self.read_timeout = read_timeout
        self.full_checks = full_checks
        self.authorize_xclient = authorize_xclient
        self.directory: Path | None = None
        self.services: dict[str, Service] = {}
        self.start_output = ""
        self._unavailable: dict[str, str] = {}
        self._reaper: subprocess.Popen[bytes] | None = None
        self._master_pid: int | None = None
        self._lock = threading.Lock()
        if isinstance(dns, str) and dns != "system":
            raise ValueError(f"dns must be a Zone, 'system' or None, not {dns!r}")
        self.zone: Zone | None = dns if isinstance(dns, Zone) else None
        self.outside_services = dict(outside_services) if outside_services is not None else None
        self.stub: StubDns | None = None
        self.namespace: str | None = None
        self.sasl_stubs: list[DovecotAuthStub] = []

    @classmethod
    def from_config_dir(cls, path: Path, **kwargs: Any) -> Sandbox:
        """A sandbox of a production configuration directory (copied, never written)."""
        main = path / "main.cf"
        master = path / "master.cf"
        try:
            main_text = main.read_text(encoding="utf-8", errors="replace")
            master_text = master.read_text(encoding="utf-8", errors="replace")
        except OSError as error:
            raise SandboxError(f"cannot read {error.filename}: {error.strerror}") from error
        return cls(main_text, master_text, source_dir=path, **kwargs)

    # -- lifetime ---------------------------------------------------------------------

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def ports(self) -> dict[str, int]:
        return {name: service.port for name, service in self.services.items()}

    def port(self, service: str = "smtp") -> int:
        return self._service(service).port

    def _service(self, name: str) -> Service:
        try:
            return self.services[name]
        except KeyError:
            raise SandboxError(
                f"no smtpd inet service {name!r} in the sandbox (have: {', '.join(self.services)})"
            ) from None

    def start(self, attempts: int = 3) -> None:
        reason = postfix_available()
        if reason:
            raise SandboxError(reason)
        if self.zone is not None:
            reason = namespace_unavailable()
            if reason:
                raise SandboxError(f"DNS isolation: {reason}")
        if self.outside_services is not None:
            # Fails before anything starts when a contact has no replacement.
            try:
                isolate(self.main_cf, self.master_cf, self.outside_services)
            except OutsideContactError as error:
                raise SandboxError(str(error)) from error
        _install_signal_handlers()
        last = ""
        for _ in range(attempts):
            self._prepare()
            self._start_sasl_stubs()
            if self._start_postfix():
                return
            last = self.start_output
            # A free port taken by a parallel test between our probe and master's bind:
            # try again with new ports; anything else is the configuration's fault.
            if "Address already in use" not in last:
                break
            self.stop()
        detail = self._config_error() or _last_fatal(last) or "no output"
        self.stop()
        raise SandboxError(f"Postfix did not start: {detail}")

    def _start_sasl_stubs(self) -> None:
        """Answer Dovecot's auth handshake where production's queue held Dovecot's socket."""
        assert self.directory is not None
        for path in sorted(dovecot_sockets(self.directory / "etc")):
            try:
                self.sasl_stubs.append(DovecotAuthStub(self.directory / "queue" / path))
            except OSError as error:
                raise SandboxError(f"cannot stand in for Dovecot's {path}: {error}") from error

    def _prepare(self) -> None:
        directory = Path(tempfile.mkdtemp(prefix="postharden-sandbox-"))
        self.directory = directory
        with _LIVE_LOCK:
            _LIVE.add(self)
        directory.chmod(0o755)
        self._reaper = subprocess.Popen(
            ["/bin/sh", "-c", _REAPER_SCRIPT, "postharden-reaper", str(directory)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        config = directory / "etc"
        config.mkdir(mode=0o755)
        if self.source_dir is not None:
            self._copy_source(self.source_dir, config)
        for name, content in self.files.items():
            target = config / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")
        for name, content in self.maps.items():
            (config / name).write_text(content, encoding="utf-8")

        main_cf, master_cf = self.main_cf, self.master_cf
        if self.outside_services is not None:
            main_cf, master_cf = isolate(main_cf, master_cf, self.outside_services)
        if self.zone is not None:
            if self.stub is None:
                try:
                    self.stub = StubDns(self.zone)
                except OSError as error:
                    raise SandboxError(f"DNS isolation: {error}") from error
            (directory / "resolv.conf").write_text(
                resolv_conf_text(self.stub.address), encoding="utf-8"
            )
            (directory / "resolv.conf").chmod(0o644)
        main_params = _logical_main_cf(main_cf)
        master_text, self.services = _rewrite_master_cf(
            master_cf, main_params, authorize_xclient=self.authorize_xclient
        )
        (config / "master.cf").write_text(master_text, encoding="utf-8")

        data = directory / "data"
        queue_complete = _create_directories(directory / "queue", data, main_params)
        xclient = main_params.get("smtpd_authorized_xclient_hosts", "").strip()
        overrides = {
            "queue_directory": f"{directory}/queue",
            "data_directory": str(data),
            "maillog_file": f"{directory}/maillog",
            "maillog_file_prefixes": str(directory),
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": _loopback_protocols(),
            "smtpd_authorized_xclient_hosts": f"127.0.0.1, {xclient}" if xclient else "127.0.0.1",
            **SESSION_LIMITS,
        }
        if not self.authorize_xclient:
            # A plain instance for live-probe tests: XCLIENT stays as configured.
            del overrides["smtpd_authorized_xclient_hosts"]
        trusted = _production_mynetworks(main_cf, directory)
        if trusted is not None:
            # mynetworks is unset: Postfix computes it from inet_interfaces, which the
            # sandbox rewrites; pin the value production computes so trust is unchanged.
            overrides["mynetworks"] = trusted
        main_text = _comment_out(main_cf, set(overrides))
        main_text += "\n# postharden sandbox: what must change to run beside production\n"
        main_text += "".join(f"{name} = {value}\n" for name, value in overrides.items())
        (config / "main.cf").write_text(main_text, encoding="utf-8")
        self._compile_maps(main_text + master_text)
        # Postfix re-reads a file modified within the last second until it is older (it
        # may still be being written): date the fresh files back so start takes no seconds.
        past = time.time() - 10
        for path in config.rglob("*"):
            os.utime(path, (past, past), follow_symlinks=False)
        if queue_complete and not self.full_checks:
            # The queue is complete and empty: skip postfix-script's slow integrity
            # checks (seconds of find(1) over /usr/lib/postfix) at start.
            (directory / "queue" / "quick-start").touch()

    @staticmethod
    def _copy_source(source: Path, target: Path) -> None:
        for entry in source.iterdir():
            if entry.name in ("main.cf", "master.cf"):
                continue
            try:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.copytree(entry, target / entry.name, symlinks=True)
                elif entry.is_file():
                    shutil.copy2(entry, target / entry.name)
            except OSError as error:
                raise SandboxError(f"cannot copy {entry}: {error.strerror or error}") from error

    @property
    def config_directory(self) -> Path:
        if self.directory is None:
            raise SandboxError("the sandbox is not running")
        return self.directory / "etc"

    def _compile_maps(self, config_text: str) -> None:
        config = self.config_directory
        for name in sorted(_referenced_maps(config_text)):
            source = config / name
            if not source.is_file():
                continue
            for kind in sorted(_map_types(config_text, name)):
                result = subprocess.run(
                    [_tool(POSTMAP), "-c", str(config), f"{kind}:{source}"],
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                if result.returncode != 0:
                    message = (result.stderr.strip().splitlines() or ["failed"])[-1]
                    raise SandboxError(f"postmap {kind}:{name}: {message}")

    def _start_postfix(self) -> bool:
        assert self.directory is not None
        command = [_tool(POSTFIX), "-c", str(self.config_directory), "start"]
        if self.zone is not None:
            command = namespaced(command, self.directory / "resolv.conf")
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=120,
        )
        log = self.maillog()
        self.start_output = result.stdout + result.stderr + log
        if result.returncode != 0:
            return False
        pid_file = self.directory / "queue" / "pid" / "master.pid"
        try:
            self._master_pid = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return False
        if self.zone is not None:
            self.namespace = mount_namespace(self._master_pid)
            if self.namespace is None or self.namespace == mount_namespace():
                self.start_output += "\nfatal: master is not in a private mount namespace"
                return False
        return True

    def _config_error(self) -> str | None:
        """postconf's own complaint about the sandbox configuration, if it has one (the
        `postfix` command only says "cannot execute postconf")."""
        if self.directory is None:
            return None
        for args in (["-M"], ["-h", "maillog_file"]):
            result = subprocess.run(
                [_tool(POSTCONF), "-c", str(self.config_directory), *args],
                capture_output=True,
                text=True,
                timeout=60,
            )
            fatal = _last_fatal(result.stderr)
            if fatal:
                return fatal
        return None

    def stop(self) -> None:
        """Stop master and all its children, remove the directory; safe to call twice."""
        with self._lock:
            directory, self.directory = self.directory, None
            pid, self._master_pid = self._master_pid, None
            if pid is None and directory is not None:
                with contextlib.suppress(OSError, ValueError, IndexError):
                    pid_file = directory / "queue" / "pid" / "master.pid"
                    pid = int(pid_file.read_text().split()[0])
            if pid is not None:
                _terminate_master(pid, self.namespace)
            if directory is not None:
                shutil.rmtree(directory, ignore_errors=True)
            stub, self.stub = self.stub, None
            if stub is not None:
                stub.close()
            sasl_stubs, self.sasl_stubs = self.sasl_stubs, []
            for sasl_stub in sasl_stubs:
                sasl_stub.close()
            reaper, self._reaper = self._reaper, None
            if reaper is not None:
                with contextlib.suppress(OSError):
                    if reaper.stdin is not None:
                        reaper.stdin.close()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    reaper.wait(timeout=10)
            self._unavailable.clear()
        with _LIVE_LOCK:
            _LIVE.discard(self)

    # -- logs and checks --------------------------------------------------------------

    def dns_queries(self) -> list[Query]:
        """Every question the stub DNS server received (DNS-isolated mode), in order."""
        return self.stub.log() if self.stub is not None else []

    def maillog(self) -> str:
        if self.directory is None:
            return ""
        try:
            return (self.directory / "maillog").read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def _maillog_size(self) -> int:
        if self.directory is None:
            return 0
        try:
            return (self.directory / "maillog").stat().st_size
        except FileNotFoundError:
            return 0

    def _fatal_since(self, offset: int) -> str | None:
        if self.directory is None:
            return None
        try:
            with open(self.directory / "maillog", "rb") as log:
                log.seek(offset)
                new = log.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return None
        for line in new.splitlines():
            if " fatal: " in line or " panic: " in line:
                return line.split(": ", 1)[1] if ": " in line else line
        return None

    def check(self) -> CheckResult:
        """`postfix check` on the sandbox copy (its messages go to a terminal or the log)."""
        if self.directory is None:
            raise SandboxError("the sandbox is not running")
        before = self._maillog_size()
        result = subprocess.run(
            [_tool(POSTFIX), "-c", str(self.config_directory), "check"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        time.sleep(0.05)
        messages = [
            line.split(": ", 1)[1] if ": " in line else line
            for line in self._log_since(before).splitlines()
            if "postfix/postfix-script" in line or "/postfix[" in line or "postfix/post" in line
        ]
        printed = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
        return CheckResult(result.returncode, tuple(dict.fromkeys(messages + printed)))

    def _log_since(self, offset: int) -> str:
        if self.directory is None:
            return ""
        try:
            with open(self.directory / "maillog", "rb") as log:
                log.seek(offset)
                return log.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    # -- queries ----------------------------------------------------------------------

    def query(
        self,
        service: str = "smtp",
        client_addr: str = DEFAULT_CLIENT_ADDR,
        client_name: str = DEFAULT_CLIENT_NAME,
        helo: str | None = DEFAULT_CLIENT_NAME,
        sasl_login: str | None = None,
        sender: str = "sender@example.net",
        recipient: str = "user@example.com",
        *,
        verb: str = "RCPT",
        tls: bool = False,
    ) -> Outcome:
        """Ask the real Postfix about one case; see the module docstring."""
        case = Case(
            service, client_addr, client_name, helo, sasl_login, sender, recipient, verb, tls
        )
        return self.run([case], workers=1)[0]

    def run(self, cases: Iterable[Case], *, workers: int = 4) -> list[Outcome]:
        """Answer many cases fast: one session per client, several sessions in parallel."""
        if self.directory is None:
            raise SandboxError("the sandbox is not running")
        case_list = list(cases)
        for case in case_list:
            if case.verb not in VERBS:
                raise ValueError(f"unknown verb {case.verb!r}; use one of {', '.join(VERBS)}")
            self._service(case.service)
        groups: dict[tuple[object, ...], list[int]] = {}
        for index, case in enumerate(case_list):
            groups.setdefault(case.session_key(), []).append(index)
        results: list[Outcome | None] = [None] * len(case_list)

        def work(indexes: list[int]) -> None:
            outcomes = self._session([case_list[i] for i in indexes])
            for index, outcome in zip(indexes, outcomes, strict=True):
                results[index] = outcome

        group_list = list(groups.values())
        if workers <= 1 or len(group_list) <= 1:
            for indexes in group_list:
                work(indexes)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for future in [pool.submit(work, indexes) for indexes in group_list]:
                    future.result()
        return [outcome for outcome in results if outcome is not None]

    def _open(self, case: Case) -> tuple[SmtpClient | None, Outcome | None]:
        """Connect, impersonate the client and greet; an Outcome when that already refused."""
        service = self._service(case.service)
        reason = self._unavailable.get(case.service)
        if reason is not None:
            return None, Outcome("connect", None, reason, available=False)
        if case.source_addr is not None and self.zone is None:
            raise SandboxError("Case.source_addr needs the DNS-isolated mode (dns=Zone(...))")
        client = SmtpClient(
            "127.0.0.1",
            service.port,
            connect_timeout=self.read_timeout,
            read_timeout=self.read_timeout,
            deadline=3600.0,
            source_address=case.source_addr,
        )
        offset = self._maillog_size()
        try:
            client.open_socket(implicit_tls=service.implicit_tls)
            if not self._wait_greeting(client, offset, case.service):
                client.close()
                return None, Outcome(
                    "connect", None, self._unavailable[case.service], available=False
                )
            greeting = client.read_reply()
            if greeting.code != 220:
                client.close()
                return None, _refusal("connect", greeting)
            if case.source_addr is not None:
                # The real peer: smtpd has looked its name up itself; no XCLIENT.
                if case.helo is not None:
                    reply = client.ehlo(case.helo)
                    if reply.code != 250:
                        client.close()
                        return None, _refusal("helo", reply)
                return client, None
            reply = client.ehlo("sandbox.postharden.invalid")
            if reply.code != 250 or not client.supports("XCLIENT"):
                client.close()
                raise SandboxError(
                    f"service {case.service}: XCLIENT is not offered to the sandbox "
                    f"({reply.code} {reply.text})"
                )
            if case.tls and not service.implicit_tls:  # wrappermode: TLS from the start
                if not client.supports("STARTTLS"):
                    client.close()
                    return None, Outcome("connect", None, "STARTTLS is not offered")
                reply = client.starttls()
                if reply.code != 220:
                    client.close()
                    return None, _refusal("connect", reply)
                client.ehlo("sandbox.postharden.invalid")
            address = case.client_addr
            if ":" in address and not address.upper().startswith("IPV6:"):
                address = f"IPV6:{address}"  # XCLIENT_README: an IPv6 ADDR carries the prefix
            attributes = [("NAME", case.client_name), ("ADDR", address)]
            if case.sasl_login is not None:
                attributes.insert(0, ("LOGIN", case.sasl_login))
            reply = client.xclient(attributes)
            if reply.code in (501, 503, 550):
                # XCLIENT_README: syntax, state or authorisation - not an access decision.
                client.close()
                return None, Outcome(
                    "connect", None, f"not asked: XCLIENT refused the case: {reply}"
                )
            if reply.code != 220:
                client.close()
                return None, _refusal("connect", reply)
            if case.helo is not None:
                reply = client.ehlo(case.helo)
                if reply.code != 250:
                    client.close()
                    return None, _refusal("helo", reply)
        except SmtpError as error:
            client.close()
            fatal = self._fatal_since(offset)
            if fatal:
                return None, Outcome("connect", None, fatal, available=False)
            return None, Outcome("connect", None, str(error))
        return client, None

    def _wait_greeting(self, client: SmtpClient, offset: int, service: str) -> bool:
        """Wait for the first greeting byte; watch the maillog for smtpd's fatal error."""
        sock = client._sock
        assert sock is not None
        end = time.monotonic() + self.greeting_timeout
        fatal_seen_at: float | None = None
        while time.monotonic() < end:
            if getattr(sock, "pending", lambda: 0)():
                return True
            readable, _, _ = select.select([sock], [], [], 0.05)
            if readable:
                return True
            if fatal_seen_at is None and self._fatal_since(offset):
                fatal_seen_at = time.monotonic()
            if fatal_seen_at is not None and time.monotonic() - fatal_seen_at > 0.3:
                break
        fatal = self._fatal_since(offset)
        self._unavailable[service] = fatal or (
            f"no greeting within {self.greeting_timeout:g} s and no fatal error in the maillog"
        )
        return False

    def _session(self, cases: Sequence[Case]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        client: SmtpClient | None = None
        try:
            for case in cases:
                if client is None or not client.connected:
                    client, refused = self._open(case)
                    if refused is not None:
                        outcomes.append(refused)
                        client = None
                        continue
                assert client is not None
                try:
                    outcomes.append(self._ask(client, case))
                except SmtpError as error:
                    client.close()
                    outcomes.append(Outcome(case.verb.lower(), None, str(error)))
        finally:
            if client is not None:
                client.quit()
        return outcomes

    def _ask(self, client: SmtpClient, case: Case) -> Outcome:
        if case.verb == "RCPT":
            commands = [f"MAIL FROM:<{case.sender}>", f"RCPT TO:<{case.recipient}>", "RSET"]
            # Lock-step, not pipelined: Postfix answers a pipelined MAIL/RCPT/RSET group
            # several times slower on loopback (it waits to batch its replies).
            mail = client.command(commands[0])
            rcpt = client.command(commands[1]) if mail.code != 421 else mail
            rset = client.command("RSET") if rcpt.code != 421 else rcpt
            if rset.code == 421 or mail.code == 421 or rcpt.code == 421:
                client.close()
            if not mail.positive:
                return _refusal("mail", mail)
            return _refusal("rcpt", rcpt)
        argument = case.recipient if case.verb != "ETRN" else (case.recipient or "example.com")
        reply = client.command(f"{case.verb} {argument}")
        if reply.code == 421:
            client.close()
        return _refusal(case.verb.lower(), reply)


def _last_fatal(output: str) -> str | None:
    """The last `fatal:` message in command output or a log, without the log prefix."""
    lines = [line for line in output.splitlines() if "fatal:" in line]
    if not lines:
        return None
    return "fatal:" + lines[-1].split("fatal:", 1)[1]


def _refusal(command: str, reply: Reply) -> Outcome:
    return Outcome(command, reply.code, reply.text)


def _terminate_master(pid: int, namespace: str | None = None) -> None:
    """SIGTERM master (it stops its children, which share its process group), wait until the
    whole group is gone, SIGKILL what is left after 10 s and wait for that to go too.

    Master's own SIGTERM handler gives itself 5 s before it commits suicide, so on a loaded
    machine a graceful stop can take that long. With `namespace` (the DNS-isolated mode),
    the processes in the sandbox's private mount namespace are stopped as well (the
    namespace and its resolv.conf mount go only with its last process). They are listed
    while master still runs and known by PID and start time, because the kernel reuses
    both PIDs and namespace numbers: another sandbox started meanwhile is never touched.
    """
    known: dict[int, int] = {}
    if namespace is not None and process_start(pid) is not None:
        for member in namespace_members(namespace):
            start = process_start(member)
            if start is not None:
                known[member] = start

    def leftovers() -> list[int]:
        found = set(_group_members(pid))
        if process_start(pid) is not None:
            found.add(pid)
        found.update(other for other, start in known.items() if process_start(other) == start)
        return sorted(found)

    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    # master is not our child (`postfix start` forks it away), so we cannot wait(): poll
    # /proc, where a zombie waiting for init to reap it counts as gone.
    if _wait_until_gone(leftovers, 10):
        return
    for other in leftovers():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(other, signal.SIGKILL)
    _wait_until_gone(leftovers, 5)


def _wait_until_gone(leftovers: Callable[[], list[int]], seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not leftovers():
            return True
        time.sleep(0.01)
    return not leftovers()


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group `pgid`."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def live_sandboxes() -> Iterator[Sandbox]:
    with _LIVE_LOCK:
        yield from list(_LIVE)


__all__ = [
    "MINIMAL_MASTER_CF",
    "Case",
    "CheckResult",
    "Outcome",
    "OutsideContactError",
    "Query",
    "Sandbox",
    "SandboxError",
    "Service",
    "Zone",
    "live_sandboxes",
    "postfix_available",
    "postfix_version",
]


def _loopback_protocols() -> str:
    """`ipv4, ipv6` when this machine has an IPv6 loopback, else `ipv4`."""
    if not socket.has_ipv6:
        return "ipv4"
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return "ipv4"
    return "ipv4, ipv6"


def _production_mynetworks(main_cf: str, directory: Path) -> str | None:
    """The mynetworks production computes, when main.cf leaves it to Postfix; else None."""
    from postharden.config import ConfigError, ExpansionError
    from postharden.config.defaults import load_defaults
    from postharden.config.model import PostfixConfig, parse_main_cf

    try:
        definitions = parse_main_cf(main_cf, "main.cf", [])
        config = PostfixConfig(directory, definitions, [], load_defaults(), [], False)
        if config.definition("mynetworks") is not None:
            return None
        return config.main.expanded("mynetworks")
    except (ConfigError, ExpansionError):
        return None  # Postfix itself will refuse this main.cf; the sandbox reports that
