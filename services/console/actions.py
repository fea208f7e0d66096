"""The console's and the API's actions: one registry, the same service functions as `wfctl`.

An action is a name, the role it needs, and a call into a service function with the caller as
the audit actor. The API route and the console's button both go through `perform`, so adding an
action is one entry here, one API route, and one button (`action_button` in the templates).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from services.core.db.models import Role
from services.core.errors import UserError
from services.core.inputs import check_input
from services.core.queue import Queue
from services.core.tokens import Principal


@dataclass(frozen=True)
class ActionContext:
    """What an action runs with: the transaction, the caller, and the queues (made on demand)."""

    session: Session
    principal: Principal
    work_queue: Callable[[], Queue]
    dead_letter_queue: Callable[[], Queue]


@dataclass(frozen=True)
class Action:
    name: str
    label: str
    role: Role
    perform: Callable[[ActionContext, str, dict[str, Any]], dict[str, Any]]
    style: str = "primary"
    confirm: str | None = None


def _input_param(params: dict[str, Any]) -> dict[str, Any]:
    value = params.get("input")
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as error:
            raise UserError("input", f"is not valid JSON ({error.msg} at position {error.pos})") from None
    return check_input(value)


def _required(params: dict[str, Any], field: str) -> str:
    value = params.get(field)
    if not isinstance(value, str) or not value.strip():
        raise UserError(field, "is required (ISO-8601, e.g. 2026-11-28T09:00:00Z)")
    return value.strip()


def _run_now(ctx: ActionContext, target: str, params: dict[str, Any]) -> dict[str, Any]:
    from services.dispatcher.triggers import trigger_manual_run

    payload = _input_param(params)
    message = trigger_manual_run(ctx.session, ctx.work_queue(), target, payload, actor=ctx.principal.actor)
    return {"message": f"run of {target} enqueued", "dedup_key": message.dedup_key}


def _pause(ctx: ActionContext, target: str, params: dict[str, Any]) -> dict[str, Any]:
    from services.dispatcher.schedules import pause_schedule

    pause_schedule(ctx.session, target, actor=ctx.principal.actor)
    return {"message": f"schedule {target} paused", "enabled": False}


def _resume(ctx: ActionContext, target: str, params: dict[str, Any]) -> dict[str, Any]:
    from services.dispatcher.schedules import resume_schedule

    schedule = resume_schedule(ctx.session, target, actor=ctx.principal.actor)
    return {"message": f"schedule {target} resumed", "enabled": True, "next_run_at": schedule.next_run_at}


def _backfill(ctx: ActionContext, target: str, params: dict[str, Any]) -> dict[str, Any]:
    from services.dispatcher.schedules import backfill_schedule, get_schedule

    start, end = _required(params, "from"), _required(params, "to")
    get_schedule(ctx.session, target)  # a missing schedule is a 404 before the queue is needed
    reprocess = params.get("reprocess") or "missing"
    result = backfill_schedule(
        ctx.session, ctx.work_queue(), target, start, end, reprocess=reprocess, actor=ctx.principal.actor
    )
    return {
        "message": f"backfill {target}: {result.fire_times} fire times, {result.sent} enqueued, "
        f"{result.already_ran} already ran",
        "fire_times": result.fire_times,
        "sent": result.sent,
        "already_ran": result.already_ran,
    }


def _redrive(ctx: ActionContext, target: str, params: dict[str, Any]) -> dict[str, Any]:
    from services.spawner.dead_letters import redrive_recorded

    moved = redrive_recorded(ctx.session, ctx.dead_letter_queue(), ctx.work_queue(), ctx.principal.actor)
    return {"message": f"redrove {moved} message{'s' if moved != 1 else ''} to the work queue", "moved": moved}


def _execution(ctx: ActionContext, target: str) -> Any:
    from services.core.errors import NotFoundError
    from services.core.executions import find_execution

    execution = find_execution(ctx.session, target)
    if execution is None:
        raise NotFoundError("execution", f"no execution with id {target!r}")
    return execution


def _cancel(ctx: ActionContext, target: str, params: dict[str, Any]) -> dict[str, Any]:
    from services.core.executions import cancel_execution

    outcome = cancel_execution(ctx.session, _execution(ctx, target).id, ctx.principal.actor)
    messages = {
        "cancelled": f"execution {outcome.execution_id} cancelled",
        "requested": f"execution {outcome.execution_id} is being stopped",
    }
    message = messages.get(outcome.action, f"execution {outcome.execution_id} was already being stopped")
    return {"message": message, "action": outcome.action, "status": outcome.status}


def _rerun(ctx: ActionContext, target: str, params: dict[str, Any]) -> dict[str, Any]:
    from services.dispatcher.triggers import trigger_rerun

    from_step = params.get("from_step") or None
    if from_step is not None and not isinstance(from_step, str):
        raise UserError("from_step", "must be a step id")
    payload = _input_param(params) if params.get("input") not in (None, "") else None
    execution = _execution(ctx, target)
    message = trigger_rerun(ctx.session, ctx.work_queue(), execution, from_step, payload, actor=ctx.principal.actor)
    where = f" from step {from_step}" if from_step else ""
    return {"message": f"re-run of {execution.id}{where} enqueued", "dedup_key": message.dedup_key}


def _revoke_token(ctx: ActionContext, target: str, params: dict[str, Any]) -> dict[str, Any]:
    from services.core.tokens import revoke_token

    revoke_token(ctx.session, target, actor=ctx.principal.actor)
    return {"message": f"token {target} revoked"}


def _delete_schedule(ctx: ActionContext, target: str, params: dict[str, Any]) -> dict[str, Any]:
    from services.dispatcher.schedules import delete_schedule

    delete_schedule(ctx.session, target, actor=ctx.principal.actor)
    return {"message": f"schedule {target} deleted"}


ACTIONS: dict[str, Action] = {
    action.name: action
    for action in (
        Action("workflow.run", "Run now", Role.OPERATOR, _run_now),
        Action(
            "execution.cancel", "Cancel", Role.OPERATOR, _cancel, style="danger", confirm="Cancel this run?"
        ),
        Action("execution.rerun", "Re-run", Role.OPERATOR, _rerun, style="secondary"),
        Action("schedule.pause", "Pause", Role.OPERATOR, _pause, style="secondary"),
        Action("schedule.resume", "Resume", Role.OPERATOR, _resume),
        Action("schedule.backfill", "Backfill", Role.OPERATOR, _backfill, style="secondary"),
        Action(
            "dlq.redrive", "Redrive all", Role.OPERATOR, _redrive, confirm="Move every dead letter back to the queue?"
        ),
        Action(
            "schedule.delete",
            "Delete",
            Role.ADMIN,
            _delete_schedule,
            style="danger",
            confirm="Delete this schedule? Its execution history stays.",
        ),
        Action("token.revoke", "Revoke", Role.ADMIN, _revoke_token, style="danger", confirm="Revoke this token?"),
    )
}


def get_action(name: str) -> Action:
    action = ACTIONS.get(name)
    if action is None:
        raise UserError("action", f"no action named {name!r}")
    return action


def perform(ctx: ActionContext, name: str, target: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Check the caller's role, then run the action in the caller's transaction."""
    from services.console.auth import require

    action = get_action(name)
    require(ctx.principal, action.role)
    return action.perform(ctx, target, params or {})
