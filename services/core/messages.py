"""The queue message (docs/architecture.md): building, serialising and parsing, with no I/O.

Parsing is strict: a message that does not parse raises `MessageError` with a reason, which the
spawner records when it moves the message to the dead-letter queue.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.contract import Trigger
from services.core.inputs import InputError, check_input, loads

MESSAGE_VERSION = 1
#: `executions.attempt` is a 32-bit integer: a larger attempt could never be recorded.
MAX_ATTEMPT = 2**31 - 1


class MessageError(ValueError):
    """A message body that cannot be used, with the reason."""


def utc_iso(instant: datetime) -> str:
    """`2026-11-28T09:00:00Z`: the canonical form used in dedup keys and messages."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc_iso(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("a time zone offset is required")
    return parsed.astimezone(UTC)


def schedule_dedup_key(schedule_id: uuid.UUID, fire_time: datetime) -> str:
    """Scheduled runs and backfills of the same fire time share one key, so one run at most."""
    return f"schedule:{schedule_id}:{utc_iso(fire_time)}"


def manual_dedup_key(request_id: uuid.UUID) -> str:
    return f"manual:{request_id}"


def retry_dedup_key(execution_id: uuid.UUID, attempt: int) -> str:
    return f"retry:{execution_id}:{attempt}"


def rerun_dedup_key(request_id: uuid.UUID) -> str:
    return f"rerun:{request_id}"


@dataclass(frozen=True)
class RunMessage:
    """One request to run a workflow once."""

    trigger: Trigger
    dedup_key: str
    workflow_id: uuid.UUID
    schedule_id: uuid.UUID | None = None
    scheduled_for: datetime | None = None
    attempt: int = 1
    retry_of: uuid.UUID | None = None
    input: dict[str, Any] = field(default_factory=dict)
    #: A re-run (trigger `rerun`): the execution it re-runs, and the step it starts at (None: all).
    rerun_of: uuid.UUID | None = None
    from_step: str | None = None
    version: int = MESSAGE_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "trigger": str(self.trigger),
            "dedup_key": self.dedup_key,
            "workflow_id": str(self.workflow_id),
            "schedule_id": str(self.schedule_id) if self.schedule_id else None,
            "scheduled_for": utc_iso(self.scheduled_for) if self.scheduled_for else None,
            "attempt": self.attempt,
            "retry_of": str(self.retry_of) if self.retry_of else None,
            "input": self.input,
            **({"rerun_of": str(self.rerun_of)} if self.rerun_of else {}),
            **({"from_step": self.from_step} if self.from_step else {}),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)


_SCHEDULED_BODY = (
    '{"attempt":1,"dedup_key":"%s","input":%s,"retry_of":null,"schedule_id":"%s","scheduled_for":"%s",'
    '"trigger":"' + Trigger.SCHEDULE.value + '","version":' + str(MESSAGE_VERSION) + ',"workflow_id":"%s"}'
)


def scheduled_run_body(dedup_key: str, schedule_id: str, workflow_id: str, scheduled_for: str, input_json: str) -> str:
    """`RunMessage(trigger=schedule, …).to_json()`, byte for byte, from ready-made text parts.

    The dispatcher builds up to a message per due schedule per tick; formatting one string is
    several times cheaper than a dataclass, a dict and `json.dumps`. `input_json` is the input
    serialised as `to_json` does (compact, sorted keys); the other parts need no escaping
    (UUIDs, `utc_iso` times, and dedup keys made of them).
    """
    return _SCHEDULED_BODY % (dedup_key, input_json, schedule_id, scheduled_for, workflow_id)


def _uuid(body: dict[str, Any], key: str, required: bool) -> uuid.UUID | None:
    value = body.get(key)
    if value is None:
        if required:
            raise MessageError(f"{key} is missing")
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise MessageError(f"{key} is not a UUID: {str(value)[:80]!r}") from None


def parse_message(raw: str) -> RunMessage:
    """Parse and validate a message body; raises `MessageError` with a one-line reason."""
    # The same JSON rules as the CLI's: a NaN or a NUL in an input is refused here, so the
    # message is dead-lettered at once instead of failing its INSERT on every delivery.
    try:
        body = loads(raw, "body")
    except InputError as exc:
        if exc.message.startswith("is not valid JSON"):
            raise MessageError(f"body is not JSON: {exc.message}") from None
        raise MessageError(str(exc)) from None
    except TypeError as exc:
        raise MessageError(f"body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise MessageError("body is not a JSON object")
    if type(body.get("version")) is not int or body.get("version") != MESSAGE_VERSION:  # not `true`, not 1.0
        raise MessageError(f"unsupported version {body.get('version')!r} (expected 1)")
    try:
        trigger = Trigger(body.get("trigger"))
    except ValueError:
        raise MessageError(f"unknown trigger {body.get('trigger')!r}") from None
    dedup_key = body.get("dedup_key")
    if not isinstance(dedup_key, str) or not dedup_key or len(dedup_key) > 512:
        raise MessageError("dedup_key must be a non-empty string of at most 512 characters")
    attempt = body.get("attempt", 1)
    if not isinstance(attempt, int) or isinstance(attempt, bool) or not 1 <= attempt <= MAX_ATTEMPT:
        raise MessageError(f"attempt must be an integer from 1 to {MAX_ATTEMPT}, got {attempt!r}")
    scheduled_for = None
    if body.get("scheduled_for") is not None:
        try:
            scheduled_for = parse_utc_iso(str(body["scheduled_for"]))
        except (ValueError, OverflowError):  # OverflowError: a valid text outside the calendar in UTC
            raise MessageError(f"scheduled_for is not an ISO-8601 time: {body['scheduled_for']!r}") from None
    payload = body.get("input", {})
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise MessageError("input must be a JSON object")
    try:
        payload = check_input(payload, "input")
    except InputError as exc:
        raise MessageError(str(exc)) from None
    workflow_id = _uuid(body, "workflow_id", required=True)
    assert workflow_id is not None
    from_step = body.get("from_step")
    if from_step is not None and (not isinstance(from_step, str) or not from_step or len(from_step) > 128):
        raise MessageError("from_step must be a step id")
    return RunMessage(
        trigger=trigger,
        dedup_key=dedup_key,
        workflow_id=workflow_id,
        schedule_id=_uuid(body, "schedule_id", required=trigger in (Trigger.SCHEDULE, Trigger.BACKFILL)),
        scheduled_for=scheduled_for,
        attempt=attempt,
        retry_of=_uuid(body, "retry_of", required=trigger == Trigger.RETRY),
        input=payload,
        rerun_of=_uuid(body, "rerun_of", required=trigger == Trigger.RERUN),
        from_step=from_step,
    )
