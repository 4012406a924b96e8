"""The audit's certificate reader (checks/certs.py) against two oracles.

* `cryptography`'s X.509 parser for what a certificate says (names, validity, key type);
* OpenSSL itself, through `ssl.SSLContext.load_cert_chain` (the `SSL_CTX_check_private_key`
  Postfix relies on), for whether a private key belongs to a certificate.

Randomised with a fixed seed: key types and sizes, key file formats, subjects with and
without CN (and with characters RFC 4514 escapes), subjectAltName with other entry types,
dates on both sides of 2050 (UTCTime and GeneralizedTime), matching and foreign keys.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import random
from pathlib import Path
from typing import Any

import pytest

from postharden.checks.certs import (
    DerError,
    KeyProblem,
    first_certificate,
    key_matches,
    openssl_key_matches,
    parse_certificate,
)
from postharden.checks.facts import read_certificate

x509 = pytest.importorskip("cryptography.x509", reason="the oracle needs cryptography")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import (  # noqa: E402
    dsa,
    ec,
    ed448,
    ed25519,
    rsa,
)

NameOID = x509.NameOID
CURVES = [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1(), ec.SECP256K1(), ec.BrainpoolP256R1()]


def _keys() -> list[Any]:
    keys: list[Any] = [rsa.generate_private_key(65537, size) for size in (1024, 2048)]
    keys.append(rsa.generate_private_key(3, 1024))
    keys += [ec.generate_private_key(curve) for curve in CURVES]
    keys += [ed25519.Ed25519PrivateKey.generate(), ed448.Ed448PrivateKey.generate()]
    keys.append(dsa.generate_private_key(1024))
    return keys


KEYS = _keys()
ATTRIBUTES = [
    NameOID.ORGANIZATION_NAME,
    NameOID.ORGANIZATIONAL_UNIT_NAME,
    NameOID.LOCALITY_NAME,
    NameOID.STATE_OR_PROVINCE_NAME,
    NameOID.EMAIL_ADDRESS,
    NameOID.DOMAIN_COMPONENT,
    NameOID.COUNTRY_NAME,
]
TRICKY = [
    "mx.example.com",
    "Mail, Inc.",
    " lead",
    "trail ",
    "#hash",
    'q"u+o;te<>',
    "back\\slash",
    "ünï",
]


def _value(rng: random.Random) -> str:
    return rng.choice(TRICKY) + ("" if rng.random() < 0.5 else str(rng.randrange(100)))


def _certificate(rng: random.Random, key: Any) -> Any:
    attributes = []
    if rng.random() < 0.8:
        attributes.append(
            x509.NameAttribute(NameOID.COMMON_NAME, f"mx{rng.randrange(99)}.example.org")
        )
    for _ in range(rng.randrange(0 if attributes else 1, 4)):
        oid = rng.choice(ATTRIBUTES)
        value = _value(rng)
        if oid in (NameOID.DOMAIN_COMPONENT, NameOID.EMAIL_ADDRESS):
            value = "example"
        elif oid == NameOID.COUNTRY_NAME:
            value = "DE"
        attributes.append(x509.NameAttribute(oid, value))
    rng.shuffle(attributes)
    rdns = [x509.RelativeDistinguishedName([a]) for a in attributes]
    if len(rdns) > 1 and rdns[0] != rdns[1] and rng.random() < 0.3:  # a multi-valued RDN
        rdns[:2] = [x509.RelativeDistinguishedName([*rdns[0], *rdns[1]])]
    name = x509.Name(rdns)
    start = dt.datetime(rng.choice([1999, 2024, 2049, 2051]), rng.randrange(1, 13), 1, 12, 30, 5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=rng.choice([1, 365, 20000])))
    )
    if rng.random() < 0.7:
        entries: list[Any] = [x509.DNSName(f"h{i}.example.net") for i in range(rng.randrange(4))]
        if rng.random() < 0.5:
            entries.append(x509.IPAddress(ipaddress.ip_address("192.0.2.7")))
        if rng.random() < 0.5:
            entries.append(x509.RFC822Name("postmaster@example.net"))
        rng.shuffle(entries)
        if entries:
            builder = builder.add_extension(x509.SubjectAlternativeName(entries), critical=False)
    if rng.random() < 0.5:
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
    algorithm = (
        None
        if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey)
        else hashes.SHA256()
    )
    return builder.sign(key, algorithm)


def _oracle(certificate: Any) -> dict[str, Any]:
    """What the audit read with cryptography before certs.py."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = tuple(san.value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = ()
    common = tuple(
        str(a.value) for a in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    )
    key = certificate.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        description = f"RSA {key.key_size}"
    elif isinstance(key, dsa.DSAPublicKey):
        description = f"DSA {key.key_size}"
    elif isinstance(key, ec.EllipticCurvePublicKey):
        description = f"EC {key.curve.name}"
    else:
        description = type(key).__name__.removesuffix("PublicKey").lstrip("_")
    return {
        "subject": certificate.subject.rfc4514_string(),
        "common_names": common,
        "dns_names": names,
        "not_before": certificate.not_valid_before_utc,
        "not_after": certificate.not_valid_after_utc,
        "key": description,
    }


