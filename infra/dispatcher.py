"""The dispatcher: a CronJob that runs one `wfctl dispatch` tick every minute.

Each tick finds due schedules in Postgres and sends one message per fire time to SQS (docs/architecture.md).
Its Job runs `parallelism` pods (stack config `dispatcherParallelism`) that share one tick's
due schedules: each claims batches with `FOR UPDATE SKIP LOCKED`, so none is sent twice.
`concurrencyPolicy: Forbid` keeps ticks from overlapping; a tick that was skipped is not lost,
because the next one sees the missed fire times and applies the schedule's catch-up rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from infra import env, pod_security
from infra.aws_access import AwsAccess
from infra.config import ResourceSpec
from infra.labels import component_labels
from services import contract

SCHEDULE = "* * * * *"
#: A tick the controller could not start within this window is skipped; the next tick, less than
#: a minute later, does its work anyway.
STARTING_DEADLINE_SECONDS = 50
#: A tick normally takes seconds. Killing a stuck one lets the next tick start (with Forbid a
#: hung Job would otherwise block dispatching indefinitely).
ACTIVE_DEADLINE_SECONDS = 120


@dataclass(frozen=True)
class DispatcherArgs:
    namespace: pulumi.Input[str]
    image: pulumi.Input[str]
    queue_url: pulumi.Input[str]
    database_secret_name: pulumi.Input[str]
    #: The dispatcher delivers notifications, whose channels are encrypted under this key.
    encryption_key_secret_name: pulumi.Input[str]
    aws_access: AwsAccess
    #: The console's address, for the links in notifications (None: messages carry no link).
    console_url: str | None = None
    #: Pods each tick's Job runs at once. Each runs the whole tick; `FOR UPDATE SKIP LOCKED`
    #: makes them split the due schedules instead of repeating them (docs/deploy.md).
    parallelism: int = 1
    resources: ResourceSpec = field(
        default_factory=lambda: ResourceSpec(
            cpu_request="50m", memory_request="128Mi", cpu_limit="500m", memory_limit="256Mi"
        )
    )


class Dispatcher(pulumi.ComponentResource):
    """The dispatcher's ServiceAccount (for IRSA; it has no RBAC) and its CronJob."""

    cron_job_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: DispatcherArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("workflow-runtime:index:Dispatcher", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = component_labels("workflow-dispatcher", "dispatcher")

        service_account = k8s.core.v1.ServiceAccount(
            f"{name}-service-account",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=contract.DISPATCHER_SERVICE_ACCOUNT,
                namespace=args.namespace,
                labels=labels,
                annotations=dict(args.aws_access.service_account_annotations) or None,
            ),
            # The dispatcher never talks to the Kubernetes API. (On EKS the IRSA webhook mounts
            # its own web-identity token, independent of this setting.)
            automount_service_account_token=False,
            opts=child,
        )

        container = k8s.core.v1.ContainerArgs(
            name="dispatcher",
            image=args.image,
            image_pull_policy="IfNotPresent",
            command=["wfctl", "dispatch"],
            env=[
                env.from_secret(contract.DATABASE_URL_ENV, args.database_secret_name, contract.DATABASE_URL_ENV),
                env.from_secret(
                    contract.INTEGRATION_ENCRYPTION_KEY_ENV,
                    args.encryption_key_secret_name,
                    contract.INTEGRATION_ENCRYPTION_KEY_ENV,
                ),
                env.plain("QUEUE_URL", args.queue_url),
                *args.aws_access.env,
                env.plain("LOG_FORMAT", "json"),
                *([env.plain("CONSOLE_URL", args.console_url)] if args.console_url else []),
            ],
            resources=pod_security.resource_requirements(args.resources),
            security_context=pod_security.container_security_context(),
            volume_mounts=[pod_security.tmp_volume_mount()],
        )

        cron_job = k8s.batch.v1.CronJob(
            f"{name}-cronjob",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=contract.DISPATCHER_CRONJOB, namespace=args.namespace, labels=labels
            ),
            spec=k8s.batch.v1.CronJobSpecArgs(
                schedule=SCHEDULE,
                time_zone="Etc/UTC",
                concurrency_policy="Forbid",
                starting_deadline_seconds=STARTING_DEADLINE_SECONDS,
                successful_jobs_history_limit=3,
                failed_jobs_history_limit=5,
                job_template=k8s.batch.v1.JobTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
                    spec=k8s.batch.v1.JobSpecArgs(
                        # The next tick is the retry; a second pod in the same minute is not.
                        backoff_limit=0,
                        # N pods share one tick's work; the Job is done when they all are.
                        parallelism=args.parallelism,
                        completions=args.parallelism,
                        active_deadline_seconds=ACTIVE_DEADLINE_SECONDS,
                        template=k8s.core.v1.PodTemplateSpecArgs(
                            metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
                            spec=pod_security.restricted_pod_spec(
                                service_account.metadata.name,
                                container,
                                automount_service_account_token=False,
                                restart_policy="Never",
                            ),
                        ),
                    ),
                ),
            ),
            opts=child,
        )

        self.cron_job_name = cron_job.metadata.name
        self.register_outputs({"cronJobName": self.cron_job_name})
