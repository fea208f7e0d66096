"""The job spawner: a Deployment running `wfctl spawn --launcher kubernetes`.

It long-polls SQS, records the execution in Postgres and creates one Job per message from the
runner template (docs/architecture.md). Its RBAC is exactly what that needs, in its own namespace only:
create, list and delete Jobs, list their Pods (to reconcile outcomes the runner could not report)
and read the one PodTemplate it builds Jobs from. It reads that template when it starts, so its
pods carry the template's checksum: a deploy that changes the template rolls the spawner.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from infra import env, pod_security, probes
from infra.aws_access import AwsAccess
from infra.config import ResourceSpec
from infra.labels import component_labels
from services import contract

HEALTH_PORT = 8080
#: The spawner pod annotation holding the runner template's checksum (RunnerTemplate.template_checksum).
RUNNER_TEMPLATE_CHECKSUM_ANNOTATION = "workflow-runtime/runner-template-checksum"
#: The spawner finishes its current message after SIGTERM; one long-poll is up to 20 s, so a
#: minute leaves room for the poll, the database write and the Job creation.
TERMINATION_GRACE_PERIOD_SECONDS = 60


def spawner_role_rules(template_name: pulumi.Input[str]) -> list[k8s.rbac.v1.PolicyRuleArgs]:
    """The spawner's complete RBAC: no wildcards, nothing outside its namespace."""
    return [
        k8s.rbac.v1.PolicyRuleArgs(
            api_groups=["batch"],
            resources=["jobs"],
            verbs=["create", "list", "delete"],
        ),
        k8s.rbac.v1.PolicyRuleArgs(
            api_groups=[""],
            resources=["pods"],
            verbs=["list"],
        ),
        k8s.rbac.v1.PolicyRuleArgs(
            api_groups=[""],
            resources=["podtemplates"],
            verbs=["get"],
            resource_names=[template_name],
        ),
    ]


@dataclass(frozen=True)
class SpawnerArgs:
    namespace: pulumi.Input[str]
    image: pulumi.Input[str]
    replicas: int
    queue_url: pulumi.Input[str]
    dlq_url: pulumi.Input[str]
    runner_template_name: pulumi.Input[str]
    #: Changes whenever the runner template does; rolls the spawner's pods (it reads the template at start).
    runner_template_checksum: pulumi.Input[str]
    database_secret_name: pulumi.Input[str]
    aws_access: AwsAccess
    resources: ResourceSpec = field(
        default_factory=lambda: ResourceSpec(
            cpu_request="100m", memory_request="192Mi", cpu_limit="500m", memory_limit="512Mi"
        )
    )


class Spawner(pulumi.ComponentResource):
    """ServiceAccount, namespaced Role and RoleBinding, and the Deployment."""

    deployment_name: pulumi.Output[str]
    service_account_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: SpawnerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("workflow-runtime:index:Spawner", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = component_labels("workflow-spawner", "spawner")

        service_account = k8s.core.v1.ServiceAccount(
            f"{name}-service-account",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=contract.SPAWNER_SERVICE_ACCOUNT,
                namespace=args.namespace,
                labels=labels,
                annotations=dict(args.aws_access.service_account_annotations) or None,
            ),
            opts=child,
        )
        role = k8s.rbac.v1.Role(
            f"{name}-role",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=contract.SPAWNER_ROLE, namespace=args.namespace, labels=labels
            ),
            rules=spawner_role_rules(args.runner_template_name),
            opts=child,
        )
        role_binding = k8s.rbac.v1.RoleBinding(
            f"{name}-role-binding",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=contract.SPAWNER_ROLE, namespace=args.namespace, labels=labels
            ),
            role_ref=k8s.rbac.v1.RoleRefArgs(
                api_group="rbac.authorization.k8s.io", kind="Role", name=role.metadata.name
            ),
            subjects=[
                k8s.rbac.v1.SubjectArgs(
                    kind="ServiceAccount",
                    name=service_account.metadata.name,
                    namespace=args.namespace,
                )
            ],
            opts=child,
        )

        container = k8s.core.v1.ContainerArgs(
            name="spawner",
            image=args.image,
            image_pull_policy="IfNotPresent",
            command=["wfctl", "spawn", "--launcher", "kubernetes"],
            ports=[
                k8s.core.v1.ContainerPortArgs(
                    name="http", container_port=HEALTH_PORT, protocol="TCP"
                )
            ],
            env=[
                env.from_secret(contract.DATABASE_URL_ENV, args.database_secret_name, contract.DATABASE_URL_ENV),
                env.plain("QUEUE_URL", args.queue_url),
                env.plain("DLQ_URL", args.dlq_url),
                *args.aws_access.env,
                env.plain("RUNNER_TEMPLATE_NAME", args.runner_template_name),
                env.plain("RUNNER_NAMESPACE", args.namespace),
                env.plain("LOG_FORMAT", "json"),
            ],
            liveness_probe=probes.liveness(initial_delay_seconds=10),
            readiness_probe=probes.readiness(initial_delay_seconds=5),
            resources=pod_security.resource_requirements(args.resources),
            security_context=pod_security.container_security_context(),
            volume_mounts=[pod_security.tmp_volume_mount()],
        )

        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=contract.SPAWNER_DEPLOYMENT, namespace=args.namespace, labels=labels
            ),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=args.replicas,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels={"app": labels["app"]}),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        labels=labels,
                        annotations={
                            "prometheus.io/scrape": "true",
                            "prometheus.io/port": str(HEALTH_PORT),
                            "prometheus.io/path": "/metrics",
                            RUNNER_TEMPLATE_CHECKSUM_ANNOTATION: args.runner_template_checksum,
                        },
                    ),
                    spec=pod_security.restricted_pod_spec(
                        service_account.metadata.name,
                        container,
                        # The spawner is the one workload that talks to the Kubernetes API.
                        automount_service_account_token=True,
                        termination_grace_period_seconds=TERMINATION_GRACE_PERIOD_SECONDS,
                    ),
                ),
            ),
            # Its first act is reading the runner template: without the binding it would crash-loop
            # on HTTP 403 until the binding exists.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role_binding]),
        )

        self.deployment_name = deployment.metadata.name
        self.service_account_name = service_account.metadata.name
        self.register_outputs(
            {
                "deploymentName": self.deployment_name,
                "serviceAccountName": self.service_account_name,
            }
        )
