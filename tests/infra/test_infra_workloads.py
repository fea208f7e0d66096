"""The dispatcher CronJob and the spawner Deployment."""

from __future__ import annotations

from typing import Any

import pytest
from infra_harness import LOCAL_STACK_FILE, ProgramRun, run_program, stack_config

CRON_JOB = "kubernetes:batch/v1:CronJob"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def env_by_name(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container["env"]}


def secret_ref(entry: dict[str, Any]) -> dict[str, Any]:
    assert "value" not in entry, f"{entry['name']} must come from a Secret"
    return entry["valueFrom"]["secretKeyRef"]


@pytest.fixture
def cron_job(any_run: ProgramRun) -> dict[str, Any]:
    return any_run.one(CRON_JOB).props


@pytest.fixture
def deployment(any_run: ProgramRun) -> dict[str, Any]:
    return any_run.one(DEPLOYMENT, "spawner-deployment").props


# --- dispatcher ----------------------------------------------------------------------------


def test_cron_job_runs_every_minute_without_overlap(cron_job: dict[str, Any]) -> None:
    spec = cron_job["spec"]
    assert cron_job["metadata"]["name"] == "workflow-dispatcher"
    assert spec["schedule"] == "* * * * *"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert 0 < spec["startingDeadlineSeconds"] < 60
    assert spec["successfulJobsHistoryLimit"] >= 1
    assert spec["failedJobsHistoryLimit"] >= 1


def test_dispatcher_job_does_not_retry_within_a_tick(cron_job: dict[str, Any]) -> None:
    job_spec = cron_job["spec"]["jobTemplate"]["spec"]
    assert job_spec["backoffLimit"] == 0
    assert 0 < job_spec["activeDeadlineSeconds"] <= 300
    assert job_spec["template"]["spec"]["restartPolicy"] == "Never"


def test_dispatcher_container(any_run: ProgramRun, cron_job: dict[str, Any]) -> None:
    pod = cron_job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["wfctl", "dispatch"]
    assert container["image"] == any_run.exports["dispatcherImage"]
    env = env_by_name(container)
    assert secret_ref(env["DATABASE_URL"])["key"] == "DATABASE_URL"
    assert env["QUEUE_URL"]["value"] == any_run.exports["queueUrl"]
    assert env["LOG_FORMAT"]["value"] == "json"
    # It delivers notifications: the channels' key, referenced from its Secret, never a value.
    assert secret_ref(env["INTEGRATION_ENCRYPTION_KEY"])["key"] == "INTEGRATION_ENCRYPTION_KEY"
    assert "value" not in env["INTEGRATION_ENCRYPTION_KEY"]
    assert set(container["resources"]["limits"]) == {"cpu", "memory"}
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    assert pod["automountServiceAccountToken"] is False


def test_dispatcher_job_runs_one_pod_by_default(local_run: ProgramRun) -> None:
    job_spec = local_run.one(CRON_JOB).props["spec"]["jobTemplate"]["spec"]
    assert job_spec["parallelism"] == 1
    assert job_spec["completions"] == 1


def test_dispatcher_parallelism_comes_from_config() -> None:
    run = run_program(stack_config(LOCAL_STACK_FILE, dispatcherParallelism="4"))
    job_spec = run.one(CRON_JOB).props["spec"]["jobTemplate"]["spec"]
    # Four pods run the same tick at once and all must finish for the Job to succeed; each
    # still never retries (the next tick is the retry).
    assert job_spec["parallelism"] == 4
    assert job_spec["completions"] == 4
    assert job_spec["backoffLimit"] == 0
    assert run.one(CRON_JOB).props["spec"]["concurrencyPolicy"] == "Forbid"


@pytest.mark.parametrize("value", ["0", "17"])
def test_dispatcher_parallelism_is_validated(value: str) -> None:
    with pytest.raises(Exception, match="workflow-runtime:dispatcherParallelism"):
        run_program(stack_config(LOCAL_STACK_FILE, dispatcherParallelism=value))


# --- spawner -------------------------------------------------------------------------------


def test_deployment_replicas_default_to_one(local_run: ProgramRun) -> None:
    assert local_run.one(DEPLOYMENT, "spawner-deployment").props["spec"]["replicas"] == 1


def test_deployment_replicas_come_from_config(production_run: ProgramRun) -> None:
    # docs/Pulumi.production.example.yaml sets spawnerReplicas: 2
    assert production_run.one(DEPLOYMENT, "spawner-deployment").props["spec"]["replicas"] == 2


def test_replicas_are_validated() -> None:
    with pytest.raises(Exception, match="workflow-runtime:spawnerReplicas"):
        run_program(stack_config(LOCAL_STACK_FILE, spawnerReplicas="-1"))


def _template_checksum(run: ProgramRun) -> str:
    annotations = run.one(DEPLOYMENT, "spawner-deployment").props["spec"]["template"]["metadata"]["annotations"]
    return annotations["workflow-runtime/runner-template-checksum"]


