"""Every stack configuration read of the Pulumi program, in one place.

`load()` is the only function in the program that touches `pulumi.Config`. It turns the stack's
loosely typed key/value pairs into a frozen `StackConfig`, applies the defaults (which mirror the
typed `config:` block of `Pulumi.yaml`, a test keeps them in step) and rejects inconsistent
settings early with a message that names the offending key. Components receive plain typed values
and never read configuration themselves, which keeps them testable and reusable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

import pulumi

PROJECT = "workflow-runtime"

#: The services, in the order images are built and exported. Each is a Dockerfile target.
SERVICES: tuple[str, ...] = ("dispatcher", "spawner", "runner", "console")

#: LocalStack's conventional dummy credential, for both the key id and the secret key.
LOCALSTACK_DUMMY_CREDENTIAL = "test"

# SQS limits (seconds / counts) used to validate the queue settings.
_SQS_MAX_VISIBILITY_TIMEOUT = 43_200
_SQS_MIN_RETENTION = 60
_SQS_MAX_RETENTION = 1_209_600
_SQS_MAX_RECEIVE_COUNT = 1_000
# The spawner long-polls for 20 s; a message must stay invisible well past one poll plus the
# work of creating the execution record and the Job.
_MIN_VISIBILITY_TIMEOUT = 30


_E = TypeVar("_E", bound=StrEnum)
_HOST = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$")


class InvalidConfigError(pulumi.RunError):
    """A configuration value is present but unusable; the message names the full key."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"Invalid configuration value '{PROJECT}:{key}': {problem}")


class AwsMode(StrEnum):
    """How the services (and the Pulumi AWS provider) reach SQS."""

    #: LocalStack endpoint and dummy credentials, for kind/minikube.
    LOCALSTACK = "localstack"
    #: Real AWS; pods assume IAM roles through IAM roles for service accounts (EKS).
    IRSA = "irsa"


class ImageRegistry(StrEnum):
    """Where built images go."""

    #: Load into the local Docker daemon; nothing is pushed (then `kind load docker-image`).
    LOCAL = "local"
    #: Push to ECR repositories that this stack creates.
    ECR = "ecr"


@dataclass(frozen=True)
class ResourceSpec:
    """CPU/memory requests and limits of one container, as Kubernetes quantities."""

    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str


@dataclass(frozen=True)
class LocalStackConfig:
    """LocalStack endpoints and its (dummy, but still never plain-text in pods) credentials."""

    #: The endpoint pods use, e.g. http://localstack.localstack.svc.cluster.local:4566.
    endpoint_url: str
    #: The endpoint the Pulumi engine on the operator's machine uses (a port-forward).
    provider_endpoint_url: str
    access_key_id: pulumi.Output[str]
    secret_access_key: pulumi.Output[str]


@dataclass(frozen=True)
class IrsaConfig:
    """The EKS cluster's OIDC identity provider, trusted by the service roles."""

    oidc_provider_arn: str
    #: Issuer URL with or without the https:// scheme.
    oidc_provider_url: str


@dataclass(frozen=True)
class AwsConfig:
    region: str
    mode: AwsMode
    localstack: LocalStackConfig | None
    irsa: IrsaConfig | None


@dataclass(frozen=True)
class QueueConfig:
    name: str
    max_receive_count: int
    visibility_timeout_seconds: int
    message_retention_seconds: int
    dlq_message_retention_seconds: int


@dataclass(frozen=True)
class ImageConfig:
    #: False: deploy `prebuilt` refs as given and build nothing (CI previews, pinned releases).
    build: bool
    registry: ImageRegistry
    #: Tag for built images; None means a fingerprint of the build inputs.
    tag: str | None
    platforms: tuple[str, ...]
    #: service name → image ref, only when `build` is False.
    prebuilt: Mapping[str, str]


@dataclass(frozen=True)
class ConsoleIngressConfig:
    """The console's Ingress: a host, and the TLS Secret (in the namespace) to serve it with."""

    host: str
    tls_secret: str | None
    class_name: str | None


