"""The runner template carries every part of the runner Job contract (docs/architecture.md) it can carry.

Job-level rows (name, per-run labels, ttlSecondsAfterFinished, backoffLimit,
activeDeadlineSeconds, WORKFLOW_* variables) are added per Job by the spawner; the manifest tests
build such a Job from this template and validate it against the Kubernetes schema.
"""

from __future__ import annotations

from typing import Any

import pytest
from infra_harness import ProgramRun

POD_TEMPLATE = "kubernetes:core/v1:PodTemplate"


@pytest.fixture
def template(any_run: ProgramRun) -> dict[str, Any]:
    return any_run.one(POD_TEMPLATE).props


@pytest.fixture
def pod_spec(template: dict[str, Any]) -> dict[str, Any]:
    return template["template"]["spec"]


@pytest.fixture
def container(pod_spec: dict[str, Any]) -> dict[str, Any]:
    assert len(pod_spec["containers"]) == 1
    return pod_spec["containers"][0]


def env_by_name(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container["env"]}


def test_is_a_typed_pod_template_in_the_platform_namespace(
    any_run: ProgramRun, template: dict[str, Any]
) -> None:
    assert template["apiVersion"] == "v1"
    assert template["kind"] == "PodTemplate"
    assert template["metadata"]["name"] == "workflow-runner"
    assert template["metadata"]["namespace"] == any_run.exports["namespace"]
    assert any_run.exports["runnerTemplateName"] == "workflow-runner"


def test_labels_select_runner_jobs(template: dict[str, Any]) -> None:
    assert template["metadata"]["labels"]["app"] == "workflow-runner"
    assert template["template"]["metadata"]["labels"]["app"] == "workflow-runner"


def test_image_is_the_built_runner_image(any_run: ProgramRun, container: dict[str, Any]) -> None:
    assert container["image"] == any_run.exports["runnerImage"]
    assert container["imagePullPolicy"] == "IfNotPresent"


def test_command_is_wfctl_execute(container: dict[str, Any]) -> None:
    assert container["command"] == ["wfctl", "execute"]
    assert "args" not in container


def test_restart_policy_never(pod_spec: dict[str, Any]) -> None:
    assert pod_spec["restartPolicy"] == "Never"


def test_no_service_account_token(pod_spec: dict[str, Any], any_run: ProgramRun) -> None:
    assert pod_spec["automountServiceAccountToken"] is False
    account = next(
        r.props
        for r in any_run.of_type("kubernetes:core/v1:ServiceAccount")
        if r.props["metadata"]["name"] == pod_spec["serviceAccountName"]
    )
    assert account["automountServiceAccountToken"] is False


def test_default_resources(container: dict[str, Any]) -> None:
    assert container["resources"] == {
        "requests": {"memory": "128Mi", "cpu": "100m"},
        "limits": {"memory": "512Mi", "cpu": "500m"},
    }


def test_resources_are_configurable_per_stack() -> None:
    from infra_harness import LOCAL_STACK_FILE, run_program, stack_config

    run = run_program(
        stack_config(
            LOCAL_STACK_FILE,
            runnerCpuRequest="250m",
            runnerMemoryRequest="256Mi",
            runnerCpuLimit="1",
            runnerMemoryLimit="1Gi",
        )
    )
    container = run.one(POD_TEMPLATE).props["template"]["spec"]["containers"][0]
    assert container["resources"] == {
        "requests": {"memory": "256Mi", "cpu": "250m"},
        "limits": {"memory": "1Gi", "cpu": "1"},
    }


def test_restricted_pod_security_context(pod_spec: dict[str, Any]) -> None:
    context = pod_spec["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == 10001
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}


def test_restricted_container_security_context(container: dict[str, Any]) -> None:
    context = container["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "privileged" not in context


def test_tmp_is_a_writable_empty_dir(pod_spec: dict[str, Any], container: dict[str, Any]) -> None:
    volumes = {volume["name"]: volume for volume in pod_spec["volumes"]}
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    assert "/tmp" in mounts
    volume = volumes[mounts["/tmp"]["name"]]
    assert set(volume) == {"name", "emptyDir"}
    assert mounts["/tmp"].get("readOnly") is not True


def test_secrets_only_by_secret_key_ref(container: dict[str, Any], any_run: ProgramRun) -> None:
    env = env_by_name(container)
    secret_names = {
        r.props["metadata"]["name"]: r.props for r in any_run.of_type("kubernetes:core/v1:Secret")
    }
    for variable in ("DATABASE_URL", "INTEGRATION_ENCRYPTION_KEY"):
        entry = env[variable]
        assert "value" not in entry, f"{variable} must not be a literal"
        ref = entry["valueFrom"]["secretKeyRef"]
        assert ref["key"] == variable
        assert ref["name"] in secret_names, f"{variable} refers to an undeclared Secret"
        assert variable in secret_names[ref["name"]]["stringData"]


def test_runner_environment(container: dict[str, Any]) -> None:
    env = env_by_name(container)
    assert env["RUNNER_DENY_PRIVATE_NETWORKS"] == {
        "name": "RUNNER_DENY_PRIVATE_NETWORKS",
        "value": "1",
    }
    assert env["LOG_FORMAT"] == {"name": "LOG_FORMAT", "value": "json"}
    # Per-run variables are the spawner's to add; the runner needs no AWS access at all.
    for absent in ("WORKFLOW_ID", "EXECUTION_ID", "WORKFLOW_INPUT", "QUEUE_URL"):
        assert absent not in env
    assert not any(name.startswith("AWS_") for name in env)


def test_no_host_access_or_extra_privileges(pod_spec: dict[str, Any]) -> None:
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        assert pod_spec.get(field) is not True
    assert pod_spec["enableServiceLinks"] is False
