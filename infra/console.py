"""The operator API and web console: a Deployment running `wfctl serve` behind a Service.

Two replicas and a PodDisruptionBudget keep it up through node drains; both replicas sign
session cookies with one key (a Secret), so a sign-in holds whichever replica answers. Liveness
asks only the process (`/healthz`), readiness does a database round trip (`/readyz`), so an
outage of Postgres takes the pods out of the Service without restarting them. An Ingress (host,
optional TLS Secret) is created only when the stack names a host (docs/deploy.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from infra import env, pod_security, probes
from infra.aws_access import AwsAccess
from infra.config import ConsoleIngressConfig, ResourceSpec
from infra.labels import component_labels
from services import contract

HTTP_PORT = 8080
SERVICE_PORT = 80
SECRET_KEY = "CONSOLE_SECRET_KEY"
#: In-flight requests finish after SIGTERM; uvicorn needs a few seconds.
TERMINATION_GRACE_PERIOD_SECONDS = 30


@dataclass(frozen=True)
class ConsoleArgs:
    namespace: pulumi.Input[str]
    image: pulumi.Input[str]
    queue_url: pulumi.Input[str]
    dlq_url: pulumi.Input[str]
    database_secret_name: pulumi.Input[str]
    #: Signs session cookies; the same value on every replica.
    session_secret_key: pulumi.Output[str]
    aws_access: AwsAccess
    replicas: int = 2
    ingress: ConsoleIngressConfig | None = None
    resources: ResourceSpec = field(
        default_factory=lambda: ResourceSpec(
            cpu_request="100m", memory_request="160Mi", cpu_limit="500m", memory_limit="384Mi"
        )
    )


class Console(pulumi.ComponentResource):
    """Secret (session key), ServiceAccount, Deployment, Service, PodDisruptionBudget, Ingress."""

    service_name: pulumi.Output[str]
    url: pulumi.Output[str] | None

    def __init__(self, name: str, args: ConsoleArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("workflow-runtime:index:Console", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = component_labels("workflow-console", "console")
        selector = {"app": labels["app"]}

        secret = k8s.core.v1.Secret(
            f"{name}-secret",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=contract.CONSOLE_SECRET, namespace=args.namespace, labels=labels),
            type="Opaque",
            string_data={SECRET_KEY: pulumi.Output.secret(args.session_secret_key)},
            opts=child,
        )
        service_account = k8s.core.v1.ServiceAccount(
            f"{name}-service-account",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=contract.CONSOLE_SERVICE_ACCOUNT,
                namespace=args.namespace,
                labels=labels,
                annotations=dict(args.aws_access.service_account_annotations) or None,
            ),
            automount_service_account_token=False,
            opts=child,
        )
        container = k8s.core.v1.ContainerArgs(
            name="console",
            image=args.image,
            image_pull_policy="IfNotPresent",
            command=["wfctl", "serve", "--host", "0.0.0.0", "--port", str(HTTP_PORT)],
            ports=[k8s.core.v1.ContainerPortArgs(name="http", container_port=HTTP_PORT, protocol="TCP")],
            env=[
                env.from_secret(contract.DATABASE_URL_ENV, args.database_secret_name, contract.DATABASE_URL_ENV),
                env.from_secret(SECRET_KEY, secret.metadata.name, SECRET_KEY),
                env.plain("QUEUE_URL", args.queue_url),
                env.plain("DLQ_URL", args.dlq_url),
                *args.aws_access.env,
                # Behind TLS (the Ingress), cookies are only sent over HTTPS.
                env.plain("CONSOLE_SECURE_COOKIES", "1" if args.ingress and args.ingress.tls_secret else "0"),
                env.plain("LOG_FORMAT", "json"),
            ],
            liveness_probe=probes.liveness(initial_delay_seconds=5),
            readiness_probe=probes.readiness(initial_delay_seconds=3),
            resources=pod_security.resource_requirements(args.resources),
            security_context=pod_security.container_security_context(),
            volume_mounts=[pod_security.tmp_volume_mount()],
        )
        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=contract.CONSOLE_DEPLOYMENT, namespace=args.namespace, labels=labels
            ),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=args.replicas,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
                strategy=k8s.apps.v1.DeploymentStrategyArgs(
                    type="RollingUpdate",
                    rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(max_unavailable=0, max_surge=1),
                ),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
                    spec=pod_security.restricted_pod_spec(
                        service_account.metadata.name,
                        container,
                        # The console reads Postgres and SQS; it never calls the Kubernetes API.
                        automount_service_account_token=False,
                        termination_grace_period_seconds=TERMINATION_GRACE_PERIOD_SECONDS,
                    ),
                ),
            ),
            opts=child,
        )
        service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=contract.CONSOLE_SERVICE, namespace=args.namespace, labels=labels),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP",
                selector=selector,
                ports=[k8s.core.v1.ServicePortArgs(name="http", port=SERVICE_PORT, target_port="http", protocol="TCP")],
            ),
            opts=child,
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=contract.CONSOLE_DEPLOYMENT, namespace=args.namespace, labels=labels
            ),
            # One pod down at a time: with two replicas one keeps serving through a drain, and a
            # stack that runs one replica can still be drained (`minAvailable: 1` would block it).
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                max_unavailable=1, selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector)
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[deployment]),
        )
        self.url = None
        if args.ingress is not None:
            ingress = args.ingress
            k8s.networking.v1.Ingress(
                f"{name}-ingress",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=contract.CONSOLE_SERVICE, namespace=args.namespace, labels=labels
                ),
                spec=k8s.networking.v1.IngressSpecArgs(
                    ingress_class_name=ingress.class_name,
                    tls=[k8s.networking.v1.IngressTLSArgs(hosts=[ingress.host], secret_name=ingress.tls_secret)]
                    if ingress.tls_secret
                    else None,
                    rules=[
                        k8s.networking.v1.IngressRuleArgs(
                            host=ingress.host,
                            http=k8s.networking.v1.HTTPIngressRuleValueArgs(
                                paths=[
                                    k8s.networking.v1.HTTPIngressPathArgs(
                                        path="/",
                                        path_type="Prefix",
                                        backend=k8s.networking.v1.IngressBackendArgs(
                                            service=k8s.networking.v1.IngressServiceBackendArgs(
                                                name=service.metadata.name,
                                                port=k8s.networking.v1.ServiceBackendPortArgs(name="http"),
                                            )
                                        ),
                                    )
                                ]
                            ),
                        )
                    ],
                ),
                opts=child,
            )
            scheme = "https" if ingress.tls_secret else "http"
            self.url = pulumi.Output.from_input(f"{scheme}://{ingress.host}/")

        self.service_name = service.metadata.name
        self.register_outputs({"serviceName": self.service_name, "url": self.url})