def _key_pem(key: Any, fmt: Any) -> bytes:
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        fmt = serialization.PrivateFormat.PKCS8
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


FORMATS = [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL]


def test_certificate_fields_equal_cryptography() -> None:
    rng = random.Random(5)
    for _ in range(150):
        certificate = _certificate(rng, rng.choice(KEYS))
        pem = certificate.public_bytes(serialization.Encoding.PEM)
        der = first_certificate(b"junk before\n" + pem + b"\n" + pem)
        assert der == certificate.public_bytes(serialization.Encoding.DER)
        ours = parse_certificate(der)
        got = {
            "subject": ours.subject,
            "common_names": ours.common_names,
            "dns_names": ours.dns_names,
            "not_before": ours.not_before,
            "not_after": ours.not_after,
            "key": ours.key.description,
        }
        assert got == _oracle(certificate), pem.decode()


def test_key_match_equals_openssl(tmp_path: Path) -> None:
    rng = random.Random(7)
    unsure = 0
    for i in range(80):
        key = rng.choice(KEYS)
        certificate = _certificate(rng, key)
        if rng.random() < 0.4:  # a foreign key, of the same type or another
            key = rng.choice(KEYS)
        cert_path, key_path = tmp_path / f"{i}.crt", tmp_path / f"{i}.key"
        cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_pem = _key_pem(key, rng.choice(FORMATS))
        key_path.write_bytes(key_pem)
        ours = key_matches(
            parse_certificate(first_certificate(cert_path.read_bytes()) or b""), key_pem
        )
        openssl = openssl_key_matches(str(cert_path), str(key_path))
        assert isinstance(openssl, bool), openssl
        if ours is None:
            unsure += 1
            assert isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey)
        else:
            assert ours == openssl, (type(key).__name__, key_pem[:40])
        fact = read_certificate(str(cert_path), str(key_path), {})
        assert fact.key_matches is openssl and fact.key_error is None
    assert 0 < unsure < 80  # both ways of deciding were taken


def test_certificate_and_key_in_one_file(tmp_path: Path) -> None:
    key = KEYS[3]  # EC P-256
    certificate = _certificate(random.Random(1), key)
    both = tmp_path / "both.pem"
    both.write_bytes(
        certificate.public_bytes(serialization.Encoding.PEM) + _key_pem(key, FORMATS[1])
    )
    fact = read_certificate(str(both), str(both), {})
    assert fact.error is None and fact.key_matches is True
    assert fact.key_description == "EC secp256r1"


def test_bad_input_gives_reasons_not_exceptions(tmp_path: Path) -> None:
    key = KEYS[1]
    pem = _certificate(random.Random(2), key).public_bytes(serialization.Encoding.PEM)
    cert = tmp_path / "c.pem"
    cases = {
        b"not a certificate at all": "no PEM certificate in the file",
        pem.replace(b"MII", b"M!I", 1): "unreadable certificate: bad base64",
        pem[:200] + pem[-26:]: "unreadable certificate",
        b"-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n": "unreadable certificate",
    }
    for data, reason in cases.items():
        cert.write_bytes(data)
        fact = read_certificate(str(cert), str(cert), {})
        assert fact.error is not None and fact.error.startswith(reason), (data[:40], fact.error)
    cert.write_bytes(pem)
    keyfile = tmp_path / "k.pem"
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.BestAvailableEncryption(b"secret"),
    )
    key_cases = {
        encrypted: "the private key is encrypted",
        _key_pem(key, FORMATS[0]).replace(b"MII", b"MIJ", 1): "unreadable private key",
        b"no key here": "no PEM private key in the file",
    }
    for data, reason in key_cases.items():
        keyfile.write_bytes(data)
        fact = read_certificate(str(cert), str(keyfile), {})
        assert fact.key_error is not None and fact.key_error.startswith(reason), fact.key_error
        assert fact.key_matches is None
    with pytest.raises(KeyProblem, match="no PEM private key"):
        key_matches(parse_certificate(first_certificate(pem) or b""), pem)
    with pytest.raises(DerError):
        parse_certificate(b"\x30\x03\x02\x01")


