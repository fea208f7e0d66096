"""Explicit Kubernetes and AWS providers, configured from the stack.

The program never uses Pulumi's default providers (Pulumi.yaml disables them for `kubernetes` and
`aws`): an explicit kubeconfig context stops a `pulumi up` from landing in whatever cluster the
shell happens to point at, and the AWS provider must talk to LocalStack for the local stack.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.config import AwsConfig, AwsMode


@dataclass(frozen=True)
class Providers:
    kubernetes: k8s.Provider
    aws: aws.Provider


def aws_provider(name: str, config: AwsConfig) -> aws.Provider:
    """Real AWS with ambient credentials, or LocalStack with its endpoint and dummy keys."""
    if config.mode is AwsMode.IRSA:
        return aws.Provider(name, region=config.region)

    assert config.localstack is not None  # guaranteed by infra.config.load
    endpoint = config.localstack.provider_endpoint_url
    return aws.Provider(
        name,
        region=config.region,
        access_key=config.localstack.access_key_id,
        secret_key=config.localstack.secret_access_key,
        # LocalStack accepts any key; these checks would call real AWS (or the EC2 metadata
        # endpoint) and fail or hang on a laptop.
        skip_credentials_validation=True,
        skip_metadata_api_check=True,
        skip_requesting_account_id=True,
        skip_region_validation=True,
        endpoints=[
            aws.ProviderEndpointArgs(sqs=endpoint, sts=endpoint, iam=endpoint, ecr=endpoint)
        ],
    )


def kubernetes_provider(name: str, context: str | None) -> k8s.Provider:
    """The cluster named by the kubeconfig context, or the current context when None."""
    return k8s.Provider(name, context=context)


def create(stack_aws: AwsConfig, kube_context: str | None) -> Providers:
    return Providers(
        kubernetes=kubernetes_provider("kubernetes", kube_context),
        aws=aws_provider("aws", stack_aws),
    )


def options(*providers: pulumi.ProviderResource) -> pulumi.ResourceOptions:
    """Options that hand the given providers down to a component's children."""
    return pulumi.ResourceOptions(providers=list(providers))
