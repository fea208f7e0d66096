"""The shared vocabulary of every deployable: statuses, triggers, the runner Job rules, limits.

The dispatcher, the spawner, the runner, the CLI and the Pulumi program are deployed separately
but must agree on these values: a status the runner writes is one the database's CHECK
constraint accepts and the spawner's reconciler understands; the Job the spawner builds is the
one the Pulumi program's PodTemplate and RBAC were written for. Each value is written once,
here. Standard library only: this is the one module of `services` that `infra/` imports, and
the runner imports it before anything heavy.
"""

from __future__ import annotations

from enum import StrEnum

# ---------------------------------------------------------------------------------------------
# Executions (docs/architecture.md): what started a run and where it is in its life.


class Trigger(StrEnum):
    SCHEDULE = "schedule"
    MANUAL = "manual"
    RETRY = "retry"
    BACKFILL = "backfill"
    RERUN = "rerun"


class ExecutionStatus(StrEnum):
    PENDING = "pending"
    #: Held back by a concurrency limit, a pool or a buffering overlap (services.spawner.admission).
    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


#: A terminal status is never overwritten.
TERMINAL_STATUSES: frozenset[str] = frozenset(
    {
        ExecutionStatus.SUCCEEDED,
        ExecutionStatus.FAILED,
        ExecutionStatus.TIMED_OUT,
        ExecutionStatus.CANCELLED,
        ExecutionStatus.SKIPPED,
    }
)
ACTIVE_STATUSES: frozenset[str] = frozenset(
    {ExecutionStatus.PENDING, ExecutionStatus.QUEUED, ExecutionStatus.STARTING, ExecutionStatus.RUNNING}
)
#: The statuses that hold a concurrency slot (a limit, a pool, a buffering schedule).
SLOT_STATUSES: frozenset[str] = frozenset({ExecutionStatus.STARTING, ExecutionStatus.RUNNING})
#: The statuses a runner may claim an execution from (a Job is created after `pending`).
CLAIMABLE_STATUSES: tuple[str, ...] = (ExecutionStatus.PENDING, ExecutionStatus.STARTING)


class StepStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    #: Not run again: a re-run from a later step copied this step's recorded output.
    REUSED = "reused"


# ---------------------------------------------------------------------------------------------
# Schedules (README, Schedules).


class Catchup(StrEnum):
    LATEST = "latest"
    ALL = "all"
    NONE = "none"


class Overlap(StrEnum):
    ALLOW = "allow"
    SKIP = "skip"
    REPLACE = "replace"
    #: Temporal's semantics: wait `queued` behind the running one (one waiting at most / all).
    BUFFER_ONE = "buffer_one"
    BUFFER_ALL = "buffer_all"


class FireDecision(StrEnum):
    """What the dispatcher did with one fire time (the fire-time ledger)."""

    SENT = "sent"
    DROPPED = "dropped"


class FireReason(StrEnum):
    """Why a fire time was dropped (docs/schedules.md, "Fire-time ledger")."""

    OUTSIDE_WINDOW = "outside_window"  # older than catchup_window_seconds when first seen
    CATCHUP_NONE = "catchup_none"  # missed under `catchup: none`
    SUPERSEDED_LATEST = "superseded_latest"  # an older missed time under `catchup: latest`
    PAUSED = "paused"  # passed while the schedule was paused
    EDITED = "edited"  # was due but not yet dispatched when the schedule was edited
    OVERLAP_SKIP = "overlap_skip"  # its run was skipped by `overlap: skip`
    OVERLAP_REPLACE = "overlap_replace"  # its run was cancelled by a newer one under `overlap: replace`
    BEFORE_START = "before_start"  # before the schedule's start_at (backfill)
    AFTER_END = "after_end"  # after the schedule's end_at (backfill)


# ---------------------------------------------------------------------------------------------
# Notifications (docs/notifications.md).


class NotificationEvent(StrEnum):
    """What a notification is about (docs/notifications.md)."""

    FAILED = "failed"
    RECOVERED = "recovered"
    MISSED = "missed"
    LATE = "late"
    LONG_RUNNING = "long_running"
    DEAD_LETTERED = "dead_lettered"


class NotificationStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class ChannelType(StrEnum):
    WEBHOOK = "webhook"
    SLACK = "slack"
    EMAIL = "email"


# ---------------------------------------------------------------------------------------------
# Access (docs/console.md): what an API token may do; each role includes the ones before it.


