"""Errors of the configuration reader."""

from __future__ import annotations

from postharden.errors import InputError


class ConfigError(InputError):
    """A configuration directory or file that cannot be read as Postfix would read it."""
