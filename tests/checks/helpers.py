"""Building small configurations for check tests, and certificates for TLS checks."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from postharden.checks import AuditReport, gather_facts, run_audit
from postharden.config import load_config

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)

BASE_MAIN = """\
compatibility_level = 3.6
myhostname = mx.example.com
mydomain = example.com
mydestination = $myhostname, localhost
mynetworks = 127.0.0.0/8 [::1]/128
queue_directory = {dir}/queue
data_directory = {dir}/data
"""
BASE_MASTER = """\
smtp      inet  n       -       y       -       -       smtpd
pickup    unix  n       -       y       60      1       pickup
cleanup   unix  n       -       y       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
"""


@dataclass(frozen=True)
class Case:
    """A small configuration for one check, and what the check must say about it.

    `expect`: "failed" or "passed" (or "not_applicable"). `services`: for failed cases,
    exactly the services (name/type, or "-" for main.cf-wide findings) that must fail.
    `main` lines are appended to BASE_MAIN (later lines win, as in Postfix); `master`
    replaces BASE_MASTER when given. `{dir}` is the configuration directory. `files`
    are written into it; `certs` makes certificates (see write_certificate).
    """

    check: str
    name: str
    expect: str
    main: str = ""
    master: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    modes: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (mode, uid)
    certs: tuple[tuple[str, str, int, int], ...] = ()  # (basename, hostname, days_from, days_to)
    stale: tuple[str, ...] = ()  # map sources to make newer than their .db
    postmap: tuple[str, ...] = ()  # tables to compile with the real postmap
    role: str | None = None
    services: frozenset[str] | None = None
    unset: tuple[str, ...] = ()  # BASE_MAIN parameters to leave out
    fixable: bool = True  # False when the fix is manual by nature

    @property
    def id(self) -> str:
        return f"{self.check}-{self.expect}-{self.name}"


def age(path: Path, seconds: float = 3600) -> None:
    """Date a file back: Postfix programs sleep while main.cf looks freshly written."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def write_certificate(
    directory: Path,
    basename: str,
    hostname: str,
    days_from: int,
    days_to: int,
    *,
    now: dt.datetime = NOW,
) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, hostname)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=days_from))
        .not_valid_after(now + dt.timedelta(days=days_to))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / f"{basename}.crt"
    key_path = directory / f"{basename}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(key_path, 0o600)
    return cert_path, key_path


def build(case: Case, directory: Path) -> Path:
    """Write the case's configuration into directory (made 0755, like /etc/postfix)."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o755)
    (directory / "queue").mkdir(exist_ok=True)
    (directory / "data").mkdir(exist_ok=True)
    subst = {"dir": str(directory)}
    for name, content in case.files.items():
        path = directory / name
        path.write_text(content.format(**subst), encoding="utf-8")
        age(path, 7200)
    for basename, hostname, days_from, days_to in case.certs:
        write_certificate(directory, basename, hostname, days_from, days_to)
    for name in case.postmap:
        run_postmap(directory, name.format(**subst))
    for name in case.stale:
        age(directory / name, 60)  # edited a minute ago,
        age(directory / f"{name}.db", 3600)  # compiled an hour ago
    base = "".join(
        line + "\n" for line in BASE_MAIN.splitlines() if line.split(" = ", 1)[0] not in case.unset
    )
    # One definition per name (the case's wins), like an admin's edited main.cf; Postfix
    # itself warns "overriding earlier entry" about duplicates.
    lines = (base + case.main).format(**subst).splitlines()
    names = [
        line.split("=", 1)[0].strip() if "=" in line and not line[:1].isspace() else None
        for line in lines
    ]
    kept = [
        line for i, line in enumerate(lines) if names[i] is None or names[i] not in names[i + 1 :]
    ]
    main = directory / "main.cf"
    main.write_text("\n".join(kept) + "\n", encoding="utf-8")
    master = directory / "master.cf"
    master.write_text((case.master if case.master is not None else BASE_MASTER), encoding="utf-8")
    age(main)
    age(master)
    for name, (mode, uid) in case.modes.items():
        os.chmod(directory / name, mode)
        os.chown(directory / name, uid, -1)
    return directory


def run_postmap(directory: Path, spec: str) -> None:
    postmap = shutil.which("postmap") or "/usr/sbin/postmap"
    helper = directory.parent / f"{directory.name}-postmap-config"
    helper.mkdir(exist_ok=True)
    (helper / "main.cf").write_text("", encoding="utf-8")
    age(helper / "main.cf")
    subprocess.run([postmap, "-c", str(helper), spec], check=True, timeout=30)
    shutil.rmtree(helper)


def audit(directory: Path, check: str | None = None, role: str | None = None) -> AuditReport:
    config = load_config(directory, "bundled")
    facts = gather_facts(config, now=NOW)
    return run_audit(config, role=role, facts=facts, only=frozenset({check}) if check else None)


def failing_services(report: AuditReport, check: str) -> set[str]:
    return {f.service or "-" for f in report.findings if f.id == check}
