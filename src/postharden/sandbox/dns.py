"""A stub DNS server on a loopback address, answering from a zone given as data.

The sandbox's DNS-isolated mode (see ``postharden.sandbox``) points Postfix's resolver at
one of these, so that reverse lookups, ``reject_unknown_*``, RBLs and MX lookups get the
answers a test (or ``postharden verify``) chose, and nothing leaves the machine.

Zone
----
``Zone(records, servfail=(), timeout=())``: ``records`` maps a name to its records as
``{"mail.example.net": {"A": ["192.0.2.10"], "MX": ["10 mx.example.net"]}}``; the types
are A, AAAA, PTR, MX (``"PREF HOST"``), NS, CNAME and TXT (one string per record; longer
than 255 bytes is split into character strings). Names are case-insensitive and
written without the trailing dot. A name with records of other types answers NOERROR with
no records (NODATA); a name that is only an ancestor of a name with records (an "empty
non-terminal") too; every other name is NXDOMAIN. Names in ``servfail`` answer SERVFAIL and
names in ``timeout`` get no answer at all (the resolver times out): both are "temporary
failure" to Postfix. ``Zone.lookup(name, rrtype) -> Answer`` is the same decision in
Python (the decision engine's DNS oracle, ``postharden.access.dns``, uses it).

``reverse_name("192.0.2.10") -> "10.2.0.192.in-addr.arpa"`` (IPv6: ip6.arpa nibbles).

Server
------
``StubDns(zone, address=None)`` binds UDP and TCP port 53 on ``address`` or on a free
address in 127.53.0.0/16 (root is needed for port 53: the system resolver has no port
setting), serves in daemon threads until ``close()`` (or the ``with`` block ends), and
logs every query: ``queries`` is a list of ``Query(name, rrtype, transport, source,
status)`` where status is the answer it gave (``ok``, ``nodata``, ``nxdomain``,
``servfail``, ``timeout`` for a dropped query, ``formerr`` for a packet it could not
parse). The queries are what the sandbox's Postfix asked, so a test can assert that every
name Postfix looked up was answered here.
"""

from __future__ import annotations

import contextlib
import ipaddress
import random
import re
import socket
import struct
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28, "ANY": 255}
TYPE_NAMES = {number: name for name, number in TYPES.items()}
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP = 0, 1, 2, 3, 4
TTL = 60
STUB_NETWORK = "127.53.0.0/16"


class DnsStubError(OSError):
    """The stub cannot bind its address."""


def _norm(name: str) -> str:
    return name.strip().rstrip(".").lower()


def reverse_name(address: str) -> str:
    """The PTR owner name of an IPv4 or IPv6 address."""
    return ipaddress.ip_address(address).reverse_pointer


@dataclass(frozen=True)
class Answer:
    """What the zone answers one question: a status and the record texts."""

    status: str  # ok | nodata | nxdomain | servfail | timeout
    records: tuple[str, ...] = ()

    @property
    def temporary(self) -> bool:
        return self.status in ("servfail", "timeout")


@dataclass(frozen=True)
class Zone:
    """DNS data as a test or verify wants the world to look; see the module docstring."""

    records: Mapping[str, Mapping[str, Sequence[str] | str]] = field(default_factory=dict)
    servfail: Iterable[str] = ()
    timeout: Iterable[str] = ()
    table: dict[str, dict[str, tuple[str, ...]]] = field(init=False, repr=False, compare=False)
    failing: frozenset[str] = field(init=False, repr=False, compare=False)
    silent: frozenset[str] = field(init=False, repr=False, compare=False)
    parents: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        table: dict[str, dict[str, tuple[str, ...]]] = {}
        for name, types in self.records.items():
            entry = table.setdefault(_norm(name), {})
            for rrtype, values in types.items():
                key = rrtype.upper()
                if key not in TYPES or key == "ANY":
                    raise ValueError(f"record type {rrtype!r} is not supported by the stub")
                listed = (values,) if isinstance(values, str) else tuple(values)
                entry[key] = entry.get(key, ()) + listed
        parents: set[str] = set()
        for name in table:
            labels = name.split(".")
            parents.update(".".join(labels[i:]) for i in range(1, len(labels)))
        object.__setattr__(self, "table", table)
        object.__setattr__(self, "failing", frozenset(_norm(n) for n in self.servfail))
        object.__setattr__(self, "silent", frozenset(_norm(n) for n in self.timeout))
        object.__setattr__(self, "parents", frozenset(parents))

    def lookup(self, name: str, rrtype: str) -> Answer:
        key = _norm(name)
        if key in self.silent:
            return Answer("timeout")
        if key in self.failing:
            return Answer("servfail")
        types = self.table.get(key)
        if types is None:
            return Answer("nodata") if key in self.parents else Answer("nxdomain")
        rrtype = rrtype.upper()
        if rrtype == "ANY":
            values = tuple(v for records in types.values() for v in records)
        else:
            values = types.get(rrtype, ())
            if not values and "CNAME" in types and rrtype != "CNAME":
                # One level of CNAME, answered like a recursive resolver would.
                return self.lookup(types["CNAME"][0], rrtype)
        return Answer("ok", values) if values else Answer("nodata")

    def names(self) -> frozenset[str]:
        return frozenset(self.table) | self.failing | self.silent


