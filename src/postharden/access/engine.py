"""The decision engine: what smtpd answers one client, in Postfix's own order.

Facts this follows (Postfix 3.7 src/smtpd/smtpd_check.c and smtpd.c, checked against the
real binary by tests/access):

- Each restriction list is evaluated in order; the first restriction that permits, rejects
  or defers ends that list; DUNNO goes on. Lists are independent: a permit in
  smtpd_client_restrictions does not skip smtpd_sender_restrictions.
- smtpd_delay_reject = yes (default): client, helo and sender lists run at RCPT, before the
  relay and recipient lists. With `no` the client list runs at connect (a refusal becomes
  the greeting; later commands get 503), helo at HELO/EHLO, sender at MAIL.
- The helo list is skipped entirely when the client sent no HELO/EHLO; the sender list is
  skipped before MAIL FROM.
- At RCPT: smtpd_relay_restrictions then smtpd_recipient_restrictions when
  smtpd_relay_before_recipient_restrictions = yes, else the other way round; a reject in
  the first ends RCPT, a permit does not skip the second.
- `warn_if_reject` turns the next restriction's reject into a log line; `defer_if_permit`
  turns a final permit into 450; `defer_if_reject` turns a later 5xx into 450.
- After the lists, smtpd_reject_unlisted_recipient (default yes) rejects unknown
  recipients of local (local_recipient_maps), virtual mailbox and relay domains.
- smtpd refuses to start when neither relay list holds a working reject_unauth_destination,
  defer_unauth_destination, reject, defer, defer_if_permit or check_relay_domains (a
  `permit` ends the search, `warn_if_reject X` does not count X).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from postharden.access.errors import AccessError
from postharden.access.lists import MatchList, parse_match_list
from postharden.access.model import ClientContext, Decision, Outside, StepResult, TraceStep
from postharden.access.tables import Hit, Table, TableCache
from postharden.config import ConfigError, Context, PostfixConfig, Service, split_list

DUNNO, OK, REJECT = 0, 1, 2

CLIENT, HELO, SENDER, RECIPIENT, ETRN, DATA, EOD = (
    "Client host",
    "Helo command",
    "Sender address",
    "Recipient address",
    "Etrn command",
    "Data command",
    "End-of-data",
)
_NO_DEF_ACL = ""
_DEF_ACL = {
    CLIENT: "check_client_access",
    HELO: "check_helo_access",
    SENDER: "check_sender_access",
    RECIPIENT: "check_recipient_access",
    ETRN: "check_etrn_access",
    DATA: _NO_DEF_ACL,
    EOD: _NO_DEF_ACL,
}
RELAY_REQUIRED = (
    "reject_unauth_destination",
    "defer_unauth_destination",
    "reject",
    "defer",
    "defer_if_permit",
    "check_relay_domains",
)
# Old names that smtpd still accepts, and what they are now.
ALIASES = {
    "reject_unknown_client": "reject_unknown_client_hostname",
    "reject_invalid_hostname": "reject_invalid_helo_hostname",
    "reject_unknown_hostname": "reject_unknown_helo_hostname",
    "reject_non_fqdn_hostname": "reject_non_fqdn_helo_hostname",
    "reject_rbl": "reject_rbl_client",
    "check_recipient_maps": "reject_unlisted_recipient",
    "reject_unknown_address": "reject_unknown_sender_domain",
}
# Restrictions followed by one argument (a table, a DNS domain, a server, a number).
_TAKES_ARGUMENT = frozenset(
    {
        "check_client_access",
        "check_reverse_client_access",
        "check_helo_access",
        "check_sender_access",
        "check_recipient_access",
        "check_etrn_access",
        "check_ccert_access",
        "check_sasl_access",
        "check_client_ns_access",
        "check_client_mx_access",
        "check_client_a_access",
        "check_reverse_client_ns_access",
        "check_reverse_client_mx_access",
        "check_reverse_client_a_access",
        "check_helo_ns_access",
        "check_helo_mx_access",
        "check_helo_a_access",
        "check_sender_ns_access",
        "check_sender_mx_access",
        "check_sender_a_access",
        "check_recipient_ns_access",
        "check_recipient_mx_access",
        "check_recipient_a_access",
        "check_policy_service",
        "reject_rbl_client",
        "permit_dnswl_client",
        "reject_rhsbl_client",
        "permit_rhswl_client",
        "reject_rhsbl_reverse_client",
        "reject_rhsbl_helo",
        "reject_rhsbl_sender",
        "reject_rhsbl_recipient",
        "sleep",
    }
)


class _ServerError(Exception):
    """longjmp out of a restriction list with a 4xx configuration/lookup error."""


class _Fork(Exception):
    """Too many outside questions in one decision."""


class _Defer:
    """A pending defer_if_permit / defer_if_reject (mutable while a session runs)."""

    __slots__ = ("active", "code", "dsn", "error_class", "text")

    def __init__(self) -> None:
        self.active = False
        self.code = 0
        self.dsn = ""
        self.text = ""
        self.error_class = "policy"


class RestrictionList(NamedTuple):
    parameter: str
    words: tuple[str, ...]
    origin: str


class _Resolved(NamedTuple):
    address: str  # rewritten, case-folded user@domain
    domain: str
    local: str
    klass: str  # local | alias | virtual | relay | default
    routed: bool


def _yes(value: str) -> bool:
    return value.strip().lower() in ("yes", "true", "1")


def _int(context: Context, name: str, fallback: int) -> int:
    try:
        return int(context.expanded(name).strip())
    except ValueError:
        return fallback


class ServicePolicy:
    """One smtpd service compiled: lists, tables, domain classes, codes."""

    def __init__(self, config: PostfixConfig, service: Service | None, tables: TableCache) -> None:
        self.config = config
        self.service = service
        self.key = service.key if service else "main.cf"
        self.name = service.name if service else "main.cf"
        context = config.effective(service)
        self.context = context
        self.tables = tables
        self.warnings: list[str] = []
        self._resolved: dict[str, _Resolved] = {}
        self.addr_find_cache: dict[tuple[int, str], Hit | None] = {}
        try:
            self._compile(context)
        except ConfigError as error:
            self.startup_problem: tuple[str, str] | None = (str(error), error.location or "")
            return

    def _compile(self, context: Context) -> None:
        self.startup_problem = None
        e = context.expanded
        self.lists = {
            stage: self._list(context, parameter)
            for stage, parameter in (
                ("client", "smtpd_client_restrictions"),
                ("helo", "smtpd_helo_restrictions"),
                ("sender", "smtpd_sender_restrictions"),
                ("relay", "smtpd_relay_restrictions"),
                ("recipient", "smtpd_recipient_restrictions"),
                ("etrn", "smtpd_etrn_restrictions"),
                ("data", "smtpd_data_restrictions"),
                ("end-of-data", "smtpd_end_of_data_restrictions"),
            )
        }
        self.classes: dict[str, RestrictionList] = {}
        for name in split_list(e("smtpd_restriction_classes")):
            value = context.expanded(name) if context.raw(name) is not None else ""
            if not value.strip():
                self.startup_problem = (
                    f"restriction class `{name}' needs a definition",
                    str(context.origin("smtpd_restriction_classes")),
                )
                return
            self.classes[name] = self._list(context, name)
        self.classes.setdefault(
            "reject_sender_login_mismatch",
            RestrictionList(
                "reject_sender_login_mismatch",
                (
                    "reject_authenticated_sender_login_mismatch",
                    "reject_unauthenticated_sender_login_mismatch",
                ),
                "built-in",
            ),
        )
        compat = e("compatibility_level").strip()
        relay_default_empty = not context.is_set("smtpd_relay_restrictions") and _level_below(
            compat, 1
        )
        self.compat_fake_relay = relay_default_empty
        self.delay_reject = _yes(e("smtpd_delay_reject"))
        self.helo_required = _yes(e("smtpd_helo_required"))
        self.relay_first = _yes(e("smtpd_relay_before_recipient_restrictions")) and not (
            relay_default_empty
        )
        self.reject_unlisted_recipient = _yes(e("smtpd_reject_unlisted_recipient"))
        self.reject_unlisted_sender = _yes(e("smtpd_reject_unlisted_sender"))
        self.soft_bounce = _yes(e("soft_bounce"))
        self.sasl_enabled = _yes(e("smtpd_sasl_auth_enable"))
        self._compile_tls(context)
        self.disable_vrfy = _yes(e("disable_vrfy_command"))
        self.fast_flush_domains = parse_match_list(
            "fast_flush_domains",
            e("fast_flush_domains"),
            self.tables,
            "fast_flush_domains"
            in {x.lower() for x in split_list(e("parent_domain_matches_subdomains"))},
        )
        flush_name = e("flush_service_name").strip() or "flush"
        self.flush_running = (
            any(s.name == flush_name and s.type == "unix" for s in context.config.services)
            or not context.config.master_cf_present
        )
        self.allow_untrusted_routing = _yes(e("allow_untrusted_routing"))
        self.show_table = _yes(e("show_user_unknown_table_name"))
        self.null_key = e("smtpd_null_access_lookup_key").strip() or "<>"
        self.recipient_delimiter = e("recipient_delimiter")
        self.double_bounce = e("double_bounce_sender").strip().lower() or "double-bounce"
        codes = {}
        for name, fallback in (
            ("reject_code", 554),
            ("defer_code", 450),
            ("relay_domains_reject_code", 554),
            ("access_map_reject_code", 554),
            ("access_map_defer_code", 450),
            ("invalid_hostname_reject_code", 501),
            ("non_fqdn_reject_code", 504),
            ("unknown_client_reject_code", 450),
            ("unknown_address_reject_code", 450),
            ("unknown_hostname_reject_code", 450),
            ("plaintext_reject_code", 450),
            ("maps_rbl_reject_code", 554),
            ("unknown_local_recipient_reject_code", 550),
            ("unknown_virtual_mailbox_reject_code", 550),
            ("unknown_virtual_alias_reject_code", 550),
            ("unknown_relay_recipient_reject_code", 550),
            ("unverified_recipient_reject_code", 450),
            ("unverified_sender_reject_code", 450),
            ("multi_recipient_bounce_reject_code", 550),
        ):
            codes[name] = _int(context, name, fallback)
        self.codes = codes
        parents = {x.lower() for x in split_list(e("parent_domain_matches_subdomains"))}
        self.parent_access = "smtpd_access_maps" in parents

        def match_list(name: str, where: Context = context) -> MatchList:
            result = parse_match_list(name, where.expanded(name), self.tables, name in parents)
            self.warnings.extend(result.errors)
            return result

        self.mynetworks = match_list("mynetworks")
        self.smtpd_mydestination = match_list("mydestination")
        self.smtpd_inet_addresses = _interface_addresses(
            e("inet_interfaces"), e("proxy_interfaces")
        )
        self.myorigin = e("myorigin").strip().lower()
        # Address classes come from trivial-rewrite (the `rewrite` service), with its own
        # parameters: an smtpd `-o relay_domains=...` does not change what is relayed.
        rewrite_name = e("rewrite_service_name").strip() or "rewrite"
        rewrite_service = next(
            (s for s in context.config.services if s.name == rewrite_name and s.type == "unix"),
            None,
        )
        rewrite = context.config.effective(rewrite_service)
        r = rewrite.expanded
        self.rewrite_origin = (
            f"master.cf:{rewrite_service.first_line}" if rewrite_service else "main.cf"
        )
        self.append_dot_mydomain = _yes(r("append_dot_mydomain"))
        self.append_at_myorigin = _yes(r("append_at_myorigin"))
        self.resolve_myorigin = r("myorigin").strip().lower()
        self.mydomain = r("mydomain").strip().lower()
        self.mydestination = match_list("mydestination", rewrite)
        self.relay_domains = match_list("relay_domains", rewrite)
        self.smtpd_relay_domains = match_list("relay_domains")
        self.virtual_alias_domains = match_list("virtual_alias_domains", rewrite)
        self.virtual_mailbox_domains = match_list("virtual_mailbox_domains", rewrite)
        self.inet_addresses = _interface_addresses(r("inet_interfaces"), r("proxy_interfaces"))
        self.maps = {
            name: [self.tables.get(spec) for spec in split_list(e(name)) if ":" in spec]
            for name in (
                "local_recipient_maps",
                "virtual_mailbox_maps",
                "relay_recipient_maps",
                "virtual_alias_maps",
                "canonical_maps",
                "recipient_canonical_maps",
                "sender_canonical_maps",
                "smtpd_sender_login_maps",
            )
        }
        self.sender_login_maps_set = bool(e("smtpd_sender_login_maps").strip())
        problem = self._relay_requirement()
        if problem is not None:
            self.startup_problem = problem

    def _compile_tls(self, context: Context) -> None:
        """What smtpd offers: STARTTLS (smtpd_tls_security_level and a certificate), TLS
        required for MAIL/VRFY/ETRN/DATA (encrypt), AUTH only after STARTTLS, port-465
        wrapper mode (the whole session is TLS)."""
        e = context.expanded
        level = e("smtpd_tls_security_level").strip().lower()
        if not level:
            # The obsolete switches, as smtpd reads them when the level is not set.
            if _yes(e("smtpd_enforce_tls")):
                level = "encrypt"
            elif _yes(e("smtpd_use_tls")):
                level = "may"
            else:
                level = "none"
        self.tls_level = level
        self.tls_level_origin = str(context.origin("smtpd_tls_security_level"))
        self.tls_has_cert = any(
            e(name).strip()
            for name in (
                "smtpd_tls_cert_file",
                "smtpd_tls_eccert_file",
                "smtpd_tls_dcert_file",
                "smtpd_tls_chain_files",
            )
        )
        self.tls_wrapper = _yes(e("smtpd_tls_wrappermode"))
        self.tls_offered = level in ("may", "encrypt") and self.tls_has_cert
        self.tls_required = level == "encrypt" and not self.tls_wrapper
        self.tls_auth_only = _yes(e("smtpd_tls_auth_only"))
        self.tls_auth_only_origin = str(context.origin("smtpd_tls_auth_only"))
        self.tls_ask_ccert = _yes(e("smtpd_tls_ask_ccert")) or _yes(e("smtpd_tls_req_ccert"))

    def _list(self, context: Context, parameter: str) -> RestrictionList:
        return RestrictionList(
            parameter,
            tuple(split_list(context.expanded(parameter))),
            str(context.origin(parameter)),
        )

    # -- the start-up check of smtpd_check_init() -------------------------------------

    def _has_required(self, words: tuple[str, ...], seen: frozenset[str]) -> tuple[bool, str]:
        i = 0
        while i < len(words):
            word = words[i]
            lowered = word.lower()
            if lowered == "warn_if_reject" and i + 1 < len(words):
                i += 2
                continue
            if lowered == "permit":
                if i + 1 < len(words):
                    return False, f"restriction `{words[i + 1]}' after `permit' is ignored"
                return False, ""
            if lowered in RELAY_REQUIRED:
                return True, ""
            nested = self.classes.get(word)
            if nested is not None and word not in seen:
                found, _ = self._has_required(nested.words, seen | {word})
                if found:
                    return True, ""
            i += 1
        return False, ""

    def _relay_requirement(self) -> tuple[str, str] | None:
        recipient = self.lists["recipient"]
        relay = self.lists["relay"]
        found_recipient, note_recipient = self._has_required(recipient.words, frozenset())
        if found_recipient:
            return None
        found_relay, note_relay = self._has_required(relay.words, frozenset())
        if found_relay:
            return None
        notes = [
            f"{lst.origin}: {note}"
            for lst, note in ((recipient, note_recipient), (relay, note_relay))
            if note
        ]
        message = (
            "in parameter smtpd_relay_restrictions or smtpd_recipient_restrictions, specify "
            "at least one working instance of: reject_unauth_destination, "
            "defer_unauth_destination, reject, defer, defer_if_permit or check_relay_domains"
        )
        where = ", ".join(
            origin for origin in dict.fromkeys([relay.origin, recipient.origin]) if origin
        )
        if notes:
            message = "; ".join(notes) + "; " + message
        return message, where

    # -- address classes --------------------------------------------------------------

    def resolve(self, address: str) -> _Resolved:
        """trivial-rewrite in the local context, then the address class (resolve.c)."""
        cached = self._resolved.get(address)
        if cached is None:
            cached = self._resolve(address)
            if len(self._resolved) < 65536:
                self._resolved[address] = cached
        return cached

    def _resolve(self, address: str) -> _Resolved:
        text = address
        local, at, domain = text.rpartition("@")
        if not at:
            local, domain = text, ""
        domain = domain.lower()
        if not domain and self.append_at_myorigin:
            domain = self.resolve_myorigin
        if domain.endswith(".") and not domain.endswith(".."):
            domain = domain[:-1]
        if (
            domain
            and self.append_dot_mydomain
            and "." not in domain
            and not domain.startswith("[")
            and self.mydomain
        ):
            domain = f"{domain}.{self.mydomain}"
        local = local.lower()
        routed = any(ch in local for ch in "@%!")
        if self._resolve_local(domain):
            klass = "local"
        elif self.virtual_alias_domains.match_name(domain):
            klass = "alias"
        elif self.virtual_mailbox_domains.match_name(domain):
            klass = "virtual"
        elif self.relay_domains.match_name(domain):
            klass = "relay"
        else:
            klass = "default"
        if routed and klass == "local":
            klass = "default"
        return _Resolved(f"{local}@{domain}", domain, local, klass, routed)

    def _resolve_local(self, domain: str) -> bool:
        """resolve_local() in trivial-rewrite."""
        return _is_local(domain, self.mydestination, self.inet_addresses)

    def is_local_domain(self, domain: str) -> bool:
        """resolve_local() in smtpd itself (mail_addr_find's local-part lookups)."""
        return _is_local(domain, self.smtpd_mydestination, self.smtpd_inet_addresses)


def _is_local(domain: str, mydestination: MatchList, addresses: frozenset[object]) -> bool:
    if domain.startswith("[") and domain.endswith("]"):
        try:
            return ipaddress.ip_address(domain[1:-1].removeprefix("ipv6:")) in addresses
        except ValueError:
            return False
    return mydestination.match_name(domain) is not None


def _level_below(level: str, limit: float) -> bool:
    try:
        parts = [int(p) for p in level.split(".")[:2]]
    except ValueError:
        return False
    value = parts[0] + (parts[1] / 100 if len(parts) > 1 else 0)
    return value < limit


def _interface_addresses(inet_interfaces: str, proxy_interfaces: str) -> frozenset[object]:
    found: set[object] = set()
    for word in split_list(inet_interfaces) + split_list(proxy_interfaces):
        lowered = word.lower()
        if lowered in ("all", "loopback-only", "localhost"):
            found.update({ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")})
            continue
        try:
            found.add(ipaddress.ip_address(word.strip("[]")))
        except ValueError:
            continue
    return frozenset(found)


# ---------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------


class _Eval:
    """The state of one smtpd session for one decision (SMTPD_STATE, the relevant part)."""

    def __init__(
        self, policy: ServicePolicy, client: ClientContext, answers: dict[int, bool]
    ) -> None:
        self.p = policy
        self.c = client
        self.name = client.name.lower() if client.name else "unknown"
        self.addr = client.address
        self.namaddr = f"{self.name}[{self.addr}]"
        self.helo_name: str | None = None
        self.sender: str | None = None
        self.recipient: str | None = None
        self.recursion = 0
        self.warn_if_reject = 0
        self.defer_if_permit = _Defer()
        self.defer_if_reject = _Defer()
        self.discard = False
        self.recipient_checked = False
        self.sender_checked = False
        self.stage = ""
        self.origin = ""
        self.reply: tuple[int, str] = (0, "")
        self.trace: list[TraceStep] = []
        self.last_warn: str | None = None
        self.answers = answers
        self.questions: list[tuple[str, str, str]] = []
        self.tls = False
        self.sasl_user: str | None = client.sasl_user
        self.etrn: str | None = None

    # -- trace and replies ------------------------------------------------------------

    def step(
        self, restriction: str, result: StepResult, detail: str = "", origin: str = ""
    ) -> None:
        trace = self.trace
        if self.last_warn is not None:
            warned, self.last_warn = self.last_warn, None
            if result == "dunno" and warned == restriction:
                return  # the warning already stands for this restriction
        trace.append(TraceStep(self.stage, restriction, result, origin or self.origin, detail))

    def reject(
        self, code: int, dsn: str, text: str, error_class: str = "policy", what: str = ""
    ) -> int:
        """smtpd_check_reject(): warn_if_reject, defer_if_reject, soft_bounce, DSN fix."""
        warn = bool(self.warn_if_reject) and error_class not in ("software", "resource", "data")
        reply_code, reply_dsn, reply_text = code, dsn, text
        if reply_code < 400 or reply_code > 599:
            reply_code, reply_dsn, reply_text = 450, "4.7.1", "Service unavailable"
        if not warn and self.defer_if_reject.active and str(reply_code).startswith("5"):
            held = self.defer_if_reject
            self.warn_if_reject = 0
            self.defer_if_reject = _Defer()
            self.step("defer_if_reject", "defer", f"5xx turned into {held.code}: {held.text}")
            return self.reject(held.code, held.dsn, held.text, held.error_class)
        reply_dsn = str(reply_code)[0] + reply_dsn[1:]
        full = f"{reply_dsn} {reply_text}"[:506]
        if warn:
            self.step(what or "warn_if_reject", "warn", f"would reply {reply_code} {full}")
            self.last_warn = what or "warn_if_reject"
            return DUNNO
        self.reply = (reply_code, full)
        return REJECT

    def server_error(self, why: str) -> None:
        self.step("configuration error", "error", why)
        self.reject(451, "4.3.5", "Server configuration error", "software")
        raise _ServerError

    def ask(self, restriction: str, question: str, origin: str = "") -> bool:
        """An outside answer: "no" unless this decision is the fork that says yes."""
        index = len(self.questions)
        self.questions.append((restriction, origin or self.origin, question))
        return self.answers.get(index, False)

    # -- stages -----------------------------------------------------------------------

    def check_list(
        self, stage: str, lst: RestrictionList, reply_name: str, reply_class: str
    ) -> int:
        self.stage = stage
        self.origin = lst.origin
        self.recursion = 0
        self.warn_if_reject = 0
        self.defer_if_reject = _Defer()
        if not lst.words:
            return DUNNO
        try:
            return self.generic(lst.words, reply_name, reply_class, _DEF_ACL[reply_class])
        except _ServerError:
            return REJECT

    def generic(
        self, words: tuple[str, ...], reply_name: str, reply_class: str, def_acl: str
    ) -> int:
        saved = self.recursion
        self.recursion += 1
        status = DUNNO
        for kind, name, shown, argument, handler, index in _compile(words, def_acl):
            if self.discard:
                break
            if kind == _WARN:
                if self.warn_if_reject == 0:
                    self.warn_if_reject = self.recursion
                self.step("warn_if_reject", "dunno", "the next restriction only warns")
                continue
            if handler is not None:
                status = handler(
                    self, shown, argument, reply_name, reply_class, def_acl, words, index
                )
            else:
                nested = self.p.classes.get(name)
                if nested is not None:
                    self.step(name, "dunno", f"restriction class ({nested.origin})")
                    status = self.generic(nested.words, reply_name, reply_class, def_acl)
                else:
                    self.server_error(f'unknown smtpd restriction: "{name}"')
            if self.warn_if_reject >= self.recursion:
                self.warn_if_reject = 0
            if status != DUNNO:
                break
            if self.defer_if_permit.active and self.defer_if_reject.active:
                break
        self.recursion = saved
        if self.warn_if_reject >= self.recursion:
            self.warn_if_reject = 0
        return status

    # -- building blocks used by the handlers ---------------------------------------------

    def table_result(
        self,
        shown: str,
        table: Table,
        hit: Hit,
        key: str,
        reply_name: str,
        reply_class: str,
        def_acl: str,
    ) -> int:
        """check_table_result(): what an access-map value does."""
        value = hit.value
        command, _, rest = value.partition(" ")
        if "\t" in command:
            command, _, more = command.partition("\t")
            rest = (more + " " + rest).strip()
        rest = rest.strip()
        upper = command.upper()
        detail = f"{key} -> {value} ({hit.where})"
        origin = self.origin

        def text_or(default: str) -> tuple[str, str]:
            dsn, text = _dsn_split(rest)
            return dsn, text or default

        if upper == "DUNNO":
            self.step(shown, "dunno", detail)
            return DUNNO
        if upper in ("REJECT", "DEFER"):
            dsn, text = text_or("Access denied")
            code = self.p.codes[
                "access_map_reject_code" if upper == "REJECT" else "access_map_defer_code"
            ]
            dsn = _dsn_fix(dsn or ("5.7.1" if upper == "REJECT" else "4.7.1"), reply_class)
            status = self.reject(
                code, dsn, f"<{reply_name}>: {reply_class} rejected: {text}", what=shown
            )
            self.step(shown, _status_result(status, self.reply[0]), detail)
            return status
        if upper in ("INFO", "WARN", "FILTER", "HOLD", "REDIRECT", "BCC", "PREPEND", "HANGUP"):
            if upper == "HANGUP":
                self.step(
                    shown, "error", detail + ": drops the connection (unsupported test action)"
                )
                return DUNNO
            self.step(shown, "dunno", detail + f": {upper} does not decide")
            return DUNNO
        if upper == "DISCARD":
            if self.sender is None:
                self.step(shown, "dunno", detail + ": DISCARD is skipped before MAIL FROM")
                return DUNNO
            self.discard = True
            self.step(shown, "permit", detail + ": DISCARD accepts and drops the mail")
            return OK
        if upper == "DEFER_IF_PERMIT":
            dsn, text = text_or("Service unavailable")
            if self.warn_if_reject:
                # DEFER_IF_PERMIT2(): under warn_if_reject a plain (logged) reject.
                status = self.reject(
                    self.p.codes["access_map_defer_code"],
                    _dsn_fix(dsn or "4.7.1", reply_class),
                    f"<{reply_name}>: {reply_class} rejected: {text}",
                    what=shown,
                )
                self.step(shown, _status_result(status, self.reply[0]), detail)
                return status
            self.defer_if(
                self.defer_if_permit,
                self.p.codes["access_map_defer_code"],
                _dsn_fix(dsn or "4.7.1", reply_class),
                f"<{reply_name}>: {reply_class} rejected: {text}",
                shown,
                detail,
            )
            return DUNNO
        if upper == "DEFER_IF_REJECT":
            dsn, text = text_or("Service unavailable")
            self.defer_if(
                self.defer_if_reject,
                self.p.codes["access_map_defer_code"],
                _dsn_fix(dsn or "4.7.1", reply_class),
                f"<{reply_name}>: {reply_class} rejected: {text}",
                shown,
                detail,
            )
            return DUNNO
        if value.isdigit():
            self.step(shown, "permit", detail + " (all-numeric value means OK)")
            return OK
        if len(command) == 3 and rest and command[0] in "45" and command[1:].isdigit():
            dsn, text = _dsn_split(rest)
            dsn = _dsn_fix(dsn or (command[0] + ".7.1"), reply_class)
            status = self.reject(
                int(command),
                dsn,
                f"<{reply_name}>: {reply_class} rejected: {text or 'Access denied'}",
                what=shown,
            )
            self.step(shown, _status_result(status, self.reply[0]), detail)
            return status
        if upper in ("OK", "RELAY"):
            self.step(shown, "permit", detail)
            return OK
        if ":" in value:
            self.server_error(f"access table {table.spec} has entry with lookup table: {value}")
        if self.recursion > 100:
            self.server_error(
                f"access table {table.spec} entry {value} causes unreasonable recursion"
            )
        words = tuple(split_list(value))
        if not words:
            self.step(shown, "permit", detail + " (empty value means OK)")
            return OK
        self.step(shown, "dunno", detail + ": evaluating the restrictions it names", origin)
        saved_origin = self.origin
        self.origin = hit.where
        try:
            return self.generic(words, reply_name, reply_class, def_acl)
        finally:
            self.origin = saved_origin

    def defer_if(
        self, target: _Defer, code: int, dsn: str, text: str, shown: str, detail: str
    ) -> None:
        if not target.active:
            target.active = True
            target.code, target.dsn, target.text = code, dsn, text
        kind: StepResult = (
            "defer_if_permit" if target is self.defer_if_permit else "defer_if_reject"
        )
        self.step(shown, kind, (detail + ": " if detail else "") + f"{code} {dsn} {text}")

    def lookup(self, table: Table, key: str, partial: bool, shown: str) -> Hit | None:
        if table.outside:
            if self.ask(shown, f"{table.spec} has an entry for {key}"):
                return Hit("OK", table.spec)
            return None
        if table.error:
            return Hit("451 4.3.5 Server configuration error", table.spec)
        return table.get(key, partial)

    def domain_access(
        self,
        shown: str,
        table: Table,
        domain: str,
        reply_name: str,
        reply_class: str,
        def_acl: str,
    ) -> tuple[int, bool]:
        """check_domain_access(): the name, then its parent domains (fixed tables only)."""
        name = domain.lower()
        first = True
        numeric = _valid_hostaddr(domain)
        while name:
            hit = self.lookup(table, name, not first, shown)
            if hit is not None:
                return self.table_result(
                    shown, table, hit, name, reply_name, reply_class, def_acl
                ), True
            if numeric:
                break
            dot = name.find(".", 1)
            if dot < 0:
                break
            name = name[dot + 1 :] if self.p.parent_access else name[dot:]
            first = False
        return DUNNO, False

    def addr_access(
        self,
        shown: str,
        table: Table,
        address: str,
        reply_name: str,
        reply_class: str,
        def_acl: str,
    ) -> tuple[int, bool]:
        """check_addr_access(): the address, then shorter prefixes (fixed tables only)."""
        delimiter = ":" if ":" in address else "."
        key = address.lower()
        first = True
        while True:
            hit = self.lookup(table, key, not first, shown)
            if hit is not None:
                return self.table_result(
                    shown, table, hit, key, reply_name, reply_class, def_acl
                ), True
            first = False
            cut = key.rfind(delimiter)
            if cut <= 0:
                break
            key = key[:cut]
        return DUNNO, False

    def mail_access(
        self,
        shown: str,
        table: Table,
        address: str,
        reply_name: str,
        reply_class: str,
        def_acl: str,
    ) -> int:
        """check_mail_access(): user+ext@domain, user@domain, domain, parents, user@."""
        resolved = self.p.resolve(address)
        full = resolved.address
        keys: list[tuple[str, bool]] = [(full, False)]
        local, domain = resolved.local, resolved.domain
        bare_local = local
        delimiter = self.p.recipient_delimiter
        if delimiter:
            cut = min((local.find(d) for d in delimiter if d in local), default=-1)
            if cut > 0:
                bare_local = local[:cut]
                keys.append((f"{bare_local}@{domain}", True))
        name = domain
        while name:
            keys.append((name, True))
            dot = name.find(".", 1)
            if dot < 0:
                break
            name = name[dot + 1 :] if self.p.parent_access else name[dot:]
        keys.append((f"{local}@", True))
        if bare_local != local:
            keys.append((f"{bare_local}@", True))
        for key, partial in keys:
            hit = self.lookup(table, key, partial, shown)
            if hit is not None:
                status = self.table_result(shown, table, hit, key, reply_name, reply_class, def_acl)
                if (
                    status == OK
                    and reply_class == RECIPIENT
                    and resolved.routed
                    and not self.p.allow_untrusted_routing
                ):
                    self.step(shown, "dunno", "OK ignored for a source-routed recipient")
                    return DUNNO
                return status
        return DUNNO

    def table_for(self, argument: str) -> Table | None:
        if ":" not in argument:
            return None
        return self.p.tables.get(argument)

    def auth_destination(self, recipient: str) -> tuple[bool, _Resolved]:
        """permit_auth_destination(): final or relay_domains, not source-routed."""
        resolved = self.p.resolve(recipient)
        if resolved.routed and not self.p.allow_untrusted_routing:
            return False, resolved
        return resolved.klass != "default", resolved

    def rcpt_maps(self, address: str, reply_class: str) -> int:
        """check_rcpt_maps(): unknown users of local, virtual and relay domains."""
        resolved = self.p.resolve(address)
        maps = self.p.maps
        sender_class = reply_class == SENDER
        for name in ("recipient_canonical_maps", "canonical_maps", "virtual_alias_maps"):
            if self.addr_find(maps[name], resolved) is not None:
                self.step("reject_unlisted", "dunno", f"{address} is in {name}")
                return DUNNO
        if sender_class and self.addr_find(maps["sender_canonical_maps"], resolved) is not None:
            return DUNNO
        dsn = "5.1.0" if sender_class else "5.1.1"
        table_name = {
            "local": "local recipient",
            "virtual": "virtual mailbox",
            "relay": "relay recipient",
        }
        if resolved.klass == "alias":
            code = self.p.codes["unknown_virtual_alias_reject_code"]
            return self.reject(
                code,
                dsn,
                f"<{address}>: {reply_class} rejected: User unknown in virtual alias table",
                "bounce",
            )
        if resolved.klass == "local":
            lst, code_name = "local_recipient_maps", "unknown_local_recipient_reject_code"
            local = resolved.local
            for exempt in (self.p.double_bounce, "postmaster", "mailer-daemon"):
                if local == exempt:
                    return DUNNO
        elif resolved.klass == "virtual":
            lst, code_name = "virtual_mailbox_maps", "unknown_virtual_mailbox_reject_code"
        elif resolved.klass == "relay":
            lst, code_name = "relay_recipient_maps", "unknown_relay_recipient_reject_code"
        else:
            return DUNNO
        if not self.p.context.expanded(lst).strip():
            return DUNNO
        if self.addr_find(maps[lst], resolved) is not None:
            self.step(f"{lst}", "dunno", f"{resolved.address} is known")
            return DUNNO
        suffix = f" in {table_name[resolved.klass]} table" if self.p.show_table else ""
        status = self.reject(
            self.p.codes[code_name],
            dsn,
            f"<{address}>: {reply_class} rejected: User unknown{suffix}",
            "bounce",
        )
        return status

    def addr_find(self, tables: list[Table], resolved: _Resolved) -> Hit | None:
        """mail_addr_find() default strategy over a list of tables (first table wins)."""
        cacheable = not any(t.error or t.outside for t in tables)
        if cacheable:
            key = (id(tables), resolved.address)
            cache = self.p.addr_find_cache
            if key in cache:
                return cache[key]
            found = self._addr_find(tables, resolved)
            cache[key] = found
            return found
        return self._addr_find(tables, resolved)

    def _addr_find(self, tables: list[Table], resolved: _Resolved) -> Hit | None:
        full = resolved.address
        local, domain = resolved.local, resolved.domain
        is_local = domain == self.p.myorigin or self.p.is_local_domain(domain)
        for table in tables:
            if table.error:
                self.server_error(f"{table.spec}: {table.error}")
            keys: list[tuple[str, bool]] = [(full, False)]
            if is_local:
                keys.append((local, True))
            keys.append((f"@{domain}", True))
            for key, partial in keys:
                if table.outside:
                    if self.ask(table.spec, f"{table.spec} has an entry for {key}"):
                        return Hit("yes", table.spec)
                    continue
                hit = table.get(key, partial)
                if hit is not None:
                    return hit
        return None


_WARN, _RUN = 0, 1
_Op = tuple[int, str, str, str, "Handler | None", int]


@functools.lru_cache(maxsize=4096)
def _compile(words: tuple[str, ...], def_acl: str) -> tuple[_Op, ...]:
    """A restriction list as smtpd walks it: names with their arguments, handlers found.

    `index` is the position of the last word the restriction consumed (for "ignored
    after" notes)."""
    ops: list[_Op] = []
    i, n = 0, len(words)
    while i < n:
        name = words[i]
        lowered = name.lower()
        if lowered == "warn_if_reject":
            ops.append((_WARN, name, name, "", None, i))
            i += 1
            continue
        if ":" in name:
            # A bare table is an access map of the list's own kind.
            argument, lowered, shown = name, def_acl, name
        elif lowered in _TAKES_ARGUMENT or lowered in _ALIASED_ARGUMENT:
            argument = words[i + 1] if i + 1 < n else ""
            shown = f"{name} {argument}".strip()
            i += 1
        else:
            argument, shown = "", name
        handler = _HANDLERS.get(ALIASES.get(lowered, lowered))
        ops.append((_RUN, name, shown, argument, handler, i))
        i += 1
    return tuple(ops)


def _status_result(status: int, code: int) -> StepResult:
    if status == REJECT:
        return "defer" if code < 500 else "reject"
    if status == OK:
        return "permit"
    return "dunno"


@functools.lru_cache(maxsize=4096)
def _dsn_split(text: str) -> tuple[str, str]:
    """dsn_split(): a leading x.y.z enhanced status code, and the rest."""
    head, _, rest = text.partition(" ")
    parts = head.split(".")
    if (
        len(parts) == 3
        and parts[0] in ("2", "4", "5")
        and all(p.isdigit() and 0 < len(p) <= 3 for p in parts)
    ):
        return head, rest.strip()
    return "", text


def _dsn_fix(dsn: str, reply_class: str) -> str:
    if len(dsn) > 4 and dsn[1:4] == ".1.":
        if reply_class == SENDER:
            micro = dsn[4:]
            return (
                dsn[:4]
                + {"1": "0", "2": "0", "3": "3", "6": "6", "7": "7", "8": "8"}.get(micro, "0")
                if micro != "0"
                else dsn
            )
        if reply_class == RECIPIENT:
            return dsn
        return "4.0.0"
    return dsn


@functools.lru_cache(maxsize=8192)
def _valid_hostaddr(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def valid_hostname(name: str) -> bool:
    """valid_hostname(): labels of letters, digits, `_` and inner `-`; not all-numeric."""
    if not name or len(name) > 255:
        return False
    non_numeric = False
    for label in name.split("."):
        if not label or len(label) > 63:
            return False
        if label[0] == "-" or label[-1] == "-":
            return False
        for ch in label:
            if ch.isascii() and (ch.isalnum() or ch in "_-"):
                if not ch.isdigit():
                    non_numeric = True
            else:
                return False
    return non_numeric


def _strip_dot(name: str) -> str:
    if len(name) > 1 and name.endswith(".") and name[-2] != ".":
        return name[:-1]
    return name


# ---------------------------------------------------------------------------------------
# Restriction handlers: (eval, shown, argument, reply_name, reply_class, def_acl) -> status
# ---------------------------------------------------------------------------------------

Handler = Callable[[_Eval, str, str, str, str, str, tuple[str, ...], int], int]
_HANDLERS: dict[str, Handler] = {}
_ALIASED_ARGUMENT = frozenset({"reject_rbl"})


def _handler(*names: str) -> Callable[[Handler], Handler]:
    def register(function: Handler) -> Handler:
        for name in names:
            _HANDLERS[name] = function
        return function

    return register


def _ignored_after(ev: _Eval, shown: str, words: tuple[str, ...], i: int) -> str:
    return f"; `{words[i + 1]}' after it is ignored" if i + 1 < len(words) else ""


@_handler("permit")
def _permit(
    ev: _Eval, shown: str, arg: str, rn: str, rc: str, acl: str, words: tuple[str, ...], i: int
) -> int:
    ev.step(shown, "permit", _ignored_after(ev, shown, words, i).lstrip("; "))
    return OK


@_handler("reject", "defer")
def _reject_all(
    ev: _Eval, shown: str, arg: str, rn: str, rc: str, acl: str, words: tuple[str, ...], i: int
) -> int:
    if shown.lower() == "reject":
        status = ev.reject(
            ev.p.codes["reject_code"], "5.7.1", f"<{rn}>: {rc} rejected: Access denied", what=shown
        )
    else:
        status = ev.reject(
            ev.p.codes["defer_code"], "4.3.2", f"<{rn}>: {rc} rejected: Try again later", what=shown
        )
    ev.step(shown, _status_result(status, ev.reply[0]), ev.reply[1] if status else "")
    return status


@_handler("defer_if_permit")
def _defer_if_permit(
    ev: _Eval, shown: str, arg: str, rn: str, rc: str, acl: str, words: tuple[str, ...], i: int
) -> int:
    text = f"<{rn}>: {rc} rejected: defer_if_permit requested"
    if ev.warn_if_reject == 0:
        ev.defer_if(ev.defer_if_permit, 450, "4.7.0", text, shown, "")
        return DUNNO
    return ev.reject(450, "4.7.0", text, what=shown)


@_handler("defer_if_reject")
def _defer_if_reject(
    ev: _Eval, shown: str, arg: str, rn: str, rc: str, acl: str, words: tuple[str, ...], i: int
) -> int:
    ev.defer_if(
        ev.defer_if_reject,
        450,
        "4.7.0",
        f"<{rn}>: {rc} rejected: defer_if_reject requested",
        shown,
        "",
    )
    return DUNNO


@_handler("reject_unauth_pipelining", "reject_multi_recipient_bounce", "sleep")
def _quiet(
    ev: _Eval, shown: str, arg: str, rn: str, rc: str, acl: str, words: tuple[str, ...], i: int
) -> int:
    kind = shown.split()[0].lower()
    if kind == "reject_unauth_pipelining":
        detail = (
            "modelled as a well-behaved client that waits for each reply (no pipelining "
            "without PIPELINING, nothing sent early): passes; a client that talks ahead "
            "gets 554 5.5.0 Improper use of SMTP command pipelining"
        )
    elif kind == "reject_multi_recipient_bounce":
        detail = "modelled with one recipient per mail: passes"
    else:
        detail = "only delays the reply"
    ev.step(shown, "dunno", detail)
    return DUNNO


@_handler("reject_plaintext_session")
def _plaintext(
    ev: _Eval, shown: str, arg: str, rn: str, rc: str, acl: str, words: tuple[str, ...], i: int
) -> int:
    if ev.tls:
        ev.step(shown, "dunno", "the session is encrypted")
        return DUNNO
    status = ev.reject(
        ev.p.codes["plaintext_reject_code"], "4.7.1", "Session encryption is required", what=shown
    )
    ev.step(shown, _status_result(status, ev.reply[0]), "the session is not encrypted")
    return status


@_handler("permit_mynetworks")
def _permit_mynetworks(
    ev: _Eval, shown: str, arg: str, rn: str, rc: str, acl: str, words: tuple[str, ...], i: int
) -> int:
    item = ev.p.mynetworks.match_client(ev.name, ev.addr)
    if item is None:
        for outside in ev.p.mynetworks.outside_items():
            if ev.ask(shown, f"{outside.text} (in mynetworks) lists the client"):
                ev.step(
                    shown,
                    "permit",
                    f"client matches {outside.text}",
                    str(ev.p.context.origin("mynetworks")),
                )
                return OK
        if ev.p.mynetworks.errors:
            ev.server_error("; ".join(ev.p.mynetworks.errors))
        ev.step(shown, "dunno", f"{ev.addr} is not in mynetworks")
        return DUNNO
    ev.step(
        shown,
        "permit",
        f"client matches mynetworks entry {item.text} ({ev.p.context.origin('mynetworks')})",
    )
    return OK


@_handler("permit_inet_interfaces")
def _permit_inet(
    ev: _Eval, shown: str, arg: str, rn: str, rc: str, acl: str, words: tuple[str, ...], i: int
) -> int:
    try:
        mine = ipaddress.ip_address(ev.addr) in ev.p.inet_addresses
    except ValueError:
        mine = False
    ev.step(
        shown,
        "permit" if mine else "dunno",
        f"{ev.addr} {'is' if mine else 'is not'} one of this host's inet_interfaces",
    )
    return OK if mine else DUNNO


@_handler("permit_sasl_authenticated")
def _permit_sasl(
    ev: _Eval, shown: str, arg: str, rn: str, rc: str, acl: str, words: tuple[str, ...], i: int
) -> int:
    if not ev.p.sasl_enabled:
        ev.step(shown, "dunno", "smtpd_sasl_auth_enable = no: never permits")
        return DUNNO
    if ev.sasl_user:
        # With smtpd_tls_auth_only = yes a login implies that STARTTLS came first.
        ev.step(shown, "permit", f"authenticated as {ev.sasl_user}")
        return OK
    ev.step(shown, "dunno", "not authenticated")
    return DUNNO


def _no_client_cert(ev: _Eval, shown: str) -> bool:
    """No TLS, or smtpd never asks for a certificate: the restriction cannot match."""
    if not ev.tls:
        ev.step(shown, "dunno", "no TLS session: no client certificate")
        return True
    if not ev.p.tls_ask_ccert:
        ev.step(shown, "dunno", "smtpd_tls_ask_ccert = no: smtpd asks for no client certificate")
        return True
    return False


@_handler("permit_tls_clientcerts", "permit_tls_all_clientcerts")
def _permit_certs(
    ev: _Eval, shown: str, arg: str, rn: str, rc: str, acl: str, words: tuple[str, ...], i: int
) -> int:
    if _no_client_cert(ev, shown):
        return DUNNO
    if ev.ask(shown, "the client presents a trusted TLS client certificate"):
        ev.step(shown, "permit", "client certificate (outside answer)")
        return OK
    ev.step(shown, "outside", "permits a client with a trusted TLS certificate; assumed none")
    return DUNNO


@_handler("check_ccert_access")
def _ccert(
    ev: _Eval, shown: str, arg: str, rn: str, rc: str, acl: str, words: tuple[str, ...], i: int
) -> int:
    if _no_client_cert(ev, shown):
        return DUNNO
    if ev.ask(shown, "the client's TLS certificate fingerprint is in the table"):
        ev.step(shown, "permit", "client certificate (outside answer)")
        return OK
    ev.step(shown, "outside", "depends on the client's TLS certificate; assumed none")
    return DUNNO


def _need_table(ev: _Eval, shown: str, arg: str) -> Table:
    table = ev.table_for(arg)
    if table is None:
        ev.server_error(
            f'restriction {shown.split()[0]}: bad argument "{arg}": need maptype:mapname'
        )
        raise AssertionError  # unreachable: server_error raises
    return table


@_handler("check_client_access")
def _client_access(
    ev: _Eval, shown: str, arg: str, rn: str, rc: str, acl: str, words: tuple[str, ...], i: int
) -> int:
    table = _need_table(ev, shown, arg)
    status, found = ev.domain_access(shown, table, ev.name, ev.namaddr, CLIENT, acl)
    if status or found:
        return status
    status, found = ev.addr_access(shown, table, ev.addr, ev.namaddr, CLIENT, acl)
    if not found:
        ev.step(shown, "dunno", f"no entry for {ev.name} or {ev.addr}")
    return status


@_handler("check_reverse_client_access")
def _reverse_access(
    ev: _Eval, shown: str, arg: str, rn: str, rc: str, acl: str, words: tuple[str, ...], i: int
) -> int:
    table = _need_table(ev, shown, arg)
    status, found = ev.domain_access(shown, table, ev.name, ev.name, "Unverified Client host", acl)
    if not (status or found):
        status, found = ev.addr_access(
            shown, table, ev.addr, ev.name, "Unverified Client host", acl
        )
    if status == OK:
        ev.server_error(f"restriction {shown} returns OK for {ev.name}: not allowed")
    if not found:
        ev.step(shown, "dunno", f"no entry for {ev.name} or {ev.addr}")
    return status


@_handler("check_helo_access")
def _helo_access(
    ev: _Eval, shown: str, arg: str, rn: str, rc: str, acl: str, words: tuple[str, ...], i: int
) -> int:
    table = _need_table(ev, shown, arg)
    if ev.helo_name is None:
        ev.step(shown, "skipped", "no HELO/EHLO")
        return DUNNO
    status, found = ev.domain_access(shown, table, ev.helo_name, ev.helo_name, HELO, acl)
    if not found:
        ev.step(shown, "dunno", f"no entry for {ev.helo_name}")
    return status


@_handler("check_sender_access")
def _sender_access(
    ev: _Eval, shown: str, arg: str, rn: str, rc: str, acl: str, words: tuple[str, ...], i: int
) -> int:
    table = _need_table(ev, shown, arg)
    if ev.sender is None:
        ev.step(shown, "skipped", "no MAIL FROM yet")
        return DUNNO
    if ev.sender == "":
        hit = ev.lookup(table, ev.p.null_key, False, shown)
        if hit is None:
            ev.step(shown, "dunno", f"no entry for {ev.p.null_key}")
            return DUNNO
        return ev.table_result(shown, table, hit, ev.p.null_key, ev.sender, SENDER, acl)
    before = len(ev.trace)
    status = ev.mail_access(shown, table, ev.sender, ev.sender, SENDER, acl)
    if len(ev.trace) == before:
        ev.step(shown, "dunno", f"no entry for {ev.sender}")
    return status


@_handler("check_recipient_access")
def _recipient_access(
    ev: _Eval, shown: str, arg: str, rn: str, rc: str, acl: str, words: tuple[str, ...], i: int
) -> int:
    table = _need_table(ev, shown, arg)
    if ev.recipient is None:
        ev.step(shown, "skipped", "no RCPT TO yet")
        return DUNNO
    before = len(ev.trace)
    status = ev.mail_access(shown, table, ev.recipient, ev.recipient, RECIPIENT, acl)
    if len(ev.trace) == before:
        ev.step(shown, "dunno", f"no entry for {ev.recipient}")
    return status


@_handler("check_etrn_access")
def _etrn_access(
    ev: _Eval, shown: str, arg: str, rn: str, rc: str, acl: str, words: tuple[str, ...], i: int
) -> int:
    table = _need_table(ev, shown, arg)
    if ev.etrn is None:
        ev.step(shown, "skipped", "no ETRN")
        return DUNNO
    status, found = ev.domain_access(shown, table, ev.etrn, ev.etrn, ETRN, acl)
    if not found:
        ev.step(shown, "dunno", f"no entry for {ev.etrn}")
    return status


@_handler("check_sasl_access")
def _sasl_access(
    ev: _Eval, shown: str, arg: str, rn: str, rc: str, acl: str, words: tuple[str, ...], i: int
) -> int:
    table = _need_table(ev, shown, arg)
    if not ev.p.sasl_enabled or not ev.sasl_user:
        ev.step(shown, "skipped", "not authenticated" if ev.p.sasl_enabled else "SASL is off")
        return DUNNO
    hit = ev.lookup(table, ev.sasl_user, False, shown)
    if hit is None:
        ev.step(shown, "dunno", f"no entry for {ev.sasl_user}")
        return DUNNO
    return ev.table_result(shown, table, hit, ev.sasl_user, ev.sasl_user, "SASL login name", acl)


@_handler("reject_unknown_client_hostname")
def _unknown_client(
    ev: _Eval, shown: str, arg: str, rn: str, rc: str, acl: str, words: tuple[str, ...], i: int
) -> int:
    if ev.c.name:
        ev.step(shown, "dunno", f"client name {ev.c.name} is known (verified)")
        return DUNNO
    status = ev.reject(
        ev.p.codes["unknown_client_reject_code"],
        "4.7.25",
        f"Client host rejected: cannot find your hostname, [{ev.addr}]",
        what=shown,
    )
    ev.step(shown, _status_result(status, ev.reply[0]), "client name is unknown")
    return status


def _dns_reject(ev: _Eval, shown: str, question: str, code: int, dsn: str, text: str) -> int:
    if ev.ask(shown, question):
        status = ev.reject(code, dsn, text, what=shown)
        ev.step(shown, _status_result(status, ev.reply[0]), f"outside answer: {question}")
        return status
    ev.step(shown, "outside", f"depends on an outside answer ({question}); assumed no")
    return DUNNO


@_handler("reject_unknown_reverse_client_hostname")
def _unknown_reverse(
    ev: _Eval, shown: str, arg: str, rn: str, rc: str, acl: str, words: tuple[str, ...], i: int
) -> int:
    if not ev.c.name:
        status = ev.reject(
            ev.p.codes["unknown_client_reject_code"],
            "4.7.1",
            f"Client host rejected: cannot find your reverse hostname, [{ev.addr}]",
            what=shown,
        )
        ev.step(shown, _status_result(status, ev.reply[0]), "client name is unknown")
        return status
    return _dns_reject(
        ev,
        shown,
        f"{ev.addr} has no reverse DNS name",
        ev.p.codes["unknown_client_reject_code"],
        "4.7.1",
        f"Client host rejected: cannot find your reverse hostname, [{ev.addr}]",
    )


@_handler(
    "reject_invalid_helo_hostname", "reject_non_fqdn_helo_hostname", "reject_unknown_helo_hostname"
)
def _helo_syntax(
    ev: _Eval, shown: str, arg: str, rn: str, rc: str, acl: str, words: tuple[str, ...], i: int
) -> int:
    helo = ev.helo_name
    if helo is None:
        ev.step(shown, "skipped", "no HELO/EHLO")
        return DUNNO
    kind = ALIASES.get(shown.lower(), shown.lower())
    if helo.startswith("["):
        inner = helo[1:-1] if helo.endswith("]") and len(helo) > 2 else helo
        if not _valid_mailhost_addr(inner):
            status = ev.reject(
                ev.p.codes["invalid_hostname_reject_code"],
                "5.5.2",
                f"<{helo}>: Helo command rejected: invalid ip address",
                what=shown,
            )
            ev.step(shown, _status_result(status, ev.reply[0]), "invalid address literal")
            return status
        ev.step(shown, "dunno", "valid address literal")
        return DUNNO
    test = _strip_dot(helo)
    if kind == "reject_invalid_helo_hostname":
        if not valid_hostname(test) and not _valid_hostaddr(test):
            status = ev.reject(
                ev.p.codes["invalid_hostname_reject_code"],
                "5.5.2",
                f"<{helo}>: Helo command rejected: Invalid name",
                what=shown,
            )
            ev.step(shown, _status_result(status, ev.reply[0]), f"{helo} is not a valid host name")
            return status
        ev.step(shown, "dunno", f"{helo} is a valid host name")
        return DUNNO
    if kind == "reject_non_fqdn_helo_hostname":
        if not valid_hostname(test) or "." not in test:
            status = ev.reject(
                ev.p.codes["non_fqdn_reject_code"],
                "5.5.2",
                f"<{helo}>: Helo command rejected: need fully-qualified hostname",
                what=shown,
            )
            ev.step(shown, _status_result(status, ev.reply[0]), f"{helo} is not fully qualified")
            return status
        ev.step(shown, "dunno", f"{helo} is fully qualified")
        return DUNNO
    return _dns_reject(
        ev,
        shown,
        f"{helo} has no DNS A, AAAA or MX record",
        ev.p.codes["unknown_hostname_reject_code"],
        "4.7.1",
        f"<{helo}>: Helo command rejected: Host not found",
    )


def _valid_mailhost_addr(text: str) -> bool:
    if text.lower().startswith("ipv6:"):
        text = text[5:]
        try:
            return ipaddress.ip_address(text).version == 6
        except ValueError:
            return False
    try:
        return ipaddress.ip_address(text).version == 4 and _valid_ipv4_text(text)
    except ValueError:
        return False


def _valid_ipv4_text(text: str) -> bool:
    parts = text.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) <= 255 for p in parts)


@_handler("reject_non_fqdn_sender", "reject_non_fqdn_recipient")
def _non_fqdn_address(
    ev: _Eval, shown: str, arg: str, rn: str, rc: str, acl: str, words: tuple[str, ...], i: int
) -> int:
    is_sender = shown.lower().endswith("sender")
    address = ev.sender if is_sender else ev.recipient
    if address is None or (is_sender and address == ""):
        ev.step(shown, "skipped", "no address to check")
        return DUNNO
    domain = address.rpartition("@")[2] if "@" in address else ""
    if domain.startswith("[") and domain.endswith("]"):
        ev.step(shown, "dunno", "address literal")
        return DUNNO
    test = _strip_dot(domain)
    if not test or not valid_hostname(test) or "." not in test:
        status = ev.reject(
            ev.p.codes["non_fqdn_reject_code"],
            "4.5.2",
            f"<{address}>: {SENDER if is_sender else RECIPIENT} rejected: need fully-qualified address",
            what=shown,
        )
        ev.step(shown, _status_result(status, ev.reply[0]), f"{address} is not fully qualified")
        return status
    ev.step(shown, "dunno", f"{address} is fully qualified")
    return DUNNO


@_handler("reject_unknown_sender_domain", "reject_unknown_recipient_domain")
def _unknown_domain(
    ev: _Eval, shown: str, arg: str, rn: str, rc: str, acl: str, words: tuple[str, ...], i: int
) -> int:
    is_sender = "sender" in shown.lower() or shown.lower() == "reject_unknown_address"
    address = ev.sender if is_sender else ev.recipient
    if not address:
        ev.step(shown, "skipped", "no address to check")
        return DUNNO
    resolved = ev.p.resolve(address)
    # smtpd's reject_unknown_address() skips only final destinations
    # (RESOLVE_CLASS_FINAL: local, alias, virtual) and address literals; a relay_domains
    # domain is still looked up in the DNS.
    if resolved.klass in ("local", "alias", "virtual"):
        ev.step(shown, "dunno", f"{resolved.domain} is a final destination of this server")
        return DUNNO
    if resolved.domain.startswith("[") and resolved.domain.endswith("]"):
        ev.step(shown, "dunno", f"{resolved.domain} is an address literal")
        return DUNNO
    klass = SENDER if is_sender else RECIPIENT
    return _dns_reject(
        ev,
        shown,
        f"{resolved.domain} has no DNS MX or A record",
        ev.p.codes["unknown_address_reject_code"],
        "4.1.8" if is_sender else "4.1.2",
        f"<{address}>: {klass} rejected: Domain not found",
    )


@_handler("reject_unverified_sender", "reject_unverified_recipient")
def _unverified(
    ev: _Eval, shown: str, arg: str, rn: str, rc: str, acl: str, words: tuple[str, ...], i: int
) -> int:
    is_sender = shown.lower().endswith("sender")
    address = ev.sender if is_sender else ev.recipient
    if not address:
        ev.step(shown, "skipped", "no address to check")
        return DUNNO
    klass = SENDER if is_sender else RECIPIENT
    code = ev.p.codes[
        "unverified_sender_reject_code" if is_sender else "unverified_recipient_reject_code"
    ]
    return _dns_reject(
        ev,
        shown,
        f"address verification of {address} fails",
        code,
        "4.1.1",
        f"<{address}>: {klass} rejected: undeliverable address",
    )


@_handler(
    "reject_rbl_client",
    "reject_rhsbl_client",
    "reject_rhsbl_reverse_client",
    "reject_rhsbl_helo",
    "reject_rhsbl_sender",
    "reject_rhsbl_recipient",
    "reject_maps_rbl",
)
def _rbl(
    ev: _Eval, shown: str, arg: str, rn: str, rc: str, acl: str, words: tuple[str, ...], i: int
) -> int:
    kind = ALIASES.get(shown.split()[0].lower(), shown.split()[0].lower())
    subject = {
        "reject_rbl_client": ev.addr,
        "reject_maps_rbl": ev.addr,
        "reject_rhsbl_client": ev.name if ev.name != "unknown" else None,
        "reject_rhsbl_reverse_client": ev.name if ev.name != "unknown" else None,
        "reject_rhsbl_helo": ev.helo_name,
        "reject_rhsbl_sender": ev.sender or None,
        "reject_rhsbl_recipient": ev.recipient,
    }[kind]
    if subject is None:
        ev.step(shown, "skipped", "nothing to look up")
        return DUNNO
    if kind in ("reject_rbl_client", "reject_rhsbl_client", "reject_rhsbl_helo") and not arg:
        ev.step(shown, "dunno", "requires a domain name argument: ignored")
        return DUNNO
    domain = arg.split("=")[0] or "the DNS list"
    return _dns_reject(
        ev,
        shown,
        f"{domain} lists {subject}",
        ev.p.codes["maps_rbl_reject_code"],
        "5.7.1",
        f"Service unavailable; {rc} [{subject}] blocked using {domain}",
    )


@_handler("permit_dnswl_client", "permit_rhswl_client", "permit_mx_backup")
def _dns_permit(
    ev: _Eval, shown: str, arg: str, rn: str, rc: str, acl: str, words: tuple[str, ...], i: int
) -> int:
    kind = shown.split()[0].lower()
    if kind == "permit_mx_backup":
        if ev.recipient is None:
            ev.step(shown, "skipped", "no recipient")
            return DUNNO
        resolved = ev.p.resolve(ev.recipient)
        if resolved.klass != "default":
            # Final and relay destinations are permitted without DNS (permit_mx_backup()).
            ev.step(shown, "permit", f"{resolved.domain} is a destination of this server")
            return OK
        question = f"this server is an MX host for {resolved.domain}"
    else:
        question = f"{arg or 'the DNS list'} lists the client as allowed"
    if ev.ask(shown, question):
        ev.step(shown, "permit", f"outside answer: {question}")
        return OK
    ev.step(shown, "outside", f"permits when {question}; assumed no")
    return DUNNO


@_handler(
    "check_client_ns_access",
    "check_client_mx_access",
    "check_client_a_access",
    "check_reverse_client_ns_access",
    "check_reverse_client_mx_access",
    "check_reverse_client_a_access",
    "check_helo_ns_access",
    "check_helo_mx_access",
    "check_helo_a_access",
    "check_sender_ns_access",
    "check_sender_mx_access",
    "check_sender_a_access",
    "check_recipient_ns_access",
    "check_recipient_mx_access",
    "check_recipient_a_access",
)
def _server_access(
    ev: _Eval, shown: str, arg: str, rn: str, rc: str, acl: str, words: tuple[str, ...], i: int
) -> int:
    _need_table(ev, shown, arg)
    return _dns_reject(
        ev,
        shown,
        f"DNS servers of the name are in {arg} with a reject action",
        ev.p.codes["access_map_reject_code"],
        "5.7.1",
        f"<{rn}>: {rc} rejected: Access denied",
    )


@_handler("check_policy_service")
def _policy(
    ev: _Eval, shown: str, arg: str, rn: str, rc: str, acl: str, words: tuple[str, ...], i: int
) -> int:
    if ":" not in arg:
        ev.server_error("restriction check_policy_service must be followed by transport:server")
    return _dns_reject(
        ev,
        shown,
        f"the policy server {arg} answers REJECT",
        ev.p.codes["access_map_reject_code"],
        "5.7.1",
        f"<{rn}>: {rc} rejected: policy service rejected",
    )


@_handler("permit_naked_ip_address")
def _naked(
    ev: _Eval, shown: str, arg: str, rn: str, rc: str, acl: str, words: tuple[str, ...], i: int
) -> int:
    helo = ev.helo_name
    if helo and all(ch in "0123456789.:" for ch in helo) and _valid_mailhost_addr(helo):
        ev.step(shown, "permit", "HELO is a bare IP address (deprecated restriction)")
        return OK
    ev.step(shown, "dunno", "deprecated restriction")
    return DUNNO


@_handler("reject_unauth_destination", "defer_unauth_destination")
def _unauth_destination(
    ev: _Eval, shown: str, arg: str, rn: str, rc: str, acl: str, words: tuple[str, ...], i: int
) -> int:
    if ev.recipient is None:
        ev.step(shown, "skipped", "no recipient")
        return DUNNO
    allowed, resolved = ev.auth_destination(ev.recipient)
    if allowed:
        ev.step(
            shown, "dunno", f"{resolved.domain} is a {_CLASS_WORDS[resolved.klass]} destination"
        )
        return DUNNO
    code = ev.p.codes["relay_domains_reject_code"]
    dsn = "5.7.1"
    if shown.lower() == "defer_unauth_destination":
        code, dsn = code - 100, "4.7.1"
    status = ev.reject(code, dsn, f"<{ev.recipient}>: Relay access denied", what=shown)
    why = (
        "source-routed address"
        if resolved.routed
        else f"{resolved.domain or 'the domain'} is not a destination of this server"
    )
    ev.step(shown, _status_result(status, ev.reply[0]), why)
    return status


@_handler("permit_auth_destination")
def _permit_auth_destination(
    ev: _Eval, shown: str, arg: str, rn: str, rc: str, acl: str, words: tuple[str, ...], i: int
) -> int:
    if ev.recipient is None:
        ev.step(shown, "skipped", "no recipient")
        return DUNNO
    allowed, resolved = ev.auth_destination(ev.recipient)
    if allowed:
        ev.step(
            shown, "permit", f"{resolved.domain} is a {_CLASS_WORDS[resolved.klass]} destination"
        )
        return OK
    ev.step(shown, "dunno", f"{resolved.domain} is not a destination of this server")
    return DUNNO


@_handler("check_relay_domains")
def _check_relay_domains(
    ev: _Eval, shown: str, arg: str, rn: str, rc: str, acl: str, words: tuple[str, ...], i: int
) -> int:
    if ev.recipient is None:
        ev.step(shown, "skipped", "no recipient")
        return DUNNO
    if ev.p.smtpd_relay_domains.match_name(ev.name):
        ev.step(shown, "permit", f"client name {ev.name} matches relay_domains")
        return OK
    allowed, resolved = ev.auth_destination(ev.recipient)
    if allowed:
        ev.step(
            shown, "permit", f"{resolved.domain} is a {_CLASS_WORDS[resolved.klass]} destination"
        )
        return OK
    status = ev.reject(
        ev.p.codes["relay_domains_reject_code"],
        "5.7.1",
        f"<{rn}>: {rc} rejected: Relay access denied",
        what=shown,
    )
    ev.step(shown, _status_result(status, ev.reply[0]), "obsolete restriction")
    return status


@_handler("reject_unlisted_recipient")
def _unlisted_recipient(
    ev: _Eval, shown: str, arg: str, rn: str, rc: str, acl: str, words: tuple[str, ...], i: int
) -> int:
    if not ev.recipient:
        ev.step(shown, "skipped", "no recipient")
        return DUNNO
    if ev.recipient_checked:
        return DUNNO
    if ev.warn_if_reject == 0:
        ev.recipient_checked = True
    status = ev.rcpt_maps(ev.recipient, RECIPIENT)
    ev.step(
        shown,
        _status_result(status, ev.reply[0]),
        ev.reply[1] if status else "recipient is known or not checked",
    )
    return status


@_handler("reject_unlisted_sender")
def _unlisted_sender(
    ev: _Eval, shown: str, arg: str, rn: str, rc: str, acl: str, words: tuple[str, ...], i: int
) -> int:
    if not ev.sender:
        ev.step(shown, "skipped", "no sender")
        return DUNNO
    if ev.sender_checked:
        return DUNNO
    if ev.warn_if_reject == 0:
        ev.sender_checked = True
    status = ev.rcpt_maps(ev.sender, SENDER)
    ev.step(
        shown,
        _status_result(status, ev.reply[0]),
        ev.reply[1] if status else "sender is known or not checked",
    )
    return status


@_handler(
    "reject_authenticated_sender_login_mismatch",
    "reject_known_sender_login_mismatch",
    "reject_unauthenticated_sender_login_mismatch",
)
def _login_mismatch(
    ev: _Eval, shown: str, arg: str, rn: str, rc: str, acl: str, words: tuple[str, ...], i: int
) -> int:
    if not ev.p.sasl_enabled:
        ev.step(shown, "dunno", "ignored: no SASL support (smtpd_sasl_auth_enable = no)")
        return DUNNO
    if not ev.sender:
        ev.step(shown, "skipped", "no sender")
        return DUNNO
    kind = shown.lower()
    resolved = ev.p.resolve(ev.sender)
    owners_hit = ev.addr_find(ev.p.maps["smtpd_sender_login_maps"], resolved)
    user = ev.sasl_user
    if user and kind != "reject_unauthenticated_sender_login_mismatch":
        if owners_hit is None and kind == "reject_known_sender_login_mismatch":
            ev.step(shown, "dunno", "sender has no owner")
            return DUNNO
        owners = [o.lower() for o in split_list(owners_hit.value)] if owners_hit else []
        if user.lower() in owners:
            ev.step(shown, "dunno", f"{ev.sender} is owned by {user}")
            return DUNNO
        status = ev.reject(
            553,
            "5.7.1",
            f"<{ev.sender}>: Sender address rejected: not owned by user {user}",
            what=shown,
        )
        ev.step(shown, _status_result(status, ev.reply[0]), "smtpd_sender_login_maps")
        return status
    if not user and kind != "reject_authenticated_sender_login_mismatch" and owners_hit is not None:
        status = ev.reject(
            553, "5.7.1", f"<{ev.sender}>: Sender address rejected: not logged in", what=shown
        )
        ev.step(shown, _status_result(status, ev.reply[0]), "smtpd_sender_login_maps")
        return status
    ev.step(shown, "dunno", "")
    return DUNNO


_CLASS_WORDS = {
    "local": "local (mydestination)",
    "alias": "virtual alias",
    "virtual": "virtual mailbox",
    "relay": "relay_domains",
    "default": "foreign",
}


# ---------------------------------------------------------------------------------------
# The session
# ---------------------------------------------------------------------------------------


class _Outcome(NamedTuple):
    command: str
    code: int
    text: str


def _run_session(ev: _Eval) -> _Outcome:
    p = ev.p
    c = ev.c
    verb = c.verb
    client_list, helo_list = p.lists["client"], p.lists["helo"]
    dip = ev.defer_if_permit  # one SMTPD_DEFER, its `active` flag saved per stage
    dip_client = dip_helo = False
    # Connect: with smtpd_delay_reject = no the client list answers instead of the greeting.
    if not p.delay_reject:
        dip.active = False
        if ev.check_list("client", client_list, ev.namaddr, CLIENT) == REJECT:
            return _Outcome("connect", *ev.reply)
        dip_client = dip.active
    # STARTTLS (right after the first EHLO), then what TLS changes for AUTH.
    refused = _starttls(ev)
    if refused is not None:
        return refused
    # HELO/EHLO
    if c.helo is not None:
        ev.helo_name = c.helo
        if not p.delay_reject:
            dip.active = dip_client
            if ev.check_list("helo", helo_list, c.helo, HELO) == REJECT:
                # A rejected HELO leaves the session without a HELO name.
                ev.helo_name = None
                return _Outcome("helo", *ev.reply)
            dip_helo = dip.active
    if verb == "EXPN":
        ev.stage = "expn"
        ev.step("EXPN", "reject", "Postfix does not implement EXPN", "built-in")
        return _Outcome("expn", 500, "5.5.2 Error: command not recognized")
    first = {"VRFY": "vrfy", "ETRN": "etrn"}.get(verb, "mail")
    if p.tls_required and not ev.tls:
        ev.stage = first
        ev.step(
            "smtpd_tls_security_level = encrypt",
            "reject",
            "the client did not say STARTTLS",
            p.tls_level_origin,
        )
        return _Outcome(first, 530, "5.7.0 Must issue a STARTTLS command first")
    if verb == "VRFY":
        return _vrfy(ev)
    if verb == "ETRN":
        return _etrn(ev, dip_client, dip_helo)
    ev.stage = "mail"
    if _helo_missing(ev):
        return _Outcome("mail", 503, "5.5.1 Error: send HELO/EHLO first")
    dip_sender = False
    if not p.delay_reject:
        dip.active = dip_client or dip_helo
        status, dip_sender = _check_mail(ev)
        if status == REJECT:
            return _Outcome("mail", *ev.reply)
    ev.sender = c.sender
    refused = _check_rcpt(ev, c.recipient, "rcpt", dip_sender, with_sender=True)
    if refused is not None:
        return refused
    if verb == "DATA":
        return _data(ev)
    return _Outcome("rcpt", 250, "2.1.5 Ok")


def _starttls(ev: _Eval) -> _Outcome | None:
    p, c = ev.p, ev.c
    ev.tls = p.tls_wrapper and p.tls_has_cert
    if ev.tls:
        ev.stage = "tls"
        ev.step("smtpd_tls_wrappermode", "dunno", "the whole session is TLS (port 465 style)")
    elif c.tls:
        ev.stage = "tls"
        if p.tls_offered:
            ev.tls = True
            ev.step(
                "STARTTLS",
                "dunno",
                "the client starts TLS (no client certificate)",
                p.tls_level_origin,
            )
        elif p.tls_level in ("may", "encrypt"):
            # STARTTLS follows the level; without a certificate smtpd logs "No server certs
            # available. TLS won't be enabled" and refuses the handshake.
            ev.step(
                "STARTTLS",
                "defer",
                f"smtpd_tls_security_level = {p.tls_level} without a certificate: smtpd "
                "offers STARTTLS and fails it",
                p.tls_level_origin,
            )
            return _Outcome("connect", 454, "4.7.0 TLS not available due to local problem")
        else:
            ev.step(
                "STARTTLS",
                "skipped",
                f"not offered (smtpd_tls_security_level = {p.tls_level}): the session stays "
                "in plaintext",
                p.tls_level_origin,
            )
    ev.sasl_user = c.sasl_user
    if c.sasl_user and p.sasl_enabled and p.tls_auth_only and not ev.tls:
        ev.stage = "tls"
        ev.step(
            "smtpd_tls_auth_only",
            "skipped",
            f"AUTH is offered only after STARTTLS: {c.sasl_user} cannot log in on a "
            "plaintext session",
            p.tls_auth_only_origin,
        )
        ev.sasl_user = None
    return None


def _helo_missing(ev: _Eval) -> bool:
    """smtpd_helo_required and no HELO/EHLO yet (the step is traced; the reply text differs
    per command, as in smtpd.c)."""
    if not ev.p.helo_required or ev.helo_name is not None:
        return False
    ev.step(
        "smtpd_helo_required",
        "reject",
        "send HELO/EHLO first",
        str(ev.p.context.origin("smtpd_helo_required")),
    )
    return True


def _delayed_client_helo(ev: _Eval, command: str) -> tuple[_Outcome | None, bool, bool]:
    """With smtpd_delay_reject: the client list, then the helo list (when there was a
    HELO), at `command` -> (the refusal or None, defer_if_permit after each list)."""
    p = ev.p
    dip = ev.defer_if_permit
    dip.active = False
    if ev.check_list("client", p.lists["client"], ev.namaddr, CLIENT) == REJECT:
        return _Outcome(command, *ev.reply), False, False
    dip_client = dip.active
    if ev.helo_name is None:
        return None, dip_client, False
    if ev.check_list("helo", p.lists["helo"], ev.helo_name, HELO) == REJECT:
        return _Outcome(command, *ev.reply), False, False
    return None, dip_client, dip.active


def _check_rcpt(
    ev: _Eval, recipient: str, command: str, dip_sender: bool, *, with_sender: bool
) -> _Outcome | None:
    """smtpd_check_rcpt(): the delayed client/helo/sender lists, relay and recipient lists,
    defer_if_permit, unlisted recipients. None when the recipient passes."""
    p = ev.p
    dip = ev.defer_if_permit
    if recipient == "":
        return _Outcome(command, 501, "5.1.3 Bad recipient address syntax")
    # The DATA and end-of-data lists see the recipient, <postmaster> included.
    ev.recipient = recipient
    if recipient.lower() == "postmaster":
        ev.stage = command
        ev.step("postmaster", "permit", "RFC 5321: <postmaster> is always accepted")
        return None
    if p.delay_reject:
        refused, dip_client, dip_helo = _delayed_client_helo(ev, command)
        if refused is not None:
            return refused
        if with_sender:
            dip.active = dip_client or dip_helo
            status, dip_sender = _check_mail(ev)
            if status == REJECT:
                return _Outcome(command, *ev.reply)
    # Without MAIL (VRFY) smtpd restores the flag the last MAIL left: none in a new session.
    dip.active = dip_sender
    ev.recursion = 0
    ev.warn_if_reject = 0
    ev.defer_if_reject = _Defer()
    relay, rcpt = p.lists["relay"], p.lists["recipient"]
    if p.compat_fake_relay:
        order = [("recipient", rcpt)]
        ev.stage = "relay"
        ev.step(
            "smtpd_relay_restrictions",
            "dunno",
            "compatibility_level < 1 and not set: empty (Postfix only logs what the newer "
            "default would do)",
            relay.origin,
        )
    elif p.relay_first:
        order = [("relay", relay), ("recipient", rcpt)]
    else:
        order = [("recipient", rcpt), ("relay", relay)]
    status = DUNNO
    for stage, lst in order:
        ev.stage = stage
        ev.origin = lst.origin
        if not lst.words:
            continue
        try:
            status = ev.generic(lst.words, recipient, RECIPIENT, "check_recipient_access")
        except _ServerError:
            status = REJECT
        if status == REJECT:
            return _Outcome(command, *ev.reply)
    ev.stage = "builtin"
    if dip.active:
        ev.step(
            "defer_if_permit",
            "defer",
            f"an earlier defer_if_permit turns the result into {dip.code}",
        )
        status = ev.reject(dip.code, dip.dsn, dip.text, dip.error_class)
        if status == REJECT:
            return _Outcome(command, *ev.reply)
    if p.reject_unlisted_recipient and not ev.recipient_checked and not ev.discard:
        ev.origin = str(p.context.origin("smtpd_reject_unlisted_recipient"))
        try:
            status = ev.rcpt_maps(recipient, RECIPIENT)
        except _ServerError:
            status = REJECT
        ev.step(
            "smtpd_reject_unlisted_recipient",
            _status_result(status, ev.reply[0]),
            ev.reply[1]
            if status == REJECT
            else "recipient is known (or its domain is not checked)",
        )
        if status == REJECT:
            return _Outcome(command, *ev.reply)
    return None


def _vrfy(ev: _Eval) -> _Outcome:
    """vrfy_cmd(): disable_vrfy_command, then the recipient checks without a sender."""
    p = ev.p
    ev.stage = "vrfy"
    if p.disable_vrfy:
        ev.step(
            "disable_vrfy_command",
            "reject",
            "VRFY is disabled",
            str(p.context.origin("disable_vrfy_command")),
        )
        return _Outcome("vrfy", 502, "5.5.1 VRFY command is disabled")
    argument = ev.c.recipient
    if not argument.strip():
        return _Outcome("vrfy", 501, "5.5.4 Syntax: VRFY address")
    ev.sender = None
    refused = _check_rcpt(ev, argument, "vrfy", False, with_sender=False)
    if refused is not None:
        return refused
    ev.stage = "vrfy"
    ev.step(
        "VRFY",
        "permit",
        "252 is the answer for every address the recipient checks pass; an unknown local "
        "user gets 550 (the difference tells which users exist)",
        "built-in",
    )
    return _Outcome("vrfy", 252, f"2.0.0 {argument}")


def _etrn(ev: _Eval, dip_client: bool, dip_helo: bool) -> _Outcome:
    """etrn_cmd() and smtpd_check_etrn(): HELO, syntax, delayed client/helo lists,
    smtpd_etrn_restrictions, then the fast flush service (fast_flush_domains)."""
    p = ev.p
    dip = ev.defer_if_permit
    ev.stage = "etrn"
    if _helo_missing(ev):
        return _Outcome("etrn", 503, "Error: send HELO/EHLO first")
    domain = ev.c.recipient.strip()
    if not domain or " " in domain:
        return _Outcome("etrn", 500, "Syntax: ETRN domain")
    if domain[0] in "@#":
        domain = domain[1:]
    literal = domain.startswith("[") and domain.endswith("]")
    if not (valid_hostname(domain) or (literal and _valid_mailhost_addr(domain[1:-1]))):
        ev.step("ETRN", "reject", f"{domain} is not a domain name or address literal")
        return _Outcome("etrn", 501, "Error: invalid parameter syntax")
    if p.delay_reject:
        refused, dip_client, dip_helo = _delayed_client_helo(ev, "etrn")
        if refused is not None:
            return refused
    dip.active = dip_client or dip_helo
    ev.etrn = domain
    if ev.check_list("etrn", p.lists["etrn"], domain, ETRN) == REJECT:
        return _Outcome("etrn", *ev.reply)
    if dip.active:
        ev.stage = "builtin"
        ev.step("defer_if_permit", "defer", f"an earlier defer_if_permit: {dip.code}")
        if ev.reject(dip.code, dip.dsn, dip.text, dip.error_class) == REJECT:
            return _Outcome("etrn", *ev.reply)
    ev.stage = "etrn"
    origin = str(p.context.origin("fast_flush_domains"))
    if p.fast_flush_domains.match_name(domain) is None:
        ev.step("fast_flush_domains", "reject", f"{domain} is not a fast flush domain", origin)
        return _Outcome("etrn", 459, f"<{domain}>: service unavailable")
    if not p.flush_running:
        ev.step("flush service", "defer", "master.cf has no flush service", origin)
        return _Outcome("etrn", 458, "Unable to queue messages")
    ev.step("fast_flush_domains", "permit", f"{domain} is a fast flush domain", origin)
    return _Outcome("etrn", 250, "Queuing started")


def _data(ev: _Eval) -> _Outcome:
    """smtpd_check_data() at DATA, then smtpd_check_eod() after an empty message."""
    p = ev.p
    for stage, name, reply_class, command, accepted in (
        ("data", "DATA", DATA, "data", None),
        ("end-of-data", "END-OF-MESSAGE", EOD, "end-of-data", (250, "2.0.0 Ok: queued")),
    ):
        dip = ev.defer_if_permit
        dip.active = False
        if ev.check_list(stage, p.lists[stage], name, reply_class) == REJECT:
            return _Outcome(command, *ev.reply)
        if dip.active:
            ev.stage = stage
            ev.step("defer_if_permit", "defer", f"an earlier defer_if_permit: {dip.code}")
            if ev.reject(dip.code, dip.dsn, dip.text, dip.error_class) == REJECT:
                return _Outcome(command, *ev.reply)
        if accepted is not None:
            return _Outcome(command, *accepted)
    raise AssertionError("unreachable")


def _check_mail(ev: _Eval) -> tuple[int, bool]:
    """smtpd_check_mail(): the sender list, then the implicit reject_unlisted_sender.

    Returns the status and the defer_if_permit flag as it stood after the sender list."""
    p = ev.p
    sender = ev.c.sender
    ev.sender = sender
    ev.sender_checked = False
    status = ev.check_list("sender", p.lists["sender"], sender, SENDER)
    dip_sender = ev.defer_if_permit.active
    if (
        p.reject_unlisted_sender
        and status != REJECT
        and not ev.sender_checked
        and not ev.discard
        and sender
    ):
        ev.stage = "builtin"
        ev.origin = str(p.context.origin("smtpd_reject_unlisted_sender"))
        try:
            status = ev.rcpt_maps(sender, SENDER)
        except _ServerError:
            status = REJECT
        ev.step(
            "smtpd_reject_unlisted_sender",
            _status_result(status, ev.reply[0]),
            ev.reply[1] if status == REJECT else "sender is known (or its domain is not checked)",
        )
    return status, dip_sender


def _verdict(code: int) -> str:
    if code == 0:
        return "unavailable"
    if code < 400:
        return "accept"
    return "defer" if code < 500 else "reject"


MAX_OUTSIDE_FORKS = 8


class Engine:
    """Decisions for every service of one configuration; services compile once."""

    def __init__(self, config: PostfixConfig) -> None:
        self.config = config
        self.tables = TableCache(Path(config.config_dir))
        self._policies: dict[str, ServicePolicy] = {}
        self._warning_cache: dict[str, tuple[tuple[int, int], tuple[str, ...]]] = {}
        self._by_name: dict[str, ServicePolicy] = {}

    def policy(self, service: str | Service | None) -> ServicePolicy:
        if isinstance(service, str):
            known = self._by_name.get(service)
            if known is not None:
                return known
            found = self._policy(service)
            self._by_name[service] = found
            return found
        return self._policy(service)

    def _policy(self, service: str | Service | None) -> ServicePolicy:
        if isinstance(service, str):
            try:
                resolved: Service | None = self.config.service(service)
            except ConfigError as error:
                raise AccessError(str(error)) from None
        else:
            resolved = service
        key = resolved.key if resolved else ""
        policy = self._policies.get(key)
        if policy is None:
            if resolved is not None and not resolved.is_smtpd:
                raise AccessError(f"service {resolved.key} runs {resolved.program}, not smtpd")
            policy = ServicePolicy(self.config, resolved, self.tables)
            self._policies[key] = policy
        return policy

    def startup_problem(self, service: str | Service | None) -> tuple[str, str] | None:
        """Why smtpd refuses to run for this service (message, where), or None."""
        return self.policy(service).startup_problem

    def decide(self, service: str | Service | None, client: ClientContext) -> Decision:
        policy = self.policy(service)
        if policy.startup_problem is not None:
            message, where = policy.startup_problem
            step = TraceStep("startup", "smtpd_check_init", "error", where, message)
            return Decision(
                policy.key,
                "connect",
                0,
                f"fatal: {message}",
                "unavailable",
                (step,),
                (),
                tuple(policy.warnings),
            )
        primary, questions = self._evaluate(policy, client, {})
        outside: list[Outside] = []
        for index, (restriction, origin, question) in enumerate(questions[:MAX_OUTSIDE_FORKS]):
            other, _ = self._evaluate(policy, client, {index: True})
            outside.append(Outside(restriction, origin, question, other))
        if outside:
            primary = Decision(
                primary.service,
                primary.command,
                primary.code,
                primary.text,
                primary.decision,
                primary.trace,
                tuple(outside),
                primary.warnings,
            )
        return primary

    def _warnings(self, policy: ServicePolicy) -> tuple[str, ...]:
        # Tables are read on first use: recount when more have been read.
        state = (len(self.tables), len(policy.warnings))
        cached = self._warning_cache.get(policy.key)
        if cached is None or cached[0] != state:
            cached = (state, tuple(policy.warnings) + tuple(self.tables.warnings()))
            self._warning_cache[policy.key] = cached
        return cached[1]

    def _evaluate(
        self, policy: ServicePolicy, client: ClientContext, answers: dict[int, bool]
    ) -> tuple[Decision, list[tuple[str, str, str]]]:
        ev = _Eval(policy, client, answers)
        outcome = _run_session(ev)
        if policy.soft_bounce and outcome.code >= 500:
            # smtpd_chat_reply() turns every 5xx into 4xx, protocol errors included.
            outcome = _Outcome(
                outcome.command,
                outcome.code - 100,
                "4" + outcome.text[1:] if outcome.text[:1] == "5" else outcome.text,
            )
        decision = Decision(
            policy.key,
            outcome.command,  # type: ignore[arg-type]
            outcome.code,
            outcome.text,
            _verdict(outcome.code),  # type: ignore[arg-type]
            tuple(ev.trace),
            (),
            self._warnings(policy),
        )
        return decision, ev.questions


def decide(config: PostfixConfig, service: str | Service | None, client: ClientContext) -> Decision:
    """What smtpd of `service` answers this client (see Engine for many decisions)."""
    return Engine(config).decide(service, client)