class Role(StrEnum):
    """What an API token may do; each role includes the ones before it."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"


# ---------------------------------------------------------------------------------------------
# Workflows and runs: defaults and size limits.

DEFAULT_TIMEOUT_SECONDS = 300
MAX_TIMEOUT_SECONDS = 86400
#: A run's input (a JSON object, measured as compact UTF-8 JSON) and a step's stored output.
MAX_INPUT_BYTES = 256 * 1024
MAX_OUTPUT_BYTES = 64 * 1024
#: Larger inputs are not passed in the Job's environment; the runner reads the stored input
#: instead (a Pod's whole spec must stay well under etcd's object size limit).
MAX_INLINE_INPUT_BYTES = 32 * 1024

# ---------------------------------------------------------------------------------------------
# The runner Job (docs/architecture.md, "Runner Job contract"; fixed by the design).

JOB_NAME_PREFIX = "workflow-exec-"
MAX_NAME_LENGTH = 63
RUNNER_APP = "workflow-runner"
APP_LABEL = "app"
WORKFLOW_ID_LABEL = "workflow-id"
EXECUTION_ID_LABEL = "execution-id"
TTL_SECONDS_AFTER_FINISHED = 3600
BACKOFF_LIMIT = 0
RESTART_POLICY = "Never"
RUNNER_CONTAINER = "runner"
RUNNER_COMMAND = ("wfctl", "execute")
DEFAULT_REQUESTS = {"memory": "128Mi", "cpu": "100m"}
DEFAULT_LIMITS = {"memory": "512Mi", "cpu": "500m"}

#: The unprivileged user and group baked into the images (images/Dockerfile).
RUN_AS_USER = 10001
RUN_AS_GROUP = 10001
#: Every container gets a writable /tmp backed by an emptyDir: its root file system is read-only.
TMP_VOLUME = "tmp"
TMP_PATH = "/tmp"
TMP_SIZE_LIMIT = "256Mi"

# The runner's environment. Per-run variables are set by the spawner on each Job; secret ones
# come from Kubernetes Secrets (`secretKeyRef`), whose keys are the variable names themselves.
WORKFLOW_ID_ENV = "WORKFLOW_ID"
EXECUTION_ID_ENV = "EXECUTION_ID"
WORKFLOW_INPUT_ENV = "WORKFLOW_INPUT"
PER_RUN_ENV_NAMES = (WORKFLOW_ID_ENV, EXECUTION_ID_ENV, WORKFLOW_INPUT_ENV)
DATABASE_URL_ENV = "DATABASE_URL"
INTEGRATION_ENCRYPTION_KEY_ENV = "INTEGRATION_ENCRYPTION_KEY"
SECRET_ENV_NAMES = (DATABASE_URL_ENV, INTEGRATION_ENCRYPTION_KEY_ENV)

#: How each process names its database connections (`application_name` in pg_stat_activity);
#: a runner adds its execution id.
CLI_APPLICATION_NAME = "wfctl"
DISPATCHER_APPLICATION_NAME = "wfr-dispatcher"
SPAWNER_APPLICATION_NAME = "wfr-spawner"
RUNNER_APPLICATION_NAME = "wfr-runner"

# ---------------------------------------------------------------------------------------------
# Fixed names of the platform's Kubernetes objects. Deliberately not auto-named: other parts
# refer to them by name (the spawner reads the runner template by name, the Role is scoped to
# that one template, IAM trust policies name the service accounts, operators type them).

DISPATCHER_CRONJOB = "workflow-dispatcher"
DISPATCHER_SERVICE_ACCOUNT = "workflow-dispatcher"
SPAWNER_DEPLOYMENT = "workflow-spawner"
SPAWNER_SERVICE_ACCOUNT = "workflow-spawner"
SPAWNER_ROLE = "workflow-spawner"
RUNNER_TEMPLATE = "workflow-runner"
RUNNER_SERVICE_ACCOUNT = "workflow-runner"
DATABASE_SECRET = "workflow-runtime-database"
ENCRYPTION_KEY_SECRET = "workflow-runtime-encryption-key"
AWS_CREDENTIALS_SECRET = "workflow-runtime-aws-credentials"
CONSOLE_DEPLOYMENT = "workflow-console"
CONSOLE_SERVICE = "workflow-console"
CONSOLE_SERVICE_ACCOUNT = "workflow-console"
CONSOLE_SECRET = "workflow-runtime-console"
