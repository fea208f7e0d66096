"""Errors a user can fix, kept apart from bugs.

A `UserError` names the field that is wrong and is shown as one line with exit status 2;
any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input: an invalid field, a missing object, an oversized value."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFoundError(UserError):
    """The named object does not exist."""


class ConfigError(Exception):
    """The service is misconfigured (a missing or malformed environment variable)."""


class ConflictError(UserError):
    """The change clashes with what exists (a name already taken)."""