@dataclass(frozen=True)
class ConsoleConfig:
    replicas: int
    ingress: ConsoleIngressConfig | None
    #: Signs console session cookies; None derives one from the integration encryption key.
    secret_key: pulumi.Output[str] | None

    @property
    def url(self) -> str | None:
        """Where people reach the console (notifications link to runs there), when it has an Ingress."""
        if self.ingress is None:
            return None
        scheme = "https" if self.ingress.tls_secret else "http"
        return f"{scheme}://{self.ingress.host}"


@dataclass(frozen=True)
class StackConfig:
    """Everything the program needs from one stack, typed and validated."""

    stack: str
    namespace: str
    #: kubeconfig context to deploy into; None uses the current context.
    kube_context: str | None
    aws: AwsConfig
    queue: QueueConfig
    images: ImageConfig
    spawner_replicas: int
    #: Pods of each dispatcher tick's Job; they share the due schedules (SKIP LOCKED).
    dispatcher_parallelism: int
    runner_resources: ResourceSpec
    database_url: pulumi.Output[str]
    integration_encryption_key: pulumi.Output[str]
    console: ConsoleConfig


#: More dispatcher pods than this only add lock contention and database connections.
MAX_DISPATCHER_PARALLELISM = 16


def _optional(config: pulumi.Config, key: str) -> str | None:
    """A string key; unset and empty are the same (Pulumi.yaml defaults optional keys to "")."""
    value = config.get(key)
    return value.strip() if value and value.strip() else None


def _required(config: pulumi.Config, key: str) -> str:
    """A required plain string. Pulumi.yaml gives optional keys an empty default, so an empty
    value counts as missing here and fails with the same error `config.require` raises."""
    value = _optional(config, key)
    if value is None:
        raise pulumi.ConfigMissingError(config.full_key(key), secret=False)
    return value


def _int_in_range(config: pulumi.Config, key: str, default: int, low: int, high: int) -> int:
    value = config.get_int(key, default)
    if not low <= value <= high:
        raise InvalidConfigError(key, f"must be between {low} and {high}, got {value}")
    return value


def _enum(config: pulumi.Config, key: str, enum: type[_E], default: _E) -> _E:
    raw = config.get(key, default.value)
    try:
        return enum(raw)
    except ValueError:
        choices = ", ".join(member.value for member in enum)
        raise InvalidConfigError(key, f"must be one of {choices}, got {raw!r}") from None


def _load_aws(config: pulumi.Config) -> AwsConfig:
    mode = _enum(config, "awsMode", AwsMode, AwsMode.IRSA)
    region = config.get("awsRegion", "us-east-1")
    localstack: LocalStackConfig | None = None
    irsa: IrsaConfig | None = None
    if mode is AwsMode.LOCALSTACK:
        localstack = LocalStackConfig(
            endpoint_url=_required(config, "awsEndpointUrl"),
            provider_endpoint_url=_optional(config, "awsProviderEndpointUrl")
            or "http://localhost:4566",
            # LocalStack accepts any credentials. They are still handled as secrets and reach
            # pods through a Secret, so local and production pod specs have the same shape.
            access_key_id=pulumi.Output.secret(LOCALSTACK_DUMMY_CREDENTIAL),
            secret_access_key=pulumi.Output.secret(LOCALSTACK_DUMMY_CREDENTIAL),
        )
    else:
        irsa = IrsaConfig(
            oidc_provider_arn=_required(config, "oidcProviderArn"),
            oidc_provider_url=_required(config, "oidcProviderUrl"),
        )
    return AwsConfig(region=region, mode=mode, localstack=localstack, irsa=irsa)


def _load_queue(config: pulumi.Config, stack: str) -> QueueConfig:
    return QueueConfig(
        name=_optional(config, "queueName") or f"{PROJECT}-{stack}",
        max_receive_count=_int_in_range(config, "maxReceiveCount", 5, 1, _SQS_MAX_RECEIVE_COUNT),
        visibility_timeout_seconds=_int_in_range(
            config,
            "queueVisibilityTimeoutSeconds",
            120,
            _MIN_VISIBILITY_TIMEOUT,
            _SQS_MAX_VISIBILITY_TIMEOUT,
        ),
        message_retention_seconds=_int_in_range(
            config, "queueMessageRetentionSeconds", 345_600, _SQS_MIN_RETENTION, _SQS_MAX_RETENTION
        ),
        dlq_message_retention_seconds=_int_in_range(
            config, "dlqMessageRetentionSeconds", 1_209_600, _SQS_MIN_RETENTION, _SQS_MAX_RETENTION
        ),
    )


