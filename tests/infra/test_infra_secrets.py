"""Secret values reach the cluster only inside Kubernetes Secrets, and only as Pulumi secrets.

The test secrets are distinctive strings; each is searched for in every recorded input of every
resource. Outside a Kubernetes Secret it must not appear at all (not even wrapped as a Pulumi
secret: a pod spec that holds a secret value is wrong whether or not it is encrypted in state).
Inside a Secret it must be wrapped, so it is encrypted in the stack's state.
"""

from __future__ import annotations

import pytest
from infra_harness import (
    TEST_DATABASE_URL,
    TEST_DB_PASSWORD,
    TEST_ENCRYPTION_KEY,
    ProgramRun,
    is_secret,
    walk,
)

SECRET = "kubernetes:core/v1:Secret"
SECRET_FRAGMENTS = [TEST_DATABASE_URL, TEST_DB_PASSWORD, TEST_ENCRYPTION_KEY]


def contains_secret(value: object) -> bool:
    return isinstance(value, str) and any(fragment in value for fragment in SECRET_FRAGMENTS)


def test_no_secret_value_outside_kubernetes_secrets(any_run: ProgramRun) -> None:
    leaks = [
        f"{recorded.type} {recorded.name}{path}"
        for recorded in any_run.resources
        if recorded.type != SECRET
        for path, value in walk(recorded.inputs)
        if contains_secret(value)
    ]
    assert leaks == []


def test_secret_values_in_secrets_are_pulumi_secrets(any_run: ProgramRun) -> None:
    found = set()
    for recorded in any_run.of_type(SECRET):
        for key, value in recorded.inputs.items():
            if key == "stringData":
                assert is_secret(value), f"{recorded.name}.stringData is not a Pulumi secret"
                continue
            assert not any(contains_secret(leaf) for _, leaf in walk(value)), (
                f"{recorded.name}.{key} holds a secret value in plain text"
            )
        found.update(recorded.props["stringData"].values())
    assert {TEST_DATABASE_URL, TEST_ENCRYPTION_KEY} <= found


def test_secret_keys_and_names(any_run: ProgramRun) -> None:
    secrets = {r.props["metadata"]["name"]: r.props for r in any_run.of_type(SECRET)}
    assert secrets["workflow-runtime-database"]["stringData"] == {"DATABASE_URL": TEST_DATABASE_URL}
    assert secrets["workflow-runtime-encryption-key"]["stringData"] == {
        "INTEGRATION_ENCRYPTION_KEY": TEST_ENCRYPTION_KEY
    }
    for props in secrets.values():
        assert props["type"] == "Opaque"
        assert props["metadata"]["namespace"] == any_run.exports["namespace"]


def test_local_aws_credentials_are_a_secret_too(local_run: ProgramRun) -> None:
    (credentials,) = [
        r
        for r in local_run.of_type(SECRET)
        if r.props["metadata"]["name"] == "workflow-runtime-aws-credentials"
    ]
    assert is_secret(credentials.inputs["stringData"])
    assert set(credentials.props["stringData"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


@pytest.mark.parametrize("fragment", SECRET_FRAGMENTS)
def test_exports_do_not_expose_secrets(any_run: ProgramRun, fragment: str) -> None:
    assert not any(fragment in str(value) for value in any_run.exports.values())
