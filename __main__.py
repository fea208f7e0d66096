"""Workflow Runtime on Kubernetes: the Pulumi program (docs/architecture.md).

Deliberately thin: read the stack configuration (`infra.config.load`, the only place config is
read), create the components of `infra/` in dependency order, export what operators and CI need.
"""

from __future__ import annotations

from pathlib import Path

import pulumi

from infra import aws_access, config, providers
from infra.console import Console, ConsoleArgs
from infra.dispatcher import Dispatcher, DispatcherArgs
from infra.images import Images, ImagesArgs, source_fingerprint
from infra.namespace import RuntimeNamespace, RuntimeNamespaceArgs
from infra.runner_template import RunnerTemplate, RunnerTemplateArgs
from infra.secrets import AwsCredentials, PlatformSecrets, PlatformSecretsArgs
from infra.spawner import Spawner, SpawnerArgs
from infra.work_queue import WorkQueue, WorkQueueArgs

REPO_ROOT = Path(__file__).resolve().parent

stack = config.load()
cloud = providers.create(stack.aws, stack.kube_context)
in_cluster = providers.options(cloud.kubernetes)
in_aws = providers.options(cloud.aws)

namespace = RuntimeNamespace("namespace", RuntimeNamespaceArgs(name=stack.namespace), in_cluster)

queue = WorkQueue(
    "work-queue",
    WorkQueueArgs(
        queue_name=stack.queue.name,
        region=stack.aws.region,
        max_receive_count=stack.queue.max_receive_count,
        visibility_timeout_seconds=stack.queue.visibility_timeout_seconds,
        message_retention_seconds=stack.queue.message_retention_seconds,
        dlq_message_retention_seconds=stack.queue.dlq_message_retention_seconds,
    ),
    in_aws,
)

platform_secrets = PlatformSecrets(
    "secrets",
    PlatformSecretsArgs(
        namespace=namespace.name,
        database_url=stack.database_url,
        integration_encryption_key=stack.integration_encryption_key,
        aws_credentials=(
            AwsCredentials(
                stack.aws.localstack.access_key_id, stack.aws.localstack.secret_access_key
            )
            if stack.aws.localstack
            else None
        ),
    ),
    in_cluster,
)

if stack.images.build:
    image_refs: dict[str, pulumi.Input[str]] = dict(
        Images(
            "images",
            ImagesArgs(
                # Relative to the project directory (Pulumi's working directory), so the inputs
                # are the same on every checkout and do not cause spurious image updates.
                context_dir=".",
                dockerfile="images/Dockerfile",
                services=config.SERVICES,
                tag=stack.images.tag or source_fingerprint(REPO_ROOT),
                registry=stack.images.registry,
                platforms=stack.images.platforms,
            ),
            in_aws,
        ).refs
    )
else:
    image_refs = dict(stack.images.prebuilt)

runner = RunnerTemplate(
    "runner",
    RunnerTemplateArgs(
        namespace=namespace.name,
        image=image_refs["runner"],
        resources=stack.runner_resources,
        database_secret_name=platform_secrets.database_secret_name,
        encryption_key_secret_name=platform_secrets.encryption_key_secret_name,
    ),
    in_cluster,
)

access = aws_access.service_access(
    stack.aws,
    namespace=stack.namespace,
    queue_arn=queue.queue_arn,
    dlq_arn=queue.dlq_arn,
    aws_credentials_secret_name=platform_secrets.aws_credentials_secret_name,
    opts=in_aws,
)

Dispatcher(
    "dispatcher",
    DispatcherArgs(
        namespace=namespace.name,
        image=image_refs["dispatcher"],
        queue_url=queue.queue_url,
        database_secret_name=platform_secrets.database_secret_name,
        encryption_key_secret_name=platform_secrets.encryption_key_secret_name,
        aws_access=access.dispatcher,
        console_url=stack.console.url,
        parallelism=stack.dispatcher_parallelism,
    ),
    in_cluster,
)

Spawner(
    "spawner",
    SpawnerArgs(
        namespace=namespace.name,
        image=image_refs["spawner"],
        replicas=stack.spawner_replicas,
        queue_url=queue.queue_url,
        dlq_url=queue.dlq_url,
        runner_template_name=runner.template_name,
        runner_template_checksum=runner.template_checksum,
        database_secret_name=platform_secrets.database_secret_name,
        aws_access=access.spawner,
    ),
    in_cluster,
)

console = Console(
    "console",
    ConsoleArgs(
        namespace=namespace.name,
        image=image_refs["console"],
        queue_url=queue.queue_url,
        dlq_url=queue.dlq_url,
        database_secret_name=platform_secrets.database_secret_name,
        session_secret_key=stack.console.secret_key
        or config.derived_console_secret_key(stack.integration_encryption_key),
        aws_access=access.console,
        replicas=stack.console.replicas,
        ingress=stack.console.ingress,
    ),
    in_cluster,
)

pulumi.export("queueUrl", queue.queue_url)
pulumi.export("dlqUrl", queue.dlq_url)
pulumi.export("namespace", namespace.name)
pulumi.export("runnerTemplateName", runner.template_name)
pulumi.export("consoleService", console.service_name)
if console.url is not None:
    pulumi.export("consoleUrl", console.url)
for service, ref in image_refs.items():
    pulumi.export(f"{service}Image", ref)
