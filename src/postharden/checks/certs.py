"""What the audit needs from a PEM certificate and private key, read from their DER.

The audit asks five things of smtpd's certificate: its names (subject CN, DNS names of the
subjectAltName extension), its validity, its key type and size, and whether the private
key belongs to it (what OpenSSL's `SSL_CTX_check_private_key` checks before Postfix uses
the pair). Those fields sit at fixed places of the X.509 structure (RFC 5280, DER of
X.690), so a small reader answers them in well under a millisecond. `cryptography`'s X.509
module costs more than the whole rest of an audit to import (and comes only with the `tls`
extra); the tests compare this reader with it on many generated certificates.

Key matching compares the public parts: RSA modulus and exponent, the EC curve and point,
DSA parameters and public value. For a key whose public part is not stored in the file
(Ed25519 and Ed448 seeds, an EC key without its public point) the pair is handed to
OpenSSL itself through the `ssl` module.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Callable, Iterator
from typing import NamedTuple

_PEM = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)


class DerError(ValueError):
    """The bytes are not the DER structure they should be."""


# -- DER -------------------------------------------------------------------------------

SEQUENCE, SET, INTEGER, BIT_STRING, OCTET_STRING, OID = 0x30, 0x31, 2, 3, 4, 6
UTC_TIME, GENERALIZED_TIME = 0x17, 0x18


def _read(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """The element at `pos` -> (tag, start of its content, end of its content)."""
    if pos + 2 > end:
        raise DerError("truncated DER element")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise DerError("unsupported high tag number")
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > end:
            raise DerError("bad DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > end:
        raise DerError("DER element runs past its container")
    return tag, pos, pos + length


class _Node:
    """One DER element: tag and content bounds in `data`."""

    __slots__ = ("data", "end", "start", "tag")

    def __init__(self, data: bytes, tag: int, start: int, end: int) -> None:
        self.data, self.tag, self.start, self.end = data, tag, start, end

    @classmethod
    def parse(cls, data: bytes) -> _Node:
        tag, start, end = _read(data, 0, len(data))
        if end != len(data):
            raise DerError("trailing data after the DER structure")
        return cls(data, tag, start, end)

    @property
    def content(self) -> bytes:
        return self.data[self.start : self.end]

    def children(self) -> list[_Node]:
        if not self.tag & 0x20:
            raise DerError(f"element {self.tag:#x} is not constructed")
        out = []
        pos = self.start
        while pos < self.end:
            tag, start, end = _read(self.data, pos, self.end)
            out.append(_Node(self.data, tag, start, end))
            pos = end
        return out

    def expect(self, tag: int) -> _Node:
        if self.tag != tag:
            raise DerError(f"expected DER tag {tag:#x}, found {self.tag:#x}")
        return self

    def integer(self) -> int:
        self.expect(INTEGER)
        if self.start == self.end:
            raise DerError("empty INTEGER")
        return int.from_bytes(self.content, "big", signed=True)

    def oid(self) -> str:
        raw = self.expect(OID).content
        if not raw:
            raise DerError("empty OBJECT IDENTIFIER")
        arcs: list[int] = []
        value = 0
        for byte in raw:
            value = value << 7 | byte & 0x7F
            if not byte & 0x80:
                arcs.append(value)
                value = 0
        if raw[-1] & 0x80:
            raise DerError("truncated OBJECT IDENTIFIER")
        first = min(arcs[0] // 40, 2)
        return ".".join(str(a) for a in (first, arcs[0] - 40 * first, *arcs[1:]))

    def bits(self) -> bytes:
        raw = self.expect(BIT_STRING).content
        if not raw or raw[0] != 0:
            raise DerError("BIT STRING with unused bits")
        return raw[1:]


def _pem_blocks(data: bytes, wanted: Callable[[str], bool]) -> Iterator[tuple[str, bytes, bool]]:
    """(label, DER, encrypted) of each PEM block whose label is `wanted`, in order, decoded
    only when reached (a damaged block of another kind in the same file is not this
    caller's problem); `encrypted`: a traditional `Proc-Type: 4,ENCRYPTED` header or an
    `ENCRYPTED PRIVATE KEY` label."""
    for m in _PEM.finditer(data):
        label = m.group(1).decode()
        if not wanted(label):
            continue
        lines = m.group(2).splitlines()
        headers = [line for line in lines if b":" in line]  # RFC 1421 headers
        encrypted = "ENCRYPTED" in label or any(
            line.startswith(b"Proc-Type:") and b"ENCRYPTED" in line for line in headers
        )
        body = b"".join(line.strip() for line in lines if b":" not in line)
        try:
            der = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as error:
            raise DerError(f"bad base64 in the PEM block {label}: {error}") from None
        yield label, der, encrypted


# -- certificates ----------------------------------------------------------------------

_CN = "2.5.4.3"
_SAN = "2.5.29.17"
_RSA, _RSA_PSS, _DSA, _EC = (
    "1.2.840.113549.1.1.1",
    "1.2.840.113549.1.1.10",
    "1.2.840.10040.4.1",
    "1.2.840.10045.2.1",
)
_ED25519, _ED448 = "1.3.101.112", "1.3.101.113"
# Names as OpenSSL (and cryptography) give them.
CURVES = {
    "1.2.840.10045.3.1.1": "secp192r1",
    "1.3.132.0.33": "secp224r1",
    "1.2.840.10045.3.1.7": "secp256r1",
    "1.3.132.0.34": "secp384r1",
    "1.3.132.0.35": "secp521r1",
    "1.3.132.0.10": "secp256k1",
    "1.3.36.3.3.2.8.1.1.7": "brainpoolP256r1",
    "1.3.36.3.3.2.8.1.1.11": "brainpoolP384r1",
    "1.3.36.3.3.2.8.1.1.13": "brainpoolP512r1",
}
# RFC 4514 attribute names (the ones RFC 4514 and cryptography's rfc4514_string know).
_ATTRIBUTE_NAMES = {
    "2.5.4.3": "CN",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.6": "C",
    "2.5.4.9": "STREET",
    "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID",
}
_STRING_CODECS = {
    0x0C: "utf-8",  # UTF8String
    0x13: "ascii",  # PrintableString
    0x16: "ascii",  # IA5String
    0x14: "latin-1",  # T61String, as OpenSSL reads it
    0x1A: "ascii",  # VisibleString
    0x1E: "utf-16-be",  # BMPString
    0x1C: "utf-32-be",  # UniversalString
}


class PublicKey(NamedTuple):
    algorithm: str  # "RSA", "DSA", "EC", "Ed25519", "Ed448" or the OID
    description: str | None  # "RSA 2048", "EC secp256r1", "Ed25519"; None: unknown type
    parts: tuple[object, ...]  # what identifies the key: (n, e), (curve, point), ...


class Certificate(NamedTuple):
    subject: str  # RFC 4514, most significant RDN last (as OpenSSL and cryptography print)
    common_names: tuple[str, ...]
    dns_names: tuple[str, ...]  # the subjectAltName's dNSName entries
    not_before: dt.datetime
    not_after: dt.datetime
    key: PublicKey


def _string(node: _Node) -> str:
    codec = _STRING_CODECS.get(node.tag)
    if codec is None:
        raise DerError(f"attribute value of type {node.tag:#x} is not a string")
    try:
        return node.content.decode(codec)
    except UnicodeDecodeError as error:
        raise DerError(f"bad {codec} string: {error}") from None


def _escape(value: str) -> str:
    """RFC 4514 section 2.4 escaping of an attribute value."""
    if not value:
        return ""
    value = value.replace("\\", "\\\\")
    for char in '"+,;<>':
        value = value.replace(char, "\\" + char)
    value = value.replace("\0", "\\00")
    if value[0] in "# ":
        value = "\\" + value
    if value[-1] == " ":
        value = value[:-1] + "\\ "
    return value


def _name(node: _Node) -> tuple[str, tuple[str, ...]]:
    """Name -> (RFC 4514 string, the common names in order)."""
    rdns = []
    common = []
    for rdn in node.expect(SEQUENCE).children():
        parts = []
        for attribute in rdn.expect(SET).children():
            oid_node, value_node = attribute.expect(SEQUENCE).children()[:2]
            oid = oid_node.oid()
            name = _ATTRIBUTE_NAMES.get(oid, oid)
            if value_node.tag not in _STRING_CODECS:
                parts.append(f"{name}=#{value_node.content.hex()}")
                continue
            value = _string(value_node)
            if oid == _CN:
                common.append(value)
            parts.append(f"{name}={_escape(value)}")
        rdns.append("+".join(parts))
    return ",".join(reversed(rdns)), tuple(common)


def _time(node: _Node) -> dt.datetime:
    text = node.content.decode("ascii", "replace")
    if node.tag == UTC_TIME:
        m = re.fullmatch(r"(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z", text)
        if m is None:
            raise DerError(f"bad UTCTime {text!r}")
        year = int(m.group(1))
        year += 2000 if year < 50 else 1900  # RFC 5280 4.1.2.5.1
    elif node.tag == GENERALIZED_TIME:
        m = re.fullmatch(r"(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z", text)
        if m is None:
            raise DerError(f"bad GeneralizedTime {text!r}")
        year = int(m.group(1))
    else:
        raise DerError(f"expected a time, found DER tag {node.tag:#x}")
    month, day, hour, minute, second = (int(m.group(i)) for i in range(2, 7))
    try:
        return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)
    except ValueError as error:
        raise DerError(f"bad time {text!r}: {error}") from None


def _spki(node: _Node) -> PublicKey:
    algorithm_node, key_node = node.expect(SEQUENCE).children()[:2]
    algorithm = algorithm_node.expect(SEQUENCE).children()
    oid = algorithm[0].oid()
    key = key_node.bits()
    if oid in (_RSA, _RSA_PSS):
        n, e = (c.integer() for c in _Node.parse(key).expect(SEQUENCE).children()[:2])
        return PublicKey("RSA", f"RSA {n.bit_length()}", (n, e))
    if oid == _DSA:
        p, q, g = (c.integer() for c in algorithm[1].expect(SEQUENCE).children()[:3])
        y = _Node.parse(key).integer()
        return PublicKey("DSA", f"DSA {p.bit_length()}", (p, q, g, y))
    if oid == _EC:
        curve = algorithm[1].oid() if len(algorithm) > 1 and algorithm[1].tag == OID else "?"
        return PublicKey("EC", f"EC {CURVES.get(curve, curve)}", (curve, key))
    if oid in (_ED25519, _ED448):
        name = "Ed25519" if oid == _ED25519 else "Ed448"
        return PublicKey(name, name, (key,))
    return PublicKey(oid, None, (key,))


def parse_certificate(der: bytes) -> Certificate:
    """The audit's fields of one DER certificate; DerError when it is not one."""
    cert = _Node.parse(der).expect(SEQUENCE).children()
    if len(cert) != 3:
        raise DerError("a certificate has three parts")
    tbs = cert[0].expect(SEQUENCE).children()
    if tbs and tbs[0].tag == 0xA0:  # [0] EXPLICIT version
        tbs = tbs[1:]
    if len(tbs) < 6:
        raise DerError("the certificate's TBSCertificate is incomplete")
    _serial, _signature, _issuer, validity, subject, spki, *rest = tbs
    not_before, not_after = validity.expect(SEQUENCE).children()[:2]
    subject_text, common = _name(subject)
    dns: list[str] = []
    for extra in rest:
        if extra.tag != 0xA3:  # [3] EXPLICIT extensions
            continue
        (extensions,) = extra.children()
        for extension in extensions.expect(SEQUENCE).children():
            parts = extension.expect(SEQUENCE).children()
            if parts[0].oid() != _SAN:
                continue
            value = _Node.parse(parts[-1].expect(OCTET_STRING).content)
            for general in value.expect(SEQUENCE).children():
                if general.tag == 0x82:  # [2] IMPLICIT IA5String dNSName
                    dns.append(general.content.decode("ascii", "replace"))
    return Certificate(
        subject=subject_text,
        common_names=common,
        dns_names=tuple(dns),
        not_before=_time(not_before),
        not_after=_time(not_after),
        key=_spki(spki),
    )


def first_certificate(pem: bytes) -> bytes | None:
    """The DER of the first PEM certificate (the server's own; a chain follows it)."""
    for _label, der, _encrypted in _pem_blocks(pem, "CERTIFICATE".__eq__):
        return der
    return None


# -- private keys ----------------------------------------------------------------------


class KeyProblem(ValueError):
    """The private key cannot be used (a one-line reason)."""


def _private_public(label: str, der: bytes) -> PublicKey | None:
    """The public key of a private key, or None when the file does not hold it."""
    root = _Node.parse(der).expect(SEQUENCE).children()
    if label == "RSA PRIVATE KEY":
        n, e = root[1].integer(), root[2].integer()
        return PublicKey("RSA", f"RSA {n.bit_length()}", (n, e))
    if label == "DSA PRIVATE KEY":
        p, q, g, y = (c.integer() for c in root[1:5])
        return PublicKey("DSA", f"DSA {p.bit_length()}", (p, q, g, y))
    if label == "EC PRIVATE KEY":
        return _sec1_public(root, None)
    if label == "PRIVATE KEY":  # PKCS#8
        algorithm = root[1].expect(SEQUENCE).children()
        oid = algorithm[0].oid()
        inner = root[2].expect(OCTET_STRING).content
        if oid in (_RSA, _RSA_PSS):
            return _private_public("RSA PRIVATE KEY", inner)
        if oid == _DSA:
            p, q, g = (c.integer() for c in algorithm[1].expect(SEQUENCE).children()[:3])
            return PublicKey("DSA", f"DSA {p.bit_length()}", (p, q, g, None))
        if oid == _EC:
            curve = algorithm[1].oid() if len(algorithm) > 1 and algorithm[1].tag == OID else None
            return _sec1_public(_Node.parse(inner).expect(SEQUENCE).children(), curve)
        return None  # Ed25519, Ed448, others: the seed only
    raise DerError(f"unknown private key type {label!r}")


def _sec1_public(parts: list[_Node], curve: str | None) -> PublicKey | None:
    point = None
    for part in parts[2:]:
        if part.tag == 0xA0:  # [0] parameters: the named curve
            curve = part.children()[0].oid()
        elif part.tag == 0xA1:  # [1] publicKey
            point = part.children()[0].bits()
    if point is None or curve is None:
        return None
    return PublicKey("EC", f"EC {CURVES.get(curve, curve)}", (curve, point))


def key_matches(cert: Certificate, key_pem: bytes) -> bool | None:
    """Whether the first private key of `key_pem` belongs to `cert`; None when this reader
    cannot tell from the file alone (the caller asks OpenSSL). KeyProblem when there is no
    usable key."""
    try:
        label, der, encrypted = next(
            _pem_blocks(key_pem, lambda label: label.endswith("PRIVATE KEY"))
        )
    except StopIteration:
        raise KeyProblem("no PEM private key in the file") from None
    except DerError as error:
        raise KeyProblem(f"unreadable private key: {error}") from None
    if encrypted:
        raise KeyProblem("the private key is encrypted: Postfix cannot use it")
    try:
        public = _private_public(label, der)
    except (DerError, ValueError) as error:
        raise KeyProblem(f"unreadable private key: {error}") from None
    if public is None:
        return None
    if public.algorithm != cert.key.algorithm:
        return False
    if public.algorithm == "DSA" and public.parts[3] is None:
        return None
    if public.algorithm == "EC" and public.parts[0] == cert.key.parts[0]:
        point, theirs = public.parts[1], cert.key.parts[1]
        assert isinstance(point, bytes) and isinstance(theirs, bytes)
        if point[:1] != theirs[:1] and b"\x04" in (point[:1], theirs[:1]):
            return None  # one compressed, one not: let OpenSSL compare
    return public.parts == cert.key.parts


def openssl_key_matches(cert_file: str, key_file: str) -> bool | str:
    """OpenSSL's own verdict (SSL_CTX_check_private_key through `ssl`): True, False, or
    the reason it could not load the pair."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # Only the pairing is asked here: a key too small for the default security level is
    # another check's finding, not an unreadable key.
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    try:
        context.load_cert_chain(cert_file, key_file, password=lambda: b"")
    except ssl.SSLError as error:
        # A key of another type than the certificate's lands in another slot of the
        # context, which then has no certificate: a mismatch too.
        if error.reason in ("KEY_VALUES_MISMATCH", "NO_CERTIFICATE_ASSIGNED"):
            return False
        return f"unreadable private key: {error.reason or error}"
    except OSError as error:
        return error.strerror or str(error)
    return True


__all__ = [
    "CURVES",
    "Certificate",
    "DerError",
    "KeyProblem",
    "PublicKey",
    "first_certificate",
    "key_matches",
    "openssl_key_matches",
    "parse_certificate",
]
