"""The runner Job template, as a typed Kubernetes `PodTemplate` in the platform namespace.

The spawner builds every `workflow-exec-<execution-id>` Job from this object (docs/architecture.md): it reads
the PodTemplate named by RUNNER_TEMPLATE_NAME, copies its `template`, adds the per-Job settings
(name, `workflow-id`/`execution-id` labels, `ttlSecondsAfterFinished`, `backoffLimit`,
`activeDeadlineSeconds`) and the per-run variables WORKFLOW_ID, EXECUTION_ID and WORKFLOW_INPUT.
Everything that is the same for every run lives here, so image, resources and security are
changed by `pulumi up` and never by redeploying the spawner's code. The spawner reads the
template when it starts; `template_checksum` goes into the spawner's pod annotations, so a
`pulumi up` that changes the template also rolls the spawner onto it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra import env, pod_security
from infra.config import ResourceSpec
from infra.labels import component_labels
from services import contract


def template_checksum(template: Mapping[str, Any]) -> str:
    """SHA-256 of the pod template's canonical JSON. It holds secret names, never secret values."""
    canonical = json.dumps(template, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class RunnerTemplateArgs:
    namespace: pulumi.Input[str]
    image: pulumi.Input[str]
    resources: ResourceSpec
    database_secret_name: pulumi.Input[str]
    encryption_key_secret_name: pulumi.Input[str]


class RunnerTemplate(pulumi.ComponentResource):
    """The PodTemplate plus the runner's own token-less ServiceAccount."""

    template_name: pulumi.Output[str]
    template_checksum: pulumi.Output[str]

    def __init__(
        self, name: str, args: RunnerTemplateArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("workflow-runtime:index:RunnerTemplate", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = component_labels("workflow-runner", "runner")

        # A dedicated identity with no RBAC and no token: a workflow step that escapes into the
        # pod finds no credentials for the Kubernetes API.
        service_account = k8s.core.v1.ServiceAccount(
            f"{name}-service-account",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=contract.RUNNER_SERVICE_ACCOUNT, namespace=args.namespace, labels=labels
            ),
            automount_service_account_token=False,
            opts=child,
        )

        container = k8s.core.v1.ContainerArgs(
            name=contract.RUNNER_CONTAINER,
            image=args.image,
            image_pull_policy="IfNotPresent",
            command=list(contract.RUNNER_COMMAND),
            env=[
                env.from_secret(contract.DATABASE_URL_ENV, args.database_secret_name, contract.DATABASE_URL_ENV),
                env.from_secret(
                    contract.INTEGRATION_ENCRYPTION_KEY_ENV,
                    args.encryption_key_secret_name,
                    contract.INTEGRATION_ENCRYPTION_KEY_ENV,
                ),
                # Steps may call the internet but not the cluster, node or cloud metadata.
                env.plain("RUNNER_DENY_PRIVATE_NETWORKS", "1"),
                env.plain("LOG_FORMAT", "json"),
            ],
            resources=pod_security.resource_requirements(args.resources),
            security_context=pod_security.container_security_context(),
            volume_mounts=[pod_security.tmp_volume_mount()],
        )

        template = k8s.core.v1.PodTemplate(
            f"{name}-template",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=contract.RUNNER_TEMPLATE, namespace=args.namespace, labels=labels
            ),
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
                spec=pod_security.restricted_pod_spec(
                    service_account.metadata.name,
                    container,
                    automount_service_account_token=False,
                    # Jobs require Never or OnFailure; retries are the platform's (docs/architecture.md).
                    restart_policy=contract.RESTART_POLICY,
                ),
            ),
            opts=child,
        )

        self.template_name = template.metadata.name
        self.template_checksum = template.template.apply(template_checksum)
        self.register_outputs({"templateName": self.template_name, "templateChecksum": self.template_checksum})
