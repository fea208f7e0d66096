"""`wfctl executions rerun --from-step` on the local platform: the request goes through the
queue and the spawner like a manual run, and the runner process reuses steps 1–2."""

from __future__ import annotations

import pytest

from services.core.db.models import ExecutionStatus
from services.core.db.session import session_factory
from services.core.workflows import apply_workflow, parse_workflow
from tests.spawner.conftest import WORKTREE, executions, manual_message, send, wait_for

FOUR = """
name: four
steps:
  - {{id: s1, type: http, with: {{url: "{url}/count/one"}}}}
  - {{id: s2, type: http, with: {{url: "{url}/count/two"}}}}
  - id: s3
    type: http
    with: {{method: POST, url: "{url}/echo", json: {{one: "{{{{ steps.s1.output.body.hits }}}}",
           two: "{{{{ steps.s2.output.body.name }}}}"}}}}
  - {{id: s4, type: http, with: {{url: "{url}/count/four"}}}}
"""


@pytest.mark.slow
def test_rerun_from_step_3_of_4_through_the_queue(db, queues, counting_server, start_spawner, wfctl, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(WORKTREE))
    monkeypatch.setenv("RUNNER_DENY_PRIVATE_NETWORKS", "0")
    with session_factory(db)() as session:
        workflow, _ = apply_workflow(session, parse_workflow(FOUR.format(url=counting_server.url)))
        session.commit()
    send(queues, manual_message(workflow, {"n": 1}).to_json())
    spawner = start_spawner(launcher="local")
    assert wait_for(lambda: [e.status for e in executions(db)] == [ExecutionStatus.SUCCEEDED], timeout=30)
    [original] = executions(db)

    result = wfctl("executions", "rerun", str(original.id)[:8], "--from-step", "s3")
    assert result.code == 0, result.err
    assert wait_for(
        lambda: [e.status for e in executions(db)] == [ExecutionStatus.SUCCEEDED] * 2, timeout=30
    ), [(e.status, e.error) for e in executions(db)]
    spawner.stop()
    rerun = next(e for e in executions(db) if e.id != original.id)
    assert (rerun.trigger, rerun.rerun_of, rerun.rerun_from_step) == ("rerun", original.id, "s3")
    assert rerun.dedup_key.startswith("rerun:") and rerun.input == {"n": 1}
    shown = wfctl("executions", "show", str(rerun.id), "--output", "json").json()
    assert [(s["id"], s["status"]) for s in shown["steps"]] == [
        ("s1", "reused"), ("s2", "reused"), ("s3", "succeeded"), ("s4", "succeeded"),
    ]
    assert shown["rerun_of"] == str(original.id)
    # Steps 1-2 were called once (by the original), steps 3-4 twice; step 3 saw their outputs.
    assert [counting_server.count(p) for p in ("/count/one", "/count/two", "/echo", "/count/four")] == [1, 1, 2, 2]
    echoes = [body for path, _, body in counting_server.requests if path == "/echo"]
    assert echoes == [{"one": 1, "two": "two"}, {"one": 1, "two": "two"}]
