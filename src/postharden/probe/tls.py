"""TLS scan of one SMTP service through sslyze (STARTTLS on 25/587, implicit TLS on 465).

sslyze is the field's TLS scanner; we use it as a library and only turn its results into
facts (protocol versions accepted, weak cipher classes, certificate chain, expiry, name,
key size). sslyze is an optional dependency (`pip install postharden[tls]`).
"""

from __future__ import annotations

import datetime
import ipaddress
import warnings
from dataclasses import dataclass, field
from typing import Any

# Cipher suite name fragments that make a suite weak (OpenSSL/IANA names).
WEAK_CLASSES = {
    "NULL": "no encryption",
    "EXPORT": "export-grade",
    "RC4": "RC4",
    "_DES_": "single DES",
    "3DES": "3DES (Sweet32)",
    "DES_CBC3": "3DES (Sweet32)",
    "_anon_": "anonymous (no authentication)",
    "ADH": "anonymous (no authentication)",
    "AECDH": "anonymous (no authentication)",
    "MD5": "MD5 MAC",
}

PROTOCOLS = ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3")
OBSOLETE = ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1")


class TlsScanUnavailable(Exception):
    """sslyze is not installed."""


@dataclass
class TlsScan:
    """What the TLS scan found; `error` is set when the scan could not run."""

    protocols: dict[str, bool] = field(default_factory=dict)
    weak_ciphers: list[str] = field(default_factory=list)
    certificate: dict[str, Any] | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "protocols": self.protocols,
            "weak_ciphers": self.weak_ciphers,
            "certificate": self.certificate,
            "error": self.error,
        }


def weak_classes(cipher_name: str) -> list[str]:
    return sorted({label for needle, label in WEAK_CLASSES.items() if needle in cipher_name})


def scan(
    host: str,
    port: int,
    *,
    implicit_tls: bool,
    server_name: str,
    timeout: int = 5,
    ehlo_name: str = "probe.postharden.invalid",
) -> TlsScan:
    try:
        from sslyze.connection_helpers.opportunistic_tls_helpers import (
            ProtocolWithOpportunisticTlsEnum,
        )
        from sslyze.plugins.scan_commands import ScanCommand
        from sslyze.scanner.models import ServerScanRequest, ServerScanStatusEnum
        from sslyze.scanner.scan_command_attempt import ScanCommandAttemptStatusEnum
        from sslyze.scanner.scanner import Scanner
        from sslyze.server_setting import ServerNetworkConfiguration, ServerNetworkLocation
    except ImportError as error:  # pragma: no cover - depends on the installation
        raise TlsScanUnavailable(
            "sslyze is not installed (pip install 'postharden[tls]')"
        ) from error

    ip: str | None
    try:
        ip = str(ipaddress.ip_address(host))
    except ValueError:
        ip = None
    location = ServerNetworkLocation(hostname=server_name or host, port=port, ip_address=ip or host)
    network = ServerNetworkConfiguration(
        tls_server_name_indication=server_name or host,
        tls_opportunistic_encryption=None
        if implicit_tls
        else ProtocolWithOpportunisticTlsEnum.SMTP,
        smtp_ehlo_hostname=ehlo_name,
        network_timeout=timeout,
        network_max_retries=1,
    )
    commands = {
        ScanCommand.CERTIFICATE_INFO,
        ScanCommand.SSL_2_0_CIPHER_SUITES,
        ScanCommand.SSL_3_0_CIPHER_SUITES,
        ScanCommand.TLS_1_0_CIPHER_SUITES,
        ScanCommand.TLS_1_1_CIPHER_SUITES,
        ScanCommand.TLS_1_2_CIPHER_SUITES,
        ScanCommand.TLS_1_3_CIPHER_SUITES,
    }
    scanner = Scanner(per_server_concurrent_connections_limit=5)
    scanner.queue_scans(
        [
            ServerScanRequest(
                server_location=location, network_configuration=network, scan_commands=commands
            )
        ]
    )
    result = TlsScan()
    with warnings.catch_warnings():
        # sslyze's bundled trust stores carry certificates newer cryptography warns about.
        warnings.simplefilter("ignore")
        servers = list(scanner.get_results())
    for server in servers:
        if server.scan_status != ServerScanStatusEnum.COMPLETED or server.scan_result is None:
            trace = server.connectivity_error_trace
            result.error = f"TLS scan could not connect: {_one_line(str(trace) if trace else server.scan_status.name)}"
            return result
        attempts = server.scan_result
        for name, attempt in (
            ("SSLv2", attempts.ssl_2_0_cipher_suites),
            ("SSLv3", attempts.ssl_3_0_cipher_suites),
            ("TLSv1.0", attempts.tls_1_0_cipher_suites),
            ("TLSv1.1", attempts.tls_1_1_cipher_suites),
            ("TLSv1.2", attempts.tls_1_2_cipher_suites),
            ("TLSv1.3", attempts.tls_1_3_cipher_suites),
        ):
            if attempt.status != ScanCommandAttemptStatusEnum.COMPLETED or attempt.result is None:
                continue
            accepted = attempt.result.accepted_cipher_suites
            result.protocols[name] = bool(accepted)
            for suite in accepted:
                for label in weak_classes(suite.cipher_suite.name):
                    result.weak_ciphers.append(f"{name} {suite.cipher_suite.name}: {label}")
        cert_attempt = attempts.certificate_info
        if cert_attempt.status == ScanCommandAttemptStatusEnum.COMPLETED and cert_attempt.result:
            result.certificate = _certificate_facts(cert_attempt.result, server_name or host)
        elif cert_attempt.error_reason is not None:
            result.certificate = {"error": cert_attempt.error_reason.name}
    return result


def _certificate_facts(info: Any, server_name: str) -> dict[str, Any] | None:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

    if not info.certificate_deployments:
        return None
    deployment = info.certificate_deployments[0]
    chain = deployment.received_certificate_chain
    leaf = chain[0]
    now = datetime.datetime.now(datetime.UTC)
    not_after = leaf.not_valid_after_utc
    key = leaf.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        key_type, key_size = "RSA", key.key_size
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key_type, key_size = "EC", key.curve.key_size
    elif isinstance(key, dsa.DSAPublicKey):
        key_type, key_size = "DSA", key.key_size
    elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        key_type, key_size = "EdDSA", 256
    else:
        key_type, key_size = type(key).__name__, 0
    names: list[str] = []
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = list(san.value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = [a.value for a in leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    trusted = any(v.was_validation_successful for v in deployment.path_validation_results)
    errors = sorted(
        {str(v.validation_error) for v in deployment.path_validation_results if v.validation_error}
    )
    return {
        "subject": leaf.subject.rfc4514_string(),
        "issuer": leaf.issuer.rfc4514_string(),
        "self_signed": leaf.subject == leaf.issuer,
        "chain": [c.subject.rfc4514_string() for c in chain],
        "not_after": not_after.isoformat(),
        "days_left": (not_after - now).days,
        "names": names,
        "name_matches": any(_name_matches(pattern, server_name) for pattern in names),
        "key_type": key_type,
        "key_size": key_size,
        "trusted": trusted,
        "validation_errors": errors[:3],
    }


def _name_matches(pattern: str, name: str) -> bool:
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = name.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == name


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else text[:300]
