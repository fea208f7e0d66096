"""An IAM role that one Kubernetes service account assumes (IAM roles for service accounts).

Production only. The pod identity webhook on EKS sees the `eks.amazonaws.com/role-arn`
annotation on the service account and gives the pod short-lived web-identity credentials, so no
long-lived AWS key exists anywhere in the cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.iam_policies import irsa_trust_policy


@dataclass(frozen=True)
class ServiceRoleArgs:
    oidc_provider_arn: str
    oidc_provider_url: str
    namespace: str
    service_account_name: str
    #: The role's only permissions, as an IAM policy document (see `infra.iam_policies`).
    policy: dict[str, Any]


class ServiceRole(pulumi.ComponentResource):
    """An IAM role trusted by one service account, with one inline least-privilege policy."""

    role_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: ServiceRoleArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("workflow-runtime:index:ServiceRole", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        role = aws.iam.Role(
            f"{name}-role",
            description=(
                f"Assumed by {args.namespace}/{args.service_account_name} (workflow-runtime)"
            ),
            assume_role_policy=pulumi.Output.json_dumps(
                irsa_trust_policy(
                    args.oidc_provider_arn,
                    args.oidc_provider_url,
                    args.namespace,
                    args.service_account_name,
                )
            ),
            tags={"app.kubernetes.io/part-of": "workflow-runtime"},
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-policy",
            role=role.id,
            policy=pulumi.Output.json_dumps(args.policy),
            opts=child,
        )

        self.role_arn = role.arn
        self.register_outputs({"roleArn": self.role_arn})
