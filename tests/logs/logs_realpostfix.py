"""A throw-away real Postfix instance on loopback, driven through known scenarios.

Small on purpose: only what the log tests need. Postfix writes its own log file
(`maillog_file`), so the test reads exactly what the real daemons logged.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

POSTFIX = shutil.which("postfix", path="/usr/sbin:/usr/bin:/sbin:/bin")
DOVECOT = shutil.which("dovecot", path="/usr/sbin:/usr/bin:/sbin:/bin")
SMTP_SINK = shutil.which("smtp-sink", path="/usr/sbin:/usr/bin:/sbin:/bin")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def missing() -> str | None:
    """Why a real instance cannot run here, or None."""
    if POSTFIX is None:
        return "the postfix binary is not installed"
    if SMTP_SINK is None:
        return "smtp-sink is not installed"
    if os.geteuid() != 0:
        return "starting a Postfix instance needs root"
    return None


@dataclass
class Instance:
    directory: Path
    port: int
    policy_port: int
    users: dict[str, str]
    dovecot: bool
    sinks: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def maillog(self) -> Path:
        return self.directory / "maillog"

    def session(
        self, addr: str, name: str, helo: str = "client.test", port: int | None = None
    ) -> smtplib.SMTP:
        """An SMTP session that Postfix treats as coming from ADDR (XCLIENT)."""
        # a generous timeout: CI runs two heavy workers on two cores
        smtp = smtplib.SMTP("127.0.0.1", port or self.port, timeout=120)
        smtp.ehlo("xclient.test")
        code, reply = smtp.docmd("XCLIENT", f"ADDR={addr} NAME={name} HELO={helo}")
        if code != 220:
            raise AssertionError(f"XCLIENT refused: {code} {reply!r}")
        smtp.ehlo(helo)
        return smtp

    def wait_for_log(self, needle: str, count: int = 1, timeout: float = 30) -> str:
        """Wait until NEEDLE occurs COUNT times in the maillog (postlogd writes async)."""
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.maillog.read_text(errors="replace") if self.maillog.exists() else ""
            if text.count(needle) >= count:
                return text
            time.sleep(0.1)
        raise AssertionError(f"{needle!r} x{count} not logged within {timeout}s:\n{text[-3000:]}")


MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {d}/spool
data_directory = {d}/data
maillog_file = {d}/maillog
maillog_file_prefixes = {d}
syslog_name = postfix
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.example.test
mydomain = example.test
mydestination = example.test
mynetworks = 127.0.0.1/32
relay_domains =
relayhost = [127.0.0.1]:{sink}
transport_maps = inline:{{ bounce.test=smtp:[127.0.0.1]:{bounce_sink} defer.test=smtp:[127.0.0.1]:{defer_sink} }}
smtp_dns_support_level = disabled
smtp_tls_security_level = none
alias_maps =
alias_database =
local_recipient_maps = inline:{{ postmaster@example.test=x alice@example.test=x }}
smtpd_authorized_xclient_hosts = 127.0.0.1
smtpd_peername_lookup = no
smtpd_soft_error_limit = 1000
smtpd_hard_error_limit = 2000
smtpd_error_sleep_time = 0
smtpd_junk_command_limit = 1000
smtpd_client_restrictions = check_client_access inline:{{ 198.51.100.66=REJECT }}
smtpd_sender_restrictions = check_sender_access inline:{{ spammer@bad.test=REJECT }}
smtpd_relay_restrictions = permit_mynetworks permit_sasl_authenticated reject_unauth_destination
smtpd_recipient_restrictions =
smtpd_tls_security_level = may
smtpd_tls_cert_file = {d}/cert.pem
smtpd_tls_key_file = {d}/key.pem
smtpd_tls_loglevel = 1
smtpd_tls_auth_only = no
{sasl}
delay_warning_time = 0
maximal_queue_lifetime = 1h
bounce_queue_lifetime = 1h
minimal_backoff_time = 300s
"""

SASL_CF = """\
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth
"""

MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
127.0.0.1:{policy_port} inet n - n - - smtpd
  -o syslog_name=postfix/policytest
  -o smtpd_recipient_restrictions=check_policy_service,inet:127.0.0.1:{dead_port}
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
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

