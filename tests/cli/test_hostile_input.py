"""Hostile input (issue 15): every class found from outside is one line naming the field, exit 2,
nothing stored — never a traceback, never a database error (exit 1), never accepted-then-broken."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from services.core.db.session import engine_for
from tests.cli.test_cli_errors import GOOD_WORKFLOW, snapshot

DEEP_JSON = '{"a": ' + "[" * 1000 + "]" * 1000 + "}"
LONG_CRON = "0 9 * * " + ",".join(["1"] * 200)
SURROGATE_ARG = b'{"a": "\xff\xfe"}'.decode("utf-8", "surrogateescape")  # how Python decodes bad argv


@pytest.fixture
def seeded(db, queues, wfctl, tmp_path: Path) -> Path:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD_WORKFLOW)
    assert wfctl("workflows", "apply", "-f", str(path)).code == 0
    assert wfctl("schedules", "create", "existing", "--workflow", "good", "--cron", "0 9 * * *").code == 0
    return tmp_path


def _create(*extra: str) -> list[str]:
    return ["schedules", "create", "s1", "--workflow", "good", "--cron", "0 9 * * *", *extra]


BAD_COMMANDS = [
    (["run", "good", "--input", '{"a": NaN}'], "input"),
    (["run", "good", "--input", '{"a": Infinity}'], "input"),
    (["run", "good", "--input", '{"a": -Infinity}'], "input"),
    (["run", "good", "--input", '{"a": 1e999}'], "input"),
    (["run", "good", "--input", '{"a": ' + "9" * 5000 + "}"], "input"),
    (["run", "good", "--input", '{"a": 99999999999999999999}'], "input"),
    # Stored exactly by Postgres, 1e20 would come back as a 21-digit integer no reader accepts.
    (["run", "good", "--input", '{"a": 1e20}'], "input.a"),
    (["run", "good", "--input", DEEP_JSON], "input"),
    (["run", "good", "--input", '{"a": ' + "[" * 65 + "]" * 65 + "}"], "input"),
    (["run", "good", "--input", '{"a": "\\ud800"}'], "input"),
    (["run", "good", "--input", '{"\\udfff": 1}'], "input"),
    (["run", "good", "--input", '{"a": "x\\u0000y"}'], "input"),
    (["run", "good", "--input", SURROGATE_ARG], "input"),
    (_create("--input", '{"a": NaN}'), "input"),
    (_create("--input", '{"a": "\\u0000"}'), "input"),
    (_create("--input", '{"a": "\\udc80"}'), "input"),
    (_create("--timezone", "Europe"), "timezone"),
    (_create("--timezone", "A" * 5000), "timezone"),
    (_create("--timezone", "Europe/Berlin\n"), "timezone"),
    (["schedules", "create", "s1", "--workflow", "good", "--cron", LONG_CRON], "cron"),
    (["schedules", "create", "s1\n", "--workflow", "good", "--cron", "0 9 * * *"], "name"),
    (["executions", "list", "--limit", "-1"], "limit"),
    (["executions", "list", "--limit", "0"], "limit"),
    (["executions", "list", "--limit", "99999999999999999999"], "limit"),
    (["workflows", "show", "a\udcff"], "argument 3"),
    (["integrations", "set", "api\n", "-f", "x.yaml"], "name"),
]


@pytest.mark.parametrize(("args", "field"), BAD_COMMANDS, ids=[f"{i}-{f}" for i, (_, f) in enumerate(BAD_COMMANDS)])
def test_hostile_arguments_are_one_line_naming_the_field(seeded, db, queues, wfctl, args, field) -> None:
    before = snapshot(db, queues)
    result = wfctl(*args)
    assert result.code == 2, (result.out, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith(f"error: {field}"), lines[0]
    assert "Traceback" not in result.err
    assert snapshot(db, queues) == before


def _alias_bomb() -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{','.join([f'*{previous}'] * 9)}]")
    return "\n".join(lines) + "\n"


def _small_bomb() -> str:
    """Under the alias budget (25 aliases, 2 KB), yet 1 MB once expanded: refused by the size limit."""
    eight = lambda name: "[" + ",".join([f"*{name}"] * 8) + "]"  # noqa: E731
    return (
        'x: &a "' + "x" * 2000 + '"\n'
        f"y: &b {eight('a')}\nz: &c {eight('b')}\nw: &d {eight('c')}\n"
        "name: bomb\nsteps: [{id: a, type: log, with: {message: *d}}]\n"
    )


WORKFLOW_STEP = "name: w\nsteps: [{id: a, type: log, with: {message: %s}}]\n"

BAD_FILES: list[tuple[str, bytes, str]] = [
    ("alias-bomb", _alias_bomb().encode(), "aliases"),
    ("binary", bytes(range(256)) * 4, "not UTF-8"),
    ("latin-1", "name: caf\xe9\nsteps: []\n".encode("latin-1"), "not UTF-8"),
    ("nul-bytes", b"name: a\x00\n", "NUL"),
    ("deep-yaml", ("name: w\nsteps: " + "[" * 2000 + "]" * 2000).encode(), "nested"),
    ("huge-int", (WORKFLOW_STEP % ("9" * 5000)).encode(), "integer"),
    ("int-out-of-64-bits", (WORKFLOW_STEP % ("9" * 25)).encode(), "integer"),
    ("timestamp", (WORKFLOW_STEP % "2026-11-28 09:00:00").encode(), "timestamp"),
    ("date", (WORKFLOW_STEP % "2026-11-28").encode(), "date"),
    ("binary-tag", (WORKFLOW_STEP % "!!binary aGVsbG8=").encode(), "!!binary"),
    ("set-tag", (WORKFLOW_STEP % "!!set {a, b}").encode(), "!!set"),
    ("date-key", (WORKFLOW_STEP % "{2026-01-01: a}").encode(), "date"),
    ("int-key", (WORKFLOW_STEP % "{1: a}").encode(), "not a string"),
    ("python-tag", (WORKFLOW_STEP % "!!python/object:os.system x").encode(), "tag"),
    ("nan", (WORKFLOW_STEP % ".nan").encode(), "finite"),
    ("inf", (WORKFLOW_STEP % "-.inf").encode(), "finite"),
    ("nul-escape", (WORKFLOW_STEP % '"a\\0b"').encode(), "NUL"),
    ("lone-surrogate", (WORKFLOW_STEP % '"a\\ud800b"').encode(), "surrogate"),
    ("name-newline", b'name: "w\\n"\nsteps: [{id: a, type: log, with: {message: x}}]\n', "name"),
    ("step-id-newline", b'name: w\nsteps: [{id: "a\\n", type: log, with: {message: x}}]\n', "steps[0].id"),
    ("step-type-newline", b'name: w\nsteps: [{id: a, type: "log\\n", with: {message: x}}]\n', "steps[0].type"),
    ("small-bomb", _small_bomb().encode(), "256 KiB"),
    ("too-big", (WORKFLOW_STEP % ('"' + "x" * (300 * 1024) + '"')).encode(), "256 KiB"),
    ("escape-beyond-unicode", b'name: "\\U99999999"\nsteps: []\n', "not valid YAML"),  # found by the fuzz tests
    ("escape-overflow", b'name: "\\U' + b"9" * 300 + b'"\n', "not valid YAML"),
    ("too-big-file", b"# " + b"x" * (1024 * 1024 + 10) + b"\n", "KiB"),
]


@pytest.mark.parametrize(("content", "expected"), [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES])
def test_hostile_workflow_files_are_one_line_exit_2(seeded, db, queues, wfctl, content, expected) -> None:
    path = seeded / "bad.yaml"
    path.write_bytes(content)
    before = snapshot(db, queues)
    started = time.monotonic()
    result = wfctl("workflows", "apply", "-f", str(path))
    assert time.monotonic() - started < 5
    assert result.code == 2, (result.out, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.err
    assert snapshot(db, queues) == before


BAD_CREDENTIALS: list[tuple[str, bytes, str]] = [
    ("type-list", b"type: [bearer]\ntoken: x\n", "file.type"),
    ("type-mapping", b"type: {a: 1}\ntoken: x\n", "file.type"),
    ("type-int", b"type: 3\ntoken: x\n", "file.type"),
    ("int-key", b"{1: 2, type: bearer, token: x}\n", "file"),
    ("binary", b"\xff\xfe\x00\x01" * 10, "not UTF-8"),
    ("header-name-newline", b'type: header\nname: "X-Key\\n"\nvalue: s\n', "file.name"),
    ("alias-bomb", _alias_bomb().encode(), "aliases"),
    ("timestamp", b"type: bearer\ntoken: 2026-01-01\n", "date"),
]


@pytest.mark.parametrize(("content", "expected"), [c[1:] for c in BAD_CREDENTIALS], ids=[c[0] for c in BAD_CREDENTIALS])
def test_hostile_credential_files_are_one_line_exit_2(
    seeded, db, queues, wfctl, monkeypatch, content, expected
) -> None:
    monkeypatch.setenv("INTEGRATION_ENCRYPTION_KEY", wfctl("integrations", "generate-key").out.strip())
    path = seeded / "cred.yaml"
    path.write_bytes(content)
    with engine_for(db).connect() as conn:
        before = conn.execute(text("SELECT count(*) FROM integrations")).scalar()
    result = wfctl("integrations", "set", "api", "-f", str(path))
    assert result.code == 2, (result.out, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.err
    with engine_for(db).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM integrations")).scalar() == before


def test_non_ascii_input_is_measured_as_utf8_in_the_cli_and_accepted(seeded, db, queues, wfctl) -> None:
    """~100 KB of non-ASCII text is ~200 KB of UTF-8 (under 256 KiB), ~600 KB ASCII-escaped."""
    payload = json.dumps({"text": "é" * 100_000}, ensure_ascii=False)
    result = wfctl("run", "good", "--input", payload)
    assert result.code == 0, result.err


def test_a_big_but_valid_integer_and_float_are_accepted(seeded, db, queues, wfctl) -> None:
    from services.core.messages import parse_message

    payload = {"a": 2**63 - 1, "b": -(2**63), "c": 1.5e18, "d": -2.5e-300}
    result = wfctl("run", "good", "--input", json.dumps(payload))
    assert result.code == 0, result.err
    [message] = queues.drain()
    assert parse_message(message["Body"]).input == payload  # the spawner's parser takes it as it is
    # A float beyond 64 bits would come back from Postgres as an integer that no reader accepts.
    refused = wfctl("run", "good", "--input", json.dumps({"c": 1.5e308}))
    assert refused.code == 2 and refused.err.startswith("error: input.c: is 1.5e+308, beyond what a 64-bit"), refused.err
