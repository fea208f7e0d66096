"""Configuration from the environment, read in one place, with the defaults beside it.

Every service and the CLI take their configuration from the same variables (docs/architecture.md),
so a process in the cluster and one on a laptop behave the same. Each service has one typed
settings object here: `Settings` (the platform: database, queue, logging — what the dispatcher
and the CLI need), `RunnerSettings` (the runner Job's environment) and `SpawnerSettings` (the
spawner's tunables, whose defaults `wfctl spawn` shows) and `ConsoleSettings` (`wfctl serve`).
Nothing else reads `os.environ`.
Standard library only: the runner reads its settings before anything heavy is imported.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from services.contract import (
    DATABASE_URL_ENV,
    EXECUTION_ID_ENV,
    INTEGRATION_ENCRYPTION_KEY_ENV,
    RUNNER_TEMPLATE,
    WORKFLOW_ID_ENV,
    WORKFLOW_INPUT_ENV,
    Role,
)
from services.core.errors import ConfigError, UserError

DEFAULT_REGION = "us-east-1"
_POSTGRES_SCHEMES = ("postgresql+psycopg://", "postgresql://", "postgres://")
_TRUE = ("1", "true", "yes")


def check_database_url(url: str) -> str:
    """The URL as given, once it is known to be a PostgreSQL one (`postgresql://` or `postgres://`)."""
    if not url.startswith(_POSTGRES_SCHEMES):
        raise ConfigError(f"DATABASE_URL must be a postgresql:// URL, got {url.split(':', 1)[0]}://…")
    return url


def _without_scheme(url: str) -> str:
    scheme = next(prefix for prefix in _POSTGRES_SCHEMES if url.startswith(prefix))
    return url[len(scheme) :]


def sqlalchemy_url(url: str) -> str:
    """The URL for SQLAlchemy, which needs the psycopg 3 driver named."""
    return "postgresql+psycopg://" + _without_scheme(check_database_url(url))


def libpq_url(url: str) -> str:
    """The URL for psycopg (libpq), which takes plain `postgresql://`."""
    return "postgresql://" + _without_scheme(check_database_url(url))


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def _positive_int(text: str | None, default: int) -> int:
    """A positive whole number, or the default for an unset or unusable value."""
    try:
        value = int(text or "")
    except ValueError:
        return default
    return value if value > 0 else default


@dataclass(frozen=True)
class Settings:
    """The platform's environment; fields are None when the variable is unset."""

    database_url: str | None
    queue_url: str | None
    dlq_url: str | None
    aws_region: str
    aws_endpoint_url: str | None
    #: `json` in the cluster (one JSON event per line), `text` on a terminal.
    log_format: str = "text"
    log_level: str = "INFO"
    #: How long the fire-time ledger keeps its entries (FIRE_TIME_RETENTION_DAYS).
    fire_time_retention_days: int = 90
    #: INTEGRATION_ENCRYPTION_KEY: decrypts integration credentials and notification channels.
    encryption_keys: str | None = None
    #: WFCTL_API_URL and WFCTL_TOKEN: wfctl's operator commands go through the API instead.
    api_url: str | None = None
    api_token: str | None = None
    #: Base URL of the operator console; notifications link to `{console_url}/executions/{id}`.
    console_url: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = _env(env)
        return cls(
            database_url=env.get(DATABASE_URL_ENV) or None,
            queue_url=env.get("QUEUE_URL") or None,
            dlq_url=env.get("DLQ_URL") or None,
            aws_region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION,
            aws_endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
            log_format="json" if (env.get("LOG_FORMAT") or "").lower() == "json" else "text",
            log_level=(env.get("LOG_LEVEL") or "INFO").upper(),
            console_url=(env.get("CONSOLE_URL") or "").rstrip("/") or None,
            encryption_keys=env.get(INTEGRATION_ENCRYPTION_KEY_ENV) or None,
            api_url=(env.get("WFCTL_API_URL") or "").strip() or None,
            api_token=(env.get("WFCTL_TOKEN") or "").strip() or None,
            fire_time_retention_days=_positive_int(env.get("FIRE_TIME_RETENTION_DAYS"), default=90),
        )

    @property
    def json_logs(self) -> bool:
        return self.log_format == "json"

    def require_database_url(self) -> str:
        """The database URL as given (each driver adapts it: `sqlalchemy_url`, `libpq_url`)."""
        if not self.database_url:
            raise ConfigError("DATABASE_URL is not set (a postgresql:// URL)")
        return check_database_url(self.database_url)

    def require_queue_url(self) -> str:
        if not self.queue_url:
            raise ConfigError("QUEUE_URL is not set (the SQS queue URL)")
        return self.queue_url

    def require_dlq_url(self) -> str:
        if not self.dlq_url:
            raise ConfigError("DLQ_URL is not set (the dead-letter queue URL)")
        return self.dlq_url


