"""What became of a runner Job, decided from its status alone: pure functions, no I/O.

The runner records its own result; these rules exist for the cases where it cannot: the pod was
killed at the deadline or for memory, the image never pulled, the pod vanished. Kept apart from
the API calls so every rule is tested with plain dictionaries (the API's JSON).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from services.contract import EXECUTION_ID_LABEL
from services.core.db.models import ExecutionStatus
from services.spawner.jobs import execution_id_of

#: Container waiting reasons meaning the pod will not start by itself.
NEVER_STARTING_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)


class JobState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"


FINISHED_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.TIMED_OUT})


@dataclass(frozen=True)
class JobOutcome:
    """One runner Job as the reconciler sees it.

    `stuck` marks a Job that still exists but will never run (an image that never pulls): the
    reconciler ends the execution and deletes the Job so it stops holding resources.
    """

    job_name: str
    execution_id: uuid.UUID | None
    state: JobState
    reason: str | None = None
    stuck: bool = False
    #: The runner process was killed by a signal nobody on the platform sent on purpose (not a
    #: deadline, not a delete): before its claim that is a platform fault, and the run is
    #: launched again instead of failed.
    killed: bool = False

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES or self.stuck


def execution_status_for(outcome: JobOutcome) -> ExecutionStatus | None:
    """The terminal status to record when the runner did not, or None to leave it alone.

    A Job that succeeded while its execution is still active means the runner exited 0 without
    writing a result, which is a failure of the run, not a success.
    """
    if outcome.state == JobState.TIMED_OUT:
        return ExecutionStatus.TIMED_OUT
    if outcome.state in (JobState.FAILED, JobState.SUCCEEDED) or outcome.stuck:
        return ExecutionStatus.FAILED
    return None


def error_for(outcome: JobOutcome) -> str:
    if outcome.state == JobState.SUCCEEDED:
        return "runner exited without recording a result"
    return outcome.reason or f"Job {outcome.job_name} {outcome.state}"


def _true_condition(status: Mapping[str, Any], kinds: Sequence[str]) -> Mapping[str, Any] | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") in kinds and str(condition.get("status")) == "True":
            return condition
    return None


def _container_statuses(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    status = pod.get("status") or {}
    return [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]


def termination_detail(pods: Sequence[Mapping[str, Any]]) -> str | None:
    """`OOMKilled (exit code 137)`-style text from the first terminated container, if any."""
    for pod in pods:
        for container in _container_statuses(pod):
            for key in ("state", "lastState"):
                terminated = ((container.get(key) or {}).get("terminated")) or None
                if terminated and (terminated.get("reason") or terminated.get("exitCode")):
                    reason = terminated.get("reason") or "Terminated"
                    return f"{reason} (exit code {terminated.get('exitCode')})"
    return None


def waiting_reason(pods: Sequence[Mapping[str, Any]]) -> str | None:
    """`ImagePullBackOff: <message>` when a container waits for something that will not come."""
    for pod in pods:
        for container in _container_statuses(pod):
            waiting = (container.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in NEVER_STARTING_REASONS:
                message = (waiting.get("message") or "").splitlines()
                return f"{waiting['reason']}: {message[0]}" if message else str(waiting["reason"])
    return None


def _parse_time(text: Any) -> datetime | None:
    if not text:
        return None
    if isinstance(text, datetime):
        return text
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def job_execution_id(job: Mapping[str, Any]) -> uuid.UUID | None:
    metadata = job.get("metadata") or {}
    label = (metadata.get("labels") or {}).get(EXECUTION_ID_LABEL)
    if label:
        try:
            return uuid.UUID(str(label))
        except ValueError:
            pass
    return execution_id_of(str(metadata.get("name") or ""))


def classify_job(
    job: Mapping[str, Any],
    pods: Sequence[Mapping[str, Any]],
    now: datetime,
    start_timeout: timedelta,
) -> JobOutcome:
    """Decide a Job's state from its JSON and its pods' JSON."""
    metadata = job.get("metadata") or {}
    name = str(metadata.get("name") or "")
    execution_id = job_execution_id(job)
    status = job.get("status") or {}
    spec = job.get("spec") or {}

    failed = _true_condition(status, ("Failed", "FailureTarget"))
    if failed is not None:
        if failed.get("reason") == "DeadlineExceeded":
            deadline = spec.get("activeDeadlineSeconds")
            detail = f" after {deadline}s" if deadline else ""
            blocked = waiting_reason(pods)  # the deadline counts from the Job's start, pulls included
            detail += f" ({blocked})" if blocked else ""
            return JobOutcome(name, execution_id, JobState.TIMED_OUT, f"deadline exceeded{detail}")
        parts = [str(failed.get("reason") or "Failed")]
        detail = termination_detail(pods) or waiting_reason(pods)
        if detail:
            parts.append(detail)
        elif not pods:
            parts.append("pod gone")
        elif failed.get("message"):
            parts.append(str(failed["message"]))
        return JobOutcome(name, execution_id, JobState.FAILED, "Job failed: " + "; ".join(parts))

    if _true_condition(status, ("Complete", "SuccessCriteriaMet")) is not None:
        return JobOutcome(name, execution_id, JobState.SUCCEEDED)
    if int(status.get("failed") or 0) > 0 and not int(status.get("active") or 0):
        detail = termination_detail(pods) or "pod failed"
        return JobOutcome(name, execution_id, JobState.FAILED, f"Job failed: {detail}")
    if int(status.get("succeeded") or 0) > 0:
        return JobOutcome(name, execution_id, JobState.SUCCEEDED)

    created = _parse_time(metadata.get("creationTimestamp")) or _parse_time(status.get("startTime"))
    too_old = created is not None and now - created > start_timeout
    blocked = waiting_reason(pods)
    if blocked and too_old:
        return JobOutcome(
            name,
            execution_id,
            JobState.FAILED,
            f"runner never started within {int(start_timeout.total_seconds())}s: {blocked}",
            stuck=True,
        )
    running = any((pod.get("status") or {}).get("phase") == "Running" for pod in pods)
    if running or int(status.get("active") or 0) and not blocked:
        return JobOutcome(name, execution_id, JobState.RUNNING)
    return JobOutcome(name, execution_id, JobState.PENDING, blocked)
