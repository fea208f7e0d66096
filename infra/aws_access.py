"""How the dispatcher's, the spawner's and the console's pods authenticate to SQS, per stack.

- `localstack`: an explicit endpoint (boto3 honours AWS_ENDPOINT_URL) and dummy keys delivered
  through a Secret.
- `irsa` (production, EKS): each service account is annotated with its own IAM role, whose only
  permissions are the SQS actions that service performs (`infra.iam_policies`). No key exists.

The runner needs no AWS access at all and gets none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from infra import env, iam_policies
from infra.config import AwsConfig, AwsMode
from infra.service_role import ServiceRole, ServiceRoleArgs
from services import contract

#: Annotation read by the EKS pod identity webhook to inject web-identity credentials.
IRSA_ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"


@dataclass(frozen=True)
class AwsAccess:
    """What a service's pods need to call SQS: environment and service-account annotations."""

    env: Sequence[k8s.core.v1.EnvVarArgs]
    service_account_annotations: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class ServiceAccess:
    dispatcher: AwsAccess
    spawner: AwsAccess
    console: AwsAccess


def localstack_access(
    region: str, endpoint_url: str, credentials_secret_name: pulumi.Input[str]
) -> AwsAccess:
    return AwsAccess(
        env=[
            env.plain("AWS_REGION", region),
            env.plain("AWS_ENDPOINT_URL", endpoint_url),
            env.from_secret(env.AWS_ACCESS_KEY_ID, credentials_secret_name, env.AWS_ACCESS_KEY_ID),
            env.from_secret(
                env.AWS_SECRET_ACCESS_KEY, credentials_secret_name, env.AWS_SECRET_ACCESS_KEY
            ),
        ]
    )


def irsa_access(region: str, role_arn: pulumi.Input[str]) -> AwsAccess:
    return AwsAccess(
        env=[env.plain("AWS_REGION", region)],
        service_account_annotations={IRSA_ROLE_ANNOTATION: role_arn},
    )


def service_access(
    aws_config: AwsConfig,
    namespace: str,
    queue_arn: pulumi.Input[str],
    dlq_arn: pulumi.Input[str],
    aws_credentials_secret_name: pulumi.Input[str] | None,
    opts: pulumi.ResourceOptions,
) -> ServiceAccess:
    """AWS access for both services; in `irsa` mode this creates their IAM roles."""
    if aws_config.mode is AwsMode.LOCALSTACK:
        assert aws_config.localstack is not None and aws_credentials_secret_name is not None
        local = localstack_access(
            aws_config.region, aws_config.localstack.endpoint_url, aws_credentials_secret_name
        )
        return ServiceAccess(dispatcher=local, spawner=local, console=local)

    assert aws_config.irsa is not None  # guaranteed by infra.config.load
    irsa = aws_config.irsa

    def role(name: str, service_account: str, policy: dict) -> ServiceRole:
        return ServiceRole(
            name,
            ServiceRoleArgs(
                oidc_provider_arn=irsa.oidc_provider_arn,
                oidc_provider_url=irsa.oidc_provider_url,
                namespace=namespace,
                service_account_name=service_account,
                policy=policy,
            ),
            opts,
        )

    dispatcher_role = role(
        "dispatcher-role",
        contract.DISPATCHER_SERVICE_ACCOUNT,
        iam_policies.dispatcher_policy(queue_arn),
    )
    spawner_role = role(
        "spawner-role",
        contract.SPAWNER_SERVICE_ACCOUNT,
        iam_policies.spawner_policy(queue_arn, dlq_arn),
    )
    console_role = role(
        "console-role",
        contract.CONSOLE_SERVICE_ACCOUNT,
        iam_policies.console_policy(queue_arn, dlq_arn),
    )
    return ServiceAccess(
        dispatcher=irsa_access(aws_config.region, dispatcher_role.role_arn),
        spawner=irsa_access(aws_config.region, spawner_role.role_arn),
        console=irsa_access(aws_config.region, console_role.role_arn),
    )
