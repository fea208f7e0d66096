"""The runner Job (docs/architecture.md), built from the runner template: a pure function, no I/O.

Everything that is the same for every run (image, command, resources, secrets, security) comes
from the template the platform deploys; everything that differs per run (name, labels, deadline,
WORKFLOW_ID / EXECUTION_ID / WORKFLOW_INPUT) is added here. The contract rows the design fixes
(restricted pod security on every container, `backoffLimit: 0`, the TTL, …) are enforced here
whatever the template says, so a template edited by hand can never produce a Job that breaks
them; what no override can make restricted (a root user, a host port, a hostPath volume) is
refused, in one line, when the spawner starts.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any, Protocol

from kubernetes.client import (
    V1Capabilities,
    V1Container,
    V1EmptyDirVolumeSource,
    V1EnvVar,
    V1Job,
    V1ObjectMeta,
    V1PodSecurityContext,
    V1PodSpec,
    V1PodTemplateSpec,
    V1ResourceRequirements,
    V1SeccompProfile,
    V1SecurityContext,
    V1Volume,
    V1VolumeMount,
)

from services.contract import (
    APP_LABEL,
    BACKOFF_LIMIT,
    DEFAULT_LIMITS,
    DEFAULT_REQUESTS,
    DEFAULT_TIMEOUT_SECONDS,
    EXECUTION_ID_ENV,
    EXECUTION_ID_LABEL,
    JOB_NAME_PREFIX,
    MAX_INLINE_INPUT_BYTES,
    MAX_NAME_LENGTH,
    PER_RUN_ENV_NAMES,
    RESTART_POLICY,
    RUNNER_APP,
    SECRET_ENV_NAMES,
    TMP_PATH,
    TMP_SIZE_LIMIT,
    TMP_VOLUME,
    TTL_SECONDS_AFTER_FINISHED,
    WORKFLOW_ID_ENV,
    WORKFLOW_ID_LABEL,
    WORKFLOW_INPUT_ENV,
)
from services.spawner.runner_template import RunnerTemplate, TemplateError


class ExecutionRef(Protocol):
    """What the builder needs from an execution (the ORM row or any look-alike)."""

    @property
    def id(self) -> uuid.UUID: ...

    @property
    def input(self) -> Mapping[str, Any] | None: ...


class WorkflowRef(Protocol):
    """What the builder needs from a workflow."""

    @property
    def id(self) -> uuid.UUID: ...

    @property
    def timeout_seconds(self) -> int | None: ...


def job_name(execution_id: uuid.UUID) -> str:
    """`workflow-exec-<execution-id>`: deterministic, so a retried create answers 409."""
    name = f"{JOB_NAME_PREFIX}{str(execution_id).lower()}"
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"Job name {name!r} is longer than {MAX_NAME_LENGTH} characters")
    return name


def execution_id_of(name: str) -> uuid.UUID | None:
    """The execution id a runner Job name encodes, or None for any other name."""
    if not name.startswith(JOB_NAME_PREFIX):
        return None
    try:
        return uuid.UUID(name[len(JOB_NAME_PREFIX) :])
    except ValueError:
        return None


def runner_labels(workflow_id: uuid.UUID, execution_id: uuid.UUID) -> dict[str, str]:
    return {
        APP_LABEL: RUNNER_APP,
        WORKFLOW_ID_LABEL: str(workflow_id),
        EXECUTION_ID_LABEL: str(execution_id),
    }


def inline_input(payload: Mapping[str, Any] | None) -> str | None:
    """WORKFLOW_INPUT's value, or None when the input is too large to put in the environment."""
    text = json.dumps(dict(payload or {}), separators=(",", ":"), sort_keys=True)
    return text if len(text.encode()) <= MAX_INLINE_INPUT_BYTES else None


#: Volume types the restricted Pod Security Standard allows; any other (hostPath, nfs, …) is refused.
RESTRICTED_VOLUME_TYPES = frozenset(
    {"config_map", "csi", "downward_api", "empty_dir", "ephemeral", "persistent_volume_claim", "projected", "secret"}
)


