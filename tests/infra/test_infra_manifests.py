"""Every Kubernetes object the program declares is a valid object for the Kubernetes API.

The recorded inputs of a pulumi-kubernetes resource are the object it applies (apiVersion, kind,
metadata and the kind's own fields, camelCase). They are validated with `kubernetes_validate` in
strict mode (unknown fields are errors) against Kubernetes 1.30 and the newest schema the package
ships, which catches misspelt or misplaced fields that the typed Args classes cannot.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

import kubernetes_validate
import pytest
import yaml
from infra_harness import REPO_ROOT, ProgramRun

KUBERNETES_VERSIONS = ["1.30", kubernetes_validate.latest_version()]


def test_validation_is_strict() -> None:
    """A misspelt field must fail, or the tests below would prove nothing."""
    manifest = {
        "apiVersion": "v1",
        "kind": "PodTemplate",
        "metadata": {"name": "probe"},
        "template": {"spec": {"containers": [{"name": "c", "image": "i", "securityContex": {}}]}},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(manifest, KUBERNETES_VERSIONS[0], strict=True)


EXPECTED_KINDS = {
    "Namespace",
    "Secret",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "PodTemplate",
    "CronJob",
    "Deployment",
    "Service",
    "PodDisruptionBudget",
}


def validate(manifest: dict[str, Any], version: str) -> None:
    """Strict schema validation; the failure names the object, the path and the problem."""
    kind = manifest.get("kind")
    name = manifest.get("metadata", {}).get("name")
    try:
        kubernetes_validate.validate(manifest, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        location = "/".join(str(part) for part in error.absolute_path)
        pytest.fail(
            f"{kind}/{name} is invalid for Kubernetes {version} at {location}: {error.message}"
        )


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_validates(any_run: ProgramRun, version: str) -> None:
    objects = any_run.kubernetes_objects()
    assert {obj.inputs["kind"] for obj in objects} == EXPECTED_KINDS
    for obj in objects:
        manifest = obj.manifest()
        assert set(manifest) >= {"apiVersion", "kind", "metadata"}
        validate(manifest, version)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_ci_stack_with_prebuilt_images_validates(prebuilt_run: ProgramRun, version: str) -> None:
    for obj in prebuilt_run.kubernetes_objects():
        validate(obj.manifest(), version)


def job_from_template(template: dict[str, Any], timeout_seconds: int = 300) -> dict[str, Any]:
    """What the spawner creates for one execution (docs/architecture.md), from the runner template."""
    execution_id = str(uuid.uuid4())
    workflow_id = str(uuid.uuid4())
    pod_template = copy.deepcopy(template["template"])
    run_labels = {"workflow-id": workflow_id, "execution-id": execution_id}
    pod_template["metadata"]["labels"].update(run_labels)
    pod_template["spec"]["containers"][0]["env"] += [
        {"name": "WORKFLOW_ID", "value": workflow_id},
        {"name": "EXECUTION_ID", "value": execution_id},
        {"name": "WORKFLOW_INPUT", "value": "{}"},
    ]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": f"workflow-exec-{execution_id}",
            "namespace": template["metadata"]["namespace"],
            "labels": {"app": "workflow-runner", **run_labels},
        },
        "spec": {
            "ttlSecondsAfterFinished": 3600,
            "backoffLimit": 0,
            "activeDeadlineSeconds": timeout_seconds,
            "template": pod_template,
        },
    }


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_a_job_built_from_the_template_is_valid(any_run: ProgramRun, version: str) -> None:
    template = any_run.one("kubernetes:core/v1:PodTemplate").manifest()
    job = job_from_template(template)
    assert len(job["metadata"]["name"]) <= 63  # a label value and DNS name limit
    validate(job, version)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_shipped_postgres_manifest_validates(version: str) -> None:
    """docs/postgres.yaml, which docs/deploy.md applies to the kind cluster."""
    documents = list(yaml.safe_load_all((REPO_ROOT / "docs" / "postgres.yaml").read_text()))
    assert {doc["kind"] for doc in documents} == {
        "Namespace",
        "Secret",
        "PersistentVolumeClaim",
        "Deployment",
        "Service",
    }
    for document in documents:
        validate(document, version)
