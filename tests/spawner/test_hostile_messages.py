"""A message whose input breaks the JSON rules (issue 15) is dead-lettered at once with its reason
— not retried on every delivery until SQS gives up, and never crashing the consume loop."""

from __future__ import annotations

import json
import uuid

from tests.spawner.conftest import dlq_messages, executions, manual_message, queue_empty, send, wait_for


def _body(input_text: str) -> str:
    envelope = {"version": 1, "trigger": "manual", "dedup_key": f"manual:{uuid.uuid4()}",
                "workflow_id": "WORKFLOW", "input": "INPUT"}
    return json.dumps(envelope).replace('"INPUT"', input_text)


HOSTILE_INPUTS = {
    "NaN": ('{"a": NaN}', "NaN"),
    "Infinity": ('{"a": Infinity}', "Infinity"),
    "1e999": ('{"a": 1e999}', "out of range"),
    "huge integer": ('{"a": ' + "7" * 5000 + "}", "digits"),
    "lone surrogate": ('{"a": "\\ud800"}', "surrogate"),
    "NUL": ('{"a": "\\u0000"}', "NUL"),
    "deep": ('{"a": ' + "[" * 100 + "]" * 100 + "}", "nested"),
}


# Envelopes that parse as JSON but could never be recorded: refused by the parser, not by the INSERT.
HOSTILE_ENVELOPES = {
    "attempt beyond 32 bits": ({"attempt": 2**31}, "attempt must be an integer from 1 to 2147483647"),
    "time outside the calendar in UTC": ({"scheduled_for": "0001-01-01T00:00:00+14:00"}, "scheduled_for"),
    "version true": ({"version": True}, "unsupported version True"),
    "version 1.0": ({"version": 1.0}, "unsupported version 1.0"),
}


def _envelope(workflow_id: str, changes: dict) -> str:
    envelope = {"version": 1, "trigger": "manual", "dedup_key": f"manual:{uuid.uuid4()}",
                "workflow_id": workflow_id, "input": {}}
    return json.dumps({**envelope, **changes})


def test_messages_with_hostile_inputs_are_dead_lettered_once(db, queues, emulator, workflow, start_spawner):
    bodies = {
        name: _body(text).replace("WORKFLOW", str(workflow.id)) for name, (text, _) in HOSTILE_INPUTS.items()
    }
    expected = {name: reason for name, (_, reason) in HOSTILE_INPUTS.items()}
    for name, (changes, reason) in HOSTILE_ENVELOPES.items():
        bodies[name] = _envelope(str(workflow.id), changes)
        expected[name] = reason
    send(queues, *bodies.values())
    spawner = start_spawner()
    assert wait_for(lambda: queue_empty(queues) and spawner.parts.spawner.idle())
    good = manual_message(workflow)
    send(queues, good.to_json())  # the loop is alive
    assert wait_for(lambda: len(emulator.jobs()) == 1 and queue_empty(queues) and spawner.parts.spawner.idle())
    spawner.stop()
    parked = {m["Body"]: m["MessageAttributes"]["reason"]["StringValue"] for m in dlq_messages(queues)}
    for name, body in bodies.items():
        assert body in parked, name
        assert expected[name] in parked[body], (name, parked[body])
        # dead-lettered at the first delivery, not after maxReceiveCount failed INSERTs
        assert "malformed" in parked[body], parked[body]
    assert [e.dedup_key for e in executions(db)] == [good.dedup_key]
    assert spawner.parts.metrics.dead_lettered.labels(reason="malformed")._value.get() == len(bodies)
