"""Renderers of plan, apply, rollback and backups: each returns a string, never prints.

One interface: `render_plan(plan, fmt)`, `render_apply(result, fmt)`,
`render_rollback(result, fmt)`, `render_backups(config_dir, backups, fmt)`. JSON documents
carry `"schema_version": 1` and follow `postharden/schemas/<command>.schema.json`.
"""

from __future__ import annotations

import difflib
import json
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from postharden.harden import ApplyResult, Backup, Change, Plan, RollbackResult
from postharden.harden.edit import decode
from postharden.harden.plan import MAIN_CF

SCHEMA_VERSION = 1
PLAN_FORMATS = ("text", "diff", "postconf", "json")


def _json(document: dict[str, Any]) -> str:
    return (
        json.dumps({"schema_version": SCHEMA_VERSION, **document}, indent=2, ensure_ascii=False)
        + "\n"
    )


def _one_line(value: str | None) -> str:
    if value is None:
        return "(not set)"
    return " ".join(value.split()) or "(empty)"


# -- plan ---------------------------------------------------------------------------------


def plan_diff(plan: Plan) -> str:
    chunks: list[str] = []
    for name, old, new in plan.files():
        if old == new or new is None:
            continue
        old_lines = decode(old or b"").splitlines(keepends=True)
        new_lines = decode(new).splitlines(keepends=True)
        for lines in (old_lines, new_lines):
            if lines and not lines[-1].endswith("\n"):
                lines[-1] += "\n\\ No newline at end of file\n"
        chunks.extend(
            difflib.unified_diff(
                old_lines, new_lines, fromfile=f"a/{name}", tofile=f"b/{name}", n=3
            )
        )
    return "".join(chunks)


def postconf_commands(plan: Plan) -> list[str]:
    """The plan as `postconf -e` / `-P` / `-M` commands (what an admin would type)."""
    directory = shlex.quote(str(plan.config_dir))
    commands: list[str] = []
    for change in plan.changes:
        if change.action == "add-service":
            first, *options = change.new_value.splitlines()
            service = change.service or ""
            commands.append(f"postconf -c {directory} -M {shlex.quote(f'{service}={first}')}")
            for line in options:
                body = line.strip().removeprefix("-o").strip()
                if body.startswith("{"):
                    body = body.strip("{}").strip()
                name, _, value = body.partition("=")
                setting = f"{service}/{name.strip()}={value.strip()}"
                commands.append(f"postconf -c {directory} -P {shlex.quote(setting)}")
        elif change.action == "remove-override":
            setting = f"{change.service}/{change.parameter}"
            commands.append(f"postconf -c {directory} -PX {shlex.quote(setting)}")
        elif change.service is not None and change.file != MAIN_CF:
            setting = f"{change.service}/{change.parameter}={_one_line(change.new_value)}"
            commands.append(f"postconf -c {directory} -P {shlex.quote(setting)}")
        else:
            setting = f"{change.parameter} = {_one_line(change.new_value)}"
            commands.append(f"postconf -c {directory} -e {shlex.quote(setting)}")
    return commands


def plan_document(plan: Plan) -> dict[str, Any]:
    profile = plan.profile
    return {
        "command": "plan",
        "config_dir": str(plan.config_dir),
        "postfix_version": plan.postfix_version,
        "profile": {
            "name": profile.name,
            "version": profile.version,
            "role": profile.role,
            "sources": list(profile.sources),
        },
        "options": {
            "keep": sorted(plan.options.keep),
            "enable": sorted(plan.options.enable),
            "mynetworks": list(plan.options.mynetworks),
            "greylisting": plan.options.greylisting,
        },
        "empty": plan.empty,
        "changes": [change.as_dict() for change in plan.changes],
        "skipped": [skip.as_dict() for skip in plan.skipped],
        "effective": [value.as_dict() for value in plan.effective],
        "files": [
            {"file": name, "changed": old != new}
            for name, old, new in plan.files()
            if new is not None
        ],
        "safety": plan.safety.as_dict() if plan.safety is not None else None,
    }


def _change_lines(index: int, change: Change) -> list[str]:
    lines = [
        f"{index:3}. {change.where}: {change.parameter}  [{change.rule}; fixes {change.finding}]"
    ]
    lines.append(f"     why: {change.why}")
    if change.breaks:
        lines.append(f"     BREAKS: {change.breaks} (enabled with --enable {change.flag})")
    if change.action == "add-service":
        lines.append("     new service:")
        lines.extend(f"       {line}" for line in change.new_value.splitlines())
    else:
        lines.append(f"     old: {_one_line(change.old_value)}")
        lines.append(f"     new: {_one_line(change.new_value)}")
    lines.extend(f"     - {detail}" for detail in change.details)
    return lines


