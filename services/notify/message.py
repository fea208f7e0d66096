"""What a notification says: one line for people, a JSON payload for machines (no I/O).

The line names the workflow, the schedule, the fire time in the schedule's time zone, the status,
the error and the attempt ("attempt 3 of 3"), so a phone's lock screen is enough to act on it;
the link opens the run (or the schedule) in the console.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

PAYLOAD_VERSION = 1
MAX_ERROR_CHARS = 300

HEADLINES = {
    "failed": "run failed",
    "recovered": "run succeeded again",
    "missed": "fire time missed",
    "late": "run late",
    "long_running": "run still running",
    "dead_lettered": "message dead-lettered",
    "test": "test notification (wfctl channels test)",
}


def _iso(instant: datetime | None) -> str | None:
    return None if instant is None else instant.isoformat().replace("+00:00", "Z")


def local_time(fire_time: datetime | None, zone: str | None) -> str | None:
    """`2026-11-29 02:30 CET`: the fire time as the schedule's owner thinks of it."""
    if fire_time is None:
        return None
    try:
        local = fire_time.astimezone(ZoneInfo(zone or "UTC"))
    except (KeyError, ValueError):
        local = fire_time
    return local.strftime("%Y-%m-%d %H:%M %Z")


def _short(text: str | None) -> str | None:
    if not text:
        return None
    line = " ".join(text.split())
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 1] + "…"


def link(console_url: str | None, details: dict[str, Any]) -> str | None:
    """The run in the console, or the schedule when there is no run (missed, late before a start)."""
    if not console_url:
        return None
    base = console_url.rstrip("/")
    if details.get("execution_id"):
        return f"{base}/executions/{details['execution_id']}"
    if details.get("schedule"):
        return f"{base}/schedules/{details['schedule']}"
    if details.get("workflow"):
        return f"{base}/workflows/{details['workflow']}"
    return base


def line(event: str, details: dict[str, Any]) -> str:
    """One line: `[failed] nightly-report: run failed · schedule nightly · fire time … · status … · …`."""
    parts = [f"[{event}] {details.get('workflow') or 'unknown workflow'}: {HEADLINES.get(event, event)}"]
    if details.get("schedule"):
        parts.append(f"schedule {details['schedule']}")
    fire = local_time(_parse(details.get("fire_time")), details.get("timezone"))
    if fire:
        parts.append(f"fire time {fire}")
    if details.get("status"):
        parts.append(f"status {details['status']}")
    if details.get("attempt"):
        of = f" of {details['max_attempts']}" if details.get("max_attempts") else ""
        parts.append(f"attempt {details['attempt']}{of}")
    if details.get("reason"):
        parts.append(f"reason: {_short(details['reason'])}")
    if details.get("threshold"):
        parts.append(f"threshold {details['threshold']}")
    if details.get("error"):
        parts.append(f"error: {_short(details['error'])}")
    return " · ".join(parts)


def _parse(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None


def payload(
    event: str, details: dict[str, Any], idempotency_key: str, console_url: str | None, created_at: datetime
) -> dict[str, Any]:
    """The webhook body (docs/notifications.md, Payloads)."""
    fire_time = _parse(details.get("fire_time"))
    return {
        "version": PAYLOAD_VERSION,
        "idempotency_key": idempotency_key,
        "event": event,
        "text": line(event, details),
        "link": link(console_url, details),
        "occurred_at": _iso(created_at),
        "workflow": {"id": details.get("workflow_id"), "name": details.get("workflow")},
        "schedule": (
            {"id": details.get("schedule_id"), "name": details.get("schedule"), "timezone": details.get("timezone")}
            if details.get("schedule_id")
            else None
        ),
        "fire_time": _iso(fire_time),
        "fire_time_local": local_time(fire_time, details.get("timezone")),
        "execution": (
            {
                "id": details.get("execution_id"),
                "status": details.get("status"),
                "attempt": details.get("attempt"),
                "max_attempts": details.get("max_attempts"),
                "error": details.get("error"),
            }
            if details.get("execution_id")
            else None
        ),
        "reason": details.get("reason"),
    }


def slack_body(event: str, details: dict[str, Any], console_url: str | None) -> dict[str, Any]:
    """Slack's incoming-webhook format: `text` (also the fallback) plus one section block."""
    text = line(event, details)
    url = link(console_url, details)
    # Slack reads `<…|…>` as a link in both fields: an error message must not become one.
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    markdown = f"{escaped}\n<{url}|Open in the console>" if url else escaped
    return {
        "text": f"{escaped} {url}" if url else escaped,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": markdown}}],
    }


def email_subject(event: str, details: dict[str, Any]) -> str:
    where = f" (schedule {details['schedule']})" if details.get("schedule") else ""
    return f"[workflow-runtime] {details.get('workflow') or 'unknown workflow'}: {HEADLINES.get(event, event)}{where}"


def email_body(event: str, details: dict[str, Any], console_url: str | None, idempotency_key: str) -> str:
    url = link(console_url, details)
    lines = [line(event, details), ""]
    if url:
        lines += [f"Open the run: {url}", ""]
    lines.append(f"Idempotency key: {idempotency_key}")
    return "\n".join(lines) + "\n"