def _refuse_unrestricted(spec: V1PodSpec) -> None:
    """Refuse, with a one-line reason, what the builder cannot make restricted by overriding a
    field: a root user, a host port, a volume type the restricted profile forbids. Better at
    start-up than a Job the namespace's admission rejects after it exists."""
    containers = [*(spec.containers or []), *(spec.init_containers or [])]
    for context, where in [(spec.security_context, "the pod"), *((c.security_context, c.name) for c in containers)]:
        if context is not None and context.run_as_user == 0:
            raise TemplateError(f"{where} runs as user 0 (root); the runner Job must run as non-root")
    for container in containers:
        if any(port.host_port for port in container.ports or []):
            raise TemplateError(f"container {container.name!r} asks for a host port")
    for volume in spec.volumes or []:
        kinds = [kind for kind, value in volume if value is not None and kind != "name"]
        if not kinds or any(kind not in RESTRICTED_VOLUME_TYPES for kind in kinds):
            kind = ", ".join(kinds) or "none"
            raise TemplateError(f"volume {volume.name!r} is of a type ({kind}) that restricted pods may not use")
        if volume.name == TMP_VOLUME and volume.empty_dir is None:
            raise TemplateError(f"volume {TMP_VOLUME!r} must be an emptyDir (it is the runner's writable /tmp)")


def _pod_security(current: V1PodSecurityContext | None) -> V1PodSecurityContext:
    context = current.model_copy(deep=True) if current else V1PodSecurityContext()
    context.run_as_non_root = True
    context.seccomp_profile = V1SeccompProfile(type="RuntimeDefault")
    return context


def _container_security(current: V1SecurityContext | None) -> V1SecurityContext:
    context = current.model_copy(deep=True) if current else V1SecurityContext()
    context.run_as_non_root = True
    context.allow_privilege_escalation = False
    context.privileged = False
    context.read_only_root_filesystem = True
    context.capabilities = V1Capabilities(drop=["ALL"])
    context.seccomp_profile = V1SeccompProfile(type="RuntimeDefault")
    return context


def _resources(current: V1ResourceRequirements | None) -> V1ResourceRequirements:
    """The template's resources, with the platform defaults for anything it leaves out."""
    requests = dict(DEFAULT_REQUESTS)
    limits = dict(DEFAULT_LIMITS)
    if current is not None:
        requests.update(current.requests or {})
        limits.update(current.limits or {})
    return V1ResourceRequirements(requests=requests, limits=limits)


def _env(current: list[V1EnvVar] | None) -> list[V1EnvVar]:
    """Template variables without the per-run names (the builder adds those), checking secrets
    are only referenced."""
    kept = [var for var in current or [] if var.name not in PER_RUN_ENV_NAMES]
    for var in kept:
        if var.name in SECRET_ENV_NAMES and (
            var.value is not None or var.value_from is None or var.value_from.secret_key_ref is None
        ):
            raise TemplateError(f"env {var.name} must come from a secretKeyRef, never a value")
    missing = [name for name in SECRET_ENV_NAMES if name not in {var.name for var in kept}]
    if missing:
        raise TemplateError(f"env {', '.join(missing)} missing (a secretKeyRef is required)")
    return [var.model_copy(deep=True) for var in kept]


def _with_tmp_volume(volumes: list[V1Volume] | None) -> list[V1Volume]:
    result = [volume.model_copy(deep=True) for volume in volumes or []]
    if not any(volume.name == TMP_VOLUME for volume in result):
        result.append(V1Volume(name=TMP_VOLUME, empty_dir=V1EmptyDirVolumeSource(size_limit=TMP_SIZE_LIMIT)))
    return result


def _with_tmp_mount(mounts: list[V1VolumeMount] | None) -> list[V1VolumeMount]:
    result = [mount.model_copy(deep=True) for mount in mounts or []]
    if not any(mount.mount_path == TMP_PATH for mount in result):
        result.append(V1VolumeMount(name=TMP_VOLUME, mount_path=TMP_PATH))
    return result


def _hardened(container: V1Container) -> V1Container:
    """Any other container of the template (a sidecar, an init container): the same security."""
    result = container.model_copy(deep=True)
    result.security_context = _container_security(container.security_context)
    return result


