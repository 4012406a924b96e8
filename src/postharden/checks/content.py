"""Content: header/body checks present, their tables valid (as the real postmap reads
them), and no rule that refuses ordinary legitimate mail."""

from __future__ import annotations

from collections.abc import Iterable

from postharden.checks.catalog import check, postconf_ref, readme_ref
from postharden.checks.env import CheckEnv
from postharden.checks.model import Category, Evidence, Fix, Hit, NotApplicable, Severity, Unknown
from postharden.checks.samples import LEGITIMATE_BODY, LEGITIMATE_HEADERS, refuses
from postharden.checks.tables import tables_of

CONTENT_PARAMETERS = ("header_checks", "mime_header_checks", "nested_header_checks", "body_checks")


@check(
    "PH-CNT-001",
    "No header or body checks",
    Category.CONTENT,
    Severity.INFO,
    implements=("checklist:header-checks",),
    references=(readme_ref("BUILTIN_FILTER_README"), postconf_ref("header_checks")),
)
def no_content_checks(env: CheckEnv) -> Iterable[Hit]:
    """None of `header_checks`, `mime_header_checks`, `body_checks` is set.

    The checklist asks for a small set of header rules (e.g. dangerous attachment names in
    `mime_header_checks`). They are cheap but blunt: prefer a content filter for spam and
    keep these to rules that can never hit legitimate mail (see PH-CNT-003). There is no
    generic fix: what to reject is a local decision.
    """
    if not env.role.expect("local_delivery") and not env.role.expect("public_smtp"):
        raise NotApplicable(f"role {env.role.name} receives no outside mail")
    main = env.main
    if any(main.expanded(name).strip() for name in CONTENT_PARAMETERS):
        return
    yield Hit(
        "no header_checks, mime_header_checks or body_checks",
        parameter="header_checks",
        evidence=tuple(env.evidence(main, name) for name in CONTENT_PARAMETERS),
        fix=Fix(
            "add e.g. mime_header_checks = regexp:/etc/postfix/mime_header_checks with "
            "rules for executable attachment names"
        ),
        location=env.location(main, "header_checks"),
    )


def _pattern_tables(env: CheckEnv) -> list[tuple[str, str, str]]:
    """(parameters, type, path) of each regexp/pcre content table in main.cf or a cleanup
    -o; one entry per table (mime_header_checks defaults to $header_checks)."""
    found: dict[tuple[str, str], list[str]] = {}
    contexts = [
        env.main,
        *(env.config.effective(s) for s in env.config.services if s.program == "cleanup"),
    ]
    for context in contexts:
        for name in CONTENT_PARAMETERS:
            for kind, path in tables_of(context, name):
                if kind in ("regexp", "pcre"):
                    names = found.setdefault((kind, path), [])
                    if name not in names:
                        names.append(name)
    return [(", ".join(names), kind, path) for (kind, path), names in found.items()]


@check(
    "PH-CNT-002",
    "A header/body checks table is missing or has syntax errors",
    Category.CONTENT,
    Severity.HIGH,
    implements=("checklist:header-checks", "runbook:postfix-check"),
    references=(readme_ref("regexp_table.5"), readme_ref("pcre_table.5")),
)
def table_errors(env: CheckEnv) -> Iterable[Hit]:
    """The real `postmap` cannot open a content table or warns about its rules.

    A broken pattern is skipped with a warning in the log (the rule silently does
    nothing); an unbalanced `if`/`endif` changes which rules apply; a missing file makes
    cleanup fail and mail wait in the queue. Each problem is reported with its line.
    """
    tables = _pattern_tables(env)
    if not tables:
        raise NotApplicable("no regexp/pcre header or body checks")
    unchecked: list[str] = []
    for parameter, kind, path in tables:
        spec = f"{kind}:{path}"
        fact = env.facts.pattern_tables.get(spec)
        if fact is None or not fact.checked:
            unchecked.append(f"{spec}: {fact.reason if fact else 'not examined'}")
            continue
        for problem in fact.problems:
            where = f"{path}:{problem.line}" if problem.line else path
            first = parameter.split(", ")[0]
            yield Hit(
                f"{where}: {problem.message}"
                + (f" (used by {parameter})" if "," in parameter else ""),
                parameter=first,
                evidence=(
                    env.evidence(env.main, first),
                    Evidence(origin=where, text=problem.message),
                ),
                fix=Fix(f"correct {where}"),
                key=f"{spec}|{problem.message}",
                location=(path, problem.line),
            )
    if unchecked:
        raise Unknown("; ".join(unchecked))


@check(
    "PH-CNT-003",
    "A content rule refuses legitimate mail",
    Category.CONTENT,
    Severity.MEDIUM,
    implements=("checklist:header-checks",),
    references=(readme_ref("BUILTIN_FILTER_README"), readme_ref("header_checks.5")),
)
def refuses_legitimate(env: CheckEnv) -> Iterable[Hit]:
    """A header/body rule answers REJECT or DISCARD to an ordinary line of legitimate mail.

    The lines asked about include `Content-Type: text/html` (HTML-only mail, which many
    newsletters, tickets and phones send), PDF attachments and plain greetings. Rules
    like `/^Content-Type: text\\/html/ REJECT` from old guides refuse that mail. The
    answers come from the real `postmap -q`.
    """
    tables = _pattern_tables(env)
    if not tables:
        raise NotApplicable("no regexp/pcre header or body checks")
    unchecked: list[str] = []
    for parameter, kind, path in tables:
        spec = f"{kind}:{path}"
        fact = env.facts.pattern_tables.get(spec)
        if fact is None or not fact.checked:
            unchecked.append(f"{spec}: {fact.reason if fact else 'not examined'}")
            continue
        names = parameter.split(", ")
        samples: set[str] = set()
        if "body_checks" in names:
            samples |= set(LEGITIMATE_BODY)
        if set(names) - {"body_checks"}:
            samples |= set(LEGITIMATE_HEADERS)
        for sample, answer in fact.matches:
            if sample not in samples or not refuses(answer):
                continue
            yield Hit(
                f"{spec} ({parameter}) answers '{answer}' to '{sample}'",
                parameter=names[0],
                evidence=(
                    env.evidence(env.main, names[0]),
                    Evidence(origin=path, text=f"postmap -q '{sample}' {spec}", effective=answer),
                ),
                fix=Fix(f"remove or narrow the rule in {path} that matches '{sample}'"),
                key=f"{spec}|{sample}",
                severity=Severity.MEDIUM,
                location=(path, None),
            )
    if unchecked:
        raise Unknown("; ".join(unchecked))
