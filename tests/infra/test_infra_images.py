"""The three service images: built from images/Dockerfile, loaded locally or pushed to ECR."""

from __future__ import annotations

import re
from pathlib import Path

from infra_harness import (
    LOCAL_STACK_FILE,
    REPO_ROOT,
    ProgramRun,
    is_secret,
    run_program,
    stack_config,
)

from infra.config import SERVICES
from infra.images import source_fingerprint

IMAGE = "docker-build:index:Image"


def images_by_target(run: ProgramRun) -> dict[str, dict]:
    return {r.props["target"]: r.props for r in run.of_type(IMAGE)}


def test_one_image_per_service_from_the_shared_dockerfile(any_run: ProgramRun) -> None:
    images = images_by_target(any_run)
    assert set(images) == set(SERVICES)
    for props in images.values():
        assert props["context"] == {"location": "."}
        assert props["dockerfile"] == {"location": "images/Dockerfile"}
        (tag,) = props["tags"]
        repository, version = tag.rsplit(":", 1)
        assert repository.endswith(f"workflow-runtime/{props['target']}")
        assert version == source_fingerprint(REPO_ROOT)


def test_dockerfile_has_a_target_per_service() -> None:
    dockerfile = (REPO_ROOT / "images" / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", dockerfile, flags=re.M | re.I)
    assert set(SERVICES) <= set(stages)


def test_local_images_are_loaded_not_pushed(local_run: ProgramRun) -> None:
    for service, props in images_by_target(local_run).items():
        assert props["push"] is False
        assert props["load"] is True
        assert "registries" not in props
        assert props["tags"] == [f"workflow-runtime/{service}:{props['tags'][0].split(':')[-1]}"]
    assert local_run.of_type("aws:ecr/repository:Repository") == []


def test_workloads_use_the_built_refs(any_run: ProgramRun) -> None:
    refs = {service: any_run.exports[f"{service}Image"] for service in SERVICES}
    template = any_run.one("kubernetes:core/v1:PodTemplate").props
    cron_job = any_run.one("kubernetes:batch/v1:CronJob").props
    deployment = any_run.one("kubernetes:apps/v1:Deployment", "spawner-deployment").props
    assert template["template"]["spec"]["containers"][0]["image"] == refs["runner"]
    assert (
        cron_job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"]
        == refs["dispatcher"]
    )
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == refs["spawner"]


def test_production_pushes_to_ecr_and_pins_digests(production_run: ProgramRun) -> None:
    repositories = {
        r.props["name"] for r in production_run.of_type("aws:ecr/repository:Repository")
    }
    assert repositories == {f"workflow-runtime/{service}" for service in SERVICES}
    for props in images_by_target(production_run).values():
        assert props["push"] is True
        assert props["load"] is False
        assert props["platforms"] == ["linux/amd64"]
        (registry,) = props["registries"]
        assert registry["address"].endswith(".amazonaws.com")
    for service in SERVICES:
        assert re.search(r"@sha256:[0-9a-f]{64}$", production_run.exports[f"{service}Image"])


def test_ecr_credentials_stay_secret(production_run: ProgramRun) -> None:
    for recorded in production_run.of_type(IMAGE):
        assert is_secret(recorded.inputs["registries"])


def test_prebuilt_refs_skip_the_build(prebuilt_run: ProgramRun) -> None:
    assert prebuilt_run.of_type(IMAGE) == []
    assert prebuilt_run.exports["runnerImage"].startswith("registry.example/wr/runner@sha256:")
    template = prebuilt_run.one("kubernetes:core/v1:PodTemplate").props
    assert (
        template["template"]["spec"]["containers"][0]["image"]
        == (prebuilt_run.exports["runnerImage"])
    )


def test_fingerprint_changes_with_the_code(tmp_path: Path) -> None:
    (tmp_path / "services").mkdir()
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (tmp_path / "services" / "a.py").write_text("A = 1\n")
    first = source_fingerprint(tmp_path)
    assert first == source_fingerprint(tmp_path)
    (tmp_path / "services" / "__pycache__").mkdir()
    (tmp_path / "services" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    assert source_fingerprint(tmp_path) == first, "bytecode must not change the tag"
    (tmp_path / "services" / "a.py").write_text("A = 2\n")
    assert source_fingerprint(tmp_path) != first


def test_explicit_tag_overrides_the_fingerprint() -> None:
    run = run_program(stack_config(LOCAL_STACK_FILE, imageTag="v1.2.3"))
    for service in SERVICES:
        assert run.exports[f"{service}Image"] == f"workflow-runtime/{service}:v1.2.3"