def _runner_container(container: V1Container) -> V1Container:
    result = container.model_copy(deep=True)
    result.env = _env(container.env)
    result.resources = _resources(container.resources)
    result.security_context = _container_security(container.security_context)
    result.volume_mounts = _with_tmp_mount(container.volume_mounts)
    return result


def _runner_pod(template: RunnerTemplate) -> V1PodTemplateSpec:
    """The template's pod with the contract applied and no per-run parts: the same for every run."""
    source = template.pod
    spec: V1PodSpec = source.spec.model_copy(deep=True) if source.spec else V1PodSpec(containers=[])
    _refuse_unrestricted(spec)
    spec.containers = [
        _runner_container(c) if c.name == template.container_name else _hardened(c) for c in spec.containers
    ]
    if spec.init_containers:
        spec.init_containers = [_hardened(c) for c in spec.init_containers]
    spec.restart_policy = RESTART_POLICY
    spec.automount_service_account_token = False
    spec.host_network = spec.host_pid = spec.host_ipc = None  # the defaults: the pod's own namespaces
    spec.security_context = _pod_security(spec.security_context)
    spec.volumes = _with_tmp_volume(spec.volumes)
    metadata = V1ObjectMeta(
        labels=dict((source.metadata.labels if source.metadata else None) or {}),
        annotations=(source.metadata.annotations if source.metadata else None) or None,
    )
    return V1PodTemplateSpec(metadata=metadata, spec=spec)


class JobBuilder:
    """Builds the runner Jobs of one template (the spawner holds one for its lifetime).

    What every run shares (the template with the contract applied) is computed and checked once,
    here, and kept as JSON; each Job is then that JSON plus its per-run parts, parsed into new
    objects, so no two Jobs, nor a Job and the template, share a mutable part. A Job costs about
    a tenth of building it from the template each time.
    """

    def __init__(self, template: RunnerTemplate) -> None:
        self.namespace = template.namespace
        pod = _runner_pod(template)
        self._pod_json = json.dumps(pod.model_dump(by_alias=True, exclude_none=True, mode="json"))
        names = [c.name for c in pod.spec.containers] if pod.spec else []
        self._runner_index = names.index(template.container_name) if template.container_name in names else None

    def build(self, execution: ExecutionRef, workflow: WorkflowRef) -> V1Job:
        """The Job that runs `execution` of `workflow`, per the runner Job contract."""
        name = job_name(execution.id)
        labels = runner_labels(workflow.id, execution.id)
        env = [
            {"name": WORKFLOW_ID_ENV, "value": str(workflow.id)},
            {"name": EXECUTION_ID_ENV, "value": str(execution.id)},
        ]
        payload = inline_input(execution.input)
        if payload is not None:
            env.append({"name": WORKFLOW_INPUT_ENV, "value": payload})
        pod = json.loads(self._pod_json)
        pod["metadata"]["labels"] = {**pod["metadata"].get("labels", {}), **labels}
        if self._runner_index is not None:
            container = pod["spec"]["containers"][self._runner_index]
            container["env"] = [*container.get("env", []), *env]
        timeout = workflow.timeout_seconds or DEFAULT_TIMEOUT_SECONDS
        return V1Job.model_validate(  # by alias, as `from_dict` does, at a quarter of its cost
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": name, "namespace": self.namespace, "labels": labels},
                "spec": {
                    "ttlSecondsAfterFinished": TTL_SECONDS_AFTER_FINISHED,
                    "backoffLimit": BACKOFF_LIMIT,
                    "activeDeadlineSeconds": int(timeout),
                    "template": pod,
                },
            }
        )


def build_job(template: RunnerTemplate, execution: ExecutionRef, workflow: WorkflowRef) -> V1Job:
    """The Job that runs `execution` of `workflow`, per the runner Job contract (docs/architecture.md).

    For one Job; a caller that builds many from the same template keeps a JobBuilder instead.
    """
    return JobBuilder(template).build(execution, workflow)


def job_manifest(job: V1Job) -> dict[str, Any]:
    """The Job as the API server sees it (camelCase JSON), e.g. for validation or a dry run."""
    return job.model_dump(by_alias=True, exclude_none=True, mode="json")
