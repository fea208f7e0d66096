"""Stack configuration: the typed Pulumi.yaml block, the stack files and `infra.config.load`."""

from __future__ import annotations

import ast
from typing import Any

import pulumi
import pytest
import yaml
from infra_harness import (
    LOCAL_STACK_FILE,
    PRODUCTION_STACK_FILE,
    PROJECT,
    REPO_ROOT,
    TEST_SECRETS,
    load_stack_config,
    project_defaults,
    run_program,
    stack_config,
)

from infra.config import AwsMode, ImageRegistry

PROJECT_FILE = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())
DECLARED = {key for key in PROJECT_FILE["config"] if ":" not in key}


def test_project_file() -> None:
    assert PROJECT_FILE["name"] == "workflow-runtime"
    assert PROJECT_FILE["runtime"] == {
        "name": "python",
        "options": {"toolchain": "pip", "virtualenv": ".venv"},
    }
    assert set(PROJECT_FILE["config"]["pulumi:disable-default-providers"]) == {
        "kubernetes",
        "aws",
    }


def test_every_declared_key_is_typed_and_described() -> None:
    for key in DECLARED:
        declaration = PROJECT_FILE["config"][key]
        assert declaration["type"] in {"string", "integer", "boolean"}, key
        assert declaration["description"].strip(), key


def test_secrets_are_declared_secret_without_defaults() -> None:
    for key in ("databaseUrl", "integrationEncryptionKey"):
        declaration = PROJECT_FILE["config"][key]
        assert declaration["secret"] is True
        assert "default" not in declaration


def keys_read_by_load() -> set[str]:
    """Every literal config key in infra/config.py (the only module that reads config)."""
    tree = ast.parse((REPO_ROOT / "infra" / "config.py").read_text())
    readers = {"get", "get_int", "get_bool", "get_secret", "require", "require_secret"}
    helpers = {"_optional", "_required", "_int_in_range", "_enum"}
    keys: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in readers and node.args:
            argument = node.args[0]
        elif isinstance(func, ast.Name) and func.id in helpers and len(node.args) > 1:
            argument = node.args[1]
        else:
            continue
        if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
            keys.add(argument.value)
        elif isinstance(argument, ast.JoinedStr):  # f"{service}Image"
            keys.update(f"{service}Image" for service in ("dispatcher", "spawner", "runner", "console"))
    return keys


def test_every_key_the_program_reads_is_declared() -> None:
    read = keys_read_by_load()
    assert {"databaseUrl", "namespace", "awsMode", "runnerImage"} <= read
    assert read <= DECLARED, f"read but not declared in Pulumi.yaml: {read - DECLARED}"


@pytest.mark.parametrize("stack_file", [LOCAL_STACK_FILE, PRODUCTION_STACK_FILE])
def test_stack_files_use_declared_keys_only(stack_file: Any) -> None:
    values = yaml.safe_load(stack_file.read_text())["config"]
    keys = {key.split(":", 1)[1] for key in values if key.startswith(f"{PROJECT}:")}
    assert keys <= DECLARED, f"{stack_file.name} sets undeclared keys: {keys - DECLARED}"
    assert not {"databaseUrl", "integrationEncryptionKey"} & keys, "secrets are set by command"


def test_code_defaults_match_project_file_defaults() -> None:
    """Without the CLI (tests, automation), load() must behave as Pulumi.yaml says."""
    minimal = {
        f"{PROJECT}:awsMode": "localstack",
        f"{PROJECT}:awsEndpointUrl": "http://localstack:4566",
        **TEST_SECRETS,
    }
    from_code = load_stack_config(minimal)
    from_project = load_stack_config({**project_defaults(), **minimal})
    for field in ("namespace", "kube_context", "queue", "spawner_replicas", "dispatcher_parallelism", "runner_resources"):
        assert getattr(from_code, field) == getattr(from_project, field), field
    assert from_code.images == from_project.images
    assert from_code.aws.region == from_project.aws.region
    assert (
        from_code.aws.localstack.provider_endpoint_url
        == from_project.aws.localstack.provider_endpoint_url
    )


def test_local_stack_values() -> None:
    loaded = load_stack_config(stack_config(LOCAL_STACK_FILE))
    assert loaded.namespace == "local"
    assert loaded.kube_context == "kind-workflow-runtime"
    assert loaded.aws.mode is AwsMode.LOCALSTACK
    assert loaded.aws.localstack.endpoint_url.startswith("http://localstack.localstack.svc")
    assert loaded.images.registry is ImageRegistry.LOCAL
    assert loaded.images.build is True
    assert loaded.queue.name == "workflow-runtime-local"
    assert loaded.queue.max_receive_count == 5


@pytest.mark.parametrize("key", ["databaseUrl", "integrationEncryptionKey"])
def test_missing_secret_fails_naming_the_key(key: str) -> None:
    config = stack_config(LOCAL_STACK_FILE)
    del config[f"{PROJECT}:{key}"]
    with pytest.raises(pulumi.ConfigMissingError) as failure:
        run_program(config)
    message = str(failure.value)
    assert f"{PROJECT}:{key}" in message
    assert "pulumi config set --secret" in message


@pytest.mark.parametrize(
    ("stack_file", "overrides", "missing_key"),
    [
        # Pulumi.yaml defaults these to "", which must count as missing.
        (LOCAL_STACK_FILE, {"awsEndpointUrl": ""}, "awsEndpointUrl"),
        (PRODUCTION_STACK_FILE, {"oidcProviderArn": ""}, "oidcProviderArn"),
        (PRODUCTION_STACK_FILE, {"oidcProviderUrl": None}, "oidcProviderUrl"),
        (LOCAL_STACK_FILE, {"buildImages": "false"}, "dispatcherImage"),
        (
            LOCAL_STACK_FILE,
            {"buildImages": "false", "dispatcherImage": "d:1", "spawnerImage": "s:1"},
            "runnerImage",
        ),
    ],
)
def test_missing_required_value_fails_naming_the_key(
    stack_file: Any, overrides: dict[str, str | None], missing_key: str
) -> None:
    with pytest.raises(pulumi.ConfigMissingError, match=f"'{PROJECT}:{missing_key}'"):
        run_program(stack_config(stack_file, **overrides))


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"awsMode": "static-keys"}, "awsMode"),
        ({"imageRegistry": "dockerhub"}, "imageRegistry"),
        ({"imageRegistry": "ecr"}, "imageRegistry"),  # ECR needs real AWS, not LocalStack
    ],
)
def test_invalid_values_fail_naming_the_key(overrides: dict[str, str], key: str) -> None:
    with pytest.raises(pulumi.RunError, match=f"'{PROJECT}:{key}'"):
        run_program(stack_config(LOCAL_STACK_FILE, **overrides))
