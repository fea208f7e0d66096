"""Outcomes the runner could not report: pure classification, then against the emulator."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from services.core.db.models import ExecutionStatus
from services.core.db.session import session_factory
from services.core.executions import get_execution, insert_execution, transition
from services.spawner.jobs import job_name
from services.spawner.launchers.kube import KubernetesLauncher
from services.spawner.outcomes import JobState, classify_job, error_for, execution_status_for
from services.spawner.reconciler import Reconciler
from tests.spawner.conftest import JOBS, NAMESPACE, PODS, manual_message

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
START_TIMEOUT = timedelta(minutes=10)
EXECUTION = uuid.UUID("11111111-2222-3333-4444-555555555555")


def job(
    status: dict[str, Any] | None = None, age: timedelta = timedelta(minutes=1), name: str | None = None
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name or job_name(EXECUTION),
            "labels": {"app": "workflow-runner", "execution-id": str(EXECUTION)},
            "creationTimestamp": (NOW - age).isoformat().replace("+00:00", "Z"),
        },
        "spec": {"activeDeadlineSeconds": 120},
        "status": status or {},
    }


def failed(reason: str, message: str = "") -> dict[str, Any]:
    return {"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": reason, "message": message}]}


def pod(state: dict[str, Any], phase: str = "Pending") -> dict[str, Any]:
    return {
        "metadata": {"labels": {"execution-id": str(EXECUTION)}},
        "status": {
            "phase": phase,
            "containerStatuses": [
                {"name": "runner", "image": "x", "imageID": "", "ready": False, "restartCount": 0, "state": state}
            ],
        },
    }


def classify(job_json: dict[str, Any], pods: list[dict[str, Any]] | None = None):
    return classify_job(job_json, pods or [], NOW, START_TIMEOUT)


def test_deadline_exceeded_is_timed_out():
    outcome = classify(job(failed("DeadlineExceeded", "Job was active longer than specified deadline")))
    assert outcome.state == JobState.TIMED_OUT
    assert outcome.execution_id == EXECUTION
    assert execution_status_for(outcome) == ExecutionStatus.TIMED_OUT
    assert error_for(outcome) == "deadline exceeded after 120s"


def test_oom_killed_is_failed_with_the_reason():
    oom = pod({"terminated": {"reason": "OOMKilled", "exitCode": 137}}, phase="Failed")
    outcome = classify(job(failed("BackoffLimitExceeded", "Job has reached the specified backoff limit")), [oom])
    assert outcome.state == JobState.FAILED
    assert execution_status_for(outcome) == ExecutionStatus.FAILED
    assert outcome.reason == "Job failed: BackoffLimitExceeded; OOMKilled (exit code 137)"


def test_failed_without_pods_says_the_pod_is_gone():
    outcome = classify(job(failed("BackoffLimitExceeded")))
    assert outcome.state == JobState.FAILED
    assert "pod gone" in outcome.reason


def test_failure_target_counts_as_failed():
    status = {"conditions": [{"type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded"}]}
    assert classify(job(status)).state == JobState.TIMED_OUT


def test_image_pull_backoff_past_start_timeout_is_stuck():
    waiting = pod({"waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "nope"'}})
    young = classify(job({"active": 1}, age=timedelta(minutes=2)), [waiting])
    assert young.state == JobState.PENDING and not young.finished
    old = classify(job({"active": 1}, age=timedelta(minutes=11)), [waiting])
    assert old.stuck and old.finished
    assert old.state == JobState.FAILED
    assert "ImagePullBackOff" in old.reason and "never started within 600s" in old.reason


def test_err_image_pull_is_also_never_starting():
    waiting = pod({"waiting": {"reason": "ErrImagePull"}})
    assert classify(job({"active": 1}, age=timedelta(hours=1)), [waiting]).stuck


def test_running_and_complete():
    running = classify(job({"active": 1}), [pod({"running": {}}, phase="Running")])
    assert running.state == JobState.RUNNING and not running.finished
    assert execution_status_for(running) is None
    done = classify(job({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}))
    assert done.state == JobState.SUCCEEDED
    # A Job that completed while its execution is still active: the runner never wrote a result.
    assert execution_status_for(done) == ExecutionStatus.FAILED
    assert "without recording a result" in error_for(done)


def test_new_job_without_status_is_pending():
    outcome = classify(job({}, age=timedelta(hours=2)))
    assert outcome.state == JobState.PENDING and not outcome.finished


# -- against the emulator and Postgres ---------------------------------------------------------


def _execution(db, workflow, status: ExecutionStatus | None = None, created_ago: timedelta | None = None):
    with session_factory(db)() as session:
        execution, _ = insert_execution(session, manual_message(workflow))
        if status is not None:
            transition(session, execution.id, ["pending"], status, job_name=job_name(execution.id))
        if created_ago is not None:
            from sqlalchemy import update

            from services.core.db.models import Execution

            session.execute(
                update(Execution).where(Execution.id == execution.id).values(created_at=datetime.now(UTC) - created_ago)
            )
        session.commit()
        return execution


def _put_job(emulator, execution, status: dict[str, Any], age: timedelta = timedelta(minutes=1)) -> None:
    name = job_name(execution.id)
    emulator.put(
        JOBS,
        name,
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": name,
                "namespace": NAMESPACE,
                "labels": {"app": "workflow-runner", "execution-id": str(execution.id)},
                "creationTimestamp": (datetime.now(UTC) - age).isoformat(),
            },
            "spec": {
                "activeDeadlineSeconds": 60,
                "template": {"spec": {"containers": [{"name": "runner", "image": "x"}]}},
            },
            "status": status,
        },
    )


def _status(db, execution) -> tuple[str, str | None]:
    with session_factory(db)() as session:
        row = get_execution(session, execution.id)
        return row.status, row.error


def test_reconciler_against_the_emulator(db, emulator, workflow):
    timed_out = _execution(db, workflow, ExecutionStatus.RUNNING)
    _put_job(emulator, timed_out, failed("DeadlineExceeded"))
    oom = _execution(db, workflow, ExecutionStatus.RUNNING)
    _put_job(emulator, oom, failed("BackoffLimitExceeded"))
    emulator.put(
        PODS,
        f"{job_name(oom.id)}-abcde",
        {
            "metadata": {
                "name": f"{job_name(oom.id)}-abcde",
                "namespace": NAMESPACE,
                "labels": {"app": "workflow-runner", "execution-id": str(oom.id)},
            },
            "status": {
                "phase": "Failed",
                "containerStatuses": [
                    {
                        "name": "runner",
                        "image": "x",
                        "imageID": "",
                        "ready": False,
                        "restartCount": 0,
                        "state": {"terminated": {"reason": "OOMKilled", "exitCode": 137}},
                    }
                ],
            },
        },
    )
    stuck = _execution(db, workflow, ExecutionStatus.STARTING)
    _put_job(emulator, stuck, {"active": 1}, age=timedelta(minutes=30))
    emulator.put(
        PODS,
        f"{job_name(stuck.id)}-xyz",
        {
            "metadata": {
                "name": f"{job_name(stuck.id)}-xyz",
                "namespace": NAMESPACE,
                "labels": {"app": "workflow-runner", "execution-id": str(stuck.id)},
            },
            "status": {
                "phase": "Pending",
                "containerStatuses": [
                    {
                        "name": "runner",
                        "image": "x",
                        "imageID": "",
                        "ready": False,
                        "restartCount": 0,
                        "state": {"waiting": {"reason": "ImagePullBackOff"}},
                    }
                ],
            },
        },
    )
    # The deadline fired while the image never pulled: the runner never claimed the run (still
    # `starting`), so it did not time out, it never started (and is not retried as a time-out).
    never_started = _execution(db, workflow, ExecutionStatus.STARTING)
    _put_job(emulator, never_started, failed("DeadlineExceeded"))
    emulator.put(
        PODS,
        f"{job_name(never_started.id)}-pull",
        {
            "metadata": {"name": f"{job_name(never_started.id)}-pull", "namespace": NAMESPACE,
                         "labels": {"app": "workflow-runner", "execution-id": str(never_started.id)}},
            "status": {"phase": "Pending", "containerStatuses": [
                {"name": "runner", "image": "x", "imageID": "", "ready": False, "restartCount": 0,
                 "state": {"waiting": {"reason": "ImagePullBackOff", "message": "pull access denied"}}}]},
        },
    )
    finished_by_runner = _execution(db, workflow, ExecutionStatus.RUNNING)
    with session_factory(db)() as session:
        transition(session, finished_by_runner.id, ["running"], ExecutionStatus.SUCCEEDED)
        session.commit()
    _put_job(emulator, finished_by_runner, failed("DeadlineExceeded"))
    jobless_old = _execution(db, workflow, created_ago=timedelta(minutes=20))
    jobless_new = _execution(db, workflow)
    # Another app's Job in the namespace (the emulator ignores label selectors): left alone.
    emulator.put(
        JOBS,
        "someone-else",
        {
            "metadata": {"name": "someone-else", "namespace": NAMESPACE, "labels": {"app": "other"}},
            "status": failed("DeadlineExceeded"),
        },
    )

    launcher = KubernetesLauncher(emulator.api_client(), NAMESPACE, start_timeout=START_TIMEOUT)
    reconciled: list[str] = []
    reconciler = Reconciler(session_factory(db), launcher, start_timeout=START_TIMEOUT, on_reconciled=reconciled.append)
    ended = reconciler.run_once()

    assert _status(db, timed_out)[0] == ExecutionStatus.TIMED_OUT
    status, error = _status(db, oom)
    assert status == ExecutionStatus.FAILED and "OOMKilled (exit code 137)" in error
    status, error = _status(db, stuck)
    assert status == ExecutionStatus.FAILED and "ImagePullBackOff" in error
    assert job_name(stuck.id) not in emulator.jobs()  # the stuck Job is deleted
    assert _status(db, finished_by_runner)[0] == ExecutionStatus.SUCCEEDED  # the runner's word wins
    status, error = _status(db, jobless_old)
    assert status == ExecutionStatus.FAILED and "no runner Job found" in error
    assert _status(db, jobless_new)[0] == ExecutionStatus.PENDING
    assert "someone-else" in emulator.jobs()
    status, error = _status(db, never_started)
    assert status == ExecutionStatus.FAILED
    assert error == "runner never started: deadline exceeded after 60s (ImagePullBackOff: pull access denied)"
    assert ended == {"timed_out": 1, "failed": 4}
    assert sorted(reconciled) == ["failed", "failed", "failed", "failed", "timed_out"]
    # A second pass changes nothing: terminal statuses are never overwritten.
    assert reconciler.run_once() == {}


def test_runner_template_is_read_from_the_cluster(emulator):
    import yaml
    from kubernetes.client import CoreV1Api

    from services.spawner.jobs import build_job, job_manifest
    from services.spawner.runner_template import DEFAULT_TEMPLATE_PATH, fetch_template
    from tests.spawner.conftest import PODTEMPLATES

    document = yaml.safe_load(DEFAULT_TEMPLATE_PATH.read_text())
    document["metadata"]["namespace"] = NAMESPACE
    document["template"]["spec"]["containers"][0]["image"] = "registry.example/runner:v42"
    emulator.put(PODTEMPLATES, "workflow-runner", document)
    template = fetch_template(CoreV1Api(emulator.api_client()), "workflow-runner", NAMESPACE)
    assert template.namespace == NAMESPACE

    class Run:
        id = EXECUTION
        input: dict[str, object] = {}

    class Flow:
        id = uuid.uuid4()
        timeout_seconds = 60

    manifest = job_manifest(build_job(template, Run(), Flow()))
    assert manifest["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/runner:v42"


def test_missing_cluster_template_is_one_line(emulator):
    import pytest
    from kubernetes.client import CoreV1Api

    from services.spawner.runner_template import TemplateError, fetch_template

    with pytest.raises(TemplateError, match=r"^runner template: cannot read PodTemplate runs/nope: HTTP 404"):
        fetch_template(CoreV1Api(emulator.api_client()), "nope", NAMESPACE)
