"""`wfctl apply`, `schedules create/update` with every kind, and JSON options from @FILE and -."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from tests.cli.test_cli_errors import snapshot

WORKFLOW_DOC = """
kind: Workflow
name: report
steps:
  - {id: hello, type: log, with: {message: "hello"}}
"""
SCHEDULES_DOC = """
kind: Schedule
name: nightly
workflow: report
cron: "30 2 * * *"
timezone: Europe/Berlin
---
kind: Schedule
name: twice
workflow: report
cron: ["0 9 * * mon-fri", "0 12 * * sat,sun"]
input: {region: eu}
---
kind: Schedule
name: often
workflow: report
every: 90m
start_at: "2030-01-01T00:00:00Z"
end_at: "2030-02-01T00:00:00Z"
"""


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "workflows.yaml").write_text(WORKFLOW_DOC)
    (folder / "schedules.yaml").write_text(SCHEDULES_DOC)
    return folder


def _ids(wfctl) -> dict[str, str]:
    return {s["name"]: s["id"] for s in wfctl("schedules", "list", "-o", "json").json()}


def test_apply_dry_run_apply_reapply_change_and_prune(db, queues, wfctl, manifests: Path) -> None:
    dry = wfctl("apply", "-f", str(manifests), "--dry-run")
    assert dry.code == 0, dry.err
    assert "(dry run) schedule/nightly created" in dry.out and "(dry run) workflow/report created" in dry.out
    assert wfctl("schedules", "list", "-o", "json").json() == []
    assert wfctl("workflows", "list", "-o", "json").json() == []

    first = wfctl("apply", "-f", str(manifests), "-o", "json")
    assert first.code == 0, first.err
    assert [(c["kind"], c["name"], c["action"]) for c in first.json()["changes"]] == [
        ("Workflow", "report", "created"),
        ("Schedule", "nightly", "created"), ("Schedule", "twice", "created"), ("Schedule", "often", "created"),
    ]
    ids = _ids(wfctl)
    shown = wfctl("schedules", "show", "often", "-o", "json").json()
    assert (shown["kind"], shown["every"], shown["next_run_at"]) == ("every", "1h30m", "2030-01-01T00:00:00Z")
    twice = wfctl("schedules", "show", "twice", "-o", "json").json()
    assert twice["crons"] == ["0 9 * * mon-fri", "0 12 * * sat,sun"] and twice["input"] == {"region": "eu"}

    again = wfctl("apply", "-f", str(manifests))
    assert again.code == 0, again.err
    assert "0 created, 0 changed, 4 unchanged, 0 pruned" in again.out
    before = snapshot(db, queues)
    wfctl("apply", "-f", str(manifests))
    assert snapshot(db, queues) == before  # idempotent: not even updated_at moves

    (manifests / "schedules.yaml").write_text(
        SCHEDULES_DOC.replace('cron: "30 2 * * *"\ntimezone: Europe/Berlin', 'cron: "45 2 * * *"\ntimezone: UTC')
        .split("---\nkind: Schedule\nname: often")[0]
    )
    changed = wfctl("apply", "-f", str(manifests), "--prune")
    assert changed.code == 0, changed.err
    assert "schedule/nightly changed (cron, timezone)" in changed.out
    assert "schedule/twice unchanged" in changed.out and "schedule/often pruned" in changed.out
    after = _ids(wfctl)
    assert after == {"nightly": ids["nightly"], "twice": ids["twice"]}  # edits keep the id


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ("kind: Schedule\nname: bad\nworkflow: report\ncrn: '* * * * *'", "[0].crn"),
        ("kind: Schedule\nname: bad\nworkflow: report\ncron: '61 * * * *'", "[0].cron"),
        ("kind: Schedule\nname: bad\nworkflow: report\ncron: '* * * * *'\nevery: 5m", "[0].every"),
        ("kind: Schedule\nname: bad\nworkflow: report\nat: '2001-01-01T00:00:00Z'", "[0].at"),
        ("kind: Schedule\nname: bad\nworkflow: nope\ncron: '* * * * *'", "[0].workflow"),
        ("kind: Cronjob\nname: bad", "[0].kind"),
        ("kind: Workflow\nname: w2\nsteps: [{id: a, type: htttp, with: {}}]", "[0].steps[0].type"),
        ("kind: Workflow\nname: w2\nsteps: [{id: a, tpye: http, with: {}}]", "[0].steps[0]"),
    ],
)
def test_a_bad_document_changes_nothing(db, queues, wfctl, manifests: Path, document: str, field: str) -> None:
    """All or nothing: the good documents in the same apply are not applied either."""
    (manifests / "zz-bad.yaml").write_text(document)
    before = snapshot(db, queues)
    result = wfctl("apply", "-f", str(manifests))
    assert result.code == 2, result.out
    [line] = result.err.strip().splitlines()
    assert line.startswith(f"error: {manifests / 'zz-bad.yaml'}{field}"), line
    assert snapshot(db, queues) == before


def test_unknown_step_types_are_refused_unless_allowed(db, queues, wfctl, tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text("name: typo\nsteps: [{id: a, type: htttp, with: {}}]\n")
    result = wfctl("workflows", "apply", "-f", str(path))
    assert result.code == 2 and result.err.startswith("error: steps[0].type: unknown step type 'htttp'")
    assert wfctl("workflows", "list", "-o", "json").json() == []
    allowed = wfctl("workflows", "apply", "-f", str(path), "--allow-unknown-step-types")
    assert allowed.code == 0, allowed.err


def test_the_examples_apply_and_reapply_cleanly(db, queues, wfctl, tmp_path: Path) -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    result = wfctl("apply", "-f", str(examples))
    assert result.code == 0, result.err
    assert "3 created" not in result.out and "6 created, 0 changed" in result.out
    assert "0 created, 0 changed, 6 unchanged" in wfctl("apply", "-f", str(examples)).out
    # A single example workflow file is also a valid `workflows apply` file.
    copy = tmp_path / "health.yaml"
    shutil.copy(examples / "health-check.workflow.yaml", copy)
    assert wfctl("workflows", "apply", "-f", str(copy)).code == 0


# --- schedules create / update with every kind ------------------------------------------------

@pytest.fixture
def workflow(db, queues, wfctl, tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(WORKFLOW_DOC)
    assert wfctl("workflows", "apply", "-f", str(path)).code == 0


BAD_CREATES = [
    (["--cron", "0 9 * * *", "--every", "1h"], "every"),
    (["--every", "1h", "--at", "2030-01-01T00:00:00Z"], "at"),
    ([], "cron"),
    (["--at", "2001-01-01T00:00:00Z"], "at"),
    (["--cron", "0 9 * * *", "--start", "2030-02-01T00:00:00Z", "--end", "2030-01-01T00:00:00Z"], "end"),
    (["--cron", "0 9 * * *", "--end", "2001-01-01T00:00:00Z"], "end"),
    (["--every", "90s"], "every"),
    (["--every", "soon"], "every"),
    (["--cron", "0 9 * * *", "--start", "tomorrow"], "start"),
    (["--cron", "0 9 * * *", "--cron", "0 25 * * *"], "cron"),
    (["--cron", "0 9 * * *", "--input", "@/nonexistent/input.json"], "input"),
]


@pytest.mark.parametrize(("args", "field"), BAD_CREATES)
def test_bad_schedule_options_exit_2_naming_the_field(workflow, db, queues, wfctl, args, field) -> None:
    before = snapshot(db, queues)
    result = wfctl("schedules", "create", "s1", "--workflow", "report", *args)
    assert result.code == 2, result.out
    [line] = result.err.strip().splitlines()
    assert line.startswith(f"error: {field}:"), line
    assert snapshot(db, queues) == before


def test_create_every_and_at_and_preview_them(workflow, wfctl) -> None:
    every = wfctl("schedules", "create", "e", "--workflow", "report", "--every", "90m",
                  "--start", "2030-03-31T00:00:00", "--timezone", "Europe/Berlin", "-o", "json")
    assert every.code == 0, every.err
    upcoming = wfctl("schedules", "next", "e", "--count", "3", "-o", "json").json()
    assert [t["local"] for t in upcoming] == [
        "2030-03-31T00:00:00+01:00", "2030-03-31T01:30:00+01:00", "2030-03-31T04:00:00+02:00",
    ]
    at = wfctl("schedules", "create", "once", "--workflow", "report", "--at", "2030-01-01T12:00:00Z")
    assert at.code == 0 and "next run at 2030-01-01T12:00:00Z" in at.out
    assert [t["utc"] for t in wfctl("schedules", "next", "once", "-o", "json").json()] == ["2030-01-01T12:00:00Z"]
    listed = {r["name"]: r for r in wfctl("schedules", "list", "-o", "json").json()}
    assert listed["once"]["kind"] == "at" and listed["e"]["every"] == "1h30m"
    assert "every 1h30m" in wfctl("schedules", "list").out


def test_update_edits_in_place(workflow, wfctl) -> None:
    created = wfctl("schedules", "create", "s", "--workflow", "report", "--cron", "0 9 * * *", "-o", "json").json()
    result = wfctl("schedules", "update", "s", "--cron", "0 10 * * *", "--cron", "0 18 * * *",
                   "--timezone", "Asia/Tokyo", "--jitter", "10", "-o", "json")
    assert result.code == 0, result.err
    data = result.json()
    assert data["id"] == created["id"] and data["changed"] == ["cron", "timezone", "jitter_seconds"]
    assert data["crons"] == ["0 10 * * *", "0 18 * * *"]
    switched = wfctl("schedules", "update", "s", "--every", "2h")
    assert switched.code == 0 and "updated (cron, every)" in switched.out
    assert wfctl("schedules", "show", "s", "-o", "json").json()["kind"] == "every"
    assert "unchanged" in wfctl("schedules", "update", "s", "--jitter", "10").out
    bad = wfctl("schedules", "update", "s", "--cron", "* * * * *", "--at", "2030-01-01T00:00:00Z")
    assert bad.code == 2 and bad.err.startswith("error: at:")
    missing = wfctl("schedules", "update", "nope", "--jitter", "1")
    assert missing.code == 2 and missing.err.startswith("error: schedule:")


def test_json_options_take_a_file_and_stdin(workflow, queues, wfctl, tmp_path: Path, monkeypatch) -> None:
    payload = tmp_path / "input.json"
    payload.write_text('{"from": "file"}')
    created = wfctl("schedules", "create", "s", "--workflow", "report", "--cron", "0 9 * * *",
                    "--input", f"@{payload}", "-o", "json")
    assert created.code == 0, created.err and created.json()["input"] == {"from": "file"}
    assert created.json()["input"] == {"from": "file"}
    monkeypatch.setattr("sys.stdin", io.StringIO('{"from": "stdin"}'))
    assert wfctl("schedules", "update", "s", "--input", "-").code == 0
    assert wfctl("schedules", "show", "s", "-o", "json").json()["input"] == {"from": "stdin"}
    monkeypatch.setattr("sys.stdin", io.StringIO('{"run": "stdin"}'))
    assert wfctl("run", "report", "--input", "-").code == 0
    [message] = queues.drain()
    assert '"run":"stdin"' in message["Body"]


class UnreadableInput(io.StringIO):
    """Standard input that cannot be read: closed by the caller, or a stream of bytes that are not UTF-8."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def read(self, size: int | None = -1) -> str:
        raise self.error


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (OSError(9, "Bad file descriptor"), "error: input: cannot read standard input: [Errno 9] Bad file descriptor"),
        (ValueError("I/O operation on closed file."), "error: input: cannot read standard input: I/O operation"),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), "error: input: standard input is not UTF-8"),
    ],
)
def test_an_unreadable_standard_input_is_a_one_line_error(
    workflow, queues, wfctl, monkeypatch, error: Exception, message: str
) -> None:
    monkeypatch.setattr("sys.stdin", UnreadableInput(error))
    refused = wfctl("run", "report", "--input", "-")
    assert refused.code == 2
    assert refused.err.startswith(message) and len(refused.err.strip().splitlines()) == 1, refused.err
    assert queues.drain() == []


