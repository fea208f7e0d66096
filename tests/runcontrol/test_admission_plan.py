"""The admission rule (services.spawner.admission.plan): limits, pools, buffering, order."""

from __future__ import annotations

import uuid
from collections import Counter

from services.spawner.admission import Candidate, Occupancy, plan

A, B = uuid.uuid4(), uuid.uuid4()
NIGHTLY = uuid.uuid4()


def run(workflow: uuid.UUID = A, **fields) -> Candidate:
    return Candidate(uuid.uuid4(), workflow, "a" if workflow == A else "b", **fields)


def admitted(decisions) -> list[bool]:
    return [reason is None for _, reason in decisions]


def test_a_workflow_limit_admits_up_to_its_free_slots_oldest_first():
    runs = [run(limit=2) for _ in range(4)]
    decisions = plan(runs, Occupancy(by_workflow=Counter({A: 1})), {})
    assert admitted(decisions) == [True, False, False, False]
    assert decisions[1][1] == "concurrency limit 2 of workflow a reached"


def test_a_pool_is_shared_across_workflows():
    runs = [run(A, pool="api"), run(B, pool="api"), run(B, pool="api")]
    decisions = plan(runs, Occupancy(by_pool=Counter({"api": 1})), {"api": 2})
    assert admitted(decisions) == [True, False, False]
    assert decisions[1][1] == "pool api: all 2 slot(s) in use"


def test_a_missing_pool_keeps_runs_waiting_with_the_reason():
    [(_, reason)] = plan([run(pool="gone")], Occupancy(), {})
    assert reason == "pool gone does not exist (wfctl pools set gone --slots N)"


def test_a_run_waiting_for_its_workflow_limit_does_not_block_other_workflows_in_its_pool():
    runs = [run(A, limit=1, pool="api"), run(B, pool="api")]
    decisions = plan(runs, Occupancy(by_workflow=Counter({A: 1}), by_pool=Counter({"api": 1})), {"api": 2})
    assert admitted(decisions) == [False, True]


def test_buffering_runs_one_run_of_a_schedule_at_a_time():
    runs = [run(schedule_id=NIGHTLY, schedule_name="nightly", overlap="buffer_all") for _ in range(3)]
    assert admitted(plan(runs, Occupancy(), {})) == [True, False, False]
    decisions = plan(runs, Occupancy(schedules={NIGHTLY}), {})
    assert admitted(decisions) == [False, False, False]
    assert decisions[0][1] == "overlap buffer_all: waiting for the previous run of schedule nightly to finish"


def test_runs_without_limits_are_admitted():
    assert admitted(plan([run(), run(B)], Occupancy(), {})) == [True, True]