DOVECOT_CONF = """\
base_dir = {d}/dovecot-run
state_dir = {d}/dovecot-state
log_path = {d}/dovecot.log
protocols =
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
login_trusted_networks = 0.0.0.0/0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}}
service auth {{
  unix_listener {spool}/private/auth {{
    mode = 0666
  }}
}}
service anvil {{
  chroot =
  # Dovecot's auth penalty (2..15 s per failure from one address) would make a
  # brute-force scenario take minutes: deny the auth process the penalty socket.
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service log {{
  chroot =
}}
default_internal_user = nobody
default_login_user = nobody
"""


@contextlib.contextmanager
def running_instance(users: dict[str, str] | None = None) -> Iterator[Instance]:
    """Start a Postfix (+ Dovecot auth, + smtp-sinks) on loopback; stop it afterwards."""
    users = users or {"alice": "alice-pw", "carol": "carol-pw"}
    top = Path(tempfile.mkdtemp(prefix="postharden-logs-"))
    top.chmod(0o755)
    # postfix-script checks every file under the config directory: keep Dovecot's
    # runtime files next to it, not inside it.
    directory = top / "postfix"
    directory.mkdir(mode=0o755)
    dovecot_dir = top / "dovecot"
    port, policy_port, dead_port = free_port(), free_port(), free_port()
    sink, bounce_sink, defer_sink = free_port(), free_port(), free_port()
    (directory / "spool").mkdir()
    (directory / "data").mkdir()
    shutil.chown(directory / "data", "postfix", "postfix")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=mx.example.test",
            "-keyout",
            str(directory / "key.pem"),
            "-out",
            str(directory / "cert.pem"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    use_dovecot = DOVECOT is not None
    if use_dovecot:
        dovecot_dir.mkdir(mode=0o755)
        (dovecot_dir / "users").write_text("".join(f"{u}:{{PLAIN}}{p}\n" for u, p in users.items()))
        (dovecot_dir / "dovecot.conf").write_text(
            DOVECOT_CONF.format(d=dovecot_dir, spool=directory / "spool")
        )
    (directory / "main.cf").write_text(
        MAIN_CF.format(
            d=directory,
            sink=sink,
            bounce_sink=bounce_sink,
            defer_sink=defer_sink,
            sasl=SASL_CF if use_dovecot else "",
        )
    )
    (directory / "master.cf").write_text(
        MASTER_CF.format(port=port, policy_port=policy_port, dead_port=dead_port)
    )
    instance = Instance(directory, port, policy_port, users, use_dovecot)
    dovecot_started = False
    try:
        assert SMTP_SINK is not None and POSTFIX is not None
        for sink_port, flags in (
            (sink, []),
            (bounce_sink, ["-f", "rcpt"]),
            (defer_sink, ["-r", "rcpt"]),
        ):
            instance.sinks.append(
                subprocess.Popen(
                    [SMTP_SINK, "-u", "nobody", *flags, f"127.0.0.1:{sink_port}", "50"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        subprocess.run(
            [POSTFIX, "-c", str(directory), "start"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )
        _wait_port(port)
        _wait_port(policy_port)
        if use_dovecot:
            assert DOVECOT is not None
            # Dovecot daemonizes and keeps inherited pipes open: give it no pipes.
            subprocess.run(
                [DOVECOT, "-c", str(dovecot_dir / "dovecot.conf")],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=30,
            )
            dovecot_started = True
            _wait_path(directory / "spool" / "private" / "auth")
        yield instance
    finally:
        subprocess.run(
            [POSTFIX or "postfix", "-c", str(directory), "stop"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )
        if dovecot_started and DOVECOT is not None:
            subprocess.run(
                [DOVECOT, "-c", str(dovecot_dir / "dovecot.conf"), "stop"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=30,
                check=False,
            )
        for proc in instance.sinks:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        if os.environ.get("POSTHARDEN_KEEP_INSTANCE"):
            print(f"kept {top}")
        else:
            shutil.rmtree(top, ignore_errors=True)


def _wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
            return
        time.sleep(0.1)
    raise AssertionError(f"port {port} never opened")


def _wait_path(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return
        time.sleep(0.1)
    raise AssertionError(f"{path} never appeared")
