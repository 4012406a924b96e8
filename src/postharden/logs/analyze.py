"""Analyzers: events -> counters (mergeable across workers) -> the security report.

`Tally` holds only counters, so partial tallies from worker processes merge by addition
and the report does not depend on how the log was split. Every table is bounded
(`CAP` keys): memory does not grow with the size of the log.
"""

from __future__ import annotations

import heapq
import ipaddress
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from postharden.logs.events import Event, Kind
from postharden.logs.thresholds import Thresholds

try:  # the compiled scanner's Counter.update, when it is built
    from postharden.logs import _scan  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - a machine without a compiler at install time
    _scan = None
_add_counts: Callable[[Counter[str], Counter[str]], None] | None = getattr(
    _scan, "add_counts", None
)

CAP = 50_000  # keys per table before the rarest half is dropped
SAMPLES = 20  # unparsed lines, fatals and panics kept as examples
REJECT_ACTIONS = frozenset({"reject", "milter-reject", "proxy-reject", "defer", "defer_if_permit"})


_OCTET = r"(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
# What ipaddress accepts as an IPv4 address (no leading zeros), ASCII digits only.
_IPV4 = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}", re.ASCII)


def network_of(ip: str) -> str:
    """The /24 (IPv4) or /64 (IPv6) network of an address: a user's 'place'."""
    m = _IPV4.fullmatch(ip)
    if m is not None:  # the common case, without building ipaddress objects
        return f"{m.group(1)}.{m.group(2)}.{m.group(3)}.0/24"
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    prefix = 24 if addr.version == 4 else 64
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))


