"""The console served by uvicorn on a free 127.0.0.1 port, over the test database and queues."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from services.console.server import BackgroundConsole, start_in_thread
from services.core.db.models import AuditEvent
from services.core.db.session import session_factory
from services.core.settings import ConsoleSettings
from services.core.tokens import create_token
from services.core.workflows import apply_workflow, parse_workflow
from services.dispatcher.schedules import ScheduleSpec, create_schedule

WORKFLOW = """
name: greet
steps:
  - {id: hello, type: log, with: {message: "hello {{ input.who | default('world') }}"}}
  - {id: pause, type: sleep, with: {seconds: 2}}
  - {id: shout, type: transform, with: {expression: "steps.hello.output"}}
"""

SECRET_KEY = "test-console-secret-key-0123456789abcdef"


@dataclass
class Console:
    url: str
    database_url: str
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self, role: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=20, follow_redirects=False, **kwargs)

    def audit_count(self) -> int:
        with session_factory(self.database_url)() as session:
            return int(session.scalar(select(func.count()).select_from(AuditEvent)) or 0)

    def audit_rows(self) -> list[AuditEvent]:
        with session_factory(self.database_url)() as session:
            return list(session.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def seed(database_url: str) -> dict[str, str]:
    """A workflow, a Berlin schedule, and one token per role."""
    with session_factory(database_url)() as session, session.begin():
        apply_workflow(session, parse_workflow(WORKFLOW))
        create_schedule(
            session, ScheduleSpec(name="nightly", workflow="greet", cron="30 2 * * *", timezone="Europe/Berlin")
        )
        return {role: create_token(session, f"{role}-token", role, actor="test") for role in ("viewer", "operator", "admin")}


def start_console(database_url: str, monkeypatch: pytest.MonkeyPatch, **env: str) -> BackgroundConsole:
    monkeypatch.setenv("CONSOLE_SECRET_KEY", SECRET_KEY)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return start_in_thread(ConsoleSettings.from_env(), database_url)


@pytest.fixture
def console(db: str, queues: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Console]:
    tokens = seed(db)
    server = start_console(db, monkeypatch)
    try:
        yield Console(url=server.url, database_url=db, tokens=tokens)
    finally:
        server.stop()
