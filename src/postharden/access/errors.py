"""Errors of the access engine that the user can cause."""

from __future__ import annotations

from postharden.errors import InputError


class AccessError(InputError):
    """A service, table or client context that cannot be used as given."""
