from __future__ import annotations

import json

WORKFLOW = """
name: hello
steps:
  - {id: greet, type: log, with: {message: "hello {{ input.who }}"}}
"""


def test_apply_schedule_dispatch_round_trip(db, queues, wfctl, tmp_path):
    path = tmp_path / "hello.yaml"
    path.write_text(WORKFLOW)
    assert wfctl("workflows", "apply", "-f", str(path)).code == 0
    created = wfctl("schedules", "create", "every-minute", "--workflow", "hello", "--cron", "* * * * *")
    assert created.code == 0, created.err
    result = wfctl("dispatch", "--now", "2099-01-01T00:00:30Z")
    assert result.code == 0, result.err
    bodies = [json.loads(m["Body"]) for m in queues.drain()]
    assert [b["scheduled_for"] for b in bodies] == ["2099-01-01T00:00:00Z"]
