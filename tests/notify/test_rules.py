"""Rules, durations, the YAML `on` key and the message line, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.core.durations import parse_duration
from services.core.errors import UserError
from services.core.workflows import load_document
from services.notify import message
from services.notify.rules import effective_rules, validate_rules, validate_settings


def test_a_bare_on_key_is_read_as_on_and_values_keep_yaml_1_1() -> None:
    document = load_document("notify:\n  - on: [failed]\n    channel: ops\n  - {On: missed, channel: ops}\nenabled: yes\n")
    assert document == {"notify": [{"on": ["failed"], "channel": "ops"}, {"On": "missed", "channel": "ops"}], "enabled": True}
    assert load_document("'on': 2\n") == {"on": 2}
    with pytest.raises(UserError, match="has a key 'True' that is not a string"):
        load_document("true: 1\n")  # only the word keys are taken back; a boolean key is not JSON


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2m", timedelta(minutes=2)), ("90s", timedelta(seconds=90)), ("1h30m", timedelta(minutes=90)),
     ("1d", timedelta(days=1)), (5, timedelta(minutes=5)), ("15", timedelta(minutes=15))],
)
def test_durations(text, expected) -> None:
    assert parse_duration(text, "late_after") == expected


@pytest.mark.parametrize("bad", ["soon", "", "0m", "31d", True, -1, None, "2 minutes"])
def test_bad_durations_name_the_field(bad) -> None:
    with pytest.raises(UserError) as error:
        parse_duration(bad, "late_after")
    assert error.value.field == "late_after"


def test_schedule_rules_add_to_the_workflows_and_its_deadlines_replace_them() -> None:
    workflow = {"notify": [{"on": ["failed", "late"], "channel": "ops"}], "late_after": "10m", "long_running_after": "1h"}
    schedule = {"notify": [{"on": ["late"], "channel": "pager"}, {"on": ["failed"], "channel": "ops"}], "late_after": "2m"}
    rules = effective_rules(workflow, schedule)
    assert rules.channels_for("failed") == ["ops"]
    assert rules.channels_for("late") == ["ops", "pager"]
    assert rules.channels_for("missed") == []
    assert rules.late_after == timedelta(minutes=2) and rules.long_running_after == timedelta(hours=1)
    assert effective_rules(None, None).channels_for("failed") == []


def test_rule_validation() -> None:
    assert validate_rules([{True: "failed", "channel": "ops"}]) == [{"on": ["failed"], "channel": "ops"}]
    assert validate_settings([{"on": ["missed"], "channel": "x"}]) == {"notify": [{"on": ["missed"], "channel": "x"}]}
    with pytest.raises(UserError, match=r"notify\[0\]\.on: 'boom' is not one of failed"):
        validate_rules([{"on": ["boom"], "channel": "ops"}])
    with pytest.raises(UserError, match=r"notify\[0\]\.when: unknown field"):
        validate_rules([{"on": ["failed"], "channel": "ops", "when": "always"}])


def test_the_line_says_everything_in_the_schedules_zone() -> None:
    details = {
        "workflow": "nightly-report", "schedule": "nightly", "timezone": "America/New_York",
        "fire_time": datetime(2026, 11, 29, 7, 30, tzinfo=UTC), "status": "timed_out",
        "error": "deadline of 120s exceeded\n  at step fetch", "attempt": 3, "max_attempts": 3,
        "execution_id": "0b0c",
    }
    assert message.line("failed", details) == (
        "[failed] nightly-report: run failed · schedule nightly · fire time 2026-11-29 02:30 EST · "
        "status timed_out · attempt 3 of 3 · error: deadline of 120s exceeded at step fetch"
    )
    assert message.link("https://c.example/", details) == "https://c.example/executions/0b0c"
    assert message.link(None, details) is None


def test_names_with_a_trailing_newline_are_refused() -> None:
    """`re.match` with `$` accepts "ops\\n": every name is matched whole."""
    import pytest

    from services.core.errors import UserError
    from services.core.pools import check_pool
    from services.notify.channels import check_name, validate_channel
    from services.notify.rules import validate_rules

    for refused in (
        lambda: validate_rules([{"on": ["failed"], "channel": "ops\n"}]),
        lambda: check_pool("gpu\n", 1),
        lambda: check_name("ops\n"),
        lambda: validate_channel({"type": "email", "host": "smtp.example.com", "from": "a@example.com\n",
                                  "to": ["b@example.com"]}),
        lambda: validate_channel({"type": "email", "host": "smtp.example.com", "from": "a@example.com",
                                  "to": ["b@example.com\n"]}),
    ):
        with pytest.raises(UserError):
            refused()
    assert validate_channel({"type": "email", "host": "smtp.example.com", "from": "a@example.com",
                             "to": ["b@example.com"]})["port"] == 587  # the same, whole, is fine