def _load_images(config: pulumi.Config, aws_mode: AwsMode) -> ImageConfig:
    build = config.get_bool("buildImages", True)
    registry = _enum(config, "imageRegistry", ImageRegistry, ImageRegistry.LOCAL)
    if build and registry is ImageRegistry.ECR and aws_mode is not AwsMode.IRSA:
        raise InvalidConfigError("imageRegistry", "'ecr' needs awsMode 'irsa' (real AWS)")
    prebuilt: dict[str, str] = {}
    if not build:
        # Building is skipped, so every service needs a given image reference.
        prebuilt = {service: _required(config, f"{service}Image") for service in SERVICES}
    platform = _optional(config, "imagePlatform")
    return ImageConfig(
        build=build,
        registry=registry,
        tag=_optional(config, "imageTag"),
        platforms=(platform,) if platform else (),
        prebuilt=prebuilt,
    )


def _load_console(config: pulumi.Config) -> ConsoleConfig:
    host = _optional(config, "consoleIngressHost")
    tls_secret = _optional(config, "consoleIngressTlsSecret")
    if tls_secret and not host:
        raise InvalidConfigError("consoleIngressTlsSecret", "needs consoleIngressHost")
    if host and not _HOST.match(host):
        raise InvalidConfigError("consoleIngressHost", f"must be a DNS name (console.example.com), got {host!r}")
    ingress = None
    if host:
        ingress = ConsoleIngressConfig(
            host=host, tls_secret=tls_secret, class_name=_optional(config, "consoleIngressClass")
        )
    return ConsoleConfig(
        replicas=_int_in_range(config, "consoleReplicas", 2, 1, 20),
        ingress=ingress,
        secret_key=config.get_secret("consoleSecretKey"),
    )


def derived_console_secret_key(integration_encryption_key: pulumi.Output[str]) -> pulumi.Output[str]:
    """A session-signing key derived from the integration key (HMAC-SHA256 with a fixed label),
    so a stack without `consoleSecretKey` still gives every console replica the same key."""
    import hashlib
    import hmac

    return pulumi.Output.secret(
        integration_encryption_key.apply(
            lambda key: hmac.new(key.encode(), b"workflow-runtime console sessions", hashlib.sha256).hexdigest()
        )
    )


def load() -> StackConfig:
    """Read and validate the current stack's configuration.

    Required secrets are read with `require_secret`, so a missing one fails the program with
    Pulumi's `ConfigMissingError`, whose message names the key and the command that sets it.
    """
    config = pulumi.Config(PROJECT)
    stack = pulumi.get_stack()
    aws = _load_aws(config)
    return StackConfig(
        stack=stack,
        namespace=config.get("namespace", PROJECT),
        kube_context=_optional(config, "kubeContext"),
        aws=aws,
        queue=_load_queue(config, stack),
        images=_load_images(config, aws.mode),
        spawner_replicas=_int_in_range(config, "spawnerReplicas", 1, 0, 50),
        dispatcher_parallelism=_int_in_range(config, "dispatcherParallelism", 1, 1, MAX_DISPATCHER_PARALLELISM),
        runner_resources=ResourceSpec(
            cpu_request=config.get("runnerCpuRequest", "100m"),
            memory_request=config.get("runnerMemoryRequest", "128Mi"),
            cpu_limit=config.get("runnerCpuLimit", "500m"),
            memory_limit=config.get("runnerMemoryLimit", "512Mi"),
        ),
        database_url=config.require_secret("databaseUrl"),
        integration_encryption_key=config.require_secret("integrationEncryptionKey"),
        console=_load_console(config),
    )
