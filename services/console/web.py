"""The server-rendered console: Jinja2 pages over the same reads and actions as the API.

Every page needs a signed-in user (a session cookie from the sign-in page, or the trusted proxy
header); every form carries the session's CSRF token. Buttons appear only for the actions the
user's role allows, and the action route checks the role again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, URLSafeSerializer

from services.console import charts, queries
from services.console.actions import ACTIONS, ActionContext, perform
from services.console.auth import (
    CSRF_FIELD,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    AuthError,
    check_csrf,
    proxy_principal,
    require,
    session_principal,
    sign_in,
)
from services.console.state import state_of, to_json
from services.core import audit
from services.core.db.models import TERMINAL_STATUSES, Role
from services.core.errors import NotFoundError, UserError
from services.core.settings import SESSION_MAX_AGE_SECONDS
from services.core.tokens import Principal

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
FLASH_COOKIE = "wfr_flash"
#: Larger JSON documents are cut in the page (and marked so); the API returns them whole.
MAX_JSON_CHARS = 20_000


# --- formatting helpers (template filters) ---------------------------------------------------


def _dt(value: Any, zone: str | None = None) -> str:
    if not isinstance(value, datetime):
        return "—"
    if zone:
        local = value.astimezone(ZoneInfo(zone))
        return local.strftime("%Y-%m-%d %H:%M:%S %Z")
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ago(value: Any) -> str:
    if not isinstance(value, datetime):
        return "—"
    seconds = (datetime.now(UTC) - value).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 60:
        text = f"{int(seconds)}s"
    elif seconds < 3600:
        text = f"{int(seconds // 60)}m"
    elif seconds < 86400:
        text = f"{int(seconds // 3600)}h"
    else:
        text = f"{int(seconds // 86400)}d"
    return f"in {text}" if future else f"{text} ago"


def _duration(value: Any) -> str:
    return charts.format_seconds(float(value)) if isinstance(value, int | float) else "—"


@dataclass(frozen=True)
class JsonView:
    text: str
    truncated: bool
    size: int


def _pretty(value: Any) -> JsonView:
    text = to_json(value, indent=2)
    if len(text) > MAX_JSON_CHARS:
        return JsonView(text=text[:MAX_JSON_CHARS], truncated=True, size=len(text))
    return JsonView(text=text, truncated=False, size=len(text))


def _when(schedule: Any) -> str:
    """When a schedule fires, in one line: its cron expressions, interval or instant."""
    from services.dispatcher.schedules import timing_text

    return timing_text(schedule)


templates.env.filters.update(
    dt=_dt, ago=_ago, duration=_duration, pretty=_pretty, short=lambda v: str(v)[:8], when=_when
)


# --- who is signed in -------------------------------------------------------------------------


@dataclass(frozen=True)
class Viewer:
    principal: Principal
    csrf_token: str

    def can(self, action_name: str) -> bool:
        return self.principal.can(ACTIONS[action_name].role)


def _proxy_csrf(secret_key: str, user: str) -> str:
    return hmac.new(secret_key.encode(), f"proxy-csrf:{user}".encode(), hashlib.sha256).hexdigest()


def current_viewer(request: Request) -> Viewer | None:
    console = state_of(request)
    with console.db() as session:
        signed_in = session_principal(session, console.signer, request.cookies.get(SESSION_COOKIE))
    if signed_in is not None:
        return Viewer(signed_in.principal, signed_in.csrf_token)
    proxied = proxy_principal(console.settings, request.headers)
    if proxied is not None:
        return Viewer(proxied, _proxy_csrf(console.settings.secret_key, proxied.name))
    return None


def require_viewer(request: Request) -> Viewer:
    viewer = current_viewer(request)
    if viewer is None:
        raise AuthError(401, "sign in first")
    return viewer


def _flash_serializer(request: Request) -> URLSafeSerializer:
    return URLSafeSerializer(state_of(request).settings.secret_key, salt="wfr-flash")


def _read_flash(request: Request) -> dict[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        value = _flash_serializer(request).loads(raw)
    except BadSignature:
        return None
    return value if isinstance(value, dict) else None


def render(
    request: Request, template: str, viewer: Viewer | None, status_code: int = 200, **context: Any
) -> HTMLResponse:
    flash = _read_flash(request)
    response = templates.TemplateResponse(
        request,
        template,
        {
            "viewer": viewer,
            "csrf_field": CSRF_FIELD,
            "actions": ACTIONS,
            "flash": flash,
            "now": datetime.now(UTC),
            "path": request.url.path,
            **context,
        },
        status_code=status_code,
    )
    if flash is not None:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def error_page(request: Request, status_code: int, message: str) -> HTMLResponse:
    return render(
        request, "error.html", current_viewer(request), status_code=status_code, status=status_code, message=message
    )


def _cookie_flags(request: Request) -> dict[str, Any]:
    secure = state_of(request).settings.secure_cookies or request.url.scheme == "https"
    return {"httponly": True, "samesite": "lax", "secure": secure, "path": "/"}


def _safe_next(target: str | None) -> str:
    """Only paths on this site: an open redirect would make the sign-in page a phishing aid."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


