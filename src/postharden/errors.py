"""Error base classes shared by every capability.

Errors a user can cause (a bad file, a bad host, a bad flag) are `PostHardenError`s: the CLI
prints their message as one line and exits with their `exit_code`. Anything else is a bug and
may show a traceback.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_UNEVALUATED = 3
EXIT_INTERRUPTED = 130


class PostHardenError(Exception):
    """A problem the user can fix; printed as one line."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, location: str | None = None) -> None:
        self.message = message
        self.location = location
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class UsageError(PostHardenError):
    """Flags that do not fit together."""


class InputError(PostHardenError):
    """A file, directory or stream that cannot be used as given."""
