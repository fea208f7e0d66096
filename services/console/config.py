"""The console's configuration, from the environment (docs/console.md)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from services.core.db.models import Role
from services.core.errors import ConfigError
from services.core.settings import Settings

#: How long a console sign-in lasts.
SESSION_MAX_AGE_SECONDS = 12 * 3600


@dataclass(frozen=True)
class ConsoleSettings:
    """What `wfctl serve` needs beyond the platform's settings.

    `secret_key` signs session cookies. Unset, a random key is generated per process: sessions
    then end with the process, and replicas behind one Service must share a key
    (CONSOLE_SECRET_KEY from a Secret) or sign-ins would bounce between them.
    """

    platform: Settings
    secret_key: str
    secret_key_generated: bool
    trusted_user_header: str | None
    trusted_user_role: Role
    secure_cookies: bool

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ConsoleSettings:
        env = os.environ if env is None else env
        key = env.get("CONSOLE_SECRET_KEY") or ""
        if key and len(key) < 32:
            raise ConfigError("CONSOLE_SECRET_KEY must be at least 32 characters")
        role_text = env.get("CONSOLE_TRUSTED_USER_ROLE") or Role.VIEWER.value
        try:
            role = Role(role_text)
        except ValueError:
            raise ConfigError(
                f"CONSOLE_TRUSTED_USER_ROLE must be viewer, operator or admin, not {role_text!r}"
            ) from None
        return cls(
            platform=Settings.from_env(env),
            secret_key=key or secrets.token_urlsafe(32),
            secret_key_generated=not key,
            trusted_user_header=(env.get("CONSOLE_TRUSTED_USER_HEADER") or "").strip() or None,
            trusted_user_role=role,
            secure_cookies=(env.get("CONSOLE_SECURE_COOKIES") or "").lower() in {"1", "true", "yes"},
        )
