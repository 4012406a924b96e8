"""Pure `line -> Event` parser for Postfix logs (Postfix 2.x to 3.10).

Two steps, both pure: `parse_header` splits the syslog/journal/maillog_file prefix
(timestamp, host, program, pid) from the message; `parse_message` turns the message of a
Postfix program into an `Event`. Yearless timestamps need a year: the caller passes it
(see `reader.YearTracker`), so the parser never looks at the clock or at files.
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass
from typing import Any

from postharden.logs.events import Event, Kind

MONTHS = {m: i for i, m in enumerate(calendar.month_abbr) if m}

# `Nov  2 03:04:05` (syslog, day padded with a space), `Nov 02 03:04:05` (journald,
# Postfix's maillog_file), optionally with a fraction.
_CLASSIC = re.compile(
    r"([A-Z][a-z]{2}) ([ \d]?\d) (\d\d):(\d\d):(\d\d)(?:\.\d+)? (\S+) ([^\s\[]+?)(?:\[(\d+)\])?: "
)
# RFC 3339 / ISO 8601 (rsyslog, journalctl -o short-iso): offset +01:00, +0100, Z or none.
_ISO = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d+))?(Z|[+-]\d\d:?\d\d)? (\S+) "
    r"([^\s\[]+?)(?:\[(\d+)\])?: "
)

# The last component of a syslog name says which Postfix program logged the line;
# the first says it is Postfix (`postfix`, `postfix-out`, or a multi-instance name).
POSTFIX_PROGRAMS = frozenset(
    [
        "anvil",
        "bounce",
        "cleanup",
        "discard",
        "dnsblog",
        "error",
        "flush",
        "lmtp",
        "local",
        "master",
        "nqmgr",
        "oqmgr",
        "pickup",
        "pipe",
        "postdrop",
        "postfix-script",
        "postlogd",
        "postmap",
        "postmulti",
        "postqueue",
        "postscreen",
        "postsuper",
        "proxymap",
        "qmgr",
        "qmqpd",
        "retry",
        "scache",
        "sendmail",
        "showq",
        "smtp",
        "smtpd",
        "spawn",
        "tlsmgr",
        "tlsproxy",
        "trivial-rewrite",
        "verify",
        "virtual",
        "postlog",
        "postalias",
        "postcat",
        "postconf",
        "postkick",
        "postlock",
        "postfix",
        "postfix-tls-script",
        "postmulti-script",
    ]
)


@dataclass(frozen=True, slots=True)
class Header:
    """The prefix of a log line. `year` is None when the format carries none."""

    year: int | None
    month: int
    day: int
    hour: int
    minute: int
    second: int
    micro: int
    offset: int | None  # seconds east of UTC when the line says so; None: local time
    host: str
    program: str
    pid: int | None
    message: str


def parse_header(line: str) -> Header | None:
    """Split a syslog-style line; None when it has no recognisable prefix."""
    if line[:1].isdigit():
        m = _ISO.match(line)
        if m is None:
            return None
        y, mo, d, hh, mi, ss, frac, tz, host, prog, pid = m.groups()
        offset: int | None = None
        if tz is not None:
            if tz == "Z":
                offset = 0
            else:
                sign = -1 if tz[0] == "-" else 1
                digits = tz[1:].replace(":", "")
                offset = sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
        micro = int((frac or "0")[:6].ljust(6, "0"))
        return Header(
            int(y),
            int(mo),
            int(d),
            int(hh),
            int(mi),
            int(ss),
            micro,
            offset,
            host,
            prog,
            int(pid) if pid else None,
            line[m.end() :],
        )
    m = _CLASSIC.match(line)
    if m is None:
        return None
    mon, d, hh, mi, ss, host, prog, pid = m.groups()
    month = MONTHS.get(mon)
    if month is None:
        return None
    return Header(
        None,
        month,
        int(d),
        int(hh),
        int(mi),
        int(ss),
        0,
        None,
        host,
        prog,
        int(pid) if pid else None,
        line[m.end() :],
    )


_LOCAL_OFFSETS: dict[tuple[int, int, int, int], int] = {}


def header_time(h: Header, year: int) -> float:
    """Seconds since the epoch for a header; local time when the line has no offset."""
    y = h.year if h.year is not None else year
    try:
        wall = calendar.timegm((y, h.month, h.day, h.hour, h.minute, h.second, 0, 0, 0))
    except (ValueError, OverflowError):
        return 0.0
    offset = h.offset
    if offset is None:
        key = (y, h.month, h.day, h.hour)
        offset = _LOCAL_OFFSETS.get(key)
        if offset is None:
            try:
                local = time.mktime((y, h.month, h.day, h.hour, 30, 0, 0, 0, -1))
                offset = int(wall - (wall % 3600) + 1800 - local)
            except (OverflowError, ValueError):
                offset = 0
            if len(_LOCAL_OFFSETS) > 100_000:
                _LOCAL_OFFSETS.clear()
            _LOCAL_OFFSETS[key] = offset
    return wall - offset + h.micro / 1e6


def is_postfix_program(program: str) -> bool:
    """`postfix/smtpd`, `postfix-out/smtp`, `postfix/submission/smtpd` are Postfix."""
    first, sep, rest = program.partition("/")
    if not sep:
        return False
    last = rest.rpartition("/")[2]
    return first.startswith("postfix") or last in POSTFIX_PROGRAMS


def service_of(program: str) -> str:
    return program.rpartition("/")[2]


# --- message rules ------------------------------------------------------------------

# Short IDs are upper-case hex; long IDs (enable_long_queue_ids) mix case and digits.
# Synthetic logs use any upper-case letters, so accept those too, but never a word.
_QID = r"(?:NOQUEUE|[0-9A-Z]{5,24}|(?=[A-Za-z]*\d)[0-9A-Za-z]{10,20})"
_QID_PREFIX = re.compile(rf"({_QID}): ")
_CLIENT = r"([^\s\[\]]*)\[([^\]]*)\](?::\d+)?"

_REJECT = re.compile(
    # reject, reject_warning, defer, discard, hold, filter, redirect, milter-reject,
    # milter-header-redirect, prepend, replace, info... (smtpd and cleanup actions)
    r"([a-z][a-z_-]*)"
    r": (CONNECT|HELO|EHLO|MAIL|RCPT|DATA|BDAT|END-OF-MESSAGE|VRFY|ETRN|AUTH|STARTTLS|header|body)"
    r" (?:(.*?) )?from " + _CLIENT + r"(?:: |; |$)(.*)$",
    re.S,
)
_REPLY = re.compile(r"(\d{3})(?:[ -](\d\.\d{1,3}\.\d{1,3}))? (.*)$", re.S)
_DSN_ONLY = re.compile(r"(\d\.\d{1,3}\.\d{1,3}) (.*)$", re.S)
_ENVELOPE = re.compile(
    r";? from=<([^>]*)>,? to=<([^>]*)>,? proto=(\S+?),? helo=<([^>]*)>\s*$"
    r"|;? (?:from=<([^>]*)>,? )?(?:to=<([^>]*)>,? )?proto=(\S+?)(?:,? helo=<([^>]*)>)?\s*$"
)
_CONNECT = re.compile(r"connect from " + _CLIENT + r"$")
_DISCONNECT = re.compile(r"disconnect from " + _CLIENT + r"(.*)$")
_COUNT = re.compile(r"([a-z]+)=(\d+)(?:/(\d+))?")
_AFTER = re.compile(
    r"(lost connection|timeout|too many errors) after (\S+)(?: \(\d+ bytes\))? from " + _CLIENT
)
_SASL_FAIL = re.compile(
    _CLIENT
    + r": SASL (\S+) authentication (failed|aborted)(?::\s?(.*?))?(?:, sasl_username=(\S*))?\s*$"
)
_CLIENT_LINE = re.compile(
    r"client=" + _CLIENT + r"(?:, sasl_method=([^,\s]+))?(?:, sasl_username=([^,]*))?"
)
_TLS = re.compile(
    r"(Anonymous|Trusted|Untrusted|Verified) TLS connection established (from|to) "
    + _CLIENT
    + r"(?::\d+)?: (\S+) with cipher (\S+)"
)
_SSL_ERR = re.compile(r"SSL_(accept|connect) error (?:from|to) " + _CLIENT + r"(?::\d+)?: (.*)$")
_PROBLEM = re.compile(r"problem talking to (server|service) (\S+?): (.*)$")
_PIPELINING = re.compile(r"improper command pipelining after (\S+) from " + _CLIENT)
_NON_SMTP = re.compile(r"non-SMTP command from " + _CLIENT + r": (.*)$", re.S)
_RATE = re.compile(r"(.*? limit exceeded): (\d+) from " + _CLIENT + r" for service (\S+)")
_PS_ADDR = r"\[([^\]]+)\]:\d+"
_POSTSCREEN = re.compile(
    r"(PASS NEW|PASS OLD|PREGREET|DNSBL|HANGUP|COMMAND PIPELINING|COMMAND TIME LIMIT|"
    r"COMMAND COUNT LIMIT|COMMAND LENGTH LIMIT|NON-SMTP COMMAND|BARE NEWLINE|WHITELISTED|"
    r"ALLOWLISTED|BLACKLISTED|DENYLISTED|WHITELIST VETO|ALLOWLIST VETO|CONNECT|DISCONNECT)"
    r"(?: (\d+))?(?: after [\d.]+)?(?: rank \d+)?(?: for| from)? " + _PS_ADDR
)
_DNSBLOG = re.compile(r"addr (\S+) listed by domain (\S+) as (\S+)")
_ANVIL = re.compile(
    r"statistics: max (.+?) (\d+)(?:/\S+)? for \((?:([a-z][\w-]*|[\d.]+:\d+|\[[^\]]*\]:\d+):)?(.*)\) at "
)
_QUEUED = re.compile(r"from=<?([^>,]*)>?, size=(\d+), nrcpt=(\d+)")
_EXPIRED = re.compile(r"from=<?([^>,]*)>?, status=(\S*expired)")
_DELIVERY = re.compile(
    r"to=<?([^>,]*)>?, (?:orig_to=<?[^>,]*>?, )?relay=([^,]*), .*?dsn=(\d\.\d{1,3}\.\d{1,3}), "
    r"status=(\S+)(?: \((.*)\))?$",
    re.S,
)
_BOUNCE = re.compile(r"(sender|postmaster) (non-delivery|delivery status|delay) notification: ")
_RBL = re.compile(r"blocked using ([^;,\s]+)")


def classify_reason(text: str) -> tuple[str, str | None]:
    """Reason class of a reject reply text, and a detail (the RBL list name)."""
    low = text.lower()
    if "relay access denied" in low:
        return "relay_denied", None
    if "blocked using" in low:
        m = _RBL.search(text)
        return "rbl", m.group(1) if m else None
    if "user unknown" in low or "unknown user" in low or "mailbox unavailable" in low:
        return "unknown_user", None
    if "server configuration problem" in low or "server configuration error" in low:
        return "policy_service", None
    if "greylist" in low:
        return "greylisting", None
    if "bare <lf>" in low or "bare newline" in low:
        return "smuggling", None
    if "pipelining" in low:
        return "pipelining", None
    if "message size exceeds" in low or "too big" in low:
        return "size", None
    if "not owned by user" in low:
        return "sender_login_mismatch", None
    if "client host rejected" in low:
        if "cannot find your" in low or "reverse hostname" in low:
            return "client_hostname", None
        return "client_access", None
    if "helo command rejected" in low:
        return "helo", None
    if "sender address rejected" in low:
        if "domain not found" in low:
            return "sender_domain", None
        if "need fully-qualified" in low:
            return "sender_syntax", None
        return "sender_access", None
    if "recipient address rejected" in low:
        if "domain not found" in low:
            return "recipient_domain", None
        if "need fully-qualified" in low:
            return "recipient_syntax", None
        return "recipient_access", None
    if "protocol error" in low:
        return "protocol", None
    if "too many connections" in low or "all server ports busy" in low:
        return "too_many_connections", None
    if "insufficient system storage" in low:
        return "storage", None
    if "too many recipients" in low or "rate limit" in low:
        return "rate", None
    if "access denied" in low:
        return "access", None
    return "other", None


def _counts(tail: str) -> tuple[tuple[str, int, int], ...]:
    out = []
    for name, ok, total in _COUNT.findall(tail):
        out.append((name, int(ok), int(total) if total else int(ok)))
    return tuple(out)


def parse_message(
    program: str,
    message: str,
    *,
    ts: float | None = None,
    host: str = "",
    pid: int | None = None,
) -> Event:
    """Turn the message of a Postfix program into an Event (pure; never raises)."""
    service = service_of(program)
    base: dict[str, Any] = {
        "ts": ts,
        "host": host,
        "program": program,
        "service": service,
        "pid": pid,
        "text": message,
    }
    msg = message
    queue_id: str | None = None
    qm = _QID_PREFIX.match(msg)
    if qm is not None:
        queue_id = qm.group(1)
        msg = msg[qm.end() :]
        if queue_id != "NOQUEUE":
            base["queue_id"] = queue_id

    # Severity prefixes first: `warning:` lines carry SASL failures, policy problems...
    if msg.startswith("warning: "):
        return _warning(msg[9:], base)
    for prefix, kind in (("fatal: ", Kind.FATAL), ("panic: ", Kind.PANIC), ("error: ", Kind.ERROR)):
        if msg.startswith(prefix):
            return Event(kind, detail=msg[len(prefix) :], **base)

    first = msg[:1]
    if first.islower() and ": " in msg[:32]:
        m = _REJECT.match(msg)
        if m is not None:
            return _reject(m, base)
    if msg.startswith("connect from "):
        m = _CONNECT.match(msg)
        if m:
            return Event(Kind.CONNECT, client_name=m.group(1), client_ip=m.group(2), **base)
    if msg.startswith("disconnect from "):
        m = _DISCONNECT.match(msg)
        if m:
            return Event(
                Kind.DISCONNECT,
                client_name=m.group(1),
                client_ip=m.group(2),
                counts=_counts(m.group(3)),
                **base,
            )
    if msg.startswith(("lost connection after", "timeout after", "too many errors after")):
        m = _AFTER.match(msg)
        if m:
            kind = {
                "lost connection": Kind.LOST_CONNECTION,
                "timeout": Kind.TIMEOUT,
                "too many errors": Kind.TOO_MANY_ERRORS,
            }[m.group(1)]
            return Event(
                kind, stage=m.group(2), client_name=m.group(3), client_ip=m.group(4), **base
            )
    if msg.startswith("client="):
        m = _CLIENT_LINE.match(msg)
        if m:
            user = m.group(4)
            return Event(
                Kind.SASL_LOGIN if user else Kind.CLIENT,
                client_name=m.group(1),
                client_ip=m.group(2),
                mechanism=m.group(3),
                user=user or None,
                **base,
            )
    if msg.startswith("message-id="):
        return Event(Kind.MESSAGE_ID, detail=msg[11:], **base)
    if msg.startswith("from="):
        m = _QUEUED.match(msg)
        if m:
            return Event(
                Kind.QUEUED, sender=m.group(1), size=int(m.group(2)), nrcpt=int(m.group(3)), **base
            )
        m = _EXPIRED.match(msg)
        if m:
            return Event(Kind.EXPIRED, sender=m.group(1), status=m.group(2), **base)
    if msg.startswith("to="):
        m = _DELIVERY.match(msg)
        if m:
            return Event(
                Kind.DELIVERY,
                recipient=m.group(1),
                relay=m.group(2),
                dsn=m.group(3),
                status=m.group(4),
                detail=m.group(5),
                **base,
            )
    if msg in (
        "removed",
        "requeued",
        "placed on hold",
        "released from hold",
        "expired",
        "skipped, still being delivered",
    ):
        return Event(Kind.REMOVED if msg == "removed" else Kind.STATISTICS, detail=msg, **base)
    if "TLS connection established" in msg:
        m = _TLS.match(msg)
        if m:
            return Event(
                Kind.TLS_ESTABLISHED,
                detail=m.group(1).lower(),
                client_name=m.group(3),
                client_ip=m.group(4),
                protocol=m.group(5),
                cipher=m.group(6),
                stage="inbound" if m.group(2) == "from" else "outbound",
                **base,
            )
    if msg.startswith("SSL_"):
        m = _SSL_ERR.match(msg)
        if m:
            return Event(
                Kind.TLS_ERROR,
                client_name=m.group(2),
                client_ip=m.group(3),
                reason=f"SSL_{m.group(1)}",
                detail=m.group(4),
                **base,
            )
    if msg.startswith("improper command pipelining"):
        m = _PIPELINING.match(msg)
        if m:
            return Event(
                Kind.PIPELINING,
                stage=m.group(1),
                client_name=m.group(2),
                client_ip=m.group(3),
                **base,
            )
    if msg.startswith("bare <LF> received"):
        m = re.search(r"after (\S+) from " + _CLIENT, msg)
        return Event(
            Kind.REJECT,
            action="warning",
            reason="smuggling",
            stage=m.group(1) if m else None,
            client_name=m.group(2) if m else None,
            client_ip=m.group(3) if m else None,
            **base,
        )
    if msg[:1].isupper():
        m = _POSTSCREEN.match(msg)
        if m:
            verdict = m.group(1)
            return Event(Kind.POSTSCREEN, detail=verdict, client_ip=m.group(3), **base)
    if msg.startswith("addr "):
        m = _DNSBLOG.match(msg)
        if m:
            return Event(
                Kind.DNSBLOG, client_ip=m.group(1), detail=m.group(2), reason=m.group(3), **base
            )
    if msg.startswith("statistics: "):
        m = _ANVIL.match(msg)
        if m and service == "anvil":
            client = m.group(4)
            return Event(
                Kind.ANVIL,
                detail=m.group(1),
                size=int(m.group(2)),
                stage=m.group(3),
                client_ip=client,
                **base,
            )
        return Event(Kind.STATISTICS if service != "anvil" else Kind.ANVIL, detail=msg[12:], **base)
    if _BOUNCE.match(msg):
        return Event(Kind.BOUNCE_NOTICE, detail=msg, **base)
    if msg.startswith("uid=") and " from=<" in msg:
        return Event(Kind.PICKUP, sender=msg.partition("from=<")[2].rstrip(">"), **base)
    if msg.startswith(
        (
            "connect to ",
            "lost connection with ",
            "conversation with ",
            "host ",
            "certificate verification failed",
            "enabling PIX workarounds",
            "SASL authentication failed; server",
            "discarding EHLO keywords",
            "Server certificate",
            "server certificate",
            "Untrusted TLS",
            "sender ",
        )
    ):
        if msg.startswith("certificate verification failed"):
            return Event(Kind.TLS_ERROR, reason="certificate", detail=msg, **base)
        return Event(Kind.DELIVERY_PROBLEM, detail=msg, **base)
    if msg.startswith(
        (
            "daemon started",
            "terminating on signal",
            "reload -- ",
            "starting the Postfix",
            "stopping the Postfix",
            "refreshing the Postfix",
            "daemon started",
            "Postfix is running",
            "the Postfix mail system is running",
            "Deleted: ",
            "Requeued: ",
            "Placed on hold: ",
            "Released from hold: ",
            "cache ",
            "proxy-accept: ",
            "proxy-reject: ",
            "table ",
        )
    ):
        if msg.startswith("proxy-reject: "):
            reply = msg[14:]
            return Event(
                Kind.REJECT,
                action="proxy-reject",
                stage="END-OF-MESSAGE",
                reason=classify_reason(reply)[0],
                **base,
            )
        return Event(Kind.LIFECYCLE, detail=msg, **base)
    if msg.startswith(("info: header", "info: body")):
        return Event(Kind.STATISTICS, detail=msg, **base)
    return Event(Kind.UNPARSED, **base)


def _warning(msg: str, base: dict[str, Any]) -> Event:
    if " authentication " in msg and "SASL" in msg:
        m = _SASL_FAIL.match(msg)
        if m:
            kind = Kind.SASL_FAILURE if m.group(4) == "failed" else Kind.SASL_ABORTED
            return Event(
                kind,
                client_name=m.group(1),
                client_ip=m.group(2),
                mechanism=m.group(3).upper(),
                detail=m.group(5),
                user=m.group(6) or None,
                **base,
            )
    if msg.startswith("problem talking to "):
        m = _PROBLEM.match(msg)
        # `server` is a policy service (check_policy_service); `service` an internal one.
        if m and m.group(1) == "server":
            return Event(Kind.POLICY_FAILURE, detail=m.group(2), reason=m.group(3), **base)
    if "limit exceeded" in msg:
        m = _RATE.match(msg)
        if m:
            return Event(
                Kind.RATE_LIMIT,
                detail=m.group(1),
                size=int(m.group(2)),
                client_name=m.group(3),
                client_ip=m.group(4),
                **base,
            )
    if msg.startswith("non-SMTP command from "):
        m = _NON_SMTP.match(msg)
        if m:
            return Event(
                Kind.NON_SMTP_COMMAND,
                client_name=m.group(1),
                client_ip=m.group(2),
                detail=m.group(3),
                **base,
            )
    if msg.startswith("TLS library problem") or "SSL_accept error" in msg or "TLS handshake" in msg:
        return Event(Kind.TLS_ERROR, reason="tls_library", detail=msg, **base)
    return Event(Kind.WARNING, detail=msg, **base)


def _reject(m: re.Match[str], base: dict[str, Any]) -> Event:
    action, stage, what, name, ip, rest = m.groups()
    if stage in ("header", "body"):
        # cleanup header/body checks: `reject: header Subject: ... from x[ip]; from=<>...`
        what = f"{stage} {what or ''}".strip()
    sender = recipient = None
    em = _ENVELOPE.search(rest)
    if em is not None:
        g = em.groups()
        sender = g[0] if g[0] is not None else g[4]
        recipient = g[1] if g[1] is not None else g[5]
        rest = rest[: em.start()]
    code = dsn = None
    text = rest
    rm = _REPLY.match(rest)
    if rm is not None:
        code = int(rm.group(1))
        dsn = rm.group(2)
        text = rm.group(3)
    else:
        dm = _DSN_ONLY.match(rest)
        if dm is not None:
            dsn = dm.group(1)
            text = dm.group(2)
    reason, detail = classify_reason(text)
    if action == "milter-reject":
        reason = "greylisting" if reason == "greylisting" else "milter"
    elif stage in ("header", "body"):
        reason = "content"
    return Event(
        Kind.REJECT,
        action=action,
        stage=stage,
        client_name=name,
        client_ip=ip,
        code=code,
        dsn=dsn,
        reason=reason,
        detail=detail or what,
        sender=sender,
        recipient=recipient,
        **base,
    )


def parse_line(line: str, year: int | None = None) -> Event:
    """Parse one log line. Yearless timestamps use YEAR (default: the current year)."""
    line = line.rstrip("\r\n")
    h = parse_header(line)
    if h is None:
        return Event(Kind.OTHER_PROGRAM, text=line)
    ts = header_time(h, year if year is not None else time.gmtime().tm_year)
    if not is_postfix_program(h.program):
        return Event(
            Kind.OTHER_PROGRAM, ts=ts, host=h.host, program=h.program, pid=h.pid, text=h.message
        )
    return parse_message(h.program, h.message, ts=ts, host=h.host, pid=h.pid)
