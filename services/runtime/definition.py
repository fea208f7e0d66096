"""The stored workflow definition, read into typed specs for the runner.

Definitions are validated against the JSON Schema when applied; this is a second, cheap check at
run time (without loading the schema machinery) so that a row edited by hand or written by an
older version fails the execution with a clear message instead of a KeyError mid-run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.contract import DEFAULT_TIMEOUT_SECONDS


class DefinitionError(Exception):
    """The definition is malformed; the message names the field."""


@dataclass(frozen=True)
class StepSpec:
    id: str
    type: str
    position: int
    params: dict[str, Any] = field(default_factory=dict)
    condition: str | bool | None = None
    integration: str | None = None
    timeout_seconds: float | None = None


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
    return StepSpec(step_id, step_type, position, params, condition, integration, timeout)


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
