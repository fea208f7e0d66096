"""The console in a real headless Chromium (Debian's `chromium`, driven by Playwright).

Sign in, the dashboard, a schedule's fire times in its zone, a run triggered from the console
watched to `succeeded` with its step timeline, and a viewer who sees no action buttons.
Screenshots of every page land in the test's tmp folder; with UPDATE_SCREENSHOTS=1 the dashboard
and the execution page are also copied to docs/images/ for the README (so a test run leaves the
working tree as it found it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from services.core.db.models import Execution, Workflow
from services.core.db.session import session_factory
from tests.console.conftest import Console

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
DOCS_IMAGES = ROOT / "docs" / "images"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (.ci/run installs it)"),
]


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        try:
            yield instance
        finally:
            instance.close()


class Page:
    """A browser page that records console errors and failed requests, and takes screenshots."""

    def __init__(self, browser: Any, console: Console, shots: Path) -> None:
        self.context = browser.new_context(viewport={"width": 1360, "height": 900}, base_url=console.url)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.shots = shots

    def sign_in(self, token: str) -> None:
        self.page.goto("/login")
        self.page.fill("#token", token)
        self.page.click("button[type=submit]")
        self.page.wait_for_url("**/")

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


def spawn_drain(console: Console, tmp_path: Path) -> subprocess.Popen[bytes]:
    """The local spawner until the queue is empty and its runs finished (`wfctl spawn --drain`)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": console.database_url}
    command = [
        sys.executable, "-m", "services.cli", "spawn", "--launcher", "local", "--drain",
        "--runs-dir", str(tmp_path / "runs"), "--wait-seconds", "1", "--health-port", "-1",
    ]
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for_execution(console: Console, timeout: float = 30) -> str:
    """The id of the (only) execution, once the spawner has recorded it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_factory(console.database_url)() as session:
            found = session.scalars(select(Execution.id)).first()
        if found is not None:
            return str(found)
        time.sleep(0.1)
    raise AssertionError("the spawner recorded no execution")


def add_history(console: Console, hours: int = 24) -> None:
    """Earlier runs over the last day (some failed), so the dashboard shows a realistic day."""
    now = datetime.now(UTC)
    with session_factory(console.database_url)() as session, session.begin():
        workflow = session.scalars(select(Workflow)).one()
        for hour in range(1, hours):
            for index in range(1 + hour % 3):
                created = now - timedelta(hours=hour, minutes=7 * index)
                failed = (hour + index) % 9 == 0
                session.add(Execution(
                    workflow_id=workflow.id, trigger="schedule", dedup_key=f"history:{uuid.uuid4()}",
                    status="failed" if failed else "succeeded", input={}, created_at=created,
                    started_at=created, finished_at=created + timedelta(seconds=1.2 + (hour % 5) * 0.3),
                    error="step pause: boom" if failed else None,
                ))


def test_operator_signs_in_runs_a_workflow_and_watches_it_succeed(browser: Any, console: Console, tmp_path: Path) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    ui = Page(browser, console, shots)
    page = ui.page

    # Sign-in page, then the dashboard.
    page.goto("/")
    assert "/login" in page.url
    ui.shot("login")
    ui.sign_in(console.tokens["operator"])
    assert page.locator("[data-testid=role]").text_content() == "operator"
    assert page.locator("h1").first.inner_text() == "Dashboard"

    # The schedule page shows the next fire times in the schedule's zone (02:30 Berlin time).
    page.goto("/schedules/nightly")
    local_times = page.locator("[data-testid=local-time]").all_inner_texts()
    assert len(local_times) == 10
    assert all(" 02:30:00 CE" in text for text in local_times), local_times
    assert page.locator("[data-testid=calendar] .day").count() == 7
    ui.shot("schedule")

    # Trigger a run from the workflow page; the spawner runs it; the execution page follows it live.
    page.goto("/workflows/greet")
    page.fill("input[name=input]", '{"who": "console"}')
    page.click("[data-action='workflow.run']")
    assert "enqueued" in page.locator("[data-testid=flash]").inner_text()
    spawner = spawn_drain(console, tmp_path)
    try:
        execution_id = wait_for_execution(console)
        # Opened while the run is still going: the page refreshes itself until it is over.
        page.goto(f"/executions/{execution_id}")
        assert page.locator("#live[data-live-refresh]").count() == 1
        page.wait_for_selector("#live [data-status=succeeded]", timeout=60_000)
        assert page.url.endswith(f"/executions/{execution_id}")
        assert spawner.wait(timeout=60) == 0
    finally:
        if spawner.poll() is None:
            spawner.kill()
            spawner.wait(timeout=10)
    assert page.locator("#live[data-terminal]").count() == 1
    assert page.locator("[data-testid=timeline] [data-step]").count() == 3
    assert page.locator("[data-testid=steps] [data-status=succeeded]").count() == 3
    assert '"who": "console"' in page.locator("[data-testid=input]").inner_text()
    assert "hello console" in page.locator("[data-testid=output]").inner_text()
    execution_shot = ui.shot("execution")

    page.goto("/workflows/greet")
    assert page.locator("[data-testid=duration-chart] rect.bar").count() == 1
    ui.shot("workflow")
    page.goto("/executions")
    ui.shot("executions")
    page.goto("/audit")
    assert "workflow.run" in page.locator("[data-testid=audit]").inner_text()
    ui.shot("audit")
    page.goto("/")
    assert page.locator("[data-testid=count-succeeded]").inner_text() == "1"
    ui.shot("dashboard-one-run")
    # For the README: the same pages over a day of earlier runs.
    add_history(console)
    page.goto("/")
    assert int(page.locator("[data-testid=count-failed]").inner_text()) > 0
    dashboard_shot = ui.shot("dashboard")
    page.goto("/workflows/greet")
    ui.shot("workflow-history")

    assert ui.errors == []
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(dashboard_shot, DOCS_IMAGES / "console-dashboard.png")
        shutil.copyfile(execution_shot, DOCS_IMAGES / "console-execution.png")


def test_a_viewer_sees_no_action_buttons(browser: Any, console: Console, tmp_path: Path) -> None:
    ui = Page(browser, console, tmp_path)
    ui.sign_in(console.tokens["viewer"])
    for path in ("/", "/workflows/greet", "/schedules/nightly", "/executions", "/dlq"):
        ui.page.goto(path)
        assert ui.page.locator("[data-action]").count() == 0, path
        assert ui.page.locator("form[action^='/actions/']").count() == 0, path
    ui.shot("viewer-schedule")
    assert ui.errors == []


def test_a_wrong_token_is_refused_and_a_sign_in_link_signs_in(browser: Any, console: Console, tmp_path: Path) -> None:
    ui = Page(browser, console, tmp_path)
    ui.page.goto("/login")
    ui.page.fill("#token", "wfr_not-a-real-token")
    ui.page.click("button[type=submit]")
    assert "not valid" in ui.page.locator("[data-testid=login-error]").inner_text()
    fresh = Page(ui.page.context.browser, console, tmp_path)  # a sign-in link opens a new tab
    fresh.page.goto(f"/login#token={console.tokens['admin']}")
    fresh.page.wait_for_url("**/")
    ui.errors.extend(fresh.errors)
    ui.page = fresh.page
    assert ui.page.locator("[data-testid=role]").text_content() == "admin"
    assert console.tokens["admin"] not in ui.page.url
    ui.page.goto("/tokens")
    ui.shot("tokens")
    # The 401 of the wrong token is a console message of its own; nothing else went wrong.
    assert [e for e in ui.errors if "401" not in e] == []


SLOW_WORKFLOW = """
name: slow
steps:
  - {id: first, type: log, with: {message: "started"}}
  - {id: wait, type: sleep, with: {seconds: 60}}
  - {id: never, type: log, with: {message: "must not run"}}
