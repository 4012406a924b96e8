"""Live probes of a running SMTP server, from wherever postharden runs.

``probe(target, options) -> ProbeReport`` talks to each port of the target politely: one
connection at a time, explicit timeouts (``ProbeOptions.timeout`` per read,
``ProbeOptions.session_deadline`` per session), one test per session where the server counts
errors, always waiting for the full multi-line greeting (postscreen's ``220-`` teaser). Each
test has a stable id, a status (``pass``, ``fail``, ``inconclusive``, ``error``), a one-line
detail and the transcript that proves it.

The probe produces facts; it sends mail only with ``ProbeOptions.send`` (DATA to confirm a
relay, and the SMTP smuggling test with bare LF line endings).
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import socket
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from postharden.errors import InputError
from postharden.probe.relay import RelayForm, judge_rcpt, relay_forms
from postharden.smtp import Reply, SmtpClient, SmtpError, Transcript

SCHEMA_VERSION = 1
DEFAULT_PORTS = (25, 587, 465)
STATUSES = ("pass", "fail", "inconclusive", "error")
EHLO_NAME = "probe.postharden.invalid"

# "ESMTP Postfix (Debian/GNU)", "Exim 4.96", "Microsoft ESMTP MAIL Service", ...
_SOFTWARE = re.compile(
    r"\b(postfix|exim|sendmail|qmail|microsoft|exchange|haraka|opensmtpd|zimbra|"
    r"courier|mdaemon|kerio|smtp-sink|debian|ubuntu)\b",
    re.IGNORECASE,
)
_VERSION = re.compile(r"\b\d+\.\d+(\.\d+)?\b")


class ProbeError(InputError):
    """The probe cannot start (bad target)."""


@dataclass(frozen=True)
class ProbeOptions:
    ports: tuple[int, ...] = DEFAULT_PORTS
    local_domain: str | None = None
    foreign_domain: str = "example.net"
    tls: bool = False
    send: bool = False
    timeout: float = 5.0
    session_deadline: float = 30.0
    source_address: str | None = None
    mynetworks: tuple[str, ...] = ()
    implicit_tls_ports: tuple[int, ...] = (465,)


@dataclass
class TestResult:
    id: str
    status: str
    detail: str
    transcript: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "detail": self.detail,
            "transcript": self.transcript,
        }


@dataclass
class ServiceReport:
    port: int
    banner: str | None = None
    ehlo: list[str] = field(default_factory=list)
    tests: list[TestResult] = field(default_factory=list)
    open_relay: bool | None = None
    vrfy_enabled: bool | None = None
    auth_before_tls: bool | None = None
    starttls: bool | None = None
    tls: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "port": self.port,
            "banner": self.banner,
            "ehlo": self.ehlo,
            "tests": [t.as_dict() for t in self.tests],
            "open_relay": self.open_relay,
            "vrfy_enabled": self.vrfy_enabled,
            "auth_before_tls": self.auth_before_tls,
            "starttls": self.starttls,
            "tls": self.tls,
        }

    def test(self, test_id: str) -> TestResult:
        for result in self.tests:
            if result.id == test_id:
                return result
        raise KeyError(test_id)


@dataclass
class ProbeReport:
    target: str
    source_address: str | None
    services: list[ServiceReport]
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "target": self.target,
            "source_address": self.source_address,
            "warnings": self.warnings,
            "services": [s.as_dict() for s in self.services],
        }

    def all_tests(self) -> list[TestResult]:
        return [t for s in self.services for t in s.tests]


def parse_target(text: str) -> tuple[str, int | None]:
    """HOST, HOST:PORT, [IPv6]:PORT -> (host, port or None)."""
    text = text.strip()
    if not text:
        raise ProbeError("empty target")
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not host:
        raise ProbeError(f"no host in {text!r}")
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ProbeError(f"bad port in {text!r}")
        return host, int(port_text)
    return host, None


def resolve(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise ProbeError(f"cannot resolve {host}: {error}") from error
    return str(infos[0][4][0])


def mynetworks_of(config_dir: Path) -> tuple[str, ...]:
    """The server's mynetworks from its configuration (when the probe runs on the server)."""
    try:
        result = subprocess.run(
            ["postconf", "-c", str(config_dir), "-h", "mynetworks"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ProbeError(f"cannot read mynetworks with postconf: {error}") from error
    if result.returncode != 0:
        raise ProbeError(f"postconf -c {config_dir}: {result.stderr.strip()[:200]}")
    return tuple(result.stdout.replace(",", " ").split())


def inside_networks(address: str, networks: Sequence[str]) -> str | None:
    """The network of `networks` that contains `address`, if any."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    for network in networks:
        text = network.strip("[]").replace("]/", "/")
        try:
            if ip in ipaddress.ip_network(text, strict=False):
                return network
        except ValueError:
            continue
    return None


class _ServiceProbe:
    """The tests of one port. Every session is a fresh `SmtpClient`."""

    def __init__(self, host: str, ip: str, port: int, options: ProbeOptions) -> None:
        self.host = host
        self.ip = ip
        self.port = port
        self.options = options
        self.implicit_tls = port in options.implicit_tls_ports
        self.report = ServiceReport(port)
        self.server_name = host
        self.source_address: str | None = None

    # -- sessions ---------------------------------------------------------------------

    def _client(self, transcript: Transcript) -> SmtpClient:
        return SmtpClient(
            self.ip,
            self.port,
            connect_timeout=self.options.timeout,
            read_timeout=self.options.timeout,
            deadline=self.options.session_deadline,
            source_address=self.options.source_address,
            transcript=transcript,
        )

    def _greet(self, client: SmtpClient) -> Reply:
        """Connect, read the whole greeting and EHLO; raise SmtpError when that fails."""
        greeting = client.connect(implicit_tls=self.implicit_tls, server_hostname=self.server_name)
        if client.local_address is not None:
            self.source_address = client.local_address[0]
        if greeting.code != 220:
            raise _Refused(f"greeting {greeting.code} {greeting.text}")
        reply = client.ehlo(EHLO_NAME)
        if reply.code != 250:
            raise _Refused(f"EHLO refused: {reply.code} {reply.text}")
        return greeting

    def _session(self, test_id: str, body: Callable[[SmtpClient], TestResult]) -> TestResult:
        """Run one test in its own session; connection trouble becomes `error`."""
        transcript = Transcript()
        client = self._client(transcript)
        try:
            self._greet(client)
            result = body(client)
        except _Refused as refused:
            result = TestResult(test_id, "inconclusive", f"server refused the session: {refused}")
        except SmtpError as error:
            result = TestResult(test_id, "error", f"{error.reason}: {error.message}")
        finally:
            client.quit()
        result.transcript = transcript.as_strings()
        return result

    # -- the tests --------------------------------------------------------------------

    def run(self) -> ServiceReport:
        if not self._banner():
            return self.report
        self._vrfy_expn()
        self._relay()
        self._auth()
        self._xclient_xforward()
        self._pipelining()
        if not self.implicit_tls:
            self._starttls()
        if self.options.tls:
            self._tls_scan()
        if self.options.send:
            self._smuggling()
        return self.report

    def _add(self, result: TestResult) -> TestResult:
        self.report.tests.append(result)
        return result

    def _banner(self) -> bool:
        transcript = Transcript()
        client = self._client(transcript)
        try:
            greeting = client.connect(
                implicit_tls=self.implicit_tls, server_hostname=self.server_name
            )
            if client.local_address is not None:
                self.source_address = client.local_address[0]
            self.report.banner = "\n".join(greeting.lines)
            if greeting.code != 220:
                self._add(
                    TestResult(
                        "connect",
                        "inconclusive",
                        f"the server refuses this client: {greeting.code} {greeting.text}",
                        transcript.as_strings(),
                    )
                )
                return False
            reply = client.ehlo(EHLO_NAME)
            if reply.code == 250:
                self.report.ehlo = list(reply.lines[1:])
                self.server_name = (reply.lines[0].split() or [self.host])[0]
            keywords = client.esmtp
            self.report.starttls = None if self.implicit_tls else "STARTTLS" in keywords
            auth = keywords.get("AUTH", "").upper().split()
            self.report.auth_before_tls = bool(auth) and not self.implicit_tls
        except SmtpError as error:
            self._add(
                TestResult(
                    "connect", "error", f"{error.reason}: {error.message}", transcript.as_strings()
                )
            )
            return False
        finally:
            client.quit()
        lines = transcript.as_strings()
        self._add(TestResult("connect", "pass", "full greeting and EHLO received", lines))
        banner = greeting.text
        first = (banner.split() or [""])[0]
        if _VERSION.search(banner):
            self._add(
                TestResult(
                    "banner.version", "fail", f"banner discloses a version: {banner!r}", lines
                )
            )
        else:
            self._add(
                TestResult("banner.version", "pass", "no version number in the banner", lines)
            )
        software = _SOFTWARE.search(banner)
        if software:
            self._add(
                TestResult(
                    "banner.software",
                    "fail",
                    f"banner names the software ({software.group(0)}); smtpd_banner = $myhostname ESMTP",
                    lines,
                )
            )
        else:
            self._add(TestResult("banner.software", "pass", "the banner names no software", lines))
        if "." in first and not first.startswith("["):
            self._add(
                TestResult("banner.fqdn", "pass", f"banner starts with a name: {first}", lines)
            )
        else:
            self._add(
                TestResult(
                    "banner.fqdn",
                    "fail",
                    f"banner does not start with an FQDN (RFC 5321): {first!r}",
                    lines,
                )
            )
        advertised = [k for k in ("XCLIENT", "XFORWARD") if k in keywords]
        if advertised:
            self._add(
                TestResult(
                    "ehlo.extensions",
                    "fail",
                    f"{' and '.join(advertised)} advertised to this client",
                    lines,
                )
            )
        else:
            others = [k for k in ("VRFY", "ETRN") if k in keywords]
            note = f" ({', '.join(others)} advertised)" if others else ""
            self._add(TestResult("ehlo.extensions", "pass", f"no XCLIENT/XFORWARD{note}", lines))
        return True

    def _vrfy_expn(self) -> None:
        control = f"nx{secrets.token_hex(5)}"
        for verb in ("VRFY", "EXPN"):

            def body(client: SmtpClient, verb: str = verb) -> TestResult:
                known = client.command(f"{verb} postmaster")
                unknown = client.command(f"{verb} {control}")
                return _judge_vrfy(verb, known, unknown, control)

            result = self._add(self._session(verb.lower(), body))
            if verb == "VRFY":
                self.report.vrfy_enabled = _vrfy_enabled(result)

    def _relay(self) -> None:
        local_domain = self.options.local_domain or _domain_of(self.server_name)
        local_part = f"relaytest{secrets.token_hex(4)}"
        forms = relay_forms(
            server_name=self.server_name,
            server_ip=self.ip,
            local_domain=local_domain,
            foreign_domain=self.options.foreign_domain,
            local_part=local_part,
        )
        # The control: a random local part at the server's own name. If it is accepted, the
        # server has a catch-all and forms that end at the server prove nothing at RCPT.
        control_rcpt = f"nx{secrets.token_hex(6)}@{self.server_name}"

        def control_body(client: SmtpClient) -> TestResult:
            mail = client.mail(f"postmaster@{local_domain}")
            if not mail.positive:
                return TestResult("relay.control", "inconclusive", f"MAIL refused: {mail}")
            rcpt = client.rcpt(control_rcpt)
            if rcpt.positive:
                return TestResult(
                    "relay.control", "pass", "a random local address is accepted (catch-all)"
                )
            return TestResult(
                "relay.control", "pass", f"a random local address is refused ({rcpt.code})"
            )

        control = self._add(self._session("relay.control", control_body))
        catch_all = "catch-all" in control.detail
        statuses: list[str] = []
        for form in forms:

            def body(client: SmtpClient, form: RelayForm = form) -> TestResult:
                return self._relay_form(client, form, catch_all)

            result = self._add(self._session(form.id, body))
            statuses.append(result.status)
        if "fail" in statuses:
            self.report.open_relay = True
        elif all(status == "pass" for status in statuses):
            self.report.open_relay = False
        else:
            self.report.open_relay = None

    def _relay_form(self, client: SmtpClient, form: RelayForm, catch_all: bool) -> TestResult:
        mail = client.mail(form.sender)
        if mail.transient:
            return TestResult(form.id, "inconclusive", f"{form.description}: MAIL got {mail.code}")
        if not mail.positive:
            return TestResult(form.id, "pass", f"{form.description}: MAIL refused ({mail.code})")
        rcpt = client.rcpt(form.recipient)
        status, reason = judge_rcpt(rcpt.code, ends_local=form.ends_local, catch_all=catch_all)
        detail = f"{form.description}: RCPT {rcpt.code}: {reason}"
        if status == "fail" and self.options.send:
            data = client.data(_message(form.sender, form.recipient, self.server_name))
            if data.positive:
                detail += f"; DATA accepted ({data.code}): relaying confirmed"
            else:
                detail += f"; DATA refused ({data.code} {data.text})"
        return TestResult(form.id, status, detail)

    def _auth(self) -> None:
        result = TestResult("auth.before_tls", "pass", "no AUTH offered before TLS")
        if self.implicit_tls:
            result.detail = "implicit TLS: AUTH is only offered inside TLS"
        elif self.report.auth_before_tls:
            result = TestResult(
                "auth.before_tls",
                "fail",
                "AUTH offered in cleartext (smtpd_tls_auth_only = yes hides it until STARTTLS)",
            )
        self._add(result)
        # Whether a password in cleartext is actually accepted for checking.
        user = f"postharden-probe-{secrets.token_hex(3)}"

        def body(client: SmtpClient) -> TestResult:
            reply = client.auth_plain(user, secrets.token_hex(8))
            if reply.code in (530, 538) or (reply.code == 503 and not self.report.auth_before_tls):
                return TestResult(
                    "auth.cleartext_plain", "pass", f"cleartext AUTH PLAIN refused ({reply.code})"
                )
            if reply.code in (502, 504):
                return TestResult(
                    "auth.cleartext_plain", "pass", f"AUTH PLAIN not available ({reply.code})"
                )
            if reply.code == 235:
                return TestResult(
                    "auth.cleartext_plain", "fail", "a random user authenticated in cleartext (235)"
                )
            if reply.code == 535:
                return TestResult(
                    "auth.cleartext_plain",
                    "fail",
                    "the server checked a password sent in cleartext (535): credentials travel unencrypted",
                )
            if reply.transient:
                return TestResult(
                    "auth.cleartext_plain",
                    "inconclusive",
                    f"temporary answer {reply.code} {reply.text}",
                )
            return TestResult(
                "auth.cleartext_plain",
                "inconclusive",
                f"unexpected answer {reply.code} {reply.text}",
            )

        if self.implicit_tls:
            return
        self._add(self._session("auth.cleartext_plain", body))

    def _xclient_xforward(self) -> None:
        def xclient(client: SmtpClient) -> TestResult:
            reply = client.command("XCLIENT NAME=probe.postharden.invalid")
            if reply.code == 220:
                return TestResult(
                    "xclient", "fail", "XCLIENT accepted: this client may impersonate others"
                )
            if reply.positive:
                return TestResult("xclient", "fail", f"XCLIENT accepted ({reply.code})")
            if reply.transient:
                return TestResult("xclient", "inconclusive", f"temporary answer {reply.code}")
            return TestResult("xclient", "pass", f"XCLIENT refused ({reply.code})")

        def xforward(client: SmtpClient) -> TestResult:
            reply = client.command("XFORWARD NAME=probe.postharden.invalid")
            if reply.positive:
                return TestResult("xforward", "fail", f"XFORWARD accepted ({reply.code})")
            if reply.transient:
                return TestResult("xforward", "inconclusive", f"temporary answer {reply.code}")
            return TestResult("xforward", "pass", f"XFORWARD refused ({reply.code})")

        self._add(self._session("xclient", xclient))
        self._add(self._session("xforward", xforward))

    def _pipelining(self) -> None:
        def body(client: SmtpClient) -> TestResult:
            # HELO (not EHLO) negotiates no PIPELINING: a client that sends HELO and NOOP in
            # one packet violates RFC 2920. Postfix >= 3.9 (and backports) can refuse it with
            # smtpd_forbid_unauth_pipelining.
            try:
                replies = client.pipeline(["RSET", "HELO probe.postharden.invalid", "NOOP"])
            except SmtpError as error:
                if error.reason == "closed":
                    return TestResult(
                        "pipelining.unauth", "pass", "the server hung up on unauthorised pipelining"
                    )
                raise
            if all(r.positive for r in replies):
                return TestResult(
                    "pipelining.unauth",
                    "fail",
                    "commands pipelined without PIPELINING were accepted (smtpd_forbid_unauth_pipelining = yes)",
                )
            return TestResult(
                "pipelining.unauth", "pass", f"refused: {' / '.join(str(r.code) for r in replies)}"
            )

        self._add(self._session("pipelining.unauth", body))

    def _starttls(self) -> None:
        if not self.report.starttls:
            self._add(TestResult("starttls", "fail", "STARTTLS is not offered"))
            return

        def body(client: SmtpClient) -> TestResult:
            reply = client.starttls(server_hostname=self.server_name)
            if reply.code != 220:
                return TestResult("starttls", "fail", f"STARTTLS advertised but refused: {reply}")
            after = client.ehlo(EHLO_NAME)
            mechanisms = client.esmtp.get("AUTH", "")
            detail = f"TLS established: {client.tls_version} {client.tls_cipher}"
            if mechanisms:
                detail += f"; AUTH after TLS: {mechanisms}"
            self.report.tls = self.report.tls or {}
            self.report.tls.update({"version": client.tls_version, "cipher": client.tls_cipher})
            if after.code != 250:
                return TestResult("starttls", "fail", f"EHLO after STARTTLS refused: {after}")
            return TestResult("starttls", "pass", detail)

        self._add(self._session("starttls", body))

    def _tls_scan(self) -> None:
        from postharden.probe.tls import OBSOLETE, TlsScanUnavailable, scan

        if not self.implicit_tls and not self.report.starttls:
            return
        try:
            result = scan(
                self.ip,
                self.port,
                implicit_tls=self.implicit_tls,
                server_name=self.server_name,
                timeout=max(1, int(self.options.timeout)),
            )
        except TlsScanUnavailable as error:
            self._add(TestResult("tls.scan", "error", str(error)))
            return
        self.report.tls = {
            **(self.report.tls or {}),
            "implicit": self.implicit_tls,
            **result.as_dict(),
        }
        if result.error:
            self._add(TestResult("tls.scan", "error", result.error))
            return
        old = [p for p in OBSOLETE if result.protocols.get(p)]
        self._add(
            TestResult(
                "tls.protocols",
                "fail" if old else "pass",
                f"obsolete protocols accepted: {', '.join(old)} (smtpd_tls_protocols = >=TLSv1.2)"
                if old
                else "only TLS 1.2 and later accepted: "
                + ", ".join(p for p, on in result.protocols.items() if on),
            )
        )
        self._add(
            TestResult(
                "tls.weak_ciphers",
                "fail" if result.weak_ciphers else "pass",
                "; ".join(result.weak_ciphers[:5])
                if result.weak_ciphers
                else "no weak cipher classes",
            )
        )
        cert = result.certificate or {}
        if not cert or "error" in cert:
            self._add(
                TestResult("tls.certificate", "error", f"no certificate facts: {cert.get('error')}")
            )
            return
        problems = []
        if cert["days_left"] < 0:
            problems.append(f"expired {-cert['days_left']} days ago")
        elif cert["days_left"] < 14:
            problems.append(f"expires in {cert['days_left']} days")
        if not cert["name_matches"]:
            problems.append(f"names {cert['names']} do not match {self.server_name}")
        if cert["key_type"] == "RSA" and cert["key_size"] < 2048:
            problems.append(f"RSA key of {cert['key_size']} bits")
        if not cert["trusted"]:
            problems.append(
                "not trusted by the system's stores"
                + (" (self-signed)" if cert["self_signed"] else "")
            )
        self._add(
            TestResult(
                "tls.certificate",
                "fail" if problems else "pass",
                "; ".join(problems)
                if problems
                else f"valid for {cert['days_left']} days, {cert['key_type']} {cert['key_size']}",
            )
        )

    def _smuggling(self) -> None:
        recipient = f"postmaster@{self.server_name}"

        def body(client: SmtpClient) -> TestResult:
            mail = client.mail("")
            rcpt = client.rcpt(recipient) if mail.positive else mail
            if not rcpt.positive:
                return TestResult(
                    "smtp.smuggling", "inconclusive", f"no recipient accepted: {rcpt}"
                )
            reply = client.command("DATA")
            if reply.code != 354:
                return TestResult("smtp.smuggling", "inconclusive", f"DATA refused: {reply}")
            # A line ended by a bare LF: Postfix with smtpd_forbid_bare_newline = yes refuses
            # the message (and CVE-2023-51764 smuggling with it).
            body_bytes = (
                b"Subject: postharden smuggling probe\r\n\r\nline with a bare LF\n"
                b"next line\r\n.\r\n"
            )
            client.send_raw(body_bytes, record="<message with a bare LF line ending>\r\n.")
            try:
                end = client.read_reply()
            except SmtpError as error:
                if error.reason == "closed":
                    return TestResult("smtp.smuggling", "pass", "the server hung up on a bare LF")
                raise
            if end.positive:
                return TestResult(
                    "smtp.smuggling",
                    "fail",
                    f"a message with a bare LF was accepted ({end.code}); smtpd_forbid_bare_newline = yes",
                )
            return TestResult("smtp.smuggling", "pass", f"bare LF refused: {end}")

        self._add(self._session("smtp.smuggling", body))


class _Refused(Exception):
    """The server refused the session before the test could run."""


def _judge_vrfy(verb: str, known: Reply, unknown: Reply, control: str) -> TestResult:
    test_id = verb.lower()
    codes = f"{verb} postmaster -> {known.code}, {verb} {control} -> {unknown.code}"
    if known.code == 502 and unknown.code == 502:
        return TestResult(test_id, "pass", f"{verb} disabled ({codes})")
    if known.transient or unknown.transient:
        return TestResult(test_id, "inconclusive", f"temporary answers ({codes})")
    if known.positive and unknown.permanent:
        return TestResult(
            test_id, "fail", f"{verb} tells existing from unknown addresses: harvesting ({codes})"
        )
    if known.code == unknown.code:
        return TestResult(test_id, "pass", f"{verb} answers alike for both ({codes})")
    if known.permanent and unknown.permanent:
        return TestResult(test_id, "pass", f"{verb} refused ({codes})")
    return TestResult(test_id, "inconclusive", f"answers differ ({codes})")


def _vrfy_enabled(result: TestResult) -> bool | None:
    if result.status == "fail" or "answers alike" in result.detail:
        return result.status == "fail" or " -> 25" in result.detail
    if "disabled" in result.detail:
        return False
    return None


def _domain_of(name: str) -> str:
    parts = name.split(".")
    return ".".join(parts[1:]) if len(parts) > 2 else name


def _message(sender: str, recipient: str, server: str) -> bytes:
    return (
        f"From: <{sender}>\r\nTo: <{recipient}>\r\n"
        f"Subject: postharden relay probe of {server}\r\n\r\n"
        "This message was sent by `postharden probe --send` to test relaying.\r\n"
    ).encode()


def probe(target: str, options: ProbeOptions) -> ProbeReport:
    """Probe every port of `target` (HOST or HOST:PORT; a port there replaces options.ports)."""
    host, port = parse_target(target)
    ip = resolve(host)
    ports = (port,) if port is not None else options.ports
    services = []
    source: str | None = None
    for each in ports:
        service = _ServiceProbe(host, ip, each, options)
        services.append(service.run())
        source = source or service.source_address
    report = ProbeReport(target=target, source_address=source, services=services)
    if source is not None:
        if options.mynetworks:
            network = inside_networks(source, options.mynetworks)
            if network:
                report.warnings.append(
                    f"the probe comes from {source}, inside the server's mynetworks ({network}): "
                    "relay tests from here say nothing about outside clients"
                )
        else:
            ip_source = ipaddress.ip_address(source)
            if ip_source.is_loopback or ip_source.is_private:
                report.warnings.append(
                    f"the probe comes from {source} (a private or loopback address): if that is "
                    "inside the server's mynetworks, relay tests say nothing about outside clients"
                )
    return report


def exit_code(report: ProbeReport) -> int:
    from postharden.errors import EXIT_FINDINGS, EXIT_OK, EXIT_UNEVALUATED

    statuses = {t.status for t in report.all_tests()}
    if "fail" in statuses:
        return EXIT_FINDINGS
    if statuses & {"error", "inconclusive"} or not statuses:
        return EXIT_UNEVALUATED
    return EXIT_OK


__all__ = [
    "DEFAULT_PORTS",
    "SCHEMA_VERSION",
    "ProbeError",
    "ProbeOptions",
    "ProbeReport",
    "ServiceReport",
    "TestResult",
    "exit_code",
    "inside_networks",
    "mynetworks_of",
    "parse_target",
    "probe",
]
