"""`wfctl channels`, `wfctl notifications`, `--notify` on schedules, and rules in workflow files."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select, text

from services.core.db.models import Channel, Schedule, Workflow
from services.core.db.session import engine_for, session_factory
from services.notify.outbox import enqueue
from tests.notify.conftest import SECRET

SLACK_URL_TOKEN = "T000-B000-XXXXXXXXsecretXXXXXXXX"
SMTP_PASSWORD = "hunter2-but-longer"

WORKFLOW = """
name: nightly
late_after: 2m
notify:
  - on: [failed, recovered]
    channel: ops-hook
  - {on: [missed], channel: team-slack}
steps:
  - {id: hello, type: log, with: {message: "hello"}}
"""


def write(tmp_path: Path, name: str, content: object) -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def channel_rows(db: str) -> list[tuple[str, str, bytes]]:
    with session_factory(db)() as session:
        return [(c.name, c.type, bytes(c.ciphertext)) for c in session.scalars(select(Channel).order_by(Channel.name))]


@pytest.fixture
def channels(db, tmp_path, wfctl, receiver, encryption_key):
    files = {
        "ops-hook": {"type": "webhook", "url": receiver.url, "secret": SECRET},
        "team-slack": {"type": "slack", "url": f"{receiver.url}/services/{SLACK_URL_TOKEN}"},
        "ops-mail": {"type": "email", "host": "smtp.example.test", "port": 587, "username": "mailer",
                     "password": SMTP_PASSWORD, "from": "runtime@example.test", "to": ["oncall@example.test"]},
    }
    for name, document in files.items():
        result = wfctl("channels", "set", name, "-f", write(tmp_path, f"{name}.json", document))
        assert result.code == 0, result.err
        assert result.out.strip() == f"channel {name} created ({document['type']})"
    return files


def test_channels_set_list_and_test(channels, wfctl, receiver, db) -> None:
    listed = wfctl("channels", "list", "--output", "json")
    assert [(c["name"], c["type"]) for c in listed.json()] == [
        ("ops-hook", "webhook"), ("ops-mail", "email"), ("team-slack", "slack"),
    ]
    assert set(listed.json()[0]) == {"name", "type", "created_at", "updated_at"}

    result = wfctl("channels", "test", "ops-hook")
    assert result.code == 0 and result.out.strip() == "test notification sent over channel ops-hook"
    [request] = receiver.requests
    assert request.json()["event"] == "test" and request.headers["x-signature"].startswith("sha256=")

    down = wfctl("channels", "test", "ops-mail")  # smtp.example.test does not resolve: no network here
    assert down.code == 1 and down.err.startswith("error: channel ops-mail: ") and len(down.err.strip().splitlines()) == 1
    assert SMTP_PASSWORD not in down.err

    missing = wfctl("channels", "test", "nope")
    assert missing.code == 2 and missing.err.strip() == "error: channel: no channel named 'nope'"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("type: [webhook", "error: {file}: not valid YAML or JSON at line 1"),
        ({"type": "pager"}, "error: file.type: must be one of webhook, slack, email, got 'pager'"),
        ({"type": "webhook"}, "error: file.url: is required and must be a non-empty string"),
        ({"type": "webhook", "url": "ftp://example.test/x"}, "error: file.url: must be an http:// or https:// URL"),
        ({"type": "slack", "url": "https://hooks.example.test/x", "secret": "s"}, "error: file.secret: unknown field for a slack channel"),
        ({"type": "email", "host": "h", "from": "a@b.c", "to": ["nobody"]}, "error: file.to: 'nobody' is not an email address"),
        ({"type": "email", "host": "h", "from": "a@b.c", "to": "x@y.z", "username": "u"}, "error: file.password: username and password go together"),
        ({"type": "email", "host": "h", "from": "a@b.c", "to": "x@y.z", "username": "u", "password": "p", "starttls": False},
         "error: file.starttls: must be true when credentials are given (never sent in clear)"),
        ({"type": "email", "host": "h", "port": 70000, "from": "a@b.c", "to": "x@y.z"}, "error: file.port: must be a TCP port (1-65535)"),
    ],
)
def test_bad_channel_files_are_one_line_exit_2_and_change_nothing(channels, db, tmp_path, wfctl, content, expected) -> None:
    before = channel_rows(db)
    path = write(tmp_path, "bad.yaml", content)
    result = wfctl("channels", "set", "ops-hook", "-f", path)
    assert result.code == 2
    assert len(result.err.strip().splitlines()) == 1
    assert result.err.strip().startswith(expected.format(file=path))
    assert channel_rows(db) == before


def test_bad_channel_name_and_missing_key(db, tmp_path, wfctl, monkeypatch) -> None:
    path = write(tmp_path, "ok.json", {"type": "slack", "url": "https://hooks.example.test/x"})
    monkeypatch.setenv("INTEGRATION_ENCRYPTION_KEY", "")
    missing_key = wfctl("channels", "set", "team", "-f", path)
    assert missing_key.code == 2 and "INTEGRATION_ENCRYPTION_KEY is not set" in missing_key.err
    bad_name = wfctl("channels", "set", "Team Slack", "-f", path)
    assert bad_name.code == 2 and bad_name.err.startswith("error: name: ")
    assert channel_rows(db) == []


def test_rules_in_workflow_yaml_keep_a_bare_on_key(db, tmp_path, wfctl) -> None:
    result = wfctl("workflows", "apply", "-f", write(tmp_path, "wf.yaml", WORKFLOW))
    assert result.code == 0, result.err
    with session_factory(db)() as session:
        definition = session.scalar(select(Workflow.definition))
    assert definition["notify"] == [
        {"on": ["failed", "recovered"], "channel": "ops-hook"}, {"on": ["missed"], "channel": "team-slack"},
    ]
    assert definition["late_after"] == "2m"


@pytest.mark.parametrize(
    ("replace", "expected"),
    [
        (("[failed, recovered]", "[failed, exploded]"), "notify[0].on[1]: 'exploded' is not one of"),
        (("late_after: 2m", "late_after: soon"), "late_after: 'soon' is not valid"),
        (("late_after: 2m", "late_after: 0m"), "late_after: must be between 1s and 30d"),
        (("channel: ops-hook", "channel: Ops Hook"), "notify[0].channel: 'Ops Hook' does not match"),
    ],
)
def test_bad_rules_in_workflows_are_rejected(db, tmp_path, wfctl, replace, expected) -> None:
    result = wfctl("workflows", "apply", "-f", write(tmp_path, "wf.yaml", WORKFLOW.replace(*replace)))
    assert result.code == 2 and result.err.startswith(f"error: {expected}"), result.err
    with session_factory(db)() as session:
        assert session.scalar(select(Workflow.id)) is None


def test_schedules_create_with_notify_json_and_file(db, tmp_path, wfctl) -> None:
    assert wfctl("workflows", "apply", "-f", write(tmp_path, "wf.yaml", WORKFLOW)).code == 0
    rules = '[{"on": ["late"], "channel": "pager"}]'
    result = wfctl("schedules", "create", "a", "--workflow", "nightly", "--cron", "0 2 * * *", "--notify", rules)
    assert result.code == 0, result.err
    settings = {"notify": [{"on": ["long_running"], "channel": "pager"}], "long_running_after": "1h"}
    result = wfctl("schedules", "create", "b", "--workflow", "nightly", "--cron", "0 2 * * *",
                   "--notify", "@" + write(tmp_path, "n.json", settings), "--output", "json")
    assert result.code == 0 and result.json()["notify"] == settings
    with session_factory(db)() as session:
        stored = dict(session.execute(select(Schedule.name, Schedule.notify)).all())
    assert stored == {"a": {"notify": [{"on": ["late"], "channel": "pager"}]}, "b": settings}

    for bad, expected in [
        ('{"notify": [{"on": ["late"]}]}', "error: notify.notify[0].channel: must be the name of a channel"),
        ('[{"on": [], "channel": "x"}]', "error: notify.notify[0].on: must be a non-empty list of events"),
        ('{"late_after": "later"}', "error: notify.late_after: 'later' is not a duration"),
        ('{"retry": 1}', "error: notify.retry: unknown field"),
        ("not json", "error: notify: is not valid JSON"),
    ]:
        result = wfctl("schedules", "create", "c", "--workflow", "nightly", "--cron", "0 2 * * *", "--notify", bad)
        assert result.code == 2 and result.err.startswith(expected), (bad, result.err)
    with session_factory(db)() as session:
        assert session.scalar(select(Schedule.id).where(Schedule.name == "c")) is None


def test_schedules_update_replaces_the_notify_rules(db, tmp_path, wfctl) -> None:
    assert wfctl("workflows", "apply", "-f", write(tmp_path, "wf.yaml", WORKFLOW)).code == 0
    assert wfctl("schedules", "create", "a", "--workflow", "nightly", "--cron", "0 2 * * *",
                 "--notify", '[{"on": ["late"], "channel": "pager"}]').code == 0
    settings = {"notify": [{"on": ["missed"], "channel": "ops"}]}
    updated = wfctl("schedules", "update", "a", "--notify", "@" + write(tmp_path, "n.json", settings))
    assert updated.code == 0 and updated.out.startswith("schedule a updated (notify)"), updated.err
    assert wfctl("schedules", "show", "a", "-o", "json").json()["notify"] == settings
    bad = wfctl("schedules", "update", "a", "--notify", '[{"on": []}]')
    assert bad.code == 2 and bad.err.startswith("error: notify.notify[0].on: must be a non-empty list"), bad.err
    assert wfctl("schedules", "show", "a", "-o", "json").json()["notify"] == settings


def dump(db: str) -> str:
    """The whole database as text: pg_dump when it matches the server, else every row as JSON."""
    if shutil.which("pg_dump"):
        result = subprocess.run(["pg_dump", "--data-only", db], capture_output=True, text=True, timeout=60)
        if result.returncode == 0:
            return result.stdout
    with engine_for(db).connect() as conn:
        tables = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars().all()
        return "\n".join(
            row for table in tables for row in conn.execute(text(f'SELECT row_to_json(t)::text FROM "{table}" t')).scalars()
        )


def test_no_secret_in_any_output_or_table(channels, db, wfctl, tmp_path, receiver, make_sender) -> None:
    secrets = [SECRET, SLACK_URL_TOKEN, SMTP_PASSWORD, channels["ops-hook"]["url"]]
    execution_id = uuid.uuid4()
    with session_factory(db)() as session, session.begin():
        enqueue(session, "failed", str(execution_id), ["ops-hook", "team-slack", "ops-mail"],
                {"workflow": "nightly", "status": "failed", "execution_id": execution_id}, execution_id=execution_id)
    receiver.status = 500
    make_sender().run_once()  # every channel fails once, with its error recorded
    outputs = [
        wfctl("channels", "list"), wfctl("channels", "list", "--output", "json"),
        wfctl("notifications", "list"), wfctl("notifications", "list", "--output", "json"),
        wfctl("channels", "test", "ops-hook"), wfctl("channels", "test", "team-slack"),
        wfctl("integrations", "rotate-key"),
    ]
    assert outputs[4].code == 1 and "HTTP 500" in outputs[4].err
    text_out = "\n".join(o.out + o.err for o in outputs)
    database = dump(db)
    assert "ops-hook" in database and "team-slack" in database  # the dump has the rows
    for secret in secrets:
        assert secret not in text_out
        assert secret not in database
        assert secret.encode().hex() not in database


def test_rules_naming_a_channel_that_does_not_exist_are_applied_with_a_warning(channels, db, tmp_path, wfctl) -> None:
    """Accepted (a channel may be created later), but said at once, not an hour later as a
    failed notification."""
    typo = WORKFLOW.replace("channel: team-slack", "channel: team-slak")
    applied = wfctl("workflows", "apply", "-f", write(tmp_path, "wf.yaml", typo))
    assert applied.code == 0 and applied.out.startswith("workflow nightly created")
    assert applied.err.strip() == ("warning: workflow nightly: notify names no channel 'team-slak' yet "
                                   "(create it: wfctl channels set team-slak -f FILE)")
    fixed = wfctl("workflows", "apply", "-f", write(tmp_path, "wf.yaml", WORKFLOW))
    assert fixed.code == 0 and fixed.err == ""
    created = wfctl("schedules", "create", "a", "--workflow", "nightly", "--cron", "0 2 * * *",
                    "--notify", '[{"on": ["late"], "channel": "pager"}]')
    assert created.code == 0 and "schedule a: notify names no channel 'pager' yet" in created.err
    manifest = "kind: Workflow\n" + WORKFLOW.replace("name: nightly", "name: other").replace("ops-hook", "ghost")
    declared = wfctl("apply", "-f", write(tmp_path, "fleet.yaml", manifest))
    assert declared.code == 0 and "workflow other: notify names no channel 'ghost' yet" in declared.err
