"""Declarative apply: workflows and schedules from multi-document YAML, with a diff.

`wfctl apply -f FILE|DIR [--dry-run] [--prune]`. Every document has a `kind` (`Workflow` or
`Schedule`); the whole set is validated and applied in the caller's one transaction, so a bad
document changes nothing (all or nothing). Applying the same files again changes nothing.
Schedules are edited in place (same id, same dedup keys). `--prune` deletes schedules that no
document names; workflows are never pruned (deleting one would delete its run history).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.core import audit
from services.core.db.models import Schedule, Workflow
from services.core.documents import load_documents, read_file
from services.core.errors import UserError
from services.core.workflows import apply_workflow, check_step_types, validate_workflow
from services.dispatcher import schedules as schedule_service

KINDS = ("Workflow", "Schedule")
SCHEDULE_KEYS = (
    "kind", "name", "workflow", "cron", "every", "at", "start_at", "end_at", "timezone", "input",
    "catchup", "catchup_window_seconds", "overlap", "jitter_seconds", "paused", "notify",
)
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class Document:
    kind: str
    name: str
    body: dict[str, Any]
    where: str  # `file[index]`, the prefix of every error about it


@dataclass(frozen=True)
class Change:
    kind: str
    name: str
    action: str  # created, changed, unchanged, pruned
    fields: list[str] = field(default_factory=list)

    def line(self) -> str:
        detail = f" ({', '.join(self.fields)})" if self.fields else ""
        return f"{self.kind.lower()}/{self.name} {self.action}{detail}"


def read_manifests(path: Path) -> list[tuple[str, str]]:
    """(source, text) of FILE, or of every *.yaml/*.yml/*.json directly in DIR, sorted."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in MANIFEST_SUFFIXES)
        if not files:
            raise UserError("file", f"{path} has no .yaml, .yml or .json files")
    else:
        files = [path]
    sources = []
    for file in files:
        sources.append((str(file), read_file(file)))
    return sources


def parse_documents(sources: Iterable[tuple[str, str]]) -> list[Document]:
    """Every document of every source, checked for kind, name and unknown keys."""
    documents: list[Document] = []
    seen: dict[tuple[str, str], str] = {}
    for source, text in sources:
        loaded = load_documents(text, source)
        for index, body in enumerate(d for d in loaded if d is not None):
            where = f"{source}[{index}]"
            if not isinstance(body, dict):
                raise UserError(where, "must be a mapping with kind and name")
            kind = body.get("kind")
            if kind not in KINDS:
                raise UserError(f"{where}.kind", f"{kind!r} is not one of {', '.join(KINDS)}")
            name = body.get("name")
            if not isinstance(name, str) or not name:
                raise UserError(f"{where}.name", "is required")
            if kind == "Schedule":
                unknown = sorted(set(body) - set(SCHEDULE_KEYS))
                if unknown:
                    raise UserError(f"{where}.{unknown[0]}", f"unknown field (known: {', '.join(SCHEDULE_KEYS)})")
            if (kind, name) in seen:
                raise UserError(f"{where}.name", f"{kind} {name!r} is also defined in {seen[(kind, name)]}")
            seen[(kind, name)] = where
            documents.append(Document(kind=kind, name=name, body=body, where=where))
    return documents


def _located(where: str, action: Callable[[], Any]) -> Any:
    """Run `action`, prefixing the field of any `UserError` with the document's location."""
    try:
        return action()
    except UserError as error:
        raise UserError(f"{where}.{error.field}", error.message) from None


def schedule_spec(body: dict[str, Any]) -> schedule_service.ScheduleSpec:
    """A `kind: Schedule` document as a spec; absent policies take their defaults."""
    values = {k: v for k, v in body.items() if k not in ("kind", "paused")}
    defaults = schedule_service.ScheduleSpec(name="", workflow="")
    paused = body.get("paused")
    if paused is not None and not isinstance(paused, bool):
        raise UserError("paused", "must be true or false")
    return schedule_service.ScheduleSpec(
        **{
            **{k: getattr(defaults, k) for k in schedule_service.SPEC_FIELDS},
            **values,
            "enabled": None if paused is None else not paused,
        }
    )


def _workflow_changes(existing: Workflow | None, definition: dict[str, Any]) -> tuple[str, list[str]]:
    if existing is None:
        return "created", []
    old = existing.definition
    changed = sorted(k for k in set(old) | set(definition) if old.get(k) != definition.get(k))
    return ("changed", changed) if changed else ("unchanged", [])


def apply_documents(
    session: Session,
    documents: list[Document],
    *,
    prune: bool = False,
    known_step_types: Collection[str] | None = None,
    now: datetime | None = None,
    actor: str = audit.SYSTEM_ACTOR,
) -> list[Change]:
    """Apply every document in the caller's transaction; returns the diff, in document order.

    Every change is audited under `actor`, in the same transaction (a dry run rolls both back).

    Workflows first (schedules refer to them), then schedules, then pruning. Raises `UserError`
    naming `file[index].field` at the first bad document; the caller rolls back.
    """
    current = (now or datetime.now(UTC)).astimezone(UTC)
    changes: list[Change] = []
    for doc in (d for d in documents if d.kind == "Workflow"):
        body = {k: v for k, v in doc.body.items() if k != "kind"}
        definition = _located(doc.where, lambda body=body: validate_workflow(body))
        if known_step_types is not None:
            _located(doc.where, lambda d=definition: check_step_types(d, known_step_types))
        existing = session.scalar(select(Workflow).where(Workflow.name == doc.name))
        action, fields_changed = _workflow_changes(existing, definition)
        apply_workflow(session, definition, actor=actor)
        changes.append(Change("Workflow", doc.name, action, fields_changed))
    session.flush()
    declared: set[str] = set()
    for doc in (d for d in documents if d.kind == "Schedule"):
        declared.add(doc.name)
        spec = _located(doc.where, lambda doc=doc: schedule_spec(doc.body))
        existing = session.scalar(select(Schedule).where(Schedule.name == doc.name).with_for_update(of=Schedule))
        if existing is None:
            _located(doc.where, lambda spec=spec: schedule_service.create_schedule(session, spec, now=current,
                                                                                   actor=actor))
            changes.append(Change("Schedule", doc.name, "created"))
            continue
        columns = _located(
            doc.where,
            lambda spec=spec, existing=existing: schedule_service.desired_columns(session, spec, current, existing),
        )
        changed = schedule_service.assign_columns(session, existing, columns, current)
        if changed:
            audit.record(session, actor, "schedule.update", "schedule", doc.name, {"changed": changed})
        changes.append(Change("Schedule", doc.name, "changed" if changed else "unchanged", changed))
    if prune:
        stale = list(session.execute(select(Schedule.id, Schedule.name).where(Schedule.name.not_in(declared))))
        if stale:
            ids: list[uuid.UUID] = [row.id for row in stale]
            schedule_service.delete_schedules(session, ids)
            for row in stale:
                audit.record(session, actor, "schedule.delete", "schedule", row.name, {"pruned": True})
        changes.extend(Change("Schedule", row.name, "pruned") for row in sorted(stale, key=lambda r: r.name))
    session.flush()
    return changes