@dataclass(frozen=True)
class RunnerSettings:
    """The runner Job's environment (docs/architecture.md, "Runner Job contract")."""

    workflow_id: str
    execution_id: uuid.UUID
    database_url: str
    workflow_input: str | None
    encryption_keys: str | None
    #: Steps may not reach private, loopback or metadata addresses (set in the cluster).
    deny_private_networks: bool

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RunnerSettings:
        env = _env(env)
        execution_id = (env.get(EXECUTION_ID_ENV) or "").strip()
        workflow_id = (env.get(WORKFLOW_ID_ENV) or "").strip()
        database_url = env.get(DATABASE_URL_ENV) or ""
        if not execution_id:
            raise ConfigError(f"{EXECUTION_ID_ENV} is not set (the execution record to run)")
        if not workflow_id:
            raise ConfigError(f"{WORKFLOW_ID_ENV} is not set (the workflow of the execution)")
        if not database_url:
            raise ConfigError(f"{DATABASE_URL_ENV} is not set (a postgresql:// URL)")
        try:
            parsed_id = uuid.UUID(execution_id)
        except ValueError:
            raise ConfigError(f"{EXECUTION_ID_ENV} is not a UUID: {execution_id[:80]!r}") from None
        return cls(
            workflow_id=workflow_id.lower(),
            execution_id=parsed_id,
            database_url=check_database_url(database_url),
            workflow_input=env.get(WORKFLOW_INPUT_ENV),
            encryption_keys=env.get(INTEGRATION_ENCRYPTION_KEY_ENV),
            deny_private_networks=env.get("RUNNER_DENY_PRIVATE_NETWORKS", "").strip().lower() in _TRUE,
        )


SPAWNER_LAUNCHERS = ("kubernetes", "local")


@dataclass(frozen=True)
class SpawnerSettings:
    """The spawner's tunables; `wfctl spawn`'s options default to these values."""

    launcher: str = "kubernetes"
    #: Messages handled at once.
    concurrency: int = 8
    #: Exit once the queue is empty and every launched run has finished.
    drain: bool = False
    #: A PodTemplate YAML file instead of the cluster's template named `template_name`.
    runner_template: Path | None = None
    template_name: str = RUNNER_TEMPLATE
    #: Where runner Jobs go; None: the spawner's own namespace (or `default`).
    namespace: str | None = None
    health_host: str = "0.0.0.0"
    #: Port of /healthz, /readyz and /metrics; None disables them (0 picks a free port).
    health_port: int | None = 8080
    #: SQS long-poll wait (0-20 s).
    wait_seconds: int = 20
    reconcile_seconds: float = 30.0
    #: How often the spawner delivers due notifications (where it holds the channels' key).
    notify_seconds: float = 5.0
    #: Seconds a run may take to start (image pull, scheduling) before it is failed.
    start_timeout_seconds: float = 600.0
    #: After SIGTERM, seconds to finish the messages in hand.
    grace_seconds: float = 25.0
    #: Base seconds before a failed Job creation is retried (doubling per receive).
    retry_backoff_seconds: int = 5
    #: Local launcher: the runner command line (default: this Python's `wfctl execute`).
    runner_command: Sequence[str] | None = None
    #: Local launcher: runs at once, and the folder of pid files a restarted spawner adopts.
    local_max_running: int = 4
    local_runs_dir: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **options: object) -> SpawnerSettings:
        """The given options, with RUNNER_TEMPLATE_NAME and RUNNER_NAMESPACE for those not given."""
        env = _env(env)
        if options.get("template_name") is None:
            options["template_name"] = env.get("RUNNER_TEMPLATE_NAME") or RUNNER_TEMPLATE
        if options.get("namespace") is None:
            options["namespace"] = env.get("RUNNER_NAMESPACE") or None
        return cls(**options)  # type: ignore[arg-type]

    def check(self) -> None:
        """Bad options: one line naming the option, before anything starts."""
        if self.launcher not in SPAWNER_LAUNCHERS:
            raise UserError("launcher", f"must be one of {', '.join(SPAWNER_LAUNCHERS)}, got {self.launcher!r}")
        if not 1 <= self.concurrency <= 256:
            raise UserError("concurrency", f"must be between 1 and 256, got {self.concurrency}")
        if not 0 <= self.wait_seconds <= 20:
            raise UserError("wait-seconds", f"must be between 0 and 20 (the SQS maximum), got {self.wait_seconds}")
        if self.health_port is not None and not 0 <= self.health_port <= 65535:
            raise UserError("health-port", f"must be a TCP port, got {self.health_port}")


SPAWNER_DEFAULTS = SpawnerSettings()


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
        env = _env(env)
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
