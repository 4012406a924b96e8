"""Errors of the log capability."""

from __future__ import annotations

from postharden.errors import InputError


class LogError(InputError):
    """A log file, stream or option that cannot be used as given."""
