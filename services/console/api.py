"""`/api/v1`: the operator API (SPEC §9). JSON in and out; errors `{"error": {field, message}}`.

Reads need the `viewer` role, actions `operator`, changes to workflows, schedules, integrations
and tokens `admin`. Every change runs the same service function as `wfctl`, in one transaction
with its audit row.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from services.console import queries
from services.console.actions import ActionContext, perform
from services.console.auth import (
    SESSION_COOKIE,
    AuthError,
    bearer_principal,
    proxy_principal,
    require,
    session_principal,
)
from services.console.state import ApiJSON, state_of
from services.core import audit
from services.core.db.models import Role
from services.core.errors import NotFoundError, UserError
from services.core.executions import find_execution
from services.core.tokens import Principal
from services.core.views import execution_detail

router = APIRouter(prefix="/api/v1", default_response_class=ApiJSON)


bearer_scheme = HTTPBearer(auto_error=False, description="An API token from `wfctl tokens create`")
SAFE_METHODS = frozenset({"GET", "HEAD"})


def request_principal(request: Request) -> Principal:
    """The caller: a bearer token, the trusted proxy's user header, or, for reads only (a cookie
    is sent by the browser on its own, so a change needs the console's CSRF-checked forms), the
    console's session cookie.

    A token that is given but not valid is refused, whatever else the request carries. The
    proxy's header is also sent by the browser on its own, so a POST it authenticates must be
    JSON: a cross-site form or a no-CORS fetch cannot send that content type.
    """
    console = state_of(request)
    authorization = request.headers.get("authorization")
    with console.db() as session:
        principal = bearer_principal(session, authorization)
        if principal is None and authorization:
            raise AuthError(401, "a valid API token is required (Authorization: Bearer <token>)")
        if principal is None and request.method in SAFE_METHODS:
            signed_in = session_principal(session, console.signer, request.cookies.get(SESSION_COOKIE))
            principal = signed_in.principal if signed_in else None
    if principal is None:
        principal = proxy_principal(console.settings, request.headers)
        if principal is not None and request.method == "POST" and not _is_json(request):
            raise AuthError(403, "a change made as the proxy's user must be sent as application/json")
    if principal is None:
        raise AuthError(401, "a valid API token is required (Authorization: Bearer <token>)")
    return principal


def _is_json(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json"


def api_principal(
    request: Request, _credentials: HTTPAuthorizationCredentials | None = Security(bearer_scheme)
) -> Principal:
    return request_principal(request)


def viewer(principal: Principal = Depends(api_principal)) -> Principal:
    return principal


def admin(principal: Principal = Depends(api_principal)) -> Principal:
    require(principal, Role.ADMIN)
    return principal


def _act(request: Request, principal: Principal, name: str, target: str, params: dict[str, Any]) -> dict[str, Any]:
    console = state_of(request)
    with console.db() as session:
        ctx = ActionContext(session, principal, console.work_queue, console.dead_letter_queue)
        return perform(ctx, name, target, params)


# --- who am I ---------------------------------------------------------------------------------


@router.get("/whoami", summary="The caller's name and role")
def whoami(principal: Principal = Depends(viewer)) -> dict[str, Any]:
    return {"name": principal.name, "role": principal.role.value, "actor": principal.actor}


# --- workflows --------------------------------------------------------------------------------


def _workflow_row(workflow: Any) -> dict[str, Any]:
    return {
        "id": workflow.id,
        "name": workflow.name,
        "version": workflow.version,
        "steps": len(workflow.definition["steps"]),
        "timeout_seconds": workflow.timeout_seconds,
        "created_at": workflow.created_at,
        "updated_at": workflow.updated_at,
    }


@router.get("/workflows", summary="List workflows")
def list_workflows(request: Request, _: Principal = Depends(viewer)) -> dict[str, Any]:
    from services.core.workflows import list_workflows as service

    with state_of(request).db() as session:
        return {"items": [_workflow_row(w) for w in service(session)]}


@router.get("/workflows/{name}", summary="One workflow with its definition")
def show_workflow(name: str, request: Request, _: Principal = Depends(viewer)) -> dict[str, Any]:
    from services.core.workflows import get_workflow

    with state_of(request).db() as session:
        workflow = get_workflow(session, name)
        return {**_workflow_row(workflow), "definition": workflow.definition}


class WorkflowBody(BaseModel):
    definition: dict[str, Any] = Field(description="The workflow definition (docs/workflows.md)")


@router.put("/workflows", summary="Create or update a workflow by its name (admin)")
def apply_workflow(body: WorkflowBody, request: Request, principal: Principal = Depends(admin)) -> dict[str, Any]:
    from services.core.workflows import apply_workflow as service
    from services.core.workflows import validate_workflow

    definition = validate_workflow(body.definition)
    with state_of(request).db() as session:
        workflow, created = service(session, definition, actor=principal.actor)
        return {**_workflow_row(workflow), "created": created}


class RunBody(BaseModel):
    input: dict[str, Any] = Field(default_factory=dict, description="The run's input object")


@router.post("/workflows/{name}/run", summary="Run a workflow now (operator)", status_code=202)
def run_workflow(name: str, body: RunBody, request: Request, principal: Principal = Depends(viewer)) -> dict[str, Any]:
    return _act(request, principal, "workflow.run", name, {"input": body.input})


# --- schedules --------------------------------------------------------------------------------


def _schedule_row(schedule: Any) -> dict[str, Any]:
    from services.dispatcher.schedules import schedule_summary

    return schedule_summary(schedule)


@router.get("/schedules", summary="List schedules with their next fire time")
def list_schedules(request: Request, _: Principal = Depends(viewer)) -> dict[str, Any]:
    from services.dispatcher.schedules import list_schedules as service

    with state_of(request).db() as session:
        return {"items": [_schedule_row(s) for s in service(session)]}


def next_fire_times(schedule: Any, count: int) -> list[dict[str, Any]]:
    from services.dispatcher.schedules import preview_fire_times

    if not schedule.enabled:
        return []
    zone = ZoneInfo(schedule.timezone)
    after = max(datetime.now(UTC), schedule.next_run_at or datetime.now(UTC))
    # The next fire time itself is included: preview the instants strictly after a minute before it.
    from datetime import timedelta

    times = preview_fire_times(schedule, count, after - timedelta(seconds=1))
    return [{"utc": t, "local": t.astimezone(zone).isoformat()} for t in times]


@router.get("/schedules/{name}", summary="One schedule with its next fire times (UTC and local)")
def show_schedule(
    name: str, request: Request, count: int = Query(10, ge=1, le=1000), _: Principal = Depends(viewer)
) -> dict[str, Any]:
    from services.dispatcher.schedules import get_schedule

    with state_of(request).db() as session:
        schedule = get_schedule(session, name)
        return {**_schedule_row(schedule), "next_fire_times": next_fire_times(schedule, count)}


class ScheduleBody(BaseModel):
    name: str
    workflow: str
    cron: str
    timezone: str = "UTC"
    input: dict[str, Any] = Field(default_factory=dict)
    catchup: str = "latest"
    catchup_window_seconds: int = 86400
    overlap: str = "allow"
    jitter_seconds: int = 0
    enabled: bool = True


@router.post("/schedules", summary="Create a schedule (admin)", status_code=201)
def create_schedule(body: ScheduleBody, request: Request, principal: Principal = Depends(admin)) -> dict[str, Any]:
    from services.dispatcher.schedules import ScheduleSpec
    from services.dispatcher.schedules import create_schedule as service

    with state_of(request).db() as session:
        schedule = service(session, ScheduleSpec(**body.model_dump()), actor=principal.actor)
        return _schedule_row(schedule)


@router.delete("/schedules/{name}", summary="Delete a schedule (admin); its history stays")
def delete_schedule(name: str, request: Request, principal: Principal = Depends(viewer)) -> dict[str, Any]:
    return _act(request, principal, "schedule.delete", name, {})


@router.post("/schedules/{name}/pause", summary="Pause a schedule (operator)")
def pause_schedule(name: str, request: Request, principal: Principal = Depends(viewer)) -> dict[str, Any]:
    return _act(request, principal, "schedule.pause", name, {})


@router.post("/schedules/{name}/resume", summary="Resume a schedule from now (operator)")
def resume_schedule(name: str, request: Request, principal: Principal = Depends(viewer)) -> dict[str, Any]:
    return _act(request, principal, "schedule.resume", name, {})


class BackfillBody(BaseModel):
    from_: str = Field(alias="from", description="Start of the range (ISO-8601, inclusive)")
    to: str = Field(description="End of the range (ISO-8601, inclusive)")
    reprocess: str = Field("missing", description="missing (default), failed or all: which ran fire times run again")


@router.post("/schedules/{name}/backfill", summary="Enqueue every fire time in a range (operator)", status_code=202)
def backfill_schedule(
    name: str, body: BackfillBody, request: Request, principal: Principal = Depends(viewer)
) -> dict[str, Any]:
    params = {"from": body.from_, "to": body.to, "reprocess": body.reprocess}
    return _act(request, principal, "schedule.backfill", name, params)


@router.get("/schedules/{name}/history", summary="The fire-time ledger: every fire time and what became of it")
def schedule_history(
    name: str,
    request: Request,
    from_: str | None = Query(None, alias="from", description="Oldest fire time (ISO-8601)"),
    to: str | None = Query(None, description="Newest fire time (ISO-8601)"),
    limit: int = Query(200, ge=1, le=1000),
    _: Principal = Depends(viewer),
) -> dict[str, Any]:
    from services.dispatcher.schedules import schedule_history as service

    with state_of(request).db() as session:
        return {"items": service(session, name, from_, to, limit=limit)}


# --- executions -------------------------------------------------------------------------------


@router.get("/executions", summary="Executions, newest first, with filters and a stable cursor")
def list_executions(
    request: Request,
    workflow: str | None = Query(None, description="Only this workflow"),
    status: str | None = Query(None, description="Only this status"),
    schedule: str | None = Query(None, description="Only runs of this schedule"),
    limit: int = Query(50, description="Page size (1-200)"),
    cursor: str | None = Query(None, description="`next_cursor` of the previous page"),
    dedup_key: str | None = Query(None, description="Only the run with this dedup key (as `run` returns)"),
    _: Principal = Depends(viewer),
) -> dict[str, Any]:
    with state_of(request).db() as session:
        page = queries.execution_page(
            session,
            workflow=workflow,
            status=status,
            schedule=schedule,
            limit=limit,
            cursor=cursor,
            dedup_key=dedup_key,
        )
    return {"items": page.items, "next_cursor": page.next_cursor}


@router.get("/executions/{execution_id}", summary="One execution with its steps")
def show_execution(execution_id: str, request: Request, _: Principal = Depends(viewer)) -> dict[str, Any]:
    with state_of(request).db() as session:
        execution = find_execution(session, execution_id)
        if execution is None:
            raise NotFoundError("execution", f"no execution with id {execution_id!r}")
        return execution_detail(execution)


@router.post("/executions/{execution_id}/cancel", summary="Cancel a run that has not finished (operator)")
def cancel_execution(execution_id: str, request: Request, principal: Principal = Depends(viewer)) -> dict[str, Any]:
    return _act(request, principal, "execution.cancel", execution_id, {})


class RerunBody(BaseModel):
    from_step: str | None = Field(None, description="Start at this step; earlier ones reuse their recorded outputs")
    input: dict[str, Any] | None = Field(None, description="An input instead of the original one")


@router.post(
    "/executions/{execution_id}/rerun", summary="Re-run a finished run as a new one (operator)", status_code=202
)
def rerun_execution(
    execution_id: str, body: RerunBody, request: Request, principal: Principal = Depends(viewer)
) -> dict[str, Any]:
    return _act(request, principal, "execution.rerun", execution_id, {"from_step": body.from_step, "input": body.input})


# --- DLQ, integrations ------------------------------------------------------------------------


@router.get("/dlq", summary="Dead-lettered messages with their reasons (nothing is removed)")
def list_dlq(request: Request, _: Principal = Depends(viewer)) -> dict[str, Any]:
    from services.spawner.dead_letters import list_dead_letters

    now = datetime.now(UTC)
    return {"items": [letter.row(now) for letter in list_dead_letters(state_of(request).dead_letter_queue())]}


@router.post("/dlq/redrive", summary="Move every dead letter back to the work queue (operator)")
def redrive_dlq(request: Request, principal: Principal = Depends(viewer)) -> dict[str, Any]:
    return _act(request, principal, "dlq.redrive", "dlq", {})


@router.get("/integrations", summary="Integrations: names and types only, never a credential")
def list_integrations(request: Request, _: Principal = Depends(viewer)) -> dict[str, Any]:
    from services.core.integrations import list_integrations as service

    with state_of(request).db() as session:
        return {"items": service(session)}


@router.get("/channels", summary="Notification channels: names and types only, never a secret")
def list_channels(request: Request, _: Principal = Depends(viewer)) -> dict[str, Any]:
    from services.notify.channels import list_channels as service

    with state_of(request).db() as session:
        return {"items": service(session)}


@router.get("/notifications", summary="Notifications, newest first, with the error of a failed delivery")
def list_notifications(
    request: Request,
    status: str | None = Query(None, description="pending, sent or failed"),
    limit: int = Query(50, ge=1, le=1000),
    _: Principal = Depends(viewer),
) -> dict[str, Any]:
    from services.notify.outbox import list_notifications as service

    with state_of(request).db() as session:
        return {"items": service(session, status, limit)}


# --- tokens and audit -------------------------------------------------------------------------


@router.get("/tokens", summary="API tokens: names, roles, dates (admin); never a token")
def list_tokens(request: Request, _: Principal = Depends(admin)) -> dict[str, Any]:
    from services.core.tokens import list_tokens as service

    with state_of(request).db() as session:
        return {"items": service(session)}


class TokenBody(BaseModel):
    name: str
    role: str = Field(description="viewer, operator or admin")


@router.post("/tokens", summary="Create a token (admin); the response is the only time it is shown", status_code=201)
def create_token(body: TokenBody, request: Request, principal: Principal = Depends(admin)) -> dict[str, Any]:
    from services.core.tokens import create_token as service

    with state_of(request).db() as session:
        token = service(session, body.name, body.role, actor=principal.actor)
    return {"name": body.name, "role": body.role, "token": token}


@router.delete("/tokens/{name}", summary="Revoke a token (admin)")
def revoke_token(name: str, request: Request, principal: Principal = Depends(viewer)) -> dict[str, Any]:
    return _act(request, principal, "token.revoke", name, {})


@router.get("/audit", summary="The audit trail, newest first")
def list_audit(
    request: Request,
    target_kind: str | None = Query(
        None, description="workflow, schedule, execution, integration, channel, pool, token, dlq"
    ),
    target: str | None = Query(None, description="The object's name"),
    actor: str | None = Query(None),
    limit: int = Query(100, ge=1, le=1000),
    before: int | None = Query(None, description="Only events with a smaller id (the next page)"),
    _: Principal = Depends(viewer),
) -> dict[str, Any]:
    with state_of(request).db() as session:
        events = audit.list_events(session, target_kind, target, actor, limit, before)
        items = [audit.event_row(e) for e in events]
    return {"items": items, "next_before": items[-1]["id"] if len(items) == limit else None}


def parse_uuid(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise UserError(field, f"{value!r} is not a UUID") from None
