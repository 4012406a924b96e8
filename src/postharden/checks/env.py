"""What a check sees: the facts, the role, and each smtpd service classified.

Also the helpers every check uses to cite evidence and to express a fix in the right place
(main.cf, or the `-o` of one master.cf service when that is where the value comes from).
"""

from __future__ import annotations

import ipaddress
from functools import cached_property
from typing import NamedTuple

from postharden.checks.facts import Facts
from postharden.checks.model import Evidence, Fix, MasterSetting, NotApplicable
from postharden.checks.roles import Role
from postharden.config import Context, PostfixConfig, Service, normalize_space, split_list

MX_PORTS = frozenset({"smtp", "25"})
SUBMISSION_PORTS = frozenset({"submission", "587"})
SMTPS_PORTS = frozenset({"smtps", "submissions", "465"})
LOOPBACK_WORDS = frozenset({"loopback-only", "localhost"})
# Parameters whose value is text, not a list: commas would change their meaning.
FREE_TEXT = frozenset(
    {"smtpd_banner", "smtpd_reject_footer", "smtpd_tls_cert_file", "smtpd_tls_key_file"}
)


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]")
    if host in LOOPBACK_WORDS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def interfaces_are_loopback(inet_interfaces: str) -> bool:
    words = inet_interfaces.replace(",", " ").split()
    return bool(words) and all(is_loopback_host(w) for w in words)


def yes(value: str) -> bool:
    return value.strip().lower() in ("yes", "true", "1")


class ServiceView(NamedTuple):
    """An smtpd service with what it is for and whether the world can reach it."""

    service: Service
    context: Context
    kind: str  # mx, submission, smtps, reinjection, local, other
    public: bool
    listen: str

    @property
    def key(self) -> str:
        return self.service.key


def _listen_text(service: Service) -> str:
    listen = service.listen
    if listen is None:
        return f"{service.type}:{service.name}"
    host, port = listen
    return f"*:{port}" if host is None else f"{host}:{port}"


class CheckEnv:
    def __init__(self, facts: Facts, role: Role) -> None:
        self.facts = facts
        self.role = role
        self.config: PostfixConfig = facts.config

    @property
    def main(self) -> Context:
        return self.config.main

    @cached_property
    def smtpd(self) -> tuple[ServiceView, ...]:
        """Every smtpd service, classified (postscreen's `smtpd pass` counts as port 25)."""
        return tuple(classify(self.config))

    def services(self, *kinds: str, public: bool | None = None) -> list[ServiceView]:
        return [
            v
            for v in self.smtpd
            if (not kinds or v.kind in kinds) and (public is None or v.public == public)
        ]

    def mx_services(self) -> list[ServiceView]:
        """The public port-25 smtpd services; NotApplicable when there is none."""
        views = self.services("mx", public=True)
        if not views:
            raise NotApplicable("no public port-25 smtpd service")
        return views

    def public_services(self) -> list[ServiceView]:
        """Every smtpd service listening beyond loopback; NotApplicable when none does."""
        views = self.services(public=True)
        if not views:
            raise NotApplicable("no smtpd service listens beyond loopback")
        return views

    # --- evidence ---------------------------------------------------------------------

    def evidence(self, context: Context, name: str, note: str | None = None) -> Evidence:
        parameter = context.parameter(name)
        if parameter is None:
            return Evidence(origin="default", text=f"{name} (not defined)", note=note)
        origin = str(parameter.origin)
        # Continuation lines folded to single spaces, as postconf shows them.
        value = normalize_space(parameter.value)
        text = (
            f"-o {name}={value}" if parameter.origin.source == "master.cf" else f"{name} = {value}"
        )
        effective = normalize_space(parameter.expanded)
        return Evidence(origin=origin, text=text, effective=effective, note=note)

    def location(self, context: Context, name: str) -> tuple[str, int | None]:
        origin = context.origin(name)
        if origin.source == "main.cf":
            return (str(self.config.main_cf), origin.line)
        if origin.source == "master.cf":
            return (str(self.config.master_cf), origin.line)
        if context.service is not None:
            return (str(self.config.master_cf), context.service.first_line)
        return (str(self.config.main_cf), None)

    # --- fixes ------------------------------------------------------------------------

    def set_fix(
        self,
        context: Context,
        settings: dict[str, str],
        summary: str,
        *,
        per_service: bool = False,
        caveat: str | None = None,
    ) -> Fix:
        """Set parameters where they take effect for this context.

        A value that comes from this service's `-o` must be changed there (`postconf -P`);
        `per_service` forces `-P` (a setting that must not reach the other services).
        """
        main_cf: list[tuple[str, str]] = []
        master_cf: list[MasterSetting] = []
        service = context.service
        for name, value in settings.items():
            if service is not None and (per_service or service.override(name) is not None):
                if any(ch.isspace() for ch in value):
                    # `postconf -P` refuses whitespace in a value (Postfix 3.7). Lists
                    # take commas instead; free text goes into a main.cf parameter that
                    # the -o references, as mail stacks do ($mua_client_restrictions).
                    if name in FREE_TEXT:
                        helper = f"{service.name.replace('.', '_').replace(':', '_')}_{name}"
                        main_cf.append((helper, value))
                        value = f"${helper}"
                    else:
                        value = ",".join(split_list(value))
                master_cf.append(MasterSetting(service.key, name, value))
            else:
                main_cf.append((name, value))
        return Fix(summary, main_cf=tuple(main_cf), master_cf=tuple(master_cf), caveat=caveat)


def classify(config: PostfixConfig) -> list[ServiceView]:
    views: list[ServiceView] = []
    main_interfaces = config.main.expanded("inet_interfaces")
    postscreen = [s for s in config.services if s.program == "postscreen" and s.type == "inet"]
    for service in config.smtpd_services():
        context = config.effective(service)
        overrides = service.overrides_dict()
        listen = service.listen
        public = False
        kind = "other"
        if service.type == "inet" and listen is not None:
            host, port = listen
            public = (
                not interfaces_are_loopback(main_interfaces)
                if host is None
                else not is_loopback_host(host)
            )
            reinjection = "content_filter" in overrides and not overrides["content_filter"]
            if port in MX_PORTS:
                kind = "mx"
            elif reinjection:
                kind = "reinjection"
            elif port in SUBMISSION_PORTS:
                kind = "submission"
            elif port in SMTPS_PORTS or yes(context.expanded("smtpd_tls_wrappermode")):
                kind = "smtps"
            elif not public:
                kind = "local"
        elif service.type == "pass" and postscreen:
            screen = postscreen[0]
            host, port = screen.listen or (None, screen.name)
            kind = "mx" if port in MX_PORTS else "other"
            public = (
                not interfaces_are_loopback(main_interfaces)
                if host is None
                else not is_loopback_host(host)
            )
        else:
            kind = "local"
        views.append(ServiceView(service, context, kind, public, _listen_text(service)))
    return views