def test_audit_reads_an_rsa_or_ec_pair_without_cryptography_or_ssl(tmp_path: Path) -> None:
    """The cold-start budget of `audit` (benchmarks/audit.py): reading smtpd's certificate
    must not import cryptography's X.509 (~80 ms) or ssl (~40 ms) for the usual key types."""
    import shutil
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    config = tmp_path / "hardened"
    shutil.copytree(root / "examples" / "hardened", config)
    pem = config / "tls" / "mail.example.com.pem"  # smtpd_tls_chain_files: key, then cert
    pem.chmod(0o600)
    script = (
        "import contextlib, io, sys\n"
        "from postharden import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        f"    cli.main(['audit', '--config-dir', {str(config)!r}, '--format', 'json'])\n"
        "from postharden.checks.facts import read_certificate\n"
        f"fact = read_certificate({str(pem)!r}, {str(pem)!r}, {{}})\n"
        "print(fact.key_matches, fact.key_description)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'cryptography', 'ssl'}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["True EC secp256r1", "[]"]


def test_damage_in_one_block_is_reported_against_that_block_only(tmp_path: Path) -> None:
    """One file with key, certificate and chain (smtpd_tls_chain_files): a damaged key is
    a key problem, a damaged chain certificate after the server's is no problem of either."""
    key = KEYS[3]  # EC P-256
    cert_pem = _certificate(random.Random(3), key).public_bytes(serialization.Encoding.PEM)
    key_pem = _key_pem(key, FORMATS[0])
    broken_chain = cert_pem.replace(b"MII", b"M!I", 1)
    both = tmp_path / "both.pem"
    both.write_bytes(key_pem.replace(b"MI", b"M!", 1) + cert_pem)
    fact = read_certificate(str(both), str(both), {})
    assert fact.error is None and fact.key_description == "EC secp256r1"
    assert fact.key_error is not None and fact.key_error.startswith("unreadable private key")
    both.write_bytes(key_pem + cert_pem + broken_chain)
    fact = read_certificate(str(both), str(both), {})
    assert fact.error is None and fact.key_error is None and fact.key_matches is True


@pytest.mark.postfix
@pytest.mark.root
def test_key_match_is_what_the_real_postfix_decides(tmp_path: Path) -> None:
    """Postfix's smtpd loads the pair when STARTTLS is asked: 220 for a pair that belongs
    together, 454 (TLS not available due to local problem) for a foreign key. The reader
    (both of its ways: the public parts, and OpenSSL for an Ed25519 seed) says the same."""
    from postharden.sandbox import Sandbox, postfix_available
    from postharden.smtp import SmtpClient

    reason = postfix_available()
    if reason:
        pytest.skip(reason)
    rng = random.Random(11)
    rsa2048, p256, p384, ed = KEYS[1], KEYS[3], KEYS[4], KEYS[8]
    pairs = [(p256, p256), (rsa2048, rsa2048), (ed, ed), (p256, p384), (rsa2048, p256), (ed, p256)]
    main = (
        "compatibility_level = 3.6\nmyhostname = mx.example.com\n"
        "smtpd_relay_restrictions = reject_unauth_destination\n"
        "smtpd_tls_security_level = may\n"
        "smtpd_tls_cert_file = $config_directory/cert.pem\n"
        "smtpd_tls_key_file = $config_directory/key.pem\n"
    )
    seen: set[int] = set()
    for cert_key, key in pairs:
        cert_pem = _certificate(rng, cert_key).public_bytes(serialization.Encoding.PEM)
        key_pem = _key_pem(key, FORMATS[0])
        (tmp_path / "cert.pem").write_bytes(cert_pem)
        (tmp_path / "key.pem").write_bytes(key_pem)
        fact = read_certificate(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"), {})
        assert fact.key_error is None
        with (
            Sandbox(main, files={"cert.pem": cert_pem, "key.pem": key_pem}) as sandbox,
            SmtpClient("127.0.0.1", sandbox.port()) as client,
        ):
            client.connect()
            client.ehlo("client.example.net")
            reply = client.command("STARTTLS")
        assert reply.code in (220, 454), reply
        assert fact.key_matches is (reply.code == 220), (type(cert_key), type(key), reply)
        seen.add(reply.code)
    assert seen == {220, 454}
