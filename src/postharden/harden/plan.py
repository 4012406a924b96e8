"""A hardening plan as data: the changes a profile asks for, each with why, where and what.

`make_plan()` reads the configuration directory once (bytes), applies each rule of the
profile to a working copy of main.cf and master.cf text with the minimal edits of
`edit.py`, and re-reads the model after every edit (line numbers move). The result is a
`Plan`: the `Change`s in order, the rules skipped with their reason, the old and new
bytes of both files, and the old and new effective value per service of every parameter
that changed. Nothing is written here; `apply.py` writes a plan.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from postharden.config import (
    Context,
    Defaults,
    PostfixConfig,
    Service,
    load_defaults,
    parse_main_cf,
    parse_master_cf,
    split_list,
)
from postharden.config.defaults import DYNAMIC_DEFAULTS
from postharden.config.errors import ConfigError
from postharden.harden import edit
from postharden.harden.errors import HardenError
from postharden.harden.profile import CONDITIONS, FLAGS, Profile, Rule, normalize_list
from postharden.harden.restrictions import (
    Insert,
    Item,
    Operation,
    Repair,
    closer_index,
    group_items,
    is_closed,
    items_of,
    repair_relay,
)
from postharden.harden.safety import Proof, prove

MAIN_CF = "main.cf"
MASTER_CF = "master.cf"
LOOPBACK_NETWORKS = ("127.0.0.0/8", "[::ffff:127.0.0.0]/104", "[::1]/128")
_REFERENCE = re.compile(r"^\$(?:\{([A-Za-z0-9_]+)\}|\(([A-Za-z0-9_]+)\)|([A-Za-z0-9_]+))$")
RELAY_LIST = "smtpd_relay_restrictions"
RECIPIENT_LIST = "smtpd_recipient_restrictions"


@dataclass(frozen=True, slots=True)
class EffectiveValue:
    """A parameter as one process sees it, before and after the plan."""

    parameter: str
    service: str  # "main.cf" or a master.cf service key (name/type)
    old: str
    new: str

    def as_dict(self) -> dict[str, str]:
        return {
            "parameter": self.parameter,
            "service": self.service,
            "old": self.old,
            "new": self.new,
        }


@dataclass(frozen=True, slots=True)
class Change:
    """One edit of main.cf or master.cf, with the rule and finding behind it."""

    rule: str
    finding: str
    file: str  # main.cf | master.cf
    parameter: str
    service: str | None  # master.cf service key for -o overrides and new services
    action: str  # set | add | repair | add-override | set-override | add-service
    old_value: str | None
    new_value: str
    line: int | None  # where in the file before this change (None: appended)
    why: str
    details: tuple[str, ...] = ()
    breaks: str | None = None
    flag: str | None = None

    @property
    def where(self) -> str:
        place = f"{self.file}:{self.line}" if self.line else f"{self.file} (new)"
        return f"{place} [{self.service}]" if self.service else place

    def as_dict(self) -> dict[str, object]:
        return {
            "rule": self.rule,
            "finding": self.finding,
            "file": self.file,
            "parameter": self.parameter,
            "service": self.service,
            "action": self.action,
            "old_value": self.old_value,
            "new_value": self.new_value,
            "line": self.line,
            "why": self.why,
            "details": list(self.details),
            "breaks": self.breaks,
            "flag": self.flag,
        }


@dataclass(frozen=True, slots=True)
class Skip:
    rule: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class PlanOptions:
    keep: frozenset[str] = frozenset()  # parameters the admin wants left alone
    enable: frozenset[str] = frozenset()  # flags for rules that could stop legitimate mail
    mynetworks: tuple[str, ...] = ()  # networks the admin names as trusted
    greylisting: str | None = None  # policy service address (already checked to answer)


@dataclass(frozen=True)
class Plan:
    config_dir: Path
    profile: Profile
    options: PlanOptions
    changes: tuple[Change, ...]
    skipped: tuple[Skip, ...]
    effective: tuple[EffectiveValue, ...]
    old_main: bytes
    new_main: bytes
    old_master: bytes | None
    new_master: bytes | None
    postfix_version: str
    safety: Proof | None = field(default=None)  # None when the plan is empty or not proven

    @property
    def empty(self) -> bool:
        return not self.changes

    def files(self) -> list[tuple[str, bytes | None, bytes | None]]:
        return [
            (MAIN_CF, self.old_main, self.new_main),
            (MASTER_CF, self.old_master, self.new_master),
        ]

    def changed_files(self) -> list[str]:
        return [name for name, old, new in self.files() if old != new]


def config_from_text(
    config_dir: Path, main_text: str, master_text: str | None, defaults: Defaults
) -> PostfixConfig:
    """The model of a configuration given as text (no file is read)."""
    try:
        definitions = parse_main_cf(main_text, str(config_dir / MAIN_CF), [])
        services = (
            parse_master_cf(master_text, str(config_dir / MASTER_CF), [])
            if master_text is not None
            else []
        )
    except ConfigError as error:
        raise HardenError(f"cannot plan on a file Postfix would not read: {error}") from None
    return PostfixConfig(config_dir, definitions, services, defaults, [], master_text is not None)


def read_files(config_dir: Path) -> tuple[bytes, bytes | None]:
    """main.cf and master.cf bytes (master.cf None when absent)."""
    try:
        main = (config_dir / MAIN_CF).read_bytes()
    except FileNotFoundError:
        raise HardenError("no main.cf here", location=str(config_dir)) from None
    except OSError as error:
        raise HardenError(
            f"cannot read main.cf: {error.strerror}", location=str(config_dir)
        ) from None
    try:
        master: bytes | None = (config_dir / MASTER_CF).read_bytes()
    except FileNotFoundError:
        master = None
    except OSError as error:
        raise HardenError(
            f"cannot read master.cf: {error.strerror}", location=str(config_dir)
        ) from None
    return main, master


def _reference(raw: str) -> str | None:
    """The parameter name when a value is exactly one `$name` reference."""
    match = _REFERENCE.match(raw.strip())
    if match is None:
        return None
    return next(group for group in match.groups() if group)


class _Planner:
    def __init__(
        self,
        config_dir: Path,
        main_text: str,
        master_text: str | None,
        defaults: Defaults,
        profile: Profile,
        options: PlanOptions,
    ) -> None:
        self.config_dir = config_dir
        self.main_text = main_text
        self.master_text = master_text
        self.defaults = defaults
        self.profile = profile
        self.options = options
        self.changes: list[Change] = []
        self.skipped: list[Skip] = []
        self.config = config_from_text(config_dir, main_text, master_text, defaults)

    # -- bookkeeping ---------------------------------------------------------------------

    def _reload(self) -> None:
        self.config = config_from_text(
            self.config_dir, self.main_text, self.master_text, self.defaults
        )

    def _record(self, rule: Rule, **fields: object) -> None:
        change = Change(
            rule=rule.id,
            finding=rule.finding,
            why=rule.why,
            breaks=rule.breaks,
            flag=rule.flag,
            **fields,  # type: ignore[arg-type]
        )
        self.changes.append(change)
        self._reload()

    def skip(self, rule: Rule, reason: str) -> None:
        self.skipped.append(Skip(rule.id, reason))

    def smtpd_services(self) -> list[Service]:
        return [s for s in self.config.services if s.is_smtpd]

    # -- main.cf and master.cf primitives ------------------------------------------------

    def set_main(self, rule: Rule, name: str, value: str, details: Sequence[str] = ()) -> None:
        definition = self.config.definition(name)
        old = definition.value if definition else None
        if old is not None and old == value:
            return
        self.main_text = edit.set_main(self.main_text, definition, name, value)
        self._record(
            rule,
            file=MAIN_CF,
            parameter=name,
            service=None,
            action="set" if definition else "add",
            old_value=old if old is not None else self.config.main.raw(name),
            new_value=value,
            line=definition.first_line if definition else None,
            details=tuple(details),
        )

    def set_override(
        self, rule: Rule, service: Service, name: str, value: str, details: Sequence[str] = ()
    ) -> None:
        assert self.master_text is not None
        override = service.override(name)
        if override is not None:
            if override.value == value:
                return
            self.master_text = edit.set_override(self.master_text, service, override, value)
            self._record(
                rule,
                file=MASTER_CF,
                parameter=name,
                service=service.key,
                action="set-override",
                old_value=override.value,
                new_value=value,
                line=override.line,
                details=tuple(details),
            )
        else:
            old = self.config.effective(service).raw(name)
            self.master_text = edit.add_override(self.master_text, service, name, value)
            self._record(
                rule,
                file=MASTER_CF,
                parameter=name,
                service=service.key,
                action="add-override",
                old_value=old,
                new_value=value,
                line=None,
                details=tuple(details),
            )

    def remove_override(
        self, rule: Rule, service: Service, name: str, details: Sequence[str] = ()
    ) -> None:
        assert self.master_text is not None
        override = service.override(name)
        if override is None:
            return
        self.master_text = edit.remove_override(self.master_text, service, override)
        self._record(
            rule,
            file=MASTER_CF,
            parameter=name,
            service=service.key,
            action="remove-override",
            old_value=override.value,
            new_value=self.config.main.raw(name) or "",
            line=override.line,
            details=tuple(details),
        )

    def edit_list(
        self,
        rule: Rule,
        service: Service | None,
        name: str,
        repair: Repair,
        expanded_items: list[Item],
    ) -> None:
        """Apply list operations where the list is written: -o, main.cf, or a new entry."""
        if not repair.operations:
            return
        context = self.config.effective(service)
        override = service.override(name) if service is not None else None
        if override is not None:
            reference = _reference(override.value)
            if reference is None and "$" in override.value:
                new_items = repair.apply(expanded_items)
                self.set_override(
                    rule,
                    service,  # type: ignore[arg-type]
                    name,
                    ",".join(i.text(",") for i in new_items),
                    (*repair.reasons, f"the $-references in -o {name} were expanded"),
                )
                return
            if reference is None:
                assert self.master_text is not None
                span = edit.override_span(self.master_text, service, override)  # type: ignore[arg-type]
                region = edit.override_region(self.master_text, span)
                self._edit_region(
                    rule,
                    MASTER_CF,
                    service,
                    name,
                    region,
                    override.value,
                    override.line,
                    repair,
                    expanded_items,
                )
                return
            name = reference
        elif service is not None:
            # The service inherits the list from main.cf: fix it for this service only.
            new_items = repair.apply(expanded_items)
            self.set_override(
                rule, service, name, ",".join(i.text(",") for i in new_items), repair.reasons
            )
            return
        # main.cf (possibly through a reference chain)
        seen: set[str] = set()
        while True:
            definition = self.config.definition(name)
            if definition is None:
                new_items = repair.apply(expanded_items)
                self.set_main(rule, name, ", ".join(i.text() for i in new_items), repair.reasons)
                return
            reference = _reference(definition.value)
            if reference is None or reference in seen:
                break
            seen.add(name)
            name = reference
        if "$" in definition.value:
            # Mixed references: write the expanded list (the references are lost, said so).
            new_items = repair.apply(expanded_items)
            self.set_main(
                rule,
                name,
                ", ".join(i.text() for i in new_items),
                (*repair.reasons, f"the $-references in {name} were expanded"),
            )
            return
        region = edit.main_region(self.main_text, definition)
        self._edit_region(
            rule,
            MAIN_CF,
            None,
            name,
            region,
            definition.value,
            definition.first_line,
            repair,
            expanded_items,
        )
        del context

    def _edit_region(
        self,
        rule: Rule,
        file: str,
        service: Service | None,
        name: str,
        region: edit.Region,
        old_value: str,
        line: int,
        repair: Repair,
        expanded_items: list[Item],
    ) -> None:
        text = self.master_text if file == MASTER_CF else self.main_text
        assert text is not None
        tokens = region.token_texts(text)
        written = items_of(tokens)
        if [i.words for i in written] != [i.words for i in expanded_items]:
            # The written value differs from what Postfix sees (expansion): re-derive the
            # operations on the written items, which hold the same restrictions.
            raise HardenError(f"{name}: cannot map the repair onto the written value {old_value!r}")
        new_text = edit.rewrite_list(text, region, group_items(tokens), repair.operations)
        if file == MASTER_CF:
            self.master_text = new_text
        else:
            self.main_text = new_text
        new_config = config_from_text(
            self.config_dir, self.main_text, self.master_text, self.defaults
        )
        if service is not None:
            found = new_config.service(service.key).override(name)
            new_value = found.value if found else ""
        else:
            found_definition = new_config.definition(name)
            new_value = found_definition.value if found_definition else ""
        self._record(
            rule,
            file=file,
            parameter=name,
            service=service.key if service else None,
            action="repair",
            old_value=old_value,
            new_value=new_value,
            line=line,
            details=repair.reasons,
        )

    # -- conditions ----------------------------------------------------------------------

    def condition(self, name: str) -> str | None:
        """None when the condition holds, else why not."""
        main = self.config.main
        if name == "tls-certificate":
            for parameter in (
                "smtpd_tls_chain_files",
                "smtpd_tls_cert_file",
                "smtpd_tls_eccert_file",
            ):
                value = main.expanded(parameter).strip()
                if value and value != "none":
                    missing = [
                        path
                        for path in split_list(value)
                        if path.startswith("/") and not os.path.exists(path)
                    ]
                    if missing:
                        return f"{parameter} names {missing[0]}, which does not exist"
                    return None
            return "no server certificate is configured (smtpd_tls_cert_file)"
        if name == "sasl-backend":
            contexts: list[Context] = [
                main,
                *(self.config.effective(s) for s in self.smtpd_services()),
            ]
            for context in contexts:
                if context.is_set("smtpd_sasl_type") or context.is_set("smtpd_sasl_path"):
                    return None
                if context.expanded("smtpd_sasl_auth_enable") == "yes":
                    return None
            return "no SASL backend is configured (smtpd_sasl_type / smtpd_sasl_path)"
        return f"unknown condition {name}"

    def applicable(self, rule: Rule) -> bool:
        if rule.flag is not None and rule.flag not in self.options.enable:
            self.skip(
                rule, f"could stop legitimate mail ({rule.breaks}); only with --enable {rule.flag}"
            )
            return False
        for condition in rule.requires:
            reason = self.condition(condition)
            if reason is not None:
                self.skip(rule, f"needs {CONDITIONS[condition]}: {reason}")
                return False
        for parameter in self.rule_parameters(rule):
            if parameter in self.options.keep:
                self.skip(rule, f"{parameter} is kept as it is (--keep)")
                return False
            if parameter not in self.defaults.values and parameter not in DYNAMIC_DEFAULTS:
                self.skip(rule, f"{parameter} is not known to Postfix {self.defaults.version}")
                return False
        return True

    @staticmethod
    def rule_parameters(rule: Rule) -> list[str]:
        if rule.kind == "relay":
            return [RELAY_LIST]
        if rule.kind == "mynetworks":
            return ["mynetworks"]
        if rule.kind == "service":
            return []
        return [rule.parameter] if rule.parameter else []

    # -- rules ---------------------------------------------------------------------------

    def run(self, rule: Rule) -> None:
        if not self.applicable(rule):
            return
        handler = {
            "relay": self.rule_relay,
            "mynetworks": self.rule_mynetworks,
            "set": self.rule_set,
            "list-add": self.rule_list_add,
            "service": self.rule_service,
        }[rule.kind]
        handler(rule)

    def relay_list_name(self, context: Context) -> str:
        """The list that holds relay control for this process."""
        return RELAY_LIST if split_list(context.expanded(RELAY_LIST)) else RECIPIENT_LIST

    def rule_relay(self, rule: Rule) -> None:
        for service in [None, *self.smtpd_services()]:
            if service is not None:
                service = self.config.service(service.key)
            context = self.config.effective(service)
            name = self.relay_list_name(context)
            if name in self.options.keep:
                self.skip(rule, f"{name} is kept as it is (--keep)")
                continue
            items = items_of(context.list_value(name))
            repair = repair_relay(items, insert=True)
            operations = list(repair.operations)
            reasons = list(repair.reasons)
            inserted = [op for op in operations if isinstance(op, Insert)]
            if inserted:
                # A list without reject_unauth_destination: keep mynetworks and SASL clients
                # relaying, as they did while the list let everyone relay.
                position = inserted[0].position
                before = {item.name for item in items[:position]}
                extra: list[Operation] = []
                for permit in ("permit_mynetworks", "permit_sasl_authenticated"):
                    if permit not in before:
                        extra.append(Insert(position + len(extra), Item((permit,))))
                if extra:
                    operations = [*extra, Insert(position + len(extra), inserted[0].item)]
                    reasons.append(
                        "kept "
                        + " and ".join(i.item.name for i in extra if isinstance(i, Insert))
                        + " ahead of it"
                    )
            if not operations:
                continue
            self.edit_list(rule, service, name, Repair(tuple(operations), tuple(reasons)), items)

    def rule_mynetworks(self, rule: Rule) -> None:
        named = list(self.options.mynetworks)
        main = self.config.main
        definition = self.config.definition("mynetworks")
        if definition is None:
            style = main.expanded("mynetworks_style")
            if style != "host" or named:
                self.set_main(
                    rule,
                    "mynetworks",
                    " ".join([*LOOPBACK_NETWORKS, *named]),
                    [
                        f"mynetworks was derived from mynetworks_style = {style}: "
                        f"{main.expanded('mynetworks')}"
                    ],
                )
        else:
            self._narrow_main(rule, definition.value, named)
        for service in self.smtpd_services():
            service = self.config.service(service.key)
            override = service.override("mynetworks")
            if override is None or _reference(override.value):
                continue
            kept, dropped = narrow_networks(split_list(override.value), rule)
            if dropped and not kept:
                self.remove_override(
                    rule,
                    service,
                    override.name,
                    [
                        f"-o mynetworks={override.value} trusted strangers on this service; "
                        "without it the service trusts main.cf's mynetworks"
                    ],
                )
            elif dropped:
                self.set_override(
                    rule,
                    service,
                    "mynetworks",
                    ",".join(kept) or "127.0.0.0/8",
                    [f"dropped {d}" for d in dropped],
                )

    def _narrow_main(self, rule: Rule, raw: str, named: list[str]) -> None:
        tokens = split_list(raw)
        kept, dropped = narrow_networks(tokens, rule)
        present = {normalize_network(t) for t in kept}
        added = [n for n in named if normalize_network(n) not in present]
        for loopback in ("127.0.0.0/8", "[::1]/128"):
            # The dropped network trusted this machine itself: keep that trust.
            network = _network(loopback)
            assert network is not None
            covered_before = any(_covers(d, network) for d in dropped)
            covered_now = any(_covers(k, network) for k in [*kept, *added])
            if covered_before and not covered_now:
                added.append(loopback)
        if not dropped and not added:
            return
        if not kept and not added:
            kept = list(LOOPBACK_NETWORKS)
        details = [
            f"{d} is wider than /{rule.min_prefix_v4} (IPv4) or /{rule.min_prefix_v6} (IPv6): it trusts strangers"
            for d in dropped
        ]
        details += [f"{n} named by the admin (--mynetworks)" for n in added]
        self.set_main(rule, "mynetworks", " ".join([*kept, *added]), details)

    def rule_set(self, rule: Rule) -> None:
        assert rule.parameter is not None and rule.value is not None
        name = rule.parameter
        main = self.config.main
        definition = self.config.definition(name)
        if not (rule.only_if_unset and definition is not None):
            raw = main.raw(name) or ""
            if not (rule.accepts(raw) or rule.accepts(main.expanded(name))):
                self.set_main(rule, name, rule.value)
        if rule.scope != "smtpd" or rule.only_if_unset:
            return
        for service in self.smtpd_services():
            service = self.config.service(service.key)
            override = service.override(name)
            if override is None:
                continue
            context = self.config.effective(service)
            if rule.accepts(override.value) or rule.accepts(context.expanded(name)):
                continue
            self.set_override(rule, service, name, rule.value)

    def rule_list_add(self, rule: Rule) -> None:
        assert rule.parameter is not None and rule.item is not None
        item = Item(tuple(split_list(rule.item)))
        for service in [None, *self.smtpd_services()]:
            if service is not None:
                service = self.config.service(service.key)
                if service.override(rule.parameter) is None:
                    continue
            context = self.config.effective(service)
            items = items_of(context.list_value(rule.parameter))
            if any(existing.words == item.words for existing in items):
                continue
            position = len(items)
            if rule.position == "after-relay-closer":
                closer = closer_index(items, reject_only=False)
                if closer is None:
                    if not is_closed(items):
                        continue  # a list that does not hold relay control: leave it
                else:
                    position = closer + 1
            repair = Repair((Insert(position, item),), (f"added {item.text()}",))
            self.edit_list(rule, service, rule.parameter, repair, items)

    def rule_service(self, rule: Rule) -> None:
        assert rule.service is not None
        if self.master_text is None:
            self.skip(rule, "no master.cf")
            return
        existing = [
            s
            for s in self.config.services
            if s.name == rule.service and s.type == rule.service_type
        ]
        if not existing:
            chroot = next((s.chroot for s in self.config.services if s.key == "smtp/inet"), "n")
            options = [*rule.new_service_options, *rule.options]
            lines = [f"{rule.service} {rule.service_type} n - {chroot} - - {rule.command}"]
            lines += [f"  {edit.format_override(n, v)}" for n, v in options]
            row = "\n".join(lines)
            self.master_text = edit.append_service(self.master_text, row)
            self._record(
                rule,
                file=MASTER_CF,
                parameter="(service)",
                service=f"{rule.service}/{rule.service_type}",
                action="add-service",
                old_value=None,
                new_value=row,
                line=None,
                details=(),
            )
            return
        for name, value in rule.options:
            service = self.config.service(existing[0].key)
            if normalize_list(self.config.effective(service).expanded(name)) == normalize_list(
                value
            ):
                continue
            self.set_override(rule, service, name, value)

    def greylisting(self, address: str) -> None:
        rule = Rule(
            id="greylisting",
            kind="list-add",
            finding="PH-ACC-009",
            why=f"greylisting through the policy service {address} (checked: it answers)",
            parameter=RELAY_LIST,
            item=f"check_policy_service {address}",
            position="after-relay-closer",
        )
        for service in [None, *self.smtpd_services()]:
            if service is not None:
                service = self.config.service(service.key)
            context = self.config.effective(service)
            name = self.relay_list_name(context)
            if service is not None and service.override(name) is None:
                continue
            items = items_of(context.list_value(name))
            if any(i.name == "check_policy_service" and i.words[1:] == (address,) for i in items):
                continue
            closer = closer_index(items, reject_only=False)
            if closer is None:
                continue
            repair = Repair(
                (Insert(closer + 1, Item(("check_policy_service", address))),),
                (
                    "after reject_unauth_destination: relay attempts never reach the policy service, "
                    "and after permit_mynetworks/permit_sasl_authenticated: own users are not greylisted",
                ),
            )
            self.edit_list(rule, service, name, repair, items)


def normalize_network(token: str) -> str:
    return token.strip().lower()


def _network(token: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    text = token.strip()
    if text.startswith("!"):
        return None
    if text.startswith("["):
        address, _, rest = text[1:].partition("]")
        text = address + rest
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _covers(token: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    mine = _network(token)
    return (
        mine is not None and mine.version == network.version and network.subnet_of(mine)  # type: ignore[arg-type]
    )


def narrow_networks(tokens: Iterable[str], rule: Rule) -> tuple[list[str], list[str]]:
    """(kept, dropped): drop literal networks wider than the rule's minimum prefixes.

    Tables, files, `$references` and `!exclusions` stay (the admin's own lists).
    """
    kept: list[str] = []
    dropped: list[str] = []
    for token in tokens:
        network = _network(token)
        if network is None:
            kept.append(token)
            continue
        minimum = rule.min_prefix_v4 if network.version == 4 else rule.min_prefix_v6
        if network.prefixlen < minimum:
            dropped.append(token)
        else:
            kept.append(token)
    return kept, dropped


def _effective(
    before: PostfixConfig, after: PostfixConfig, names: Iterable[str]
) -> list[EffectiveValue]:
    values: list[EffectiveValue] = []
    for name in sorted(set(names)):
        old_main, new_main = before.main.expanded(name), after.main.expanded(name)
        if old_main != new_main:
            values.append(EffectiveValue(name, MAIN_CF, old_main, new_main))
        for service in after.services:
            if not service.is_smtpd:
                continue
            new = after.effective(service).expanded(name)
            try:
                old_service = before.service(service.key)
                old = before.effective(old_service).expanded(name)
            except ConfigError:
                old = "(no such service)"
            if old != new and not (old == old_main and new == new_main):
                values.append(EffectiveValue(name, service.key, old, new))
    return values


def plan_from_text(
    config_dir: Path,
    old_main: bytes,
    old_master: bytes | None,
    profile: Profile,
    options: PlanOptions,
    defaults: Defaults,
    *,
    proof: bool = True,
) -> Plan:
    """The plan for these file contents (pure: no file is read or written)."""
    main_text = edit.decode(old_main)
    master_text = edit.decode(old_master) if old_master is not None else None
    planner = _Planner(config_dir, main_text, master_text, defaults, profile, options)
    before = planner.config
    for rule in profile.rules:
        planner.run(rule)
    if options.greylisting:
        planner.greylisting(options.greylisting)
    unknown = options.enable - set(FLAGS)
    if unknown:
        raise HardenError(
            f"unknown --enable flag(s): {', '.join(sorted(unknown))} (known: {', '.join(FLAGS)})"
        )
    names = {c.parameter for c in planner.changes if not c.parameter.startswith("(")}
    names |= {
        n for c in planner.changes if c.action == "add-service" for n, _ in _service_options(c)
    }
    return Plan(
        config_dir=config_dir,
        profile=profile,
        options=options,
        changes=tuple(planner.changes),
        skipped=tuple(planner.skipped),
        effective=tuple(_effective(before, planner.config, names)),
        old_main=old_main,
        new_main=edit.encode(planner.main_text),
        old_master=old_master,
        new_master=edit.encode(planner.master_text) if planner.master_text is not None else None,
        postfix_version=defaults.version,
        safety=prove(before, planner.config) if proof and planner.changes else None,
    )


def _service_options(change: Change) -> list[tuple[str, str]]:
    found = []
    for line in change.new_value.splitlines()[1:]:
        text = line.strip().removeprefix("-o").strip().strip("{}").strip()
        name, _, value = text.partition("=")
        found.append((name.strip(), value.strip()))
    return found


def make_plan(
    config_dir: Path,
    profile: Profile,
    options: PlanOptions | None = None,
    defaults: Defaults | str = "auto",
    *,
    proof: bool = True,
) -> Plan:
    """Read the directory and plan (see plan_from_text)."""
    table = defaults if isinstance(defaults, Defaults) else load_defaults(defaults)
    if not config_dir.is_dir():
        raise HardenError("no such directory", location=str(config_dir))
    old_main, old_master = read_files(config_dir)
    return plan_from_text(
        config_dir, old_main, old_master, profile, options or PlanOptions(), table, proof=proof
    )
