"""A blocking SMTP client for probes and the sandbox: explicit timeouts, a real reply reader.

The client never waits without a bound: every connect and every read has its own timeout
(`read_timeout`), and a whole session has a deadline (`deadline`, seconds from `connect()`).
Replies are read line by line as RFC 5321 section 4.2 defines them (`250-` continues,
`250 ` ends), with a maximum line length and a maximum number of lines, so a hostile server
that sends a 1 MB line, an endless greeting, garbage or one byte per second ends in an
`SmtpError` with a one-line reason instead of a hang or a traceback.

Everything sent and received is recorded in `SmtpClient.transcript` (`C:` for commands,
`S:` for reply lines, `*:` for events such as the TLS handshake), which is the evidence a
probe reports.

Typical use::

    with SmtpClient("127.0.0.1", 25, read_timeout=5, deadline=30) as client:
        greeting = client.connect()
        client.ehlo("probe.example")
        if client.supports("STARTTLS"):
            client.starttls()
        reply = client.mail("")
"""

from __future__ import annotations

import base64
import socket
import ssl
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType

from postharden.errors import EXIT_UNEVALUATED, PostHardenError

# RFC 5321 4.5.3.1.5: a reply line is at most 512 octets including CRLF. Real servers exceed
# it in EHLO lists and long rejection texts; 4096 still stops a 1 MB line after 4 KB.
DEFAULT_MAX_LINE_LENGTH = 4096
DEFAULT_MAX_LINES = 100
DEFAULT_READ_TIMEOUT = 10.0
DEFAULT_DEADLINE = 60.0


class SmtpError(PostHardenError):
    """The SMTP dialogue could not continue; `reason` is a short machine-usable word."""

    exit_code = EXIT_UNEVALUATED
    reason = "error"


class SmtpConnectError(SmtpError):
    reason = "connect"


class SmtpTimeout(SmtpError):
    reason = "timeout"


class SmtpClosed(SmtpError):
    reason = "closed"


class SmtpProtocolError(SmtpError):
    reason = "protocol"


class SmtpTlsError(SmtpError):
    reason = "tls"


@dataclass(frozen=True)
class Reply:
    """One complete (possibly multi-line) SMTP reply."""

    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        """The reply text without codes, lines joined by a space (for reports)."""
        return " ".join(self.lines)

    @property
    def positive(self) -> bool:
        return 200 <= self.code < 400

    @property
    def transient(self) -> bool:
        return 400 <= self.code < 500

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


@dataclass(frozen=True)
class TranscriptLine:
    """One line of the dialogue: `C` sent by us, `S` received, `*` an event."""

    direction: str
    text: str

    def __str__(self) -> str:
        return f"{self.direction}: {self.text}"


@dataclass
class Transcript:
    lines: list[TranscriptLine] = field(default_factory=list)

    def sent(self, text: str) -> None:
        self.lines.append(TranscriptLine("C", text))

    def received(self, text: str) -> None:
        self.lines.append(TranscriptLine("S", text))

    def event(self, text: str) -> None:
        self.lines.append(TranscriptLine("*", text))

    def as_strings(self) -> list[str]:
        return [str(line) for line in self.lines]


def parse_ehlo_keywords(reply: Reply) -> dict[str, str]:
    """EHLO keywords (upper case) to their parameters; the first line is the server's name."""
    keywords: dict[str, str] = {}
    for line in reply.lines[1:]:
        keyword, _, params = line.strip().partition(" ")
        if keyword:
            keywords[keyword.upper()] = params.strip()
    return keywords


def xtext(value: str) -> str:
    """RFC 3461 xtext: '+', '=', controls and non-ASCII become +HH."""
    out = []
    for byte in value.encode("utf-8"):
        if byte == 0x2B or byte == 0x3D or byte < 0x21 or byte > 0x7E:
            out.append(f"+{byte:02X}")
        else:
            out.append(chr(byte))
    return "".join(out)


def plain_credentials(user: str, password: str) -> str:
    """The RFC 4616 AUTH PLAIN initial response."""
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode("ascii")


