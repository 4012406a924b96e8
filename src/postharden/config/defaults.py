"""Default parameter values: the installed Postfix's `postconf -d`, or a bundled snapshot.

`postconf -d` of the installed Postfix is the truth for its version. A configuration
copied from another host can still be read where Postfix is not installed: the package
ships the table of a real `postconf -d` (with the version it came from).

A few defaults are computed by Postfix from the configuration and the machine rather than
stored: `mydomain` from `myhostname`, `mynetworks` from `mynetworks_style`,
`inet_interfaces` and the machine's interfaces (src/global/mail_params.c, mynetworks.c).
`DYNAMIC_DEFAULTS` names them; the model computes them in context.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from postharden.config.syntax import split_nameval

SNAPSHOT_VERSION = "3.7.11"
DYNAMIC_DEFAULTS = frozenset({"mydomain", "mynetworks"})
# Per-process values that say nothing about a configuration.
PROCESS_DEFAULTS = frozenset({"process_id", "process_name"})
_SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")


@dataclass(frozen=True)
class Defaults:
    values: dict[str, str]
    version: str
    source: str  # "installed" (postconf -d) or "bundled"

    def __contains__(self, name: str) -> bool:
        return name in self.values


def find_postfix_tool(name: str) -> str | None:
    """Path of a Postfix command (postconf, postfix, postmap), also in sbin when not on PATH."""
    found = shutil.which(name)
    if found:
        return found
    for directory in _SBIN_DIRS:
        candidate = os.path.join(directory, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _parse_postconf_output(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        name, value = split_nameval(line)
        values[name] = value
    return values


@functools.cache
def installed_defaults() -> Defaults | None:
    """`postconf -d` of the installed Postfix, or None when there is none."""
    postconf = find_postfix_tool("postconf")
    if postconf is None:
        return None
    try:
        completed = subprocess.run(
            [postconf, "-d"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
            env={**os.environ, "LC_ALL": "C"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if completed.returncode != 0:
        return None
    values = _parse_postconf_output(completed.stdout)
    return Defaults(values, values.get("mail_version", "unknown"), "installed")


@functools.cache
def bundled_defaults() -> Defaults:
    """The snapshot of `postconf -d` shipped with postharden."""
    data = resources.files("postharden.config").joinpath(
        f"data/postconf-defaults-{SNAPSHOT_VERSION}.json"
    )
    document = json.loads(data.read_text(encoding="utf-8"))
    return Defaults(dict(document["parameters"]), str(document["mail_version"]), "bundled")


def load_defaults(preference: str = "auto") -> Defaults:
    """`auto`: the installed Postfix when there is one, else the snapshot."""
    if preference in ("auto", "installed"):
        installed = installed_defaults()
        if installed is not None:
            return installed
        if preference == "installed":
            from postharden.config.errors import ConfigError

            raise ConfigError("Postfix is not installed here (no postconf); use --defaults bundled")
    return bundled_defaults()


def write_snapshot(path: Path) -> None:
    """Regenerate the bundled snapshot from the installed Postfix (a maintainer task)."""
    installed = installed_defaults()
    if installed is None:
        raise RuntimeError("postconf not found")
    values = {k: v for k, v in installed.values.items() if k not in PROCESS_DEFAULTS}
    document = {
        "generated_by": "postconf -d",
        "mail_version": installed.version,
        "parameters": dict(sorted(values.items())),
    }
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")


# --- computed defaults -------------------------------------------------------------------


def default_mydomain(myhostname: str) -> str:
    """mail_params.c: the host name less its first label, or `localdomain`."""
    _, dot, rest = myhostname.partition(".")
    return rest if dot else "localdomain"


@dataclass(frozen=True)
class InterfaceAddress:
    interface: str
    address: ipaddress.IPv4Interface | ipaddress.IPv6Interface


@functools.cache
def machine_addresses() -> tuple[InterfaceAddress, ...]:
    """This machine's interface addresses with prefix lengths (`ip -j addr`)."""
    ip = shutil.which("ip") or "/usr/sbin/ip"
    try:
        completed = subprocess.run(
            [ip, "-j", "addr", "show"], capture_output=True, text=True, timeout=10, check=False
        )
        interfaces = json.loads(completed.stdout) if completed.returncode == 0 else []
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError):
        interfaces = []
    found: list[InterfaceAddress] = []
    for interface in interfaces:
        for info in interface.get("addr_info", []):
            local, prefix = info.get("local"), info.get("prefixlen")
            if local is None or prefix is None:
                continue
            try:
                address = ipaddress.ip_interface(f"{local}/{prefix}")
            except ValueError:
                continue
            found.append(InterfaceAddress(str(interface.get("ifname", "")), address))
    return tuple(found)


def _own_addresses(
    inet_interfaces: str, inet_protocols: str
) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
    machine = [entry.address for entry in machine_addresses()]
    words = inet_interfaces.replace(",", " ").split()
    if not words or "all" in words:
        selected = machine
    else:
        selected = []
        for word in words:
            if word in ("loopback-only", "localhost"):
                wanted = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
            else:
                try:
                    wanted = [ipaddress.ip_address(word.strip("[]"))]
                except ValueError:
                    continue  # a host name: Postfix would resolve it; we do not look names up
            for address in wanted:
                match = [m for m in machine if m.ip == address]
                selected.extend(match or [ipaddress.ip_interface(address)])
    protocols = set(inet_protocols.replace(",", " ").split())
    if "all" not in protocols:
        keep = {4} if "ipv4" in protocols else set()
        keep |= {6} if "ipv6" in protocols else set()
        selected = [a for a in selected if a.version in keep]
    # Postfix lists IPv4 networks first (getifaddrs order within each family).
    return [a for a in selected if a.version == 4] + [a for a in selected if a.version == 6]


def _classful(address: ipaddress.IPv4Interface) -> ipaddress.IPv4Network:
    first = int(address.ip) >> 24
    prefix = 8 if first < 128 else 16 if first < 192 else 24 if first < 224 else 4
    return ipaddress.ip_network(f"{address.ip}/{prefix}", strict=False)  # type: ignore[return-value]


def default_mynetworks(style: str, inet_interfaces: str, inet_protocols: str) -> str:
    """mynetworks.c: this machine's networks in the given mynetworks_style."""
    entries: list[str] = []
    for address in _own_addresses(inet_interfaces, inet_protocols):
        if style == "host":
            network = ipaddress.ip_network(address.ip)
        elif style == "class" and isinstance(address, ipaddress.IPv4Interface):
            network = _classful(address)
        else:
            network = address.network
        text = (
            f"{network.network_address}/{network.prefixlen}"
            if network.version == 4
            else f"[{network.network_address}]/{network.prefixlen}"
        )
        if text not in entries:
            entries.append(text)
    return " ".join(entries)
