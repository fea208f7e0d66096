"""Bad input of any kind gets a one-line error naming the field, exit 2, no change."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from services.core.db.session import engine_for

GOOD_WORKFLOW = """
name: good
steps:
  - {id: hello, type: log, with: {message: "hi"}}
"""
BIG_INPUT = json.dumps({"blob": "x" * (256 * 1024)})


def snapshot(database_url: str, queues) -> dict[str, object]:
    with engine_for(database_url).connect() as conn:
        state: dict[str, object] = {
            table: conn.execute(text(f"SELECT count(*), coalesce(max(updated_at)::text, '') FROM {table}")).one()
            for table in ("workflows", "schedules", "executions")
        }
    attributes = queues.client.get_queue_attributes(
        QueueUrl=queues.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    state["queue"] = attributes["ApproximateNumberOfMessages"]
    return state


@pytest.fixture
def seeded(db, queues, wfctl, tmp_path: Path):
    path = tmp_path / "good.yaml"
    path.write_text(GOOD_WORKFLOW)
    assert wfctl("workflows", "apply", "-f", str(path)).code == 0
    assert wfctl("schedules", "create", "existing", "--workflow", "good", "--cron", "0 9 * * *").code == 0
    return tmp_path


BAD_COMMANDS = [
    (["schedules", "create", "s1", "--workflow", "good", "--cron", "61 * * * *"], "cron"),
    (["schedules", "create", "s1", "--workflow", "good", "--cron", "* * *"], "cron"),
    (["schedules", "create", "s1", "--workflow", "good", "--cron", "0 0 L * *"], "cron"),
    (["schedules", "create", "s1", "--workflow", "good", "--cron", "0 9 * * *", "--timezone", "Mars/Base"], "timezone"),
    (["schedules", "create", "s1", "--workflow", "missing", "--cron", "0 9 * * *"], "workflow"),
    (["schedules", "create", "s1", "--workflow", "good", "--cron", "0 9 * * *", "--input", "[1]"], "input"),
    (["schedules", "create", "s1", "--workflow", "good", "--cron", "0 9 * * *", "--input", "{bad"], "input"),
    (["schedules", "create", "s1", "--workflow", "good", "--cron", "0 9 * * *", "--input", BIG_INPUT], "input"),
    (["schedules", "create", "s1", "--workflow", "good", "--cron", "0 9 * * *", "--catchup", "some"], "catchup"),
    (["schedules", "create", "s1", "--workflow", "good", "--cron", "0 9 * * *", "--overlap", "queue"], "overlap"),
    (["schedules", "create", "s1", "--workflow", "good", "--cron", "0 9 * * *", "--jitter", "901"], "jitter"),
    (["schedules", "create", "Bad Name", "--workflow", "good", "--cron", "0 9 * * *"], "name"),
    (["schedules", "create", "existing", "--workflow", "good", "--cron", "0 9 * * *"], "name"),
    (["schedules", "show", "nope"], "schedule"),
    (["schedules", "pause", "nope"], "schedule"),
    (["schedules", "resume", "nope"], "schedule"),
    (["schedules", "delete", "nope"], "schedule"),
    (["schedules", "next", "existing", "--count", "0"], "count"),
    (["schedules", "backfill", "existing", "--from", "yesterday", "--to", "2026-11-02T00:00:00Z"], "from"),
    (["schedules", "backfill", "existing", "--from", "2026-11-03T00:00:00Z", "--to", "2026-11-02T00:00:00Z"], "to"),
    (["schedules", "backfill", "existing", "--from", "2026-11-03T00:00:00Z", "--to", "2999-01-01T00:00:00Z"], "to"),
    (["run", "missing"], "workflow"),
    (["run", "good", "--input", BIG_INPUT], "input"),
    (["run", "good", "--input", "not json"], "input"),
    (["run", "good", "--input", "\"a string\""], "input"),
    (["workflows", "show", "missing"], "workflow"),
    (["executions", "show", "00000000-0000-0000-0000-000000000000"], "execution"),
    (["executions", "list", "--status", "done"], "status"),
    (["executions", "list", "--workflow", "missing"], "workflow"),
    (["dispatch", "--now", "noon"], "now"),
    (["schedules", "create", "s1", "--workflow", "good", "--cron", "0 9 * * *", "--catchup-window", "-1"], "catchup-window"),
    (["schedules", "create", "s1", "--workflow", "good", "--cron", "0 9 * * *", "--catchup-window", "99999999999"],
     "catchup-window"),
    (["schedules", "create", "s1", "--workflow", "good", "--cron", "0 9 * * *", "--jitter", "-1"], "jitter"),
    (["schedules", "backfill", "existing", "--from", "0001-01-01T00:00:00", "--to", "0001-01-02T00:00:00Z"], "from"),
    (["schedules", "backfill", "existing", "--from", "9999-12-31T00:00:00Z", "--to", "9999-12-31T23:59:00Z"], "from"),
    (["dispatch", "--now", "9999-12-31T23:59:00Z"], "now"),
    # Searches run up to 68 years past a bound (the longest `every`): the calendar ends in 9999.
    (["schedules", "create", "s1", "--workflow", "good", "--cron", "0 0 29 2 *", "--start", "9901-01-01T00:00:00Z"],
     "start"),
    (["schedules", "create", "s1", "--workflow", "good", "--every", "1000000h", "--start", "9950-01-01T00:00:00Z"],
     "start"),
]


@pytest.mark.parametrize(("args", "field"), BAD_COMMANDS, ids=[" ".join(a[:3])[:40] + f"-{f}" for a, f in BAD_COMMANDS])
def test_bad_input_is_one_line_naming_the_field_and_changes_nothing(seeded, db, queues, wfctl, args, field) -> None:
    before = snapshot(db, queues)
    result = wfctl(*args)
    assert result.code == 2, (result.out, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith(f"error: {field}"), lines[0]
    assert snapshot(db, queues) == before


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ("name: [unclosed", "bad.yaml"),
        ("- just\n- a list", "workflow"),
        ("name: ok\nsteps: []", "steps"),
        ("name: ok\nsteps: [{id: a, type: http, with: {}}]", "steps[0].with"),
        ("name: ok\nsteps: [{id: a, type: log, with: {message: x}}, {id: a, type: log, with: {message: y}}]", "steps[1].id"),
        ("name: ok\ntimeout_seconds: 90000\nsteps: [{id: a, type: log, with: {message: x}}]", "timeout_seconds"),
        ("name: ok\nretry: {max_attempts: 0}\nsteps: [{id: a, type: log, with: {message: x}}]", "retry.max_attempts"),
        ("name: ok\nsteps: [{id: a, type: log, with: {message: x}, colour: red}]", "steps[0]"),
        ("name: ok\nsteps: [{id: 1a, type: log, with: {message: x}}]", "steps[0].id"),
    ],
)
def test_malformed_workflows_are_refused(seeded, db, queues, wfctl, document, field) -> None:
    path = seeded / "bad.yaml"
    path.write_text(document)
    before = snapshot(db, queues)
    result = wfctl("workflows", "apply", "-f", str(path))
    assert result.code == 2
    assert result.err.strip().startswith(f"error: {path if field == 'bad.yaml' else field}"), result.err
    assert len(result.err.strip().splitlines()) == 1
    assert snapshot(db, queues) == before


def test_missing_file_is_a_one_line_error(seeded, wfctl) -> None:
    result = wfctl("workflows", "apply", "-f", "/nonexistent/workflow.yaml")
    assert result.code == 2 and result.err.startswith("error: file: cannot read")


def test_missing_configuration_is_named(wfctl, monkeypatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    result = wfctl("workflows", "list")
    assert result.code == 2 and "DATABASE_URL is not set" in result.err


def test_the_real_console_entry_prints_no_traceback(db, queues) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", "schedules", "create", "x", "--workflow", "w", "--cron", "99 * * * *"],
        capture_output=True, text=True, timeout=60, env=os.environ.copy(),
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "error: cron: minute field: 99 is outside 0-59"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["schedules", "create"], "error: Missing argument 'name'."),
        (["schedules", "list", "--bogus"], "error: No such option: --bogus"),
        (["no-such-command"], "error: No such command 'no-such-command'."),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(wfctl, args, message) -> None:
    result = wfctl(*args)
    assert result.code == 2
    assert result.err.startswith(message) and len(result.err.strip().splitlines()) == 1


def test_the_cli_needs_no_undeclared_package() -> None:
    """typer ships its own click; the CLI must not import the separate click package."""
    code = (
        "import sys; sys.modules['click'] = None\n"
        "from services.cli.main import main\n"
        "sys.exit(main(['schedules', 'create']))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: Missing argument 'name'.")


def test_backfill_of_a_huge_range_is_refused_without_computing_it(seeded, db, queues, wfctl) -> None:
    import time

    assert wfctl("schedules", "create", "every-minute", "--workflow", "good", "--cron", "* * * * *").code == 0
    before = snapshot(db, queues)
    started = time.monotonic()
    # A typo'd year: millions of fire times. Refused at once, not after computing them all.
    result = wfctl("schedules", "backfill", "every-minute", "--from", "1926-01-01T00:00:00Z", "--to", "2026-01-01T00:00:00Z")
    assert time.monotonic() - started < 10
    assert result.code == 2, result.err
    assert result.err.startswith("error: to: ") and "at most 10000" in result.err
    assert snapshot(db, queues) == before


@pytest.mark.parametrize("group", ["schedules", "executions", "workflows"])
def test_a_command_group_alone_prints_its_help_without_an_error_line(wfctl, group) -> None:
    result = wfctl(group)
    assert "Usage: " in result.out and f"{group} " in result.out and "Commands" in result.out
    assert "error:" not in result.err
