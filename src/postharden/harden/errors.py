"""Errors of the harden capability: one line, the CLI's exit code."""

from __future__ import annotations

from postharden.errors import EXIT_FINDINGS, InputError


class HardenError(InputError):
    """Hardening cannot go ahead as asked (bad profile, unreadable directory, ...)."""


class ProfileError(HardenError):
    """A profile file is inconsistent or cannot be read."""


class ApplyError(HardenError):
    """Writing the configuration failed; the files were restored (the message says so)."""

    exit_code = EXIT_FINDINGS


class LockedError(HardenError):
    """Another apply or rollback holds the lock of this configuration directory."""


class UnsafePlanError(HardenError):
    """The plan would stop legitimate mail; refused without --force."""

    exit_code = EXIT_FINDINGS
