"""Configuration from the environment, read in one place.

Every service and the CLI take their configuration from the same variables (docs/architecture.md), so a
process in the cluster and one on a laptop behave the same.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from services.core.errors import ConfigError

DEFAULT_REGION = "us-east-1"


def normalize_database_url(url: str) -> str:
    """Accept plain `postgresql://` (and `postgres://`) URLs and select the psycopg 3 driver."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ConfigError(f"DATABASE_URL must be a postgresql:// URL, got {url.split(':', 1)[0]}://…")


@dataclass(frozen=True)
class Settings:
    """The environment a service runs with; fields are None when the variable is unset."""

    database_url: str | None
    queue_url: str | None
    dlq_url: str | None
    aws_region: str
    aws_endpoint_url: str | None
    #: Base URL of the operator console; notifications link to `{console_url}/executions/{id}`.
    console_url: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            database_url=env.get("DATABASE_URL") or None,
            queue_url=env.get("QUEUE_URL") or None,
            dlq_url=env.get("DLQ_URL") or None,
            aws_region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION,
            aws_endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
            console_url=(env.get("CONSOLE_URL") or "").rstrip("/") or None,
        )

    def require_database_url(self) -> str:
        if not self.database_url:
            raise ConfigError("DATABASE_URL is not set (a postgresql:// URL)")
        return normalize_database_url(self.database_url)

    def require_queue_url(self) -> str:
        if not self.queue_url:
            raise ConfigError("QUEUE_URL is not set (the SQS queue URL)")
        return self.queue_url

    def require_dlq_url(self) -> str:
        if not self.dlq_url:
            raise ConfigError("DLQ_URL is not set (the dead-letter queue URL)")
        return self.dlq_url