def _safety_lines(plan: Plan) -> list[str]:
    proof = plan.safety
    if proof is None:
        return []
    lines = ["", "Safety proof (decision engine, old vs new configuration):"]
    if proof.error:
        lines.append(f"  NOT PROVEN: {proof.error}")
        return lines
    worked = [flow for flow in proof.flows if flow.worked_before]
    lines.append(
        f"  {len(proof.flows)} legitimate flows checked, {len(worked)} worked before, "
        f"{len(proof.broken)} would stop"
    )
    for flow in proof.broken:
        lines.append(f"  BROKEN {flow.flow.label}: {flow.before} -> {flow.after}")
    for flow in proof.flows:
        if flow.intended is not None and flow.worked_before and not flow.works_after:
            lines.append(f"  closed on purpose {flow.flow.label}: {flow.intended}")
    for service, verdict, summary in proof.relays:
        marker = "OPEN  " if verdict == "open" else ""
        lines.append(f"  {marker}{service}: {summary}")
    lines.append("  verdict: " + ("safe" if proof.ok else "UNSAFE: apply refuses without --force"))
    return lines


def plan_text(plan: Plan) -> str:
    head = (
        f"postharden plan for {plan.config_dir} - profile {plan.profile.label}, "
        f"Postfix {plan.postfix_version}"
    )
    lines = [head]
    if plan.empty:
        lines.append("Nothing to change: the configuration meets the profile.")
    else:
        count = len(plan.changes)
        lines.append(
            f"{count} change{'s' if count != 1 else ''} in {', '.join(plan.changed_files())}:"
        )
        for index, change in enumerate(plan.changes, start=1):
            lines.extend(_change_lines(index, change))
        if plan.effective:
            lines.append("")
            lines.append("Effective values (old -> new):")
            for value in plan.effective:
                lines.append(
                    f"  {value.parameter} [{value.service}]: {_one_line(value.old) or '(empty)'}"
                    f" -> {_one_line(value.new) or '(empty)'}"
                )
    if plan.skipped:
        lines.append("")
        lines.append("Not in this plan:")
        lines.extend(f"  {skip.rule}: {skip.reason}" for skip in plan.skipped)
    lines.extend(_safety_lines(plan))
    return "\n".join(lines) + "\n"


def render_plan(plan: Plan, fmt: str) -> str:
    if fmt == "json":
        return _json(plan_document(plan))
    if fmt == "diff":
        return plan_diff(plan)
    if fmt == "postconf":
        return "".join(command + "\n" for command in postconf_commands(plan))
    return plan_text(plan)


# -- apply, rollback, backups --------------------------------------------------------------


def render_apply(result: ApplyResult, fmt: str) -> str:
    write = result.write
    if fmt == "json":
        return _json(
            {
                "command": "apply",
                "profile": {
                    "name": result.plan.profile.name,
                    "version": result.plan.profile.version,
                },
                "changes": [change.as_dict() for change in result.plan.changes],
                **result.as_dict(),
            }
        )
    lines: list[str] = []
    if not write.changed:
        lines.append(f"{write.config_dir}: nothing changed (the configuration meets the profile)")
    else:
        lines.append(
            f"{write.config_dir}: applied {len(result.plan.changes)} change(s) to "
            f"{', '.join(write.changed)}"
        )
        if write.backup:
            lines.append(f"  backup: main.cf.postharden-{write.backup} (and main.cf.old)")
        if write.check is not None:
            lines.append("  postfix check: ok")
        if write.reload is not None:
            lines.append("  postfix reload: ok")
    lines.extend(f"  note: {note}" for note in write.notes)
    lines.extend(f"  verified: {line}" for line in result.verified)
    lines.extend(f"  PROBLEM: {line}" for line in result.problems)
    return "\n".join(lines) + "\n"


def render_rollback(result: RollbackResult, fmt: str) -> str:
    if fmt == "json":
        return _json({"command": "rollback", **result.as_dict()})
    write = result.write
    what = ", ".join(result.parameters) if result.parameters else "whole files"
    lines = [f"{write.config_dir}: rollback ({what}) from backup {result.backup.stamp}"]
    if not write.changed:
        lines.append("  nothing changed: the files already match the backup")
    else:
        lines.extend(f"  {detail}" for detail in result.details)
        lines.append(f"  replaced {', '.join(write.changed)} (the previous files are *.old)")
        if write.check is not None:
            lines.append("  postfix check: ok")
        if write.reload is not None:
            lines.append("  postfix reload: ok")
    lines.extend(f"  note: {note}" for note in write.notes)
    return "\n".join(lines) + "\n"


def render_backups(config_dir: Path, backups: Sequence[Backup], fmt: str) -> str:
    if fmt == "json":
        return _json(
            {
                "command": "backups",
                "config_dir": str(config_dir),
                "backups": [backup.as_dict() for backup in backups],
            }
        )
    if not backups:
        return f"{config_dir}: no postharden backups\n"
    lines = [f"{config_dir}: {len(backups)} backup set(s), newest last"]
    for backup in backups:
        files = ", ".join(path.name for _, path in sorted(backup.files.items()))
        lines.append(f"  {backup.stamp}  {backup.created}  {files}")
    return "\n".join(lines) + "\n"
