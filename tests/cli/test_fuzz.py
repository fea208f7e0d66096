"""CLI fuzz tests (issue 15): generated input to every wfctl command that takes user input.

Each generated invocation must end in exactly one of two ways: exit 0, or exit 2 with exactly one
line on stderr — never a traceback (an exception escaping `main` fails the test), never exit 1
(a database error), and after a refusal the database is exactly as it was (every table compared).

Inputs mix well-formed documents with hostile fragments found from outside (NaN, huge integers,
deep nesting, lone surrogates, NUL, YAML aliases and tags, binary bytes, trailing newlines).
`make test` runs 10,000 generated inputs in about a minute, and the `slow` variant another
10,000 (`FUZZ_LONG_FACTOR=10` for 100,000; FUZZ_SCALE multiplies both; FUZZ_REPORT=FILE appends
the counts and times).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from services.core.crypto import generate_key
from services.core.db.models import Base
from services.core.db.session import engine_for
from tests.cli.test_cli_errors import GOOD_WORKFLOW

SCALE = float(os.environ.get("FUZZ_SCALE", "1"))
#: Examples per command in `make test` (10,000 in all).
COUNTS = {"run": 2000, "workflows": 2000, "schedules": 3500, "integrations": 2500}

# --- snapshots ---------------------------------------------------------------------------------


def snapshot_query() -> str:
    """One round trip: per table, its row count and the newest row version's transaction id.

    A committed INSERT or UPDATE leaves a row version whose `xmin` is newer than every row
    already there; a DELETE lowers the count (or, with an INSERT, raises the newest `xmin`).
    Cheaper than hashing every row, and it changes on any committed write.
    """
    parts = [
        f"(SELECT count(*)::text || ':' || coalesce(max(xmin::text::bigint), 0)::text FROM \"{table.name}\")"
        for table in Base.metadata.sorted_tables
    ]
    return "SELECT " + ", ".join(parts)


class Database:
    def __init__(self, url: str) -> None:
        self.engine = engine_for(url)
        self.query = text(snapshot_query())

    def snapshot(self) -> tuple[str, ...]:
        with self.engine.connect() as conn:
            return tuple(conn.execute(self.query).one())


# --- strategies --------------------------------------------------------------------------------

HOSTILE_JSON = [
    "NaN", "Infinity", "-Infinity", "1e999", "-1e999", "9" * 5000, "-" + "9" * 30, "99999999999999999999",
    '"\\ud800"', '"\\udfff"', '"a\\u0000b"', "[" * 100 + "]" * 100, '{"a":' * 70 + "1" + "}" * 70,
    "\udcff", "\x00", '"\\', "{", "}", ",", ":", "[", "\n", " ", "1.5", "true", "null", '"x"', "{}",
]
HOSTILE_YAML = [
    "&a", "*a", "&a [1, 2]", "!!binary aGVsbG8=", "!!set {a, b}", "!!timestamp 2024-01-01", "2024-01-01",
    "2024-01-01 09:00:00", "!!python/object:os.system", "!!omap [a: 1]", ".nan", ".inf", "-.inf",
    "9" * 5000, "0x" + "f" * 40, "[" * 200, "{" * 200, "\x00", "\t", ": :", "- -", "? a", "\\ud800",
    '"\\ud800"', '"\\0"', "\ufeff", "%YAML 1.1", "---", "...", "|", ">", "\n", "\udcff", "\x85", "\u2028",
]
NAMES = ["good", "a", "ok-1", "a.b_c", "A", "", "a\n", "a b", "-a", "a" * 253, "a" * 254, "é", "a\x00", "\udcff"]
STEP_TYPES = ["log", "fail", "sleep", "transform", "http", "log\n", "unknown", "", 1]
CRONS = [
    "0 9 * * *", "*/5 * * * *", "0 0-0 * * *", "5-5 * * * *", "0 9 * * sun-sun", "0 9 1 nov-nov *", "61 * * * *",
    "* * *", "0 0 L * *", "@daily", "0 9 * * " + ",".join(["1"] * 200), "0 9 31 2 *", "0 9 29 2 *", "",
    "0 9 * * *\n", "0\t9 * * *", "1-60/0 * * * *", "* * * * 7", "* * * * 8", "0 24 * * *",
]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Europe", "", "A" * 5000, "Etc/GMT+5", "../etc/passwd",
         "posixrules", "Europe/Berlin\n", "/UTC", " UTC", "Asia/Kolkata", "tzdata.zi", "zone.tab"]

scalars = (
    st.none() | st.booleans() | st.integers() | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=6,
)


@st.composite
def mutated(draw: st.DrawFn, document: st.SearchStrategy[str], fragments: list[str]) -> str:
    """A document with up to three hostile fragments spliced in at random places."""
    text_ = draw(document)
    for _ in range(draw(st.integers(0, 3))):
        position = draw(st.integers(0, len(text_)))
        text_ = text_[:position] + draw(st.sampled_from(fragments)) + text_[position:]
    return text_


def dump_json(value: Any) -> str:
    return json.dumps(value, allow_nan=True)


input_texts = st.one_of(
    mutated(st.dictionaries(st.text(max_size=6), json_values, max_size=3).map(dump_json), HOSTILE_JSON),
    mutated(json_values.map(dump_json), HOSTILE_JSON),
    st.builds(lambda f: '{"a": ' + f + "}", st.sampled_from(HOSTILE_JSON)),
    st.text(max_size=40),
)


@st.composite
def workflow_documents(draw: st.DrawFn) -> dict[str, Any]:
    steps = []
    for index in range(draw(st.integers(0, 3))):
        step: dict[str, Any] = {
            "id": draw(st.sampled_from([f"s{index}", "a", "1a", "a\n", "", "x" * 129]) | st.text(max_size=6)),
            "type": draw(st.sampled_from(STEP_TYPES)),
        }
        if draw(st.booleans()):
            step["with"] = draw(
                st.fixed_dictionaries({}, optional={"message": json_values, "seconds": json_values,
                                                   "expression": st.text(max_size=10), "url": st.text(max_size=10)})
                | json_values
            )
        if draw(st.booleans()):
            step[draw(st.sampled_from(["if", "timeout_seconds", "integration", "colour"]))] = draw(json_values)
        steps.append(step)
    document: dict[str, Any] = {"name": draw(st.sampled_from(NAMES) | st.text(max_size=8)), "steps": steps}
    for key in draw(st.sets(st.sampled_from(["timeout_seconds", "retry", "description", "extra"]), max_size=2)):
        document[key] = draw(json_values)
    return document


valid_workflows = st.builds(
    lambda name, messages: {
        "name": name,
        "steps": [{"id": f"s{i}", "type": "log", "with": {"message": m}} for i, m in enumerate(messages)],
    },
    st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True),
    st.lists(json_values, min_size=1, max_size=3),
)
valid_credentials = st.one_of(
    st.builds(lambda t: {"type": "bearer", "token": t}, st.text(min_size=1, max_size=12)),
    st.builds(lambda u, p: {"type": "basic", "username": u, "password": p}, st.text(min_size=1), st.text(min_size=1)),
    st.builds(lambda v: {"type": "header", "name": "X-Api-Key", "value": v}, st.text(min_size=1, max_size=12)),
    st.builds(lambda v: {"type": "query", "name": "api_key", "value": v}, st.text(min_size=1, max_size=12)),
)


def dump_yaml(value: Any) -> str:
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's: generation stays cheap
    try:
        return yaml.dump(value, Dumper=dumper, allow_unicode=True, default_flow_style=None)
    except UnicodeEncodeError:  # libyaml cannot write a lone surrogate; the pure-Python one escapes it
        return yaml.safe_dump(value, allow_unicode=True, default_flow_style=None)


def documents(values: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    serialised = values.map(dump_json) | values.map(dump_yaml)
    return st.one_of(
        serialised.map(lambda t: t.encode("utf-8", "surrogatepass")),
        mutated(serialised, HOSTILE_YAML + HOSTILE_JSON).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.binary(max_size=64),
        st.sampled_from([GOOD_WORKFLOW]).map(str.encode),
    )


credential_documents = st.fixed_dictionaries(
    {"type": st.sampled_from(["bearer", "basic", "header", "query", "oauth", "", 3, None]) | json_values},
    optional={
        "token": st.text(max_size=10) | json_values,
        "username": st.text(max_size=10),
        "password": st.text(max_size=10),
        "name": st.sampled_from(["X-Api-Key", "api_key", "X-A\n", "bad name", ""]) | st.text(max_size=8),
        "value": st.text(max_size=10) | json_values,
        "extra": json_values,
    },
)


# --- the checks --------------------------------------------------------------------------------


class Fuzzer:
    """Runs one generated invocation and checks the outcome rules."""

    def __init__(self, wfctl: Callable[..., Any], database: Database) -> None:
        self.wfctl = wfctl
        self.database = database
        self.before = database.snapshot()
        self.count = 0
        self.refused = 0
        self.started = time.monotonic()
        self.in_cli = self.in_snapshot = 0.0

    def check(self, *args: str) -> Any:
        t0 = time.monotonic()
        result = self.wfctl(*args)
        t1 = time.monotonic()
        self.count += 1
        assert "Traceback" not in result.err, result.err
        after = self.database.snapshot()
        self.in_cli += t1 - t0
        self.in_snapshot += time.monotonic() - t1
        if result.code == 0:
            self.before = after
            return result
        self.refused += 1
        assert result.code == 2, (args, result.code, result.err)
        lines = result.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, result.err)
        assert after == self.before, (args, result.err)
        return result

    def report(self, name: str) -> None:
        seconds = time.monotonic() - self.started
        line = (
            f"fuzz {name}: {self.count} inputs, {self.refused} refused, {seconds:.1f}s "
            f"(cli {self.in_cli:.1f}s, snapshots {self.in_snapshot:.1f}s)\n"
        )
        with open(os.environ.get("FUZZ_REPORT", os.devnull), "a") as report:
            report.write(line)


def examples(command: str, factor: float = 1.0) -> int:
    return max(1, int(COUNTS[command] * SCALE * factor))


def fuzz_settings(count: int) -> settings:
    return settings(
        max_examples=count,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                               HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


@pytest.fixture
def fuzz_env(db, queues, wfctl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fuzzer:
    monkeypatch.setenv("INTEGRATION_ENCRYPTION_KEY", generate_key())
    path = tmp_path / "good.yaml"
    path.write_text(GOOD_WORKFLOW)
    assert wfctl("workflows", "apply", "-f", str(path)).code == 0
    return Fuzzer(wfctl, Database(db))


def _run_inputs(fuzzer: Fuzzer, count: int, queues) -> None:
    accepted = 0

    @fuzz_settings(count)
    @given(input_text=input_texts)
    # Always tried, not only when generated: `-` reads standard input, here pytest's unreadable
    # one, and `@` names a file that is a folder.
    @example(input_text="-")
    @example(input_text="@")
    def run(input_text: str) -> None:
        nonlocal accepted
        result = fuzzer.check("run", "good", "--input", input_text)
        if result.code == 0:
            accepted += 1
            assert result.out.startswith("run of good enqueued")
        else:
            assert result.err.startswith("error: input"), result.err

    run()
    fuzzer.report("run --input")
    # A refused run enqueued nothing: exactly the accepted runs are on the queue.
    attributes = queues.client.get_queue_attributes(
        QueueUrl=queues.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert int(attributes["ApproximateNumberOfMessages"]) == accepted
    assert fuzzer.count >= count


def _workflow_files(fuzzer: Fuzzer, count: int, folder: Path) -> None:
    path = folder / "fuzz.yaml"

    @fuzz_settings(count)
    @given(content=documents(workflow_documents() | valid_workflows))
    def apply(content: bytes) -> None:
        path.write_bytes(content)
        fuzzer.check("workflows", "apply", "-f", str(path))

    apply()
    fuzzer.report("workflows apply")
    assert fuzzer.count >= count


def _schedule_options(fuzzer: Fuzzer, count: int) -> None:
    options = st.fixed_dictionaries(
        {
            "name": st.from_regex(r"[a-z0-9]{1,10}", fullmatch=True) | st.sampled_from(NAMES) | st.text(max_size=8),
            "--workflow": st.sampled_from(["good", "missing", "good\n", ""]),
            "--cron": st.sampled_from(CRONS) | st.text(max_size=20),
        },
        optional={
            "--timezone": st.sampled_from(ZONES) | st.text(max_size=12),
            "--input": input_texts,
            "--catchup": st.sampled_from(["latest", "all", "none", "some", ""]),
            "--catchup-window": st.integers(-(10**12), 10**12).map(str) | st.sampled_from(["x", "1e3", "9" * 50]),
            "--overlap": st.sampled_from(["allow", "skip", "replace", "queue"]),
            "--jitter": st.integers(-5, 2000).map(str) | st.sampled_from(["x", "9" * 5000]),
        },
    )

    @fuzz_settings(count)
    @given(chosen=options, paused=st.booleans())
    def create(chosen: dict[str, str], paused: bool) -> None:
        args = ["schedules", "create", chosen.pop("name")]
        for option, value in chosen.items():
            args += [option, value]
        fuzzer.check(*args, *(["--paused"] if paused else []))

    create()
    fuzzer.report("schedules create")
    assert fuzzer.count >= count


def _integration_files(fuzzer: Fuzzer, count: int, folder: Path) -> None:
    path = folder / "credential.yaml"

    @fuzz_settings(count)
    @given(content=documents(credential_documents | valid_credentials), name=st.sampled_from(["api", "api\n", "API", "a" * 254]))
    def set_(content: bytes, name: str) -> None:
        path.write_bytes(content)
        fuzzer.check("integrations", "set", name, "-f", str(path))

    set_()
    fuzzer.report("integrations set")
    assert fuzzer.count >= count


def test_fuzz_run_input(fuzz_env: Fuzzer, queues) -> None:
    _run_inputs(fuzz_env, examples("run"), queues)


def test_fuzz_workflows_apply(fuzz_env: Fuzzer, tmp_path: Path) -> None:
    _workflow_files(fuzz_env, examples("workflows"), tmp_path)


def test_fuzz_schedules_create(fuzz_env: Fuzzer) -> None:
    _schedule_options(fuzz_env, examples("schedules"))


def test_fuzz_integrations_set(fuzz_env: Fuzzer, tmp_path: Path) -> None:
    _integration_files(fuzz_env, examples("integrations"), tmp_path)


#: The slow variant runs this many times the inputs above (another 10,000 by default, fresh
#: draws); `FUZZ_LONG_FACTOR=10` makes a 100,000-input campaign (about ten minutes).
LONG_FACTOR = float(os.environ.get("FUZZ_LONG_FACTOR", "1"))


@pytest.mark.long
@pytest.mark.timeout(7200)
def test_fuzz_long(fuzz_env: Fuzzer, queues, tmp_path: Path) -> None:
    """The four campaigns above again in one session, `FUZZ_LONG_FACTOR` times as long."""
    _workflow_files(fuzz_env, examples("workflows", LONG_FACTOR), tmp_path)
    _schedule_options(fuzz_env, examples("schedules", LONG_FACTOR))
    _integration_files(fuzz_env, examples("integrations", LONG_FACTOR), tmp_path)
    _run_inputs(fuzz_env, examples("run", LONG_FACTOR), queues)