class SmtpClient:
    """One SMTP session. Not thread-safe; use one client per thread."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        connect_timeout: float = DEFAULT_READ_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        deadline: float = DEFAULT_DEADLINE,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        max_lines: int = DEFAULT_MAX_LINES,
        source_address: str | None = None,
        transcript: Transcript | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.deadline = deadline
        self.max_line_length = max_line_length
        self.max_lines = max_lines
        self.source_address = source_address
        self.transcript = transcript if transcript is not None else Transcript()
        self.esmtp: dict[str, str] = {}
        self.greeting: Reply | None = None
        self.tls_version: str | None = None
        self.tls_cipher: str | None = None
        self.local_address: tuple[str, int] | None = None
        self._sock: socket.socket | None = None
        self._buffer = b""
        self._started = 0.0

    # -- connection -----------------------------------------------------------------

    def __enter__(self) -> SmtpClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def _remaining(self) -> float:
        left = self.deadline - (time.monotonic() - self._started)
        if left <= 0:
            raise SmtpTimeout(
                f"{self.host}:{self.port}: session deadline of {self.deadline:g} s exceeded"
            )
        return left

    def open_socket(
        self, *, implicit_tls: bool = False, server_hostname: str | None = None
    ) -> None:
        """Open the TCP connection (and, for port 465, the TLS layer) without reading."""
        self._started = time.monotonic()
        source = (self.source_address, 0) if self.source_address else None
        try:
            sock = socket.create_connection(
                (self.host, self.port),
                timeout=min(self.connect_timeout, self._remaining()),
                source_address=source,
            )
        except TimeoutError as error:
            raise SmtpConnectError(
                f"{self.host}:{self.port}: connect timed out after {self.connect_timeout:g} s"
            ) from error
        except OSError as error:
            raise SmtpConnectError(
                f"{self.host}:{self.port}: cannot connect: {error.strerror or error}"
            ) from error
        self._sock = sock
        name = sock.getsockname()
        self.local_address = (str(name[0]), int(name[1]))
        self.transcript.event(f"connected to {self.host}:{self.port} from {name[0]}")
        if implicit_tls:
            self._wrap_tls(server_hostname)

    def connect(self, *, implicit_tls: bool = False, server_hostname: str | None = None) -> Reply:
        """Connect and read the whole greeting (postscreen's `220-` teaser included)."""
        self.open_socket(implicit_tls=implicit_tls, server_hostname=server_hostname)
        self.greeting = self.read_reply()
        return self.greeting

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
                self._buffer = b""

    def quit(self) -> None:
        """Say QUIT politely if the session is still usable, then close; never raises."""
        if self._sock is None:
            return
        try:
            self.command("QUIT")
        except SmtpError:
            pass
        finally:
            self.close()

    # -- reading ----------------------------------------------------------------------

    def _require_socket(self) -> socket.socket:
        if self._sock is None:
            raise SmtpClosed(f"{self.host}:{self.port}: not connected")
        return self._sock

    def _read_line(self) -> str:
        sock = self._require_socket()
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                raw, self._buffer = self._buffer[:end], self._buffer[end + 1 :]
                if len(raw) > self.max_line_length:
                    self._overlong()
                return raw.rstrip(b"\r").decode("utf-8", errors="replace")
            if len(self._buffer) > self.max_line_length:
                self._overlong()
            timeout = min(self.read_timeout, self._remaining())
            sock.settimeout(timeout)
            try:
                chunk = sock.recv(65536)
            except TimeoutError as error:
                self.close()
                if timeout < self.read_timeout:
                    raise SmtpTimeout(
                        f"{self.host}:{self.port}: session deadline of {self.deadline:g} s "
                        "exceeded while waiting for a reply"
                    ) from error
                raise SmtpTimeout(
                    f"{self.host}:{self.port}: no complete reply line within {timeout:g} s"
                ) from error
            except ssl.SSLError as error:
                self.close()
                raise SmtpTlsError(f"{self.host}:{self.port}: TLS error: {error}") from error
            except OSError as error:
                self.close()
                raise SmtpClosed(
                    f"{self.host}:{self.port}: connection lost: {error.strerror or error}"
                ) from error
            if not chunk:
                partial = self._buffer
                self.close()
                if partial:
                    self.transcript.received(partial.decode("utf-8", errors="replace")[:200])
                raise SmtpClosed(f"{self.host}:{self.port}: server closed the connection")
            self._buffer += chunk

    def _overlong(self) -> None:
        self.close()
        raise SmtpProtocolError(
            f"{self.host}:{self.port}: reply line longer than {self.max_line_length} bytes"
        )

    def read_reply(self) -> Reply:
        """Read one complete reply: continuation lines `NNN-`, final line `NNN ` or `NNN`."""
        code: int | None = None
        lines: list[str] = []
        while True:
            line = self._read_line()
            self.transcript.received(line)
            if len(line) < 3 or not line[:3].isdigit() or (len(line) > 3 and line[3] not in " -"):
                self.close()
                raise SmtpProtocolError(
                    f"{self.host}:{self.port}: not an SMTP reply line: {line[:80]!r}"
                )
            line_code = int(line[:3])
            if code is None:
                code = line_code
            elif line_code != code:
                self.close()
                raise SmtpProtocolError(
                    f"{self.host}:{self.port}: reply code changed from {code} to {line_code} "
                    "inside one reply"
                )
            lines.append(line[4:])
            if len(line) == 3 or line[3] == " ":
                return Reply(code, tuple(lines))
            if len(lines) >= self.max_lines:
                self.close()
                raise SmtpProtocolError(
                    f"{self.host}:{self.port}: reply longer than {self.max_lines} lines"
                )

    # -- writing ----------------------------------------------------------------------

    def send_raw(self, data: bytes, *, record: str | None = None) -> None:
        """Send bytes as they are (for DATA bodies and smuggling tests)."""
        sock = self._require_socket()
        sock.settimeout(min(self.read_timeout, self._remaining()))
        if record is not None:
            self.transcript.sent(record)
        try:
            sock.sendall(data)
        except TimeoutError as error:
            self.close()
            raise SmtpTimeout(f"{self.host}:{self.port}: send timed out") from error
        except OSError as error:
            self.close()
            raise SmtpClosed(
                f"{self.host}:{self.port}: connection lost while sending: {error.strerror or error}"
            ) from error

    def send_line(self, line: str, *, record: str | None = None) -> None:
        if "\r" in line or "\n" in line:
            raise ValueError("an SMTP command must not contain CR or LF")
        self.send_raw(line.encode("utf-8") + b"\r\n", record=line if record is None else record)

    def command(self, line: str, *, record: str | None = None) -> Reply:
        """Send one command line and read its reply."""
        self.send_line(line, record=record)
        return self.read_reply()

    def pipeline(self, lines: Sequence[str]) -> list[Reply]:
        """Send several commands in one write (RFC 2920) and read one reply per command."""
        for line in lines:
            if "\r" in line or "\n" in line:
                raise ValueError("an SMTP command must not contain CR or LF")
            self.transcript.sent(line)
        self.send_raw("".join(f"{line}\r\n" for line in lines).encode("utf-8"))
        return [self.read_reply() for _ in lines]

    # -- commands ---------------------------------------------------------------------

    def ehlo(self, name: str) -> Reply:
        """EHLO; on success `esmtp` holds the advertised keywords."""
        reply = self.command(f"EHLO {name}")
        self.esmtp = parse_ehlo_keywords(reply) if reply.code == 250 else {}
        return reply

    def helo(self, name: str) -> Reply:
        self.esmtp = {}
        return self.command(f"HELO {name}")

    def supports(self, keyword: str) -> bool:
        return keyword.upper() in self.esmtp

    def mail(self, sender: str, params: Iterable[str] = ()) -> Reply:
        extra = "".join(f" {p}" for p in params)
        return self.command(f"MAIL FROM:<{sender}>{extra}")

    def rcpt(self, recipient: str) -> Reply:
        return self.command(f"RCPT TO:<{recipient}>")

    def rset(self) -> Reply:
        return self.command("RSET")

    def xclient(self, attributes: Sequence[tuple[str, str]]) -> Reply:
        """XCLIENT with xtext-encoded attribute values (Postfix XCLIENT_README)."""
        parts = " ".join(f"{name.upper()}={xtext(value)}" for name, value in attributes)
        return self.command(f"XCLIENT {parts}")

    def auth_plain(self, user: str, password: str) -> Reply:
        return self.command(
            f"AUTH PLAIN {plain_credentials(user, password)}",
            record=f"AUTH PLAIN {plain_credentials(user, password)}  (user {user!r}, test password)",
        )

    def data(self, message: bytes) -> Reply:
        """DATA with dot-stuffing; returns the reply to the final dot (or to DATA on refusal)."""
        reply = self.command("DATA")
        if reply.code != 354:
            return reply
        body = message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        stuffed = b"\r\n".join(
            b"." + line if line.startswith(b".") else line for line in body.split(b"\r\n")
        )
        self.send_raw(stuffed + b".\r\n", record=f"<message of {len(body)} bytes>\r\n.")
        return self.read_reply()

    def starttls(
        self, context: ssl.SSLContext | None = None, server_hostname: str | None = None
    ) -> Reply:
        """STARTTLS then the handshake; the server forgets EHLO state, so EHLO again after."""
        reply = self.command("STARTTLS")
        if reply.code == 220:
            self._wrap_tls(server_hostname, context)
            self.esmtp = {}
        return reply

    def _wrap_tls(self, server_hostname: str | None, context: ssl.SSLContext | None = None) -> None:
        sock = self._require_socket()
        if self._buffer:
            # RFC 3207 section 6: data pipelined after STARTTLS is an injection attempt.
            self.close()
            raise SmtpProtocolError(
                f"{self.host}:{self.port}: server sent data before the TLS handshake"
            )
        context = context or unverified_context()
        sock.settimeout(min(self.read_timeout, self._remaining()))
        try:
            wrapped = context.wrap_socket(sock, server_hostname=server_hostname)
        except TimeoutError as error:
            self.close()
            raise SmtpTimeout(f"{self.host}:{self.port}: TLS handshake timed out") from error
        except (ssl.SSLError, OSError) as error:
            self.close()
            raise SmtpTlsError(f"{self.host}:{self.port}: TLS handshake failed: {error}") from error
        self._sock = wrapped
        self.tls_version = wrapped.version()
        cipher = wrapped.cipher()
        self.tls_cipher = cipher[0] if cipher else None
        self.transcript.event(f"TLS handshake done: {self.tls_version} {self.tls_cipher}")


def unverified_context() -> ssl.SSLContext:
    """A context that accepts any certificate: the probe reports on certificates, it does not
    trust them (the TLS scan judges the chain)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


__all__ = [
    "Reply",
    "SmtpClient",
    "SmtpClosed",
    "SmtpConnectError",
    "SmtpError",
    "SmtpProtocolError",
    "SmtpTimeout",
    "SmtpTlsError",
    "Transcript",
    "TranscriptLine",
    "parse_ehlo_keywords",
    "plain_credentials",
    "unverified_context",
    "xtext",
]
