"""The SQS work queue and its dead-letter queue."""

from __future__ import annotations

import json
from typing import Any

import pytest
from infra_harness import FAKE_ACCOUNT_ID, LOCAL_STACK_FILE, ProgramRun, run_program, stack_config

QUEUE = "aws:sqs/queue:Queue"


def queues(run: ProgramRun) -> tuple[dict[str, Any], dict[str, Any]]:
    by_name = {r.name: r.props for r in run.of_type(QUEUE)}
    assert set(by_name) == {"work-queue-queue", "work-queue-dlq"}
    return by_name["work-queue-queue"], by_name["work-queue-dlq"]


def test_queue_redrives_into_the_dlq(any_run: ProgramRun) -> None:
    queue, dlq = queues(any_run)
    redrive = json.loads(queue["redrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(f":{dlq['name']}")
    assert redrive["maxReceiveCount"] == 5


def test_max_receive_count_comes_from_config() -> None:
    run = run_program(stack_config(LOCAL_STACK_FILE, maxReceiveCount="3"))
    queue, _ = queues(run)
    assert json.loads(queue["redrivePolicy"])["maxReceiveCount"] == 3


def test_dlq_accepts_dead_letters_only_from_the_queue(any_run: ProgramRun) -> None:
    queue, dlq = queues(any_run)
    region = any_run.one("pulumi:providers:aws").props["region"]
    allow = json.loads(dlq["redriveAllowPolicy"])
    assert allow["redrivePermission"] == "byQueue"
    assert allow["sourceQueueArns"] == [f"arn:aws:sqs:{region}:{FAKE_ACCOUNT_ID}:{queue['name']}"]
    assert "redrivePolicy" not in dlq


def test_both_queues_are_encrypted(any_run: ProgramRun) -> None:
    for props in queues(any_run):
        assert props["sqsManagedSseEnabled"] is True


def test_retention_and_visibility(any_run: ProgramRun) -> None:
    queue, dlq = queues(any_run)
    assert dlq["messageRetentionSeconds"] == 14 * 24 * 3600
    assert dlq["messageRetentionSeconds"] > queue["messageRetentionSeconds"]
    # Above the spawner's longest handling of a message: a 20 s poll plus DB and API calls.
    assert queue["visibilityTimeoutSeconds"] == 120
    assert queue["receiveWaitTimeSeconds"] == 20


def test_queue_names_follow_the_stack(any_run: ProgramRun) -> None:
    queue, dlq = queues(any_run)
    assert dlq["name"] == f"{queue['name']}-dlq"
    assert any_run.exports["queueUrl"].endswith(f"/{queue['name']}")
    assert any_run.exports["dlqUrl"].endswith(f"/{dlq['name']}")


@pytest.mark.parametrize(
    ("key", "value"),
    [("maxReceiveCount", "0"), ("queueVisibilityTimeoutSeconds", "10")],
)
def test_unsafe_queue_settings_are_rejected(key: str, value: str) -> None:
    with pytest.raises(Exception, match=f"workflow-runtime:{key}"):
        run_program(stack_config(LOCAL_STACK_FILE, **{key: value}))