def test_apply_reads_manifests_from_standard_input(db, wfctl, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(WORKFLOW_DOC + "---" + SCHEDULES_DOC))
    applied = wfctl("apply", "-f", "-")
    assert applied.code == 0, applied.err
    assert {row["name"] for row in wfctl("schedules", "list", "-o", "json").json()} == {"nightly", "twice", "often"}
    monkeypatch.setattr("sys.stdin", UnreadableInput(OSError(9, "Bad file descriptor")))
    refused = wfctl("apply", "-f", "-")
    assert refused.code == 2 and refused.err.startswith("error: file: cannot read standard input"), refused.err


def test_schedule_documents_take_notify_rules(db, wfctl, tmp_path: Path) -> None:
    manifest = tmp_path / "fleet.yaml"
    rules = "notify: {notify: [{on: [late], channel: pager}], late_after: 5m}\n"
    manifest.write_text(WORKFLOW_DOC + "---\nkind: Schedule\nname: s\nworkflow: report\ncron: '0 9 * * *'\n" + rules)
    applied = wfctl("apply", "-f", str(manifest))
    assert applied.code == 0, applied.err
    assert "schedule s: notify names no channel 'pager' yet" in applied.err  # accepted, with a warning
    shown = wfctl("schedules", "show", "s", "-o", "json").json()
    assert shown["notify"] == {"notify": [{"on": ["late"], "channel": "pager"}], "late_after": "5m"}
    manifest.write_text(WORKFLOW_DOC + "---\nkind: Schedule\nname: s\nworkflow: report\ncron: '0 9 * * *'\n"
                        "notify: [{on: [missed], channel: pager}]\n")
    assert "changed" in wfctl("apply", "-f", str(manifest)).out
    assert wfctl("schedules", "show", "s", "-o", "json").json()["notify"] == {"notify": [{"on": ["missed"], "channel": "pager"}]}
    manifest.write_text(WORKFLOW_DOC + "---\nkind: Schedule\nname: s\nworkflow: report\ncron: '0 9 * * *'\n"
                        "notify: [{on: [never], channel: pager}]\n")
    bad = wfctl("apply", "-f", str(manifest))
    assert bad.code == 2 and bad.err.startswith("error: "), bad.err
    assert "notify" in bad.err and "'never' is not one of" in bad.err