# --- sign-in ----------------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> Response:
    if current_viewer(request) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _login_form(request, next, None, 200)


def _login_form(request: Request, next_path: str, error: str | None, status_code: int) -> HTMLResponse:
    value, cookie = state_of(request).signer.login_csrf()
    response = render(
        request, "login.html", None, status_code=status_code, login_csrf=value, next=_safe_next(next_path), error=error
    )
    response.set_cookie(LOGIN_CSRF_COOKIE, cookie, max_age=3600, **_cookie_flags(request))
    return response


@router.post("/login")
def login_submit(
    request: Request, token: str = Form(""), csrf_token: str = Form(""), next: str = Form("/")
) -> Response:
    console = state_of(request)
    if not console.signer.check_login_csrf(request.cookies.get(LOGIN_CSRF_COOKIE), csrf_token):
        return _login_form(request, next, "The form expired; please try again.", 403)
    with console.db() as session:
        result = sign_in(session, console.signer, token)
    if result is None:
        return _login_form(request, next, "That token is not valid (unknown or revoked).", 401)
    _, cookie = result
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(SESSION_COOKIE, cookie, max_age=SESSION_MAX_AGE_SECONDS, **_cookie_flags(request))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@router.post("/logout")
def logout(request: Request, csrf_token: str = Form("")) -> Response:
    viewer = require_viewer(request)
    _check_form_csrf(viewer, csrf_token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _check_form_csrf(viewer: Viewer, submitted: str | None) -> None:
    from services.console.auth import ConsoleSession

    check_csrf(ConsoleSession(viewer.principal, viewer.csrf_token), submitted)


# --- actions ----------------------------------------------------------------------------------


@router.post("/actions/{name}/{target}")
async def action_submit(name: str, target: str, request: Request) -> Response:
    """Every console button posts here: CSRF, role, then the same `perform` as the API."""
    viewer = require_viewer(request)
    form = await request.form()
    _check_form_csrf(viewer, str(form.get(CSRF_FIELD) or ""))
    next_path = _safe_next(str(form.get("next") or "/"))
    params = {key: str(value) for key, value in form.items() if key not in {CSRF_FIELD, "next"}}
    console = state_of(request)
    try:
        with console.db() as session:
            ctx = ActionContext(session, viewer.principal, console.work_queue, console.dead_letter_queue)
            result = perform(ctx, name, target, params)
        flash = {"kind": "ok", "message": str(result.get("message", "done"))}
        if name == "schedule.delete":
            next_path = "/schedules"
    except UserError as error:
        flash = {"kind": "error", "message": f"{error.field}: {error.message}"}
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(FLASH_COOKIE, _flash_serializer(request).dumps(flash), max_age=60, **_cookie_flags(request))
    return response


# --- pages ------------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request) -> Response:
    viewer = require_viewer(request)
    now = datetime.now(UTC)
    with state_of(request).db() as session:
        counts = queries.status_counts(session, since=now - timedelta(hours=24))
        backlog = queries.dispatcher_backlog(session, now)
        failures = queries.recent_failures(session)
        active = queries.active_executions(session)
        hourly = queries.hourly_runs(session, now)
        names = queries.schedule_names(session)
    columns, top = charts.hourly_chart(hourly)
    return render(
        request,
        "dashboard.html",
        viewer,
        counts=counts,
        total=sum(counts.values()),
        backlog=backlog,
        failures=failures,
        active=active,
        hourly=columns,
        hourly_top=top,
        schedule_names=names,
        nav="dashboard",
    )


@router.get("/workflows", response_class=HTMLResponse)
def workflows_page(request: Request) -> Response:
    from services.core.workflows import list_workflows

    viewer = require_viewer(request)
    with state_of(request).db() as session:
        workflows = list_workflows(session)
        stats = queries.workflow_stats(session)
    return render(request, "workflows.html", viewer, workflows=workflows, stats=stats, nav="workflows")


@router.get("/workflows/{name}", response_class=HTMLResponse)
def workflow_page(name: str, request: Request) -> Response:
    from services.core.workflows import get_workflow
    from services.dispatcher.schedules import list_schedules

    viewer = require_viewer(request)
    with state_of(request).db() as session:
        workflow = get_workflow(session, name)
        runs = queries.workflow_durations(session, workflow.id, 50)
        recent = queries.execution_page(session, workflow=name, limit=10).items
        schedules = [s for s in list_schedules(session) if s.workflow_id == workflow.id]
        events = _changes(session, "workflow", name)
    chart = charts.duration_chart(runs)
    return render(
        request,
        "workflow.html",
        viewer,
        workflow=workflow,
        chart=chart,
        runs=runs,
        recent=recent,
        schedules=schedules,
        events=events,
        definition=_pretty(workflow.definition),
        nav="workflows",
    )


@router.get("/schedules", response_class=HTMLResponse)
def schedules_page(request: Request) -> Response:
    from services.dispatcher.schedules import list_schedules

    viewer = require_viewer(request)
    with state_of(request).db() as session:
        schedules = list_schedules(session)
    return render(request, "schedules.html", viewer, schedules=schedules, nav="schedules")


@router.get("/schedules/{name}", response_class=HTMLResponse)
def schedule_page(name: str, request: Request) -> Response:
    from services.console.api import next_fire_times
    from services.dispatcher import timing
    from services.dispatcher.schedules import get_schedule, schedule_history

    viewer = require_viewer(request)
    now = datetime.now(UTC)
    with state_of(request).db() as session:
        schedule = get_schedule(session, name)
        upcoming = next_fire_times(schedule, 10)
        week = (
            timing.fire_times(timing.Timing.of(schedule), now, now + timedelta(days=8)) if schedule.enabled else []
        )
        recent = queries.execution_page(session, schedule=name, limit=15).items
        ledger = schedule_history(session, name, None, None, limit=20)
        events = _changes(session, "schedule", name)
        workflow_name = schedule.workflow.name
    strip = charts.calendar_strip(week, schedule.timezone, now)
    zone = ZoneInfo(schedule.timezone)
    local_now = now.astimezone(zone)
    return render(
        request,
        "schedule.html",
        viewer,
        schedule=schedule,
        workflow_name=workflow_name,
        upcoming=upcoming,
        strip=strip,
        recent=recent,
        ledger=ledger,
        events=events,
        input=_pretty(schedule.input),
        local_now=local_now,
        backfill_default_to=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        nav="schedules",
    )


@router.get("/executions", response_class=HTMLResponse)
def executions_page(
    request: Request, workflow: str = "", status: str = "", schedule: str = "", cursor: str = "", limit: int = 50
) -> Response:
    from services.core.db.models import ExecutionStatus
    from services.core.workflows import list_workflows
    from services.dispatcher.schedules import list_schedules

    viewer = require_viewer(request)
    with state_of(request).db() as session:
        page = queries.execution_page(
            session,
            workflow=workflow or None,
            status=status or None,
            schedule=schedule or None,
            limit=limit,
            cursor=cursor or None,
        )
        workflow_names = [w.name for w in list_workflows(session)]
        schedule_list = [s.name for s in list_schedules(session)]
        names = queries.schedule_names(session)
    filters = {"workflow": workflow, "status": status, "schedule": schedule}
    next_query = "&".join(f"{k}={quote(v)}" for k, v in filters.items() if v)
    live = any(item["status"] not in TERMINAL_STATUSES for item in page.items)
    return render(
        request,
        "executions.html",
        viewer,
        page=page,
        filters=filters,
        workflow_names=workflow_names,
        schedule_list=schedule_list,
        statuses=[s.value for s in ExecutionStatus],
        next_query=next_query,
        schedule_names=names,
        live=live,
        nav="executions",
    )


def _changes(session: Any, kind: str, target: str | None = None) -> list[dict[str, Any]]:
    """The newest audit entries of an object (or of a kind), shown beside it."""
    return [audit.event_row(e) for e in audit.list_events(session, kind, target, limit=20)]


@router.get("/executions/{execution_id}", response_class=HTMLResponse)
def execution_page(execution_id: str, request: Request) -> Response:
    from services.core.executions import find_execution
    from services.core.views import execution_detail

    viewer = require_viewer(request)
    now = datetime.now(UTC)
    with state_of(request).db() as session:
        execution = find_execution(session, execution_id)
        if execution is None:
            raise NotFoundError("execution", f"no execution with id {execution_id!r}")
        detail = execution_detail(execution)
        names = queries.schedule_names(session)
        definition_steps = {s["id"]: s for s in execution.workflow.definition.get("steps", [])}
        events = _changes(session, "execution", str(execution.id))
    # Steps not started yet are shown as pending rows, so the timeline has the whole workflow.
    seen = {step["id"] for step in detail["steps"]}
    planned = (
        [
            {
                "id": sid,
                "type": s.get("type"),
                "status": "pending",
                "started_at": None,
                "finished_at": None,
                "output": None,
                "error": None,
            }
            for sid, s in definition_steps.items()
            if sid not in seen
        ]
        if detail["status"] not in TERMINAL_STATUSES
        else []
    )
    steps = [*detail["steps"], *planned]
    timeline = charts.step_timeline(steps, detail["started_at"], detail["finished_at"], now)
    terminal = detail["status"] in TERMINAL_STATUSES
    return render(
        request,
        "execution.html",
        viewer,
        e=detail,
        steps=steps,
        timeline=timeline,
        terminal=terminal,
        input=_pretty(detail["input"]),
        output=_pretty(detail["output"]),
        step_outputs={s["id"]: _pretty(s["output"]) for s in steps},
        schedule_name=names.get(detail["schedule_id"]) if detail["schedule_id"] else None,
        events=events,
        nav="executions",
    )


@router.get("/dlq", response_class=HTMLResponse)
def dlq_page(request: Request) -> Response:
    from services.spawner.dead_letters import list_dead_letters

    viewer = require_viewer(request)
    now = datetime.now(UTC)
    letters = [letter.row(now) for letter in list_dead_letters(state_of(request).dead_letter_queue())]
    return render(request, "dlq.html", viewer, letters=letters, nav="dlq")


@router.get("/integrations", response_class=HTMLResponse)
def integrations_page(request: Request) -> Response:
    from services.core.integrations import list_integrations

    viewer = require_viewer(request)
    with state_of(request).db() as session:
        rows = list_integrations(session)
        events = _changes(session, "integration")
    return render(request, "integrations.html", viewer, integrations=rows, events=events, nav="integrations")


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, target_kind: str = "", target: str = "", before: int | None = None) -> Response:
    viewer = require_viewer(request)
    with state_of(request).db() as session:
        events = [
            audit.event_row(e)
            for e in audit.list_events(session, target_kind or None, target or None, None, 100, before)
        ]
    return render(
        request,
        "audit.html",
        viewer,
        events=events,
        target_kind=target_kind,
        target=target,
        next_before=events[-1]["id"] if len(events) == 100 else None,
        nav="audit",
    )