"""


def test_an_operator_cancels_a_running_run_from_its_page(
    browser: Any, console: Console, queues: Any, tmp_path: Path
) -> None:
    from services.core.queue import Queue
    from services.core.workflows import apply_workflow, parse_workflow
    from services.dispatcher.triggers import trigger_manual_run

    with session_factory(console.database_url)() as session, session.begin():
        apply_workflow(session, parse_workflow(SLOW_WORKFLOW))
        trigger_manual_run(session, Queue(queues.client, queues.queue_url), "slow", {})
    ui = Page(browser, console, tmp_path)
    ui.page.on("dialog", lambda dialog: dialog.accept())  # the button asks "Cancel this run?"
    ui.sign_in(console.tokens["operator"])
    spawner = spawn_drain(console, tmp_path)
    try:
        execution_id = wait_for_execution(console)
        ui.page.goto(f"/executions/{execution_id}")
        ui.page.wait_for_selector("#live [data-status=running]", timeout=60_000)
        ui.page.click("[data-action='execution.cancel']")
        ui.page.wait_for_selector("#live [data-status=cancelled]", timeout=30_000)
        started = time.monotonic()
        assert spawner.wait(timeout=30) == 0  # the runner stopped well before its 60 s sleep ended
        assert time.monotonic() - started < 30
    finally:
        if spawner.poll() is None:
            spawner.kill()
            spawner.wait(timeout=10)
    ui.page.reload()
    assert ui.page.locator("[data-testid=steps] [data-status=succeeded]").count() == 1
    assert ui.page.locator("[data-testid=steps] [data-status=cancelled]").count() >= 1
    assert ui.page.locator("[data-action='execution.rerun']").count() == 1  # finished: re-run, no cancel
    assert ui.page.locator("[data-action='execution.cancel']").count() == 0
    ui.shot("execution-cancelled")
    assert ui.errors == []
