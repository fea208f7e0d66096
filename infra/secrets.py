"""The platform's Kubernetes Secrets, created from Pulumi secret configuration.

Values come from `config.require_secret`, so they stay encrypted in the stack's configuration and
state; pods reference them by name and key only (see `infra.env.from_secret`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra import env
from infra.labels import component_labels
from services import contract


@dataclass(frozen=True)
class AwsCredentials:
    """Static AWS keys; only used for LocalStack, which needs some but checks none."""

    access_key_id: pulumi.Output[str]
    secret_access_key: pulumi.Output[str]


@dataclass(frozen=True)
class PlatformSecretsArgs:
    namespace: pulumi.Input[str]
    database_url: pulumi.Output[str]
    integration_encryption_key: pulumi.Output[str]
    #: None in production, where pods get credentials from IAM roles for service accounts.
    aws_credentials: AwsCredentials | None = None


class PlatformSecrets(pulumi.ComponentResource):
    """One Secret per concern, so each workload can be granted only the keys it references."""

    database_secret_name: pulumi.Output[str]
    encryption_key_secret_name: pulumi.Output[str]
    aws_credentials_secret_name: pulumi.Output[str] | None

    def __init__(
        self, name: str, args: PlatformSecretsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("workflow-runtime:index:PlatformSecrets", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = component_labels("workflow-runtime", "secrets")

        database = self._secret(
            f"{name}-database",
            contract.DATABASE_SECRET,
            args.namespace,
            labels,
            {contract.DATABASE_URL_ENV: args.database_url},
            child,
        )
        encryption_key = self._secret(
            f"{name}-encryption-key",
            contract.ENCRYPTION_KEY_SECRET,
            args.namespace,
            labels,
            {contract.INTEGRATION_ENCRYPTION_KEY_ENV: args.integration_encryption_key},
            child,
        )
        self.database_secret_name = database.metadata.name
        self.encryption_key_secret_name = encryption_key.metadata.name

        self.aws_credentials_secret_name = None
        if args.aws_credentials is not None:
            aws = self._secret(
                f"{name}-aws-credentials",
                contract.AWS_CREDENTIALS_SECRET,
                args.namespace,
                labels,
                {
                    env.AWS_ACCESS_KEY_ID: args.aws_credentials.access_key_id,
                    env.AWS_SECRET_ACCESS_KEY: args.aws_credentials.secret_access_key,
                },
                child,
            )
            self.aws_credentials_secret_name = aws.metadata.name

        outputs: dict[str, pulumi.Output[str]] = {
            "databaseSecretName": self.database_secret_name,
            "encryptionKeySecretName": self.encryption_key_secret_name,
        }
        if self.aws_credentials_secret_name is not None:
            outputs["awsCredentialsSecretName"] = self.aws_credentials_secret_name
        self.register_outputs(outputs)

    @staticmethod
    def _secret(
        resource_name: str,
        secret_name: str,
        namespace: pulumi.Input[str],
        labels: dict[str, str],
        data: dict[str, pulumi.Output[str]],
        opts: pulumi.ResourceOptions,
    ) -> k8s.core.v1.Secret:
        # `Output.secret` again is belt and braces: the value stays marked secret even if a
        # caller passes a plain Output.
        return k8s.core.v1.Secret(
            resource_name,
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=secret_name, namespace=namespace, labels=labels
            ),
            type="Opaque",
            string_data={key: pulumi.Output.secret(value) for key, value in data.items()},
            opts=opts,
        )
