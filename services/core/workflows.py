"""Workflow definitions: parse YAML/JSON, validate against the shipped JSON Schema, store by name."""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.contract import DEFAULT_TIMEOUT_SECONDS
from services.core import audit
from services.core.db.models import Workflow
from services.core.documents import load_document
from services.core.durations import parse_duration
from services.core.errors import NotFoundError, UserError
from services.core.inputs import check_json

SCHEMA_PATH = Path(__file__).with_name("workflow.schema.json")
DEFAULT_RETRY = {"max_attempts": 1, "backoff_seconds": 60, "backoff_multiplier": 2}
#: A definition is stored whole in every execution's row and read by every run: bounded.
MAX_DEFINITION_BYTES = 256 * 1024

__all__ = ["load_document", "parse_workflow", "validate_workflow", "apply_workflow", "get_workflow"]


@lru_cache(maxsize=1)
def workflow_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def _field_path(error: jsonschema.ValidationError) -> str:
    parts = []
    for part in error.absolute_path:
        parts.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    return "".join(parts).lstrip(".") or "workflow"


def _describe(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        return error.message.replace("Additional properties are not allowed", "unknown field")
    if error.validator == "not" and "json" in str(error.instance) and "body" in str(error.instance):
        return "give either json or body, not both"
    return error.message


def _full_match(pattern: str) -> re.Pattern[str]:
    """The schema's ECMA-262 pattern with its meaning there: `$` is the very end of the text.

    Python's `$` also matches before a final newline, so a name ending in a newline would pass.
    """
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _pattern(
    validator: jsonschema.protocols.Validator, pattern: str, instance: Any, schema: dict[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    if validator.is_type(instance, "string") and not _full_match(pattern).search(instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


_Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": _pattern})


def validate_workflow(document: Any) -> dict[str, Any]:
    """Validate a definition and return it normalised, with defaults filled in.

    Raises `UserError` whose field is the JSON path of the first problem (e.g. `steps[1].with.url`).
    """
    if not isinstance(document, dict):
        raise UserError("workflow", "must be a mapping with name and steps")
    if "kind" in document:  # a document of `wfctl apply` may be given to `workflows apply` too
        if document["kind"] != "Workflow":
            raise UserError("kind", f"{document['kind']!r} is not a workflow (expected kind: Workflow)")
        document = {k: v for k, v in document.items() if k != "kind"}
    check_json(document, "workflow", MAX_DEFINITION_BYTES)
    validator = _Validator(workflow_schema())
    errors = sorted(validator.iter_errors(document), key=lambda e: (len(e.absolute_path), e.path))
    if errors:
        # The deepest error is the most specific one to show.
        error = max(errors, key=lambda e: len(e.absolute_path))
        raise UserError(_field_path(error), _describe(error))
    for key in ("late_after", "long_running_after"):
        if key in document:
            parse_duration(document[key], key)
    seen: set[str] = set()
    for index, step in enumerate(document["steps"]):
        if step["id"] in seen:
            raise UserError(f"steps[{index}].id", f"duplicate step id {step['id']!r}")
        seen.add(step["id"])
    normalised = dict(document)
    normalised["timeout_seconds"] = document.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
    normalised["retry"] = {**DEFAULT_RETRY, **document.get("retry", {})}
    normalised["steps"] = [{"with": {}, **step} for step in document["steps"]]
    return normalised


def check_step_types(definition: dict[str, Any], known: Collection[str]) -> None:
    """Refuse a step type nothing provides, at apply time rather than at the first run.

    `known` is the built-in types plus the installed `workflow_runtime.steps` entry points.
    """
    for index, step in enumerate(definition["steps"]):
        if step["type"] not in known:
            choices = ", ".join(sorted(known))
            raise UserError(
                f"steps[{index}].type",
                f"unknown step type {step['type']!r} (known: {choices}; "
                "--allow-unknown-step-types if the runner image has more)",
            )


def parse_workflow(text: str | bytes, source: str = "workflow") -> dict[str, Any]:
    return validate_workflow(load_document(text, source, MAX_DEFINITION_BYTES))


def apply_workflow(
    session: Session, definition: dict[str, Any], *, actor: str = audit.SYSTEM_ACTOR
) -> tuple[Workflow, bool]:
    """Create or update a workflow by name; returns (workflow, created).

    A `pool` must exist already (`wfctl pools set`), so a typo cannot leave runs queued forever.
    """
    pool = definition.get("pool")
    if pool is not None:
        from services.core.pools import pool_exists

        if not pool_exists(session, pool):
            raise UserError("pool", f"no pool named {pool!r} (create it with: wfctl pools set {pool} --slots N)")
    existing = session.scalar(select(Workflow).where(Workflow.name == definition["name"]).with_for_update())
    if existing is None:
        workflow = Workflow(
            name=definition["name"],
            definition=definition,
            timeout_seconds=definition["timeout_seconds"],
            version=1,
        )
        session.add(workflow)
        session.flush()
        audit.record(session, actor, "workflow.create", "workflow", workflow.name, {"version": 1})
        return workflow, True
    if existing.definition != definition:
        existing.definition = definition
        existing.timeout_seconds = definition["timeout_seconds"]
        existing.version += 1
        existing.updated_at = datetime.now(UTC)
        audit.record(session, actor, "workflow.update", "workflow", existing.name, {"version": existing.version})
    return existing, False


def get_workflow(session: Session, name: str) -> Workflow:
    workflow = session.scalar(select(Workflow).where(Workflow.name == name))
    if workflow is None:
        raise NotFoundError("workflow", f"no workflow named {name!r}")
    return workflow


def list_workflows(session: Session) -> list[Workflow]:
    return list(session.scalars(select(Workflow).order_by(Workflow.name)))
