"""The stored workflow definition, read into typed specs for the runner.

Definitions are validated against the JSON Schema when applied; this is a second, cheap check at
run time (without loading the schema machinery) so that a row edited by hand or written by an
older version fails the execution with a clear message instead of a KeyError mid-run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.contract import DEFAULT_TIMEOUT_SECONDS

#: The outcomes a step `retry` may name (services.runtime.retries classifies a failure).
RETRY_OUTCOMES = ("error", "timeout", "http_5xx", "http_429")


class DefinitionError(Exception):
    """The definition is malformed; the message names the field."""


@dataclass(frozen=True)
class StepRetry:
    """A step's own `retry`: attempts inside one execution (docs/workflows.md)."""

    max_attempts: int = 1
    backoff_seconds: float = 1.0
    backoff_multiplier: float = 2.0
    on: frozenset[str] = frozenset(RETRY_OUTCOMES)

    def delay_before(self, attempt: int) -> float:
        """Back-off before attempt `attempt` (2, 3, …): backoff * multiplier ** (attempt - 2)."""
        return self.backoff_seconds * self.backoff_multiplier ** max(0, attempt - 2)


@dataclass(frozen=True)
class StepSpec:
    id: str
    type: str
    position: int
    params: dict[str, Any] = field(default_factory=dict)
    condition: str | bool | None = None
    integration: str | None = None
    timeout_seconds: float | None = None
    retry: StepRetry = field(default_factory=StepRetry)


@dataclass(frozen=True)
class WorkflowSpec:
    name: str
    timeout_seconds: float
    steps: list[StepSpec]


def _step(raw: Any, position: int) -> StepSpec:
    where = f"steps[{position}]"
    if not isinstance(raw, dict):
        raise DefinitionError(f"{where}: must be a mapping")
    step_id, step_type = raw.get("id"), raw.get("type")
    if not isinstance(step_id, str) or not step_id:
        raise DefinitionError(f"{where}.id: must be a non-empty string")
    if not isinstance(step_type, str) or not step_type:
        raise DefinitionError(f"{where}.type: must be a non-empty string")
    params = raw.get("with", {})
    if not isinstance(params, dict):
        raise DefinitionError(f"{where}.with: must be a mapping")
    condition = raw.get("if")
    if condition is not None and not isinstance(condition, str | bool):
        raise DefinitionError(f"{where}.if: must be a string or a boolean")
    integration = raw.get("integration")
    if integration is not None and (not isinstance(integration, str) or not integration):
        raise DefinitionError(f"{where}.integration: must be a non-empty string")
    timeout = raw.get("timeout_seconds")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
        raise DefinitionError(f"{where}.timeout_seconds: must be a positive number")
    retry = _retry(raw.get("retry"), where)
    return StepSpec(step_id, step_type, position, params, condition, integration, timeout, retry)


def _retry(raw: Any, where: str) -> StepRetry:
    if raw is None:
        return StepRetry()
    if not isinstance(raw, dict):
        raise DefinitionError(f"{where}.retry: must be a mapping")
    attempts = raw.get("max_attempts", 1)
    backoff = raw.get("backoff_seconds", 1.0)
    multiplier = raw.get("backoff_multiplier", 2.0)
    on = raw.get("on", list(RETRY_OUTCOMES))
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise DefinitionError(f"{where}.retry.max_attempts: must be a positive integer")
    for name, value, least in (("backoff_seconds", backoff, 0), ("backoff_multiplier", multiplier, 1)):
        if isinstance(value, bool) or not isinstance(value, int | float) or value < least:
            raise DefinitionError(f"{where}.retry.{name}: must be a number of at least {least}")
    if not isinstance(on, list) or not on or any(item not in RETRY_OUTCOMES for item in on):
        raise DefinitionError(f"{where}.retry.on: must be a list of {', '.join(RETRY_OUTCOMES)}")
    return StepRetry(attempts, float(backoff), float(multiplier), frozenset(on))


def parse_definition(document: Any) -> WorkflowSpec:
    if not isinstance(document, dict):
        raise DefinitionError("workflow: must be a mapping with name and steps")
    name = document.get("name")
    if not isinstance(name, str) or not name:
        raise DefinitionError("name: must be a non-empty string")
    raw_steps = document.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise DefinitionError("steps: must be a non-empty list")
    steps = [_step(raw, position) for position, raw in enumerate(raw_steps)]
    seen: set[str] = set()
    for step in steps:
        if step.id in seen:
            raise DefinitionError(f"steps[{step.position}].id: duplicate step id {step.id!r}")
        seen.add(step.id)
    timeout = document.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise DefinitionError("timeout_seconds: must be a positive number")
    return WorkflowSpec(name=name, timeout_seconds=float(timeout), steps=steps)
