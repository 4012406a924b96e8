"""Default parameter values: the installed Postfix's `postconf -d`, or a bundled snapshot.

`postconf -d` of the installed Postfix is the truth for its version. A configuration
copied from another host can still be read where Postfix is not installed: the package
ships the table of a real `postconf -d` (with the version it came from).

A few defaults are computed by Postfix from the configuration and the machine rather than
stored: `mydomain` from `myhostname`, `mynetworks` from `mynetworks_style`,
`inet_interfaces` and the machine's interfaces (src/global/mail_params.c, mynetworks.c).
`DYNAMIC_DEFAULTS` names them; the model computes them in context.

The table holds the built-in parameters only. `postconf -d` without `-c` also lists the
service-defined parameters of /etc/postfix/master.cf (`relay_destination_concurrency_limit`
for a `relay ... smtp` row); those belong to the master.cf being read, so the table is taken
with `-c` pointing at an empty directory and the model adds a configuration's own
service-defined names (`service_defined_defaults`).
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from postharden.config.syntax import split_nameval

SNAPSHOT_VERSION = "3.7.11"
DYNAMIC_DEFAULTS = frozenset({"mydomain", "mynetworks"})
# Parameters that Postfix programs expand themselves at use time, with their own names
# ($client_address, $recipient, ...): postconf -x shows them unexpanded. Named in the
# CONFIG_RAW_TABLE of local.c, smtpd.c and postscreen.c.
RAW_PARAMETERS = frozenset(
    {
        "command_execution_directory",
        "forward_path",
        "mailbox_command",
        "luser_relay",
        "smtpd_reject_footer",
        "postscreen_reject_footer",
        "smtpd_expansion_filter",
        "postscreen_expansion_filter",
        "default_rbl_reply",
    }
)
# Per-process values that say nothing about a configuration.
PROCESS_DEFAULTS = frozenset({"process_id", "process_name"})
# Parameters that Postfix sets itself; a main.cf or `-o` assignment is ignored
# ("read-only parameter assignment", postconf_user.c, mail_params.c).
READ_ONLY_PARAMETERS = frozenset({"process_id", "process_name", "service_name"})
# Legacy parameters: obsolete names that defaults still reference for backwards
# compatibility (`virtual_alias_maps = $virtual_maps`). Postfix knows them (a setting is
# not "unused") but `postconf -d` does not list them and they have no default of their own.
LEGACY_PARAMETERS = frozenset(
    {
        "authorized_verp_clients",
        "fallback_relay",
        "lmtp_per_record_deadline",
        "postscreen_blacklist_action",
        "postscreen_dnsbl_ttl",
        "postscreen_dnsbl_whitelist_threshold",
        "postscreen_whitelist_interfaces",
        "smtp_per_record_deadline",
        "smtpd_client_connection_limit_exceptions",
        "smtpd_per_record_deadline",
        "tlsproxy_client_level",
        "tlsproxy_client_policy",
        "virtual_maps",
    }
)
# Service-defined parameters (postconf_service.c): a master.cf row whose command field is
# exactly one of these programs gets `<service name><suffix>` parameters whose default is
# `$<built-in parameter>`.
_DELIVERY_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("_delivery_slot_cost", "default_delivery_slot_cost"),
    ("_delivery_slot_discount", "default_delivery_slot_discount"),
    ("_delivery_slot_loan", "default_delivery_slot_loan"),
    (
        "_destination_concurrency_failed_cohort_limit",
        "default_destination_concurrency_failed_cohort_limit",
    ),
    ("_destination_concurrency_limit", "default_destination_concurrency_limit"),
    (
        "_destination_concurrency_negative_feedback",
        "default_destination_concurrency_negative_feedback",
    ),
    (
        "_destination_concurrency_positive_feedback",
        "default_destination_concurrency_positive_feedback",
    ),
    ("_destination_rate_delay", "default_destination_rate_delay"),
    ("_destination_recipient_limit", "default_destination_recipient_limit"),
    ("_extra_recipient_limit", "default_extra_recipient_limit"),
    ("_initial_destination_concurrency", "initial_destination_concurrency"),
    ("_minimum_delivery_slots", "default_minimum_delivery_slots"),
    ("_recipient_limit", "default_recipient_limit"),
    ("_recipient_refill_delay", "default_recipient_refill_delay"),
    ("_recipient_refill_limit", "default_recipient_refill_limit"),
    ("_transport_rate_delay", "default_transport_rate_delay"),
)
_TIME_LIMIT_SUFFIX = (("_time_limit", "command_time_limit"),)
SERVICE_PARAMETER_SUFFIXES: dict[str, tuple[tuple[str, str], ...]] = {
    "local": _DELIVERY_SUFFIXES,
    "error": _DELIVERY_SUFFIXES,
    "virtual": _DELIVERY_SUFFIXES,
    "smtp": _DELIVERY_SUFFIXES,
    "lmtp": _DELIVERY_SUFFIXES,
    "pipe": _DELIVERY_SUFFIXES + _TIME_LIMIT_SUFFIX,
    "spawn": _TIME_LIMIT_SUFFIX,
}
_SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")


class Defaults:
    """The default value of every parameter of one Postfix version."""

    __slots__ = ("source", "values", "version")

    def __init__(self, values: dict[str, str], version: str, source: str) -> None:
        self.values = values
        self.version = version
        self.source = source  # "installed" (postconf -d) or "bundled"

    def __repr__(self) -> str:
        return f"Defaults({self.version}, {self.source}, {len(self.values)} parameters)"

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
        # postconf prints `name = value` or `name =`; anything else goes the long way.
        name, separator, value = line.partition(" = ")
        if separator and " " not in name:
            values[name] = value.strip()
        elif line.endswith(" =") and " " not in line[:-2]:
            values[line[:-2]] = ""
        elif line.strip():
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
        # An empty configuration directory: built-in parameters only (see the module doc).
        with tempfile.TemporaryDirectory(prefix="postharden-defaults-") as empty:
            completed = subprocess.run(
                [postconf, "-c", empty, "-d"],
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
    # Per-process values of the postconf run itself (its pid, "postconf"): not defaults of
    # any Postfix daemon, and absent from the bundled snapshot too.
    for name in PROCESS_DEFAULTS:
        values.pop(name, None)
    return Defaults(values, values.get("mail_version", "unknown"), "installed")


@functools.cache
def bundled_defaults() -> Defaults:
    """The snapshot of `postconf -d` shipped with postharden."""
    from importlib import resources  # only here: ~10 ms of the CLI's cold start

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


def service_defined_defaults(
    services: Iterable[tuple[str, str]], builtin: Defaults
) -> dict[str, str]:
    """`<service><suffix>` defaults for (service name, command field) pairs of master.cf.

    Names that are built in (`local_destination_concurrency_limit = 2`) keep their
    built-in default, as postconf does.
    """
    found: dict[str, str] = {}
    for service_name, command in services:
        for suffix, parameter in SERVICE_PARAMETER_SUFFIXES.get(command, ()):
            name = service_name + suffix
            if name not in builtin.values:
                found.setdefault(name, "$" + parameter)
    return found


# --- computed defaults -------------------------------------------------------------------


def default_mydomain(myhostname: str) -> str:
    """mail_params.c: the host name less its first label, or `localdomain`."""
    _, dot, rest = myhostname.partition(".")
    return rest if dot else "localdomain"


class InterfaceAddress(NamedTuple):
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


@functools.cache
def _hosts_file() -> tuple[tuple[str, tuple[str, ...]], ...]:
    try:
        text = Path("/etc/hosts").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ()
    entries = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) >= 2:
            entries.append((words[0], tuple(name.lower() for name in words[1:])))
    return tuple(entries)


def hosts_file_addresses(name: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]:
    """The addresses /etc/hosts gives a host name, in file order."""
    found: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for address, names in _hosts_file():
        if name.lower() in names:
            try:
                parsed = ipaddress.ip_address(address.split("%", 1)[0])
            except ValueError:
                continue
            if parsed not in found:
                found.append(parsed)
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
            if word == "loopback-only":
                wanted = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
            else:
                try:
                    wanted = [ipaddress.ip_address(word.strip("[]"))]
                except ValueError:
                    # A host name (`localhost`): Postfix resolves it. Only /etc/hosts is
                    # consulted here, never DNS (no network, no hang); on Debian
                    # `localhost` is 127.0.0.1 and, when listed, ::1.
                    wanted = list(hosts_file_addresses(word))
                    if not wanted:
                        continue
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