# -- wire format ------------------------------------------------------------------------


def _encode_name(name: str) -> bytes:
    out = bytearray()
    for label in _norm(name).split("."):
        if not label:
            continue
        raw = label.encode("ascii", errors="replace")[:63]
        out += bytes([len(raw)]) + raw
    return bytes(out + b"\x00")


def _decode_name(packet: bytes, offset: int) -> tuple[str, int]:
    """A (possibly compressed) name at offset: the name and the offset after it."""
    labels: list[str] = []
    end: int | None = None
    for _ in range(128):
        length = packet[offset]
        if length & 0xC0 == 0xC0:
            pointer = ((length & 0x3F) << 8) | packet[offset + 1]
            if end is None:
                end = offset + 2
            offset = pointer
            continue
        offset += 1
        if length == 0:
            return ".".join(labels), (end if end is not None else offset)
        labels.append(packet[offset : offset + length].decode("ascii", errors="replace"))
        offset += length
    raise ValueError("name compression loop")


def _rdata(rrtype: str, value: str) -> bytes:
    if rrtype == "A":
        return ipaddress.IPv4Address(value).packed
    if rrtype == "AAAA":
        return ipaddress.IPv6Address(value).packed
    if rrtype in ("PTR", "NS", "CNAME"):
        return _encode_name(value)
    if rrtype == "MX":
        preference, _, host = value.strip().partition(" ")
        return struct.pack("!H", int(preference)) + _encode_name(host.strip() or ".")
    if rrtype == "TXT":
        raw = value.encode("utf-8")
        chunks = [raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""]
        return b"".join(bytes([len(chunk)]) + chunk for chunk in chunks)
    raise ValueError(rrtype)


@dataclass(frozen=True)
class Query:
    """One question the stub received and the answer it gave."""

    name: str
    rrtype: str
    transport: str  # udp | tcp
    source: str
    status: str


def answer_packet(zone: Zone, packet: bytes) -> tuple[bytes | None, str, str, str]:
    """The reply to a query packet (None: stay silent), and the name, type, status."""
    if len(packet) < 12:
        return None, "", "", "formerr"
    ident, flags, qdcount = struct.unpack("!HHH", packet[:6])
    rd = flags & 0x0100
    try:
        if qdcount != 1 or flags & 0x8000:
            raise ValueError("not one question")
        name, offset = _decode_name(packet, 12)
        qtype, qclass = struct.unpack("!HH", packet[offset : offset + 4])
    except (ValueError, IndexError, struct.error):
        header = struct.pack("!HHHHHH", ident, 0x8000 | rd | FORMERR, 0, 0, 0, 0)
        return header, "", "", "formerr"
    question = packet[12 : offset + 4]
    rrtype = TYPE_NAMES.get(qtype, str(qtype))
    if qclass != 1 or rrtype not in TYPES:
        result = Answer("nodata") if qclass == 1 else Answer("servfail")
    else:
        result = zone.lookup(name, rrtype)
    if result.status == "timeout":
        return None, name, rrtype, "timeout"
    rcode = {"ok": NOERROR, "nodata": NOERROR, "nxdomain": NXDOMAIN}.get(result.status, SERVFAIL)
    answers = bytearray()
    count = 0
    if result.status == "ok":
        types = zone.table.get(_norm(name), {})
        owner_type = [(rrtype, v) for v in result.records]
        if rrtype == "ANY":
            owner_type = [(t, v) for t, values in types.items() for v in values]
        elif rrtype not in types and "CNAME" in types:
            cname = types["CNAME"][0]
            answers += _encode_name(name) + struct.pack("!HHIH", TYPES["CNAME"], 1, TTL, 0)
            data = _rdata("CNAME", cname)
            answers[-2:] = struct.pack("!H", len(data))
            answers += data
            count += 1
            name = cname
        for kind, value in owner_type:
            data = _rdata(kind, value)
            answers += _encode_name(name) + struct.pack("!HHIH", TYPES[kind], 1, TTL, len(data))
            answers += data
            count += 1
    # QR, AA, RD as asked, RA.
    reply_flags = 0x8000 | 0x0400 | rd | 0x0080 | rcode
    header = struct.pack("!HHHHHH", ident, reply_flags, 1, count, 0, 0)
    reply = header + question + bytes(answers)
    return reply, name, rrtype, result.status


