"""The Job builder against the runner Job contract, row by row, and against the Kubernetes schemas."""

from __future__ import annotations

import json
import uuid
from typing import Any

import kubernetes_validate
import pytest
from kubernetes.client import V1EnvVar

from services.spawner.jobs import (
    MAX_INLINE_INPUT_BYTES,
    JobBuilder,
    build_job,
    execution_id_of,
    job_manifest,
    job_name,
)
from services.spawner.runner_template import (
    DEFAULT_TEMPLATE_PATH,
    TemplateError,
    load_template_file,
    template_from_manifest,
)
from tests.fakes import FakeExecution, FakeWorkflow


@pytest.fixture
def template():
    return load_template_file(DEFAULT_TEMPLATE_PATH, namespace="runs")


def manifest(template, execution=None, workflow=None) -> dict[str, Any]:
    return job_manifest(build_job(template, execution or FakeExecution(), workflow or FakeWorkflow()))


def runner_container(doc: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in doc["spec"]["template"]["spec"]["containers"] if c["name"] == "runner")


def env_of(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {var["name"]: var for var in runner_container(doc)["env"]}


@pytest.mark.parametrize("version", ["1.30", kubernetes_validate.latest_version()])
def test_job_validates_strictly(template, version):
    kubernetes_validate.validate(manifest(template), version, strict=True)


def test_name_and_labels(template):
    execution, workflow = FakeExecution(), FakeWorkflow()
    doc = manifest(template, execution, workflow)
    assert doc["metadata"]["name"] == f"workflow-exec-{execution.id}"
    assert len(doc["metadata"]["name"]) <= 63
    assert doc["metadata"]["namespace"] == "runs"
    expected = {"app": "workflow-runner", "workflow-id": str(workflow.id), "execution-id": str(execution.id)}
    assert doc["metadata"]["labels"] == expected
    assert expected.items() <= doc["spec"]["template"]["metadata"]["labels"].items()


def test_job_settings(template):
    doc = manifest(template, workflow=FakeWorkflow(timeout_seconds=777))
    assert doc["spec"]["ttlSecondsAfterFinished"] == 3600
    assert doc["spec"]["backoffLimit"] == 0
    assert doc["spec"]["activeDeadlineSeconds"] == 777
    assert doc["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_default_deadline_when_workflow_has_none(template):
    assert manifest(template, workflow=FakeWorkflow(timeout_seconds=None))["spec"]["activeDeadlineSeconds"] == 300


def test_resources_from_template_and_defaults(template):
    assert runner_container(manifest(template))["resources"] == {
        "requests": {"memory": "128Mi", "cpu": "100m"},
        "limits": {"memory": "512Mi", "cpu": "500m"},
    }
    document = _template_document()
    document["template"]["spec"]["containers"][0]["resources"] = {"limits": {"memory": "1Gi"}}
    custom = template_from_manifest(document)
    assert runner_container(manifest(custom))["resources"] == {
        "requests": {"memory": "128Mi", "cpu": "100m"},
        "limits": {"memory": "1Gi", "cpu": "500m"},
    }


def test_restricted_pod_security_even_from_a_lax_template():
    document = _template_document()
    spec = document["template"]["spec"]
    spec.pop("securityContext")
    spec.pop("volumes")
    spec["automountServiceAccountToken"] = True
    container = spec["containers"][0]
    container.pop("volumeMounts")
    container["securityContext"] = {"allowPrivilegeEscalation": True, "capabilities": {"add": ["NET_ADMIN"]}}
    doc = manifest(template_from_manifest(document))
    pod = doc["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = runner_container(doc)["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    tmp = next(v for v in pod["volumes"] if v["name"] == "tmp")
    assert "emptyDir" in tmp
    assert {"name": "tmp", "mountPath": "/tmp"} in runner_container(doc)["volumeMounts"]


def test_env_per_run_and_secret_references(template):
    execution, workflow = FakeExecution(input={"who": "you"}), FakeWorkflow()
    env = env_of(manifest(template, execution, workflow))
    assert env["WORKFLOW_ID"] == {"name": "WORKFLOW_ID", "value": str(workflow.id)}
    assert env["EXECUTION_ID"] == {"name": "EXECUTION_ID", "value": str(execution.id)}
    assert json.loads(env["WORKFLOW_INPUT"]["value"]) == {"who": "you"}
    for secret in ("DATABASE_URL", "INTEGRATION_ENCRYPTION_KEY"):
        assert "value" not in env[secret]
        assert env[secret]["valueFrom"]["secretKeyRef"]["name"]
        assert env[secret]["valueFrom"]["secretKeyRef"]["key"] == secret
    assert env["RUNNER_DENY_PRIVATE_NETWORKS"]["value"] == "1"
    assert env["LOG_FORMAT"]["value"] == "json"


def test_large_input_is_left_to_the_stored_copy(template):
    big = {"blob": "x" * MAX_INLINE_INPUT_BYTES}
    env = env_of(manifest(template, FakeExecution(input=big)))
    assert "WORKFLOW_INPUT" not in env
    assert "EXECUTION_ID" in env


def test_template_with_plain_secret_value_is_refused():
    document = _template_document()
    document["template"]["spec"]["containers"][0]["env"][0] = {"name": "DATABASE_URL", "value": "postgresql://x"}
    with pytest.raises(TemplateError, match="DATABASE_URL must come from a secretKeyRef"):
        template_from_manifest(document)


def test_template_without_runner_container_is_refused():
    document = _template_document()
    container = document["template"]["spec"]["containers"][0]
    document["template"]["spec"]["containers"] = [dict(container, name="a"), dict(container, name="b")]
    with pytest.raises(TemplateError, match="container named 'runner'"):
        template_from_manifest(document)


def test_not_a_pod_template_is_refused():
    with pytest.raises(TemplateError, match="PodTemplate"):
        template_from_manifest({"kind": "Pod"})


def test_job_name_round_trip():
    execution_id = uuid.uuid4()
    assert execution_id_of(job_name(execution_id)) == execution_id
    assert execution_id_of("something-else") is None
    assert execution_id_of("workflow-exec-not-a-uuid") is None


def test_build_is_pure(template):
    execution, workflow = FakeExecution(), FakeWorkflow()
    before = template.pod.model_dump()
    assert job_manifest(build_job(template, execution, workflow)) == job_manifest(
        build_job(template, execution, workflow)
    )
    assert template.pod.model_dump() == before


def _template_document() -> dict[str, Any]:
    import yaml

    return yaml.safe_load(DEFAULT_TEMPLATE_PATH.read_text())


def test_jobs_of_one_builder_share_nothing_mutable(template):
    """The spawner keeps one JobBuilder; changing one Job must not change the next."""
    builder = JobBuilder(template)
    first = builder.build(FakeExecution(), FakeWorkflow())
    first.spec.template.spec.containers[0].env.append(V1EnvVar(name="EXTRA", value="1"))
    first.spec.template.metadata.labels["extra"] = "1"
    second_execution = FakeExecution()
    second = job_manifest(builder.build(second_execution, FakeWorkflow()))
    assert "EXTRA" not in env_of(second)
    assert "extra" not in second["spec"]["template"]["metadata"]["labels"]
    assert env_of(second)["EXECUTION_ID"]["value"] == str(second_execution.id)


def test_every_container_of_a_lax_template_is_restricted():
    """Sidecars, init containers and host namespaces of a template edited by hand: the Job the
    builder makes from it still meets the restricted profile, and validates."""
    document = _template_document()
    spec = document["template"]["spec"]
    runner = spec["containers"][0]
    spec.update(hostNetwork=True, hostPID=True, hostIPC=True)
    spec["containers"].append({"name": "sidecar", "image": "proxy:1", "securityContext": {"privileged": True}})
    spec["initContainers"] = [{"name": "setup", "image": "busybox:1", "securityContext": {"privileged": True,
                                                                                        "capabilities": {"add": ["SYS_ADMIN"]}}}]
    doc = manifest(template_from_manifest(document))
    pod = doc["spec"]["template"]["spec"]
    assert not any(pod.get(key) for key in ("hostNetwork", "hostPID", "hostIPC"))
    for container in [*pod["containers"], *pod["initContainers"]]:
        security = container["securityContext"]
        assert security["privileged"] is False and security["allowPrivilegeEscalation"] is False, container["name"]
        assert security["capabilities"] == {"drop": ["ALL"]} and security["runAsNonRoot"] is True
        assert security["readOnlyRootFilesystem"] is True
    assert runner_container(doc)["name"] == runner["name"]
    kubernetes_validate.validate(doc, "1.30", strict=True)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda spec: spec["securityContext"].update(runAsUser=0), "the pod runs as user 0"),
        (lambda spec: spec["containers"][0]["securityContext"].update(runAsUser=0), "runner runs as user 0"),
        (lambda spec: spec["volumes"].append({"name": "host", "hostPath": {"path": "/"}}),
         r"volume 'host' is of a type \(host_path\)"),
        (lambda spec: spec.update(volumes=[{"name": "tmp", "hostPath": {"path": "/tmp"}}]), "volume 'tmp'"),
        (lambda spec: spec.update(volumes=[{"name": "tmp", "configMap": {"name": "c"}}]),
         "'tmp' must be an emptyDir"),
        (lambda spec: spec["containers"][0].update(ports=[{"containerPort": 80, "hostPort": 80}]),
         "container 'runner' asks for a host port"),
    ],
)
def test_a_template_that_cannot_be_made_restricted_is_refused_at_start(change, reason):
    document = _template_document()
    change(document["template"]["spec"])
    with pytest.raises(TemplateError, match=reason):
        JobBuilder(template_from_manifest(document))