def _bump(counter: Counter[str], key: str, n: int = 1) -> None:
    counter[key] += n
    if len(counter) > CAP:
        for k, _ in counter.most_common()[CAP // 2 :]:
            del counter[k]


def _domain(address: str | None) -> str:
    if not address:
        return "<>"
    return address.rpartition("@")[2].lower() or address.lower()


@dataclass
class Tally:
    """Counters over a set of log lines."""

    lines_total: int = 0
    lines_postfix: int = 0
    lines_other: int = 0  # syslog lines of other programs, and junk
    lines_invalid: int = 0  # binary junk, over-long lines, undecodable
    start: float | None = None
    end: float | None = None
    kinds: Counter[str] = field(default_factory=Counter)
    unparsed_samples: list[str] = field(default_factory=list)
    sasl_fail_client: Counter[str] = field(default_factory=Counter)
    sasl_fail_user: Counter[str] = field(default_factory=Counter)
    sasl_fail_mech: Counter[str] = field(default_factory=Counter)
    relay_client: Counter[str] = field(default_factory=Counter)
    reject_reason: Counter[str] = field(default_factory=Counter)
    reject_client: Counter[str] = field(default_factory=Counter)
    reject_stage: Counter[str] = field(default_factory=Counter)
    reject_rbl: Counter[str] = field(default_factory=Counter)
    other_actions: Counter[str] = field(default_factory=Counter)
    tls_error_client: Counter[str] = field(default_factory=Counter)
    tls_protocols: Counter[str] = field(default_factory=Counter)
    policy_servers: Counter[str] = field(default_factory=Counter)
    deliveries: Counter[str] = field(default_factory=Counter)
    deferred_domain: Counter[str] = field(default_factory=Counter)
    bounced_domain: Counter[str] = field(default_factory=Counter)
    sender_messages: Counter[str] = field(default_factory=Counter)
    sender_bytes: Counter[str] = field(default_factory=Counter)
    sender_rcpts: Counter[str] = field(default_factory=Counter)
    login_user: Counter[str] = field(default_factory=Counter)
    login_user_client: Counter[str] = field(default_factory=Counter)  # "user\0ip"
    login_user_hour: Counter[str] = field(default_factory=Counter)  # "user\0hour"
    auth_fail_disconnect: Counter[str] = field(default_factory=Counter)
    connection_problems: Counter[str] = field(default_factory=Counter)  # kind:stage
    postscreen: Counter[str] = field(default_factory=Counter)
    dnsbl: Counter[str] = field(default_factory=Counter)
    anvil_max: Counter[str] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)
    fatal_samples: list[str] = field(default_factory=list)
    hourly: dict[int, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    # --- building ----------------------------------------------------------------------

    def add_time(self, ts: float | None) -> None:
        if ts is None or ts <= 0:
            return
        if self.start is None or ts < self.start:
            self.start = ts
        if self.end is None or ts > self.end:
            self.end = ts

    def add(self, e: Event, line: str | None = None) -> None:
        """Count one parsed Postfix line (lines_total is counted by the reader)."""
        kind = e.kind
        self.lines_postfix += 1
        self.kinds[kind] += 1
        self.add_time(e.ts)
        hour = int(e.ts // 3600 * 3600) if e.ts else 0
        if kind is Kind.UNPARSED:
            if len(self.unparsed_samples) < SAMPLES:
                self.unparsed_samples.append(line if line is not None else e.text)
        elif kind is Kind.SASL_FAILURE:
            _bump(self.sasl_fail_client, e.client_ip or "unknown")
            _bump(self.sasl_fail_user, e.user or "(not logged)")
            _bump(self.sasl_fail_mech, e.mechanism or "unknown")
            self.hourly[hour]["sasl_failures"] += 1
        elif kind is Kind.REJECT:
            action = e.action or "reject"
            if action in REJECT_ACTIONS:
                reason = e.reason or "other"
                client = e.client_ip or "unknown"
                _bump(self.reject_reason, reason)
                _bump(self.reject_client, client)
                _bump(self.reject_stage, e.stage or "unknown")
                self.hourly[hour]["rejects"] += 1
                if reason == "relay_denied":
                    _bump(self.relay_client, client)
                    self.hourly[hour]["relay_denied"] += 1
                elif reason == "rbl" and e.detail:
                    _bump(self.reject_rbl, e.detail)
                elif reason == "policy_service":
                    _bump(self.policy_servers, "(451 4.3.5 reply)")
            else:
                _bump(self.other_actions, action)
        elif kind is Kind.SASL_LOGIN:
            user = e.user or "?"
            ip = e.client_ip or "unknown"
            _bump(self.login_user, user)
            _bump(self.login_user_client, f"{user}\0{ip}")
            _bump(self.login_user_hour, f"{user}\0{hour}")
        elif kind is Kind.DELIVERY:
            status = e.status or "unknown"
            self.deliveries[status] += 1
            if status == "deferred":
                _bump(self.deferred_domain, _domain(e.recipient))
            elif status == "bounced":
                _bump(self.bounced_domain, _domain(e.recipient))
        elif kind is Kind.QUEUED:
            sender = e.sender or "<>"
            _bump(self.sender_messages, sender)
            _bump(self.sender_bytes, sender, e.size or 0)
            _bump(self.sender_rcpts, sender, e.nrcpt or 0)
        elif kind is Kind.EXPIRED:
            self.deliveries["expired"] += 1
        elif kind is Kind.TLS_ESTABLISHED:
            _bump(self.tls_protocols, f"{e.stage}:{e.protocol}")
        elif kind is Kind.TLS_ERROR:
            _bump(self.tls_error_client, e.client_ip or "unknown")
            self.hourly[hour]["tls_errors"] += 1
        elif kind is Kind.POLICY_FAILURE:
            _bump(self.policy_servers, e.detail or "unknown")
            self.hourly[hour]["policy_failures"] += 1
        elif kind is Kind.DISCONNECT:
            for name, ok, total in e.counts or ():
                if name == "auth" and ok < total:
                    _bump(self.auth_fail_disconnect, e.client_ip or "unknown")
        elif kind in (Kind.LOST_CONNECTION, Kind.TIMEOUT, Kind.TOO_MANY_ERRORS):
            _bump(self.connection_problems, f"{kind}:{e.stage}")
        elif kind is Kind.POSTSCREEN:
            _bump(self.postscreen, e.detail or "?")
        elif kind is Kind.DNSBLOG:
            _bump(self.dnsbl, e.detail or "?")
        elif kind is Kind.ANVIL:
            key = f"{e.detail}\0{e.client_ip}"
            if (e.size or 0) > self.anvil_max[key]:
                self.anvil_max[key] = e.size or 0
        elif kind is Kind.WARNING:
            _bump(self.warnings, _warning_key(e.detail or ""))
        elif kind in (Kind.FATAL, Kind.PANIC) and len(self.fatal_samples) < SAMPLES:
            self.fatal_samples.append(line if line is not None else e.text)

    def merge(self, other: Tally) -> None:
        self.lines_total += other.lines_total
        self.lines_postfix += other.lines_postfix
        self.lines_other += other.lines_other
        self.lines_invalid += other.lines_invalid
        self.add_time(other.start)
        self.add_time(other.end)
        for name in COUNTERS:
            self.merge_counter(name, getattr(other, name))
        room = SAMPLES - len(self.unparsed_samples)
        self.unparsed_samples.extend(other.unparsed_samples[: max(room, 0)])
        room = SAMPLES - len(self.fatal_samples)
        self.fatal_samples.extend(other.fatal_samples[: max(room, 0)])
        for hour, counts in other.hourly.items():
            self.hourly[hour].update(counts)

    def merge_counter(self, name: str, theirs: Counter[str]) -> None:
        """The merge of one table (tables are independent of each other)."""
        mine: Counter[str] = getattr(self, name)
        if name == "anvil_max":
            for key, value in theirs.items():
                mine[key] = max(mine[key], value)
            return
        add_counts(mine, theirs)
        if len(mine) > CAP:
            prune(mine)


def add_counts(mine: Counter[str], theirs: Counter[str]) -> None:
    """mine.update(theirs), in C when the scanner is built (same values, same key order)."""
    if _add_counts is not None and theirs is not mine:
        _add_counts(mine, theirs)
    else:
        mine.update(theirs)


def prune(counter: Counter[str]) -> None:
    """Keep the CAP // 2 largest counts, ties broken by key: the result depends only on
    the counts, not on the order keys were first seen. The order of
    `sorted(items, key=(-count, key))`, as two sorts (by key, then stably by count
    descending) that compare strings and ints without building tuples."""
    keys = sorted(counter)
    keys.sort(key=counter.__getitem__, reverse=True)
    keep = {k: counter[k] for k in keys[: CAP // 2]}
    counter.clear()
    counter.update(keep)


COUNTERS = [
    f.name
    for f in Tally.__dataclass_fields__.values()
    if f.name
    not in (
        "lines_total",
        "lines_postfix",
        "lines_other",
        "lines_invalid",
        "start",
        "end",
        "unparsed_samples",
        "fatal_samples",
        "hourly",
    )
]


def _warning_key(detail: str) -> str:
    """Group warnings by their text up to the first client or number-like part."""
    key = detail.split("[", 1)[0].split(": ", 1)[0]
    return key[:80]


# --- the report --------------------------------------------------------------------------


def _top(counter: Counter[str], label: str, n: int) -> list[dict[str, Any]]:
    return [{label: k, "count": v} for k, v in _largest(counter, n)]


def _largest(counter: Counter[str], n: int) -> list[tuple[str, int]]:
    """sorted(counter.items(), key=(-count, key))[:n], without sorting the whole table:
    the items counted at least the n-th largest count hold the first n."""
    if n <= 0 or not counter:
        return []
    least = heapq.nlargest(n, counter.values())[-1]
    items = [kv for kv in counter.items() if kv[1] >= least]
    return _by_count(items)[:n]


def _by_count(items: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """ITEMS sorted by count (descending), then key: two stable sorts, no key tuples."""
    items.sort()
    items.sort(key=itemgetter(1), reverse=True)
    return items


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    import datetime

    return datetime.datetime.fromtimestamp(ts, tz=datetime.UTC).isoformat().replace("+00:00", "Z")


def build_report(
    t: Tally, th: Thresholds, inputs: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The JSON-shaped report (schema logs.schema.json, version 1)."""
    n = th.top
    shown = max(n, 50)  # users listed in sasl_logins.by_user
    logins: dict[str, tuple[list[int], set[str], set[str]]] = {}  # count, clients, networks
    networks_of: dict[str, str] = {}
    for key, count in t.login_user_client.items():
        user, _, ip = key.partition("\0")
        row = logins.get(user)
        if row is None:
            row = logins[user] = ([0], set(), set())
        row[0][0] += count
        row[1].add(ip)
        net = networks_of.get(ip)
        if net is None:
            net = networks_of[ip] = network_of(ip)
        row[2].add(net)
    hours_by_user: dict[str, list[int]] = defaultdict(list)
    busiest: dict[str, tuple[int, int]] = {}  # user -> (count, hour): the earliest of ties
    for key, count in t.login_user_hour.items():
        user, _, hour_text = key.partition("\0")
        hours_by_user[user].append(count)
        best = busiest.get(user)
        if best is None or count >= best[0]:
            hour = int(hour_text)
            if best is None or count > best[0] or hour < best[1]:
                busiest[user] = (count, hour)

    alerts: list[dict[str, Any]] = []
    over = [kv for kv in t.sasl_fail_client.items() if kv[1] >= th.brute_force]
    for client, count in _by_count(over):
        alerts.append(
            {
                "kind": "brute_force",
                "subject": client,
                "count": count,
                "threshold": th.brute_force,
                "detail": f"{count} SASL authentication failures from {client}",
            }
        )
    over = [kv for kv in t.relay_client.items() if kv[1] >= th.relay_denied]
    for client, count in _by_count(over):
        alerts.append(
            {
                "kind": "relay_attempts",
                "subject": client,
                "count": count,
                "threshold": th.relay_denied,
                "detail": f"{count} relay-access-denied rejects for {client}",
            }
        )
    by_user: list[dict[str, Any]] = []
    users = sorted(logins)
    users.sort(key=lambda u: logins[u][0][0], reverse=True)
    for user in users:
        (logged,), clients, nets = logins[user]
        networks = sorted(nets)
        flags = []
        if len(networks) >= th.compromised_networks:
            flags.append("many_networks")
            alerts.append(
                {
                    "kind": "compromised_account",
                    "subject": user,
                    "count": len(networks),
                    "threshold": th.compromised_networks,
                    "detail": f"SASL user {user} logged in from {len(networks)} networks: "
                    + ", ".join(networks[:10]),
                }
            )
        per_hour = hours_by_user.get(user, [])
        peak, peak_hour = busiest.get(user, (0, 0))
        usual = statistics.median(per_hour) if peak >= th.volume_min and len(per_hour) > 1 else 0
        if peak >= th.volume_min and peak >= th.volume_factor * max(usual, 1) and len(per_hour) > 1:
            flags.append("volume_spike")
            alerts.append(
                {
                    "kind": "volume_spike",
                    "subject": user,
                    "count": peak,
                    "threshold": th.volume_min,
                    "detail": f"SASL user {user} sent {peak} messages in the hour from "
                    f"{_iso(peak_hour)} (median hour {usual:g})",
                }
            )
        if len(by_user) < shown:
            by_user.append(
                {
                    "user": user,
                    "count": logged,
                    "clients": sorted(clients)[:100],
                    "networks": networks[:100],
                    "flags": flags,
                }
            )
    policy_total = sum(t.policy_servers.values())
    if policy_total >= th.policy_outage and policy_total:
        alerts.append(
            {
                "kind": "policy_outage",
                "subject": ", ".join(sorted(t.policy_servers)),
                "count": policy_total,
                "threshold": th.policy_outage,
                "detail": "policy service unreachable: Postfix answers 451 4.3.5 "
                "(mail outage for every client that reaches the check)",
            }
        )
    tls_total = sum(t.tls_error_client.values())
    if tls_total >= th.tls_errors:
        alerts.append(
            {
                "kind": "tls_errors",
                "subject": "TLS",
                "count": tls_total,
                "threshold": th.tls_errors,
                "detail": f"{tls_total} TLS errors",
            }
        )
    fatal = t.kinds[Kind.FATAL] + t.kinds[Kind.PANIC]
    if fatal >= th.fatal and fatal:
        alerts.append(
            {
                "kind": "fatal",
                "subject": "postfix",
                "count": fatal,
                "threshold": th.fatal,
                "detail": (t.fatal_samples or ["fatal/panic lines"])[0][:300],
            }
        )

    hourly = [
        {
            "hour": _iso(h),
            **{
                k: c.get(k, 0)
                for k in (
                    "rejects",
                    "sasl_failures",
                    "relay_denied",
                    "tls_errors",
                    "policy_failures",
                )
            },
        }
        for h, c in sorted(t.hourly.items())
        if h
    ]
    return {
        "schema_version": 1,
        "period": {"start": _iso(t.start), "end": _iso(t.end)},
        "inputs": inputs or [],
        "lines": {
            "total": t.lines_total,
            "postfix": t.lines_postfix,
            "unparsed": t.kinds[Kind.UNPARSED],
            "other": t.lines_other,
            "invalid": t.lines_invalid,
            "unparsed_samples": t.unparsed_samples,
        },
        "events": dict(sorted((str(k), v) for k, v in t.kinds.items())),
        "sasl_failures": {
            "total": sum(t.sasl_fail_client.values()),
            "aborted": t.kinds[Kind.SASL_ABORTED],
            "by_client": _top(t.sasl_fail_client, "client", n),
            "by_user": _top(t.sasl_fail_user, "user", n),
            "by_mechanism": _top(t.sasl_fail_mech, "mechanism", n),
            "disconnects_with_auth_failures": _top(t.auth_fail_disconnect, "client", n),
        },
        "relay_denied": {
            "total": sum(t.relay_client.values()),
            "by_client": _top(t.relay_client, "client", n),
        },
        "rejects": {
            "total": sum(t.reject_reason.values()),
            "by_reason": dict(sorted(t.reject_reason.items())),
            "by_stage": dict(sorted(t.reject_stage.items())),
            "by_rbl": _top(t.reject_rbl, "list", n),
            "by_client": _top(t.reject_client, "client", n),
            "other_actions": dict(sorted(t.other_actions.items())),
        },
        "tls_errors": {
            "total": tls_total,
            "by_client": _top(t.tls_error_client, "client", n),
            "established": dict(sorted(t.tls_protocols.items())),
        },
        "policy_failures": {
            "total": policy_total,
            "by_server": _top(t.policy_servers, "server", n),
        },
        "deliveries": {
            "sent": t.deliveries["sent"],
            "deferred": t.deliveries["deferred"],
            "bounced": t.deliveries["bounced"],
            "expired": t.deliveries["expired"],
            "deferred_by_domain": _top(t.deferred_domain, "domain", n),
            "bounced_by_domain": _top(t.bounced_domain, "domain", n),
        },
        "outbound": {
            "by_sender": [
                {
                    "sender": s,
                    "messages": c,
                    "bytes": t.sender_bytes[s],
                    "recipients": t.sender_rcpts[s],
                }
                for s, c in _largest(t.sender_messages, n)
            ]
        },
        "sasl_logins": {"total": sum(t.login_user.values()), "by_user": by_user},
        "connections": {
            "problems": dict(sorted(t.connection_problems.items())),
            "postscreen": dict(sorted(t.postscreen.items())),
            "dnsbl_listings": _top(t.dnsbl, "list", n),
        },
        "warnings": {
            "total": t.kinds[Kind.WARNING],
            "top": _top(t.warnings, "warning", n),
            "fatal": t.kinds[Kind.FATAL],
            "panic": t.kinds[Kind.PANIC],
            "fatal_samples": t.fatal_samples,
        },
        "hourly": hourly,
        "alerts": alerts,
    }