class StubDns:
    """The zone served on UDP and TCP port 53 of a loopback address; see the docstring."""

    def __init__(self, zone: Zone, address: str | None = None, port: int = 53) -> None:
        self.zone = zone
        self.port = port
        self.queries: list[Query] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._udp, self._tcp, self.address = self._bind(address)
        self._threads = [
            threading.Thread(target=self._serve_udp, daemon=True, name="stub-dns-udp"),
            threading.Thread(target=self._serve_tcp, daemon=True, name="stub-dns-tcp"),
        ]
        for thread in self._threads:
            thread.start()

    def _bind(self, address: str | None) -> tuple[socket.socket, socket.socket, str]:
        if address is not None:
            candidates = [address]
        else:
            network = ipaddress.ip_network(STUB_NETWORK)
            rng = random.Random()
            candidates = [str(network[rng.randrange(256, network.num_addresses - 1)])
                          for _ in range(64)]  # fmt: skip
        last: OSError | None = None
        for candidate in candidates:
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                udp.bind((candidate, self.port))
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                tcp.bind((candidate, self.port))
                tcp.listen(16)
            except OSError as error:
                udp.close()
                tcp.close()
                last = error
                continue
            udp.settimeout(0.2)
            tcp.settimeout(0.2)
            return udp, tcp, candidate
        raise DnsStubError(f"cannot bind a stub DNS server on port {self.port}: {last}")

    def __enter__(self) -> StubDns:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._closed.set()
        for sock in (self._udp, self._tcp):
            with contextlib.suppress(OSError):
                sock.close()
        for thread in self._threads:
            thread.join(timeout=2)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def log(self) -> list[Query]:
        with self._lock:
            return list(self.queries)

    def _record(self, name: str, rrtype: str, transport: str, source: str, status: str) -> None:
        with self._lock:
            self.queries.append(Query(_norm(name), rrtype, transport, source, status))

    def _serve_udp(self) -> None:
        while not self._closed.is_set():
            try:
                packet, peer = self._udp.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            reply, name, rrtype, status = answer_packet(self.zone, packet)
            self._record(name, rrtype, "udp", peer[0], status)
            if reply is not None:
                with contextlib.suppress(OSError):
                    self._udp.sendto(reply, peer)

    def _serve_tcp(self) -> None:
        while not self._closed.is_set():
            try:
                conn, peer = self._tcp.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._talk_tcp, args=(conn, peer[0]), daemon=True).start()

    def _talk_tcp(self, conn: socket.socket, source: str) -> None:
        with conn, contextlib.suppress(OSError, struct.error):
            conn.settimeout(5)
            while not self._closed.is_set():
                head = _recv_exact(conn, 2)
                if head is None:
                    return
                packet = _recv_exact(conn, struct.unpack("!H", head)[0])
                if packet is None:
                    return
                reply, name, rrtype, status = answer_packet(self.zone, packet)
                self._record(name, rrtype, "tcp", source, status)
                if reply is not None:
                    conn.sendall(struct.pack("!H", len(reply)) + reply)


def _recv_exact(conn: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


# Restrictions whose answer depends on the DNS (the engine reports them as outside answers).
DNS_RESTRICTIONS = (
    "reject_rbl_client",
    "reject_rbl",
    "reject_maps_rbl",
    "reject_rhsbl_client",
    "reject_rhsbl_reverse_client",
    "reject_rhsbl_helo",
    "reject_rhsbl_sender",
    "reject_rhsbl_recipient",
    "permit_dnswl_client",
    "permit_rhswl_client",
    "permit_mx_backup",
    "reject_unknown_client_hostname",
    "reject_unknown_client",
    "reject_unknown_reverse_client_hostname",
    "reject_unknown_helo_hostname",
    "reject_unknown_hostname",
    "reject_unknown_sender_domain",
    "reject_unknown_recipient_domain",
    "reject_unknown_address",
    *(
        f"check_{what}_{kind}_access"
        for what in ("client", "reverse_client", "helo", "sender", "recipient")
        for kind in ("mx", "ns", "a")
    ),
)
_DNS_WORDS = re.compile(
    r"(?<![\w$])(" + "|".join(sorted(DNS_RESTRICTIONS, key=len, reverse=True)) + r")(?![\w=])",
    re.IGNORECASE,
)


def dns_restrictions(text: str) -> list[str]:
    """The DNS-dependent restrictions named in main.cf/master.cf text (comments skipped)."""
    found: list[str] = []
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        found.extend(match.group(1).lower() for match in _DNS_WORDS.finditer(line))
    return list(dict.fromkeys(found))


__all__ = [
    "DNS_RESTRICTIONS",
    "Answer",
    "DnsStubError",
    "Query",
    "StubDns",
    "Zone",
    "answer_packet",
    "dns_restrictions",
    "reverse_name",
]
