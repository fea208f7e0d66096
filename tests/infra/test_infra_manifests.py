"""Every Kubernetes object the program declares is a valid object for the Kubernetes API.

The recorded inputs of a pulumi-kubernetes resource are the object it applies (apiVersion, kind,
metadata and the kind's own fields, camelCase). They are validated with `kubernetes_validate` in
strict mode (unknown fields are errors) against Kubernetes 1.30 and the newest schema the package
ships, which catches misspelt or misplaced fields that the typed Args classes cannot.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from typing import Any

import kubernetes_validate
import pytest
import yaml
from infra_harness import REPO_ROOT, ProgramRun

from services.spawner.jobs import build_job, job_manifest
from services.spawner.runner_template import DEFAULT_TEMPLATE_PATH, template_from_manifest

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


@dataclass(frozen=True)
class _Execution:
    id: uuid.UUID
    input: dict[str, Any]


@dataclass(frozen=True)
class _Workflow:
    id: uuid.UUID
    timeout_seconds: int


def spawned_job(template_manifest: dict[str, Any], timeout_seconds: int = 300) -> dict[str, Any]:
    """The Job the spawner creates for one execution from the PodTemplate this program deploys:
    its real template reader and Job builder, not a copy of their rules."""
    template = template_from_manifest(copy.deepcopy(template_manifest))
    job = build_job(template, _Execution(uuid.uuid4(), {"region": "eu"}), _Workflow(uuid.uuid4(), timeout_seconds))
    return job_manifest(job)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_a_job_built_from_the_template_is_valid(any_run: ProgramRun, version: str) -> None:
    template = any_run.one("kubernetes:core/v1:PodTemplate").manifest()
    job = spawned_job(template, timeout_seconds=120)
    assert len(job["metadata"]["name"]) <= 63  # a label value and DNS name limit
    assert job["metadata"]["namespace"] == any_run.exports["namespace"]
    assert job["spec"]["activeDeadlineSeconds"] == 120
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == any_run.exports["runnerImage"]
    validate(job, version)


def _pod_contract(manifest: dict[str, Any]) -> dict[str, Any]:
    """What the runner's pod must be, whoever deploys the template: everything but the image,
    the namespace and the bookkeeping labels Pulumi adds."""
    spec = copy.deepcopy(manifest["template"]["spec"])
    for container in spec["containers"]:
        container.pop("image")
    return {"name": manifest["metadata"]["name"], "app": manifest["metadata"]["labels"]["app"], "spec": spec}


def test_the_shipped_runner_template_is_the_one_this_program_deploys(any_run: ProgramRun) -> None:
    """services/spawner/runner-template.yaml (local runs, tests, `--runner-template`) must not
    drift from the PodTemplate `pulumi up` creates in the cluster."""
    deployed = any_run.one("kubernetes:core/v1:PodTemplate").manifest()
    shipped = yaml.safe_load(DEFAULT_TEMPLATE_PATH.read_text())
    assert _pod_contract(shipped) == _pod_contract(deployed)


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