@router.get("/tokens", response_class=HTMLResponse)
def tokens_page(request: Request) -> Response:
    from services.core.tokens import list_tokens

    viewer = require_viewer(request)
    require(viewer.principal, Role.ADMIN)
    with state_of(request).db() as session:
        rows = list_tokens(session)
        events = _changes(session, "token")
    return render(request, "tokens.html", viewer, tokens=rows, created=None, events=events, nav="tokens")



@router.post("/tokens", response_class=HTMLResponse)
def tokens_create(request: Request, name: str = Form(""), role: str = Form(""), csrf_token: str = Form("")) -> Response:
    """Create a token and show it once, on this response only (never in a redirect or a log)."""
    from services.core.tokens import create_token, list_tokens

    viewer = require_viewer(request)
    _check_form_csrf(viewer, csrf_token)
    require(viewer.principal, Role.ADMIN)
    created: dict[str, str] | None = None
    error: str | None = None
    try:
        with state_of(request).db() as session:
            token = create_token(session, name, role, actor=viewer.principal.actor)
        created = {"name": name, "role": role, "token": token}
    except UserError as failure:
        error = f"{failure.field}: {failure.message}"
    with state_of(request).db() as session:
        rows = list_tokens(session)
        events = _changes(session, "token")
    return render(
        request,
        "tokens.html",
        viewer,
        tokens=rows,
        created=created,
        error=error,
        events=events,
        nav="tokens",
        status_code=201 if created else 400,
    )


def json_attr(value: Any) -> str:
    return json.dumps(value)