def test_spawner_rolls_when_the_runner_template_changes(local_run: ProgramRun, prebuilt_run: ProgramRun) -> None:
    # The spawner reads the runner template when it starts: a deploy that changes the template
    # must change the spawner's pod template too, or new Jobs keep the old image and resources.
    checksum = _template_checksum(local_run)
    assert len(checksum) == 64 and int(checksum, 16) >= 0
    assert _template_checksum(run_program(stack_config(LOCAL_STACK_FILE))) == checksum  # deterministic
    assert _template_checksum(run_program(stack_config(LOCAL_STACK_FILE, runnerMemoryLimit="1Gi"))) != checksum
    new_runner_image = run_program(stack_config(
        LOCAL_STACK_FILE, buildImages="false", dispatcherImage="registry.example/wr/dispatcher:1",
        spawnerImage="registry.example/wr/spawner:1", runnerImage="registry.example/wr/runner:2",
        consoleImage="registry.example/wr/console:1",
    ))
    assert _template_checksum(new_runner_image) not in (checksum, _template_checksum(prebuilt_run))
    # A change that leaves the template alone does not roll the spawner through it.
    assert _template_checksum(run_program(stack_config(LOCAL_STACK_FILE, spawnerReplicas="3"))) == checksum


def test_spawner_waits_for_its_role_binding(any_run: ProgramRun) -> None:
    # Its first act is reading the runner template, which the binding allows.
    binding = any_run.one("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding")
    assert binding.urn in any_run.one(DEPLOYMENT, "spawner-deployment").dependency_urns


def test_selector_matches_pod_labels(deployment: dict[str, Any]) -> None:
    selector = deployment["spec"]["selector"]["matchLabels"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector == {"app": "workflow-spawner"}
    assert selector.items() <= labels.items()


def test_spawner_probes_and_port(deployment: dict[str, Any]) -> None:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["wfctl", "spawn", "--launcher", "kubernetes"]
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    liveness = container["livenessProbe"]["httpGet"]
    readiness = container["readinessProbe"]["httpGet"]
    assert liveness["path"] == "/healthz"
    assert readiness["path"] == "/readyz"
    assert liveness["port"] in ("http", 8080)
    assert readiness["port"] in ("http", 8080)


def test_metrics_are_advertised(deployment: dict[str, Any]) -> None:
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] == "/metrics"
    assert annotations["prometheus.io/port"] == "8080"


def test_grace_period_outlasts_a_long_poll(deployment: dict[str, Any]) -> None:
    # One SQS long-poll is 20 s; the spawner must be able to finish the message in hand.
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 40


def test_spawner_environment(any_run: ProgramRun, deployment: dict[str, Any]) -> None:
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = env_by_name(container)
    assert container["image"] == any_run.exports["spawnerImage"]
    assert env["QUEUE_URL"]["value"] == any_run.exports["queueUrl"]
    assert env["DLQ_URL"]["value"] == any_run.exports["dlqUrl"]
    assert env["RUNNER_TEMPLATE_NAME"]["value"] == any_run.exports["runnerTemplateName"]
    assert env["RUNNER_NAMESPACE"]["value"] == any_run.exports["namespace"]
    assert env["AWS_REGION"]["value"]
    assert secret_ref(env["DATABASE_URL"])["key"] == "DATABASE_URL"
    assert "INTEGRATION_ENCRYPTION_KEY" not in env, "the spawner never handles the key"
    assert env["LOG_FORMAT"]["value"] == "json"
    # The spawner creates Jobs, so it is the one pod that gets an API token.
    assert pod["automountServiceAccountToken"] is True
    assert pod["serviceAccountName"] == "workflow-spawner"


@pytest.mark.parametrize(
    ("kind", "name"), [(CRON_JOB, None), (DEPLOYMENT, "spawner-deployment"), (DEPLOYMENT, "console-deployment")]
)
def test_workloads_are_restricted(any_run: ProgramRun, kind: str, name: str | None) -> None:
    props = any_run.one(kind, name).props
    pod = (
        props["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        if kind == CRON_JOB
        else props["spec"]["template"]["spec"]
    )
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    (container,) = pod["containers"]
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"]["drop"] == ["ALL"]
    assert {"mountPath": "/tmp", "name": "tmp"} in container["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}} in pod["volumes"]


def test_local_services_reach_localstack(local_run: ProgramRun) -> None:
    for kind in (CRON_JOB, DEPLOYMENT):
        props = local_run.one(kind, "spawner-deployment" if kind == DEPLOYMENT else None).props
        pod = (
            props["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            if kind == CRON_JOB
            else props["spec"]["template"]["spec"]
        )
        env = env_by_name(pod["containers"][0])
        assert env["AWS_ENDPOINT_URL"]["value"] == (
            "http://localstack.localstack.svc.cluster.local:4566"
        )
        assert env["AWS_REGION"]["value"] == "us-east-1"
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            ref = secret_ref(env[key])
            assert ref == {
                "name": "workflow-runtime-aws-credentials",
                "key": key,
                "optional": False,
            }


def test_production_services_have_no_static_credentials(production_run: ProgramRun) -> None:
    for kind in (CRON_JOB, DEPLOYMENT):
        props = production_run.one(kind, "spawner-deployment" if kind == DEPLOYMENT else None).props
        pod = (
            props["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            if kind == CRON_JOB
            else props["spec"]["template"]["spec"]
        )
        env = env_by_name(pod["containers"][0])
        assert "AWS_ACCESS_KEY_ID" not in env
        assert "AWS_SECRET_ACCESS_KEY" not in env
        assert "AWS_ENDPOINT_URL" not in env
        assert env["AWS_REGION"]["value"] == "eu-west-1"
    secret_names = {
        r.props["metadata"]["name"] for r in production_run.of_type("kubernetes:core/v1:Secret")
    }
    assert "workflow-runtime-aws-credentials" not in secret_names
