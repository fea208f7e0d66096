"""AWS access: LocalStack for the local stack, IRSA with least-privilege policies in production."""

from __future__ import annotations

import json
from typing import Any

from infra_harness import ProgramRun

ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
OIDC_ISSUER = "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"


def test_local_provider_points_every_service_at_localstack(local_run: ProgramRun) -> None:
    provider = local_run.one("pulumi:providers:aws").props
    # Provider configuration reaches the engine as strings; nested values as JSON.
    (endpoints,) = json.loads(provider["endpoints"])
    assert {endpoints[name] for name in ("sqs", "sts", "iam")} == {"http://localhost:4566"}
    for flag in ("skipCredentialsValidation", "skipMetadataApiCheck", "skipRequestingAccountId"):
        assert provider[flag] == "true"
    assert provider["region"] == "us-east-1"


def test_local_stack_creates_no_iam(local_run: ProgramRun) -> None:
    assert local_run.of_type(ROLE) == []
    assert local_run.of_type(ROLE_POLICY) == []


def test_production_provider_uses_ambient_credentials(production_run: ProgramRun) -> None:
    provider = production_run.one("pulumi:providers:aws").props
    assert provider["region"] == "eu-west-1"
    assert "endpoints" not in provider
    assert "accessKey" not in provider and "secretKey" not in provider


def role_for(run: ProgramRun, service_account: str) -> tuple[dict[str, Any], dict[str, Any]]:
    account = next(
        r.props
        for r in run.of_type("kubernetes:core/v1:ServiceAccount")
        if r.props["metadata"]["name"] == service_account
    )
    role_arn = account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    role_name = role_arn.rsplit("/", 1)[-1]
    role = run.one(ROLE, role_name).props
    # The role input is the role's id, which for aws.iam.Role is its name.
    (policy,) = [r.props for r in run.of_type(ROLE_POLICY) if r.props["role"] == role_name]
    return role, json.loads(policy["policy"])


def test_trust_policy_names_exactly_one_service_account(production_run: ProgramRun) -> None:
    for service_account in ("workflow-dispatcher", "workflow-spawner"):
        role, _ = role_for(production_run, service_account)
        (statement,) = json.loads(role["assumeRolePolicy"])["Statement"]
        assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
        assert statement["Principal"]["Federated"].endswith(f"oidc-provider/{OIDC_ISSUER}")
        assert statement["Condition"]["StringEquals"] == {
            f"{OIDC_ISSUER}:sub": f"system:serviceaccount:workflow-runtime:{service_account}",
            f"{OIDC_ISSUER}:aud": "sts.amazonaws.com",
        }


def test_dispatcher_may_only_send_to_the_queue(production_run: ProgramRun) -> None:
    _, policy = role_for(production_run, "workflow-dispatcher")
    queue_arn = production_run.one("aws:sqs/queue:Queue", "work-queue-queue")
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Allow"
    assert sorted(statement["Action"]) == ["sqs:GetQueueAttributes", "sqs:SendMessage"]
    assert statement["Resource"] == [
        f"arn:aws:sqs:us-east-1:123456789012:{queue_arn.props['name']}"
    ]


def test_spawner_may_consume_the_queue_and_dead_letter(production_run: ProgramRun) -> None:
    _, policy = role_for(production_run, "workflow-spawner")
    queue = production_run.one("aws:sqs/queue:Queue", "work-queue-queue").props["name"]
    dlq = production_run.one("aws:sqs/queue:Queue", "work-queue-dlq").props["name"]
    grants = {
        resource: sorted(statement["Action"])
        for statement in policy["Statement"]
        for resource in statement["Resource"]
    }
    assert grants == {
        f"arn:aws:sqs:us-east-1:123456789012:{queue}": [
            "sqs:ChangeMessageVisibility",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:ReceiveMessage",
        ],
        f"arn:aws:sqs:us-east-1:123456789012:{dlq}": ["sqs:SendMessage"],
    }


def test_no_iam_wildcards(production_run: ProgramRun) -> None:
    for recorded in production_run.of_type(ROLE_POLICY):
        for statement in json.loads(recorded.props["policy"])["Statement"]:
            assert all("*" not in action for action in statement["Action"])
            assert all("*" not in resource for resource in statement["Resource"])


def test_runner_has_no_aws_identity(production_run: ProgramRun) -> None:
    runner_account = next(
        r.props
        for r in production_run.of_type("kubernetes:core/v1:ServiceAccount")
        if r.props["metadata"]["name"] == "workflow-runner"
    )
    assert "annotations" not in runner_account["metadata"]
