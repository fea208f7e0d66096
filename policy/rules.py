"""The rules of the Workflow Runtime policy pack, as pure functions.

Each rule takes a resource's type and its input properties (the camelCase dict the Pulumi engine
passes to policies) and returns a list of human-readable violations; an empty list means the
resource complies. Keeping them free of the pulumi-policy runtime lets the tests call them with
plain dicts, and lets the same checks run over the program's own resources under mocks.

Rules:
- workloads (Job, CronJob, Deployment, PodTemplate and the other pod controllers) meet the
  Kubernetes "restricted" Pod Security Standard, keep a read-only root file system and set CPU
  and memory limits on every container;
- RBAC is namespaced and explicit: no ClusterRole/ClusterRoleBinding, no RoleBinding to a
  ClusterRole, no `*` anywhere in a Role;
- SQS queues are encrypted, and every queue that is not itself a dead-letter queue has a redrive
  policy. A dead-letter queue is recognised by its RedriveAllowPolicy (the attribute that says
  which queues may dead-letter into it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

Props = Mapping[str, Any]

#: Where the pod spec sits inside each workload type's properties.
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "kubernetes:core/v1:Pod": ("spec",),
    "kubernetes:core/v1:PodTemplate": ("template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template", "spec"),
}

#: Volume types the restricted profile allows.
ALLOWED_VOLUME_TYPES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
ALLOWED_SECCOMP_TYPES = frozenset({"RuntimeDefault", "Localhost"})
#: The only capability the restricted profile lets a container add.
ALLOWED_ADDED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
CONTAINER_FIELDS = ("initContainers", "containers", "ephemeralContainers")

CLUSTER_RBAC_TYPES = frozenset(
    {
        "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole",
        "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding",
    }
)
ROLE_TYPE = "kubernetes:rbac.authorization.k8s.io/v1:Role"
ROLE_BINDING_TYPE = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
RULE_LIST_FIELDS = ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs")

SQS_QUEUE_TYPE = "aws:sqs/queue:Queue"


# --- helpers -------------------------------------------------------------------------------


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> Sequence[Any]:
    return value if isinstance(value, Sequence) and not isinstance(value, str) else []


def _present(value: Any) -> bool:
    """A set attribute: not None and not an empty string/collection."""
    return value is not None and value != "" and value != {} and value != []


def pod_spec_of(resource_type: str, props: Props) -> Mapping[str, Any] | None:
    """The pod spec of a workload, or None when `resource_type` is not a workload."""
    path = POD_SPEC_PATHS.get(resource_type)
    if path is None:
        return None
    node: Mapping[str, Any] = props
    for key in path:
        node = _mapping(node.get(key))
    return node


def _containers(pod_spec: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    found = []
    for field in CONTAINER_FIELDS:
        for index, container in enumerate(_list(pod_spec.get(field))):
            container = _mapping(container)
            label = container.get("name") or f"{field}[{index}]"
            found.append((f"container '{label}'", container))
    return found


# --- restricted pod security -----------------------------------------------------------------


def restricted_pod_violations(pod_spec: Mapping[str, Any]) -> list[str]:
    """The Kubernetes "restricted" profile plus a read-only root file system."""
    violations: list[str] = []
    pod_context = _mapping(pod_spec.get("securityContext"))

    for host_field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(host_field) is True:
            violations.append(f"pod sets {host_field}: true")

    for volume in _list(pod_spec.get("volumes")):
        volume = _mapping(volume)
        kinds = set(volume) - {"name"}
        for kind in sorted(kinds - ALLOWED_VOLUME_TYPES):
            violations.append(f"volume '{volume.get('name')}' uses disallowed type {kind}")

    if pod_context.get("runAsUser") == 0:
        violations.append("pod runs as user 0 (root)")
    pod_seccomp = _mapping(pod_context.get("seccompProfile")).get("type")
    if pod_seccomp is not None and pod_seccomp not in ALLOWED_SECCOMP_TYPES:
        violations.append(f"pod seccompProfile is {pod_seccomp}, not RuntimeDefault/Localhost")

    containers = _containers(pod_spec)
    if not containers:
        violations.append("pod declares no containers")
    for label, container in containers:
        context = _mapping(container.get("securityContext"))
        if context.get("privileged") is True:
            violations.append(f"{label} is privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            violations.append(f"{label} must set allowPrivilegeEscalation: false")
        if context.get("readOnlyRootFilesystem") is not True:
            violations.append(f"{label} must set readOnlyRootFilesystem: true")

        run_as_non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
        if run_as_non_root is not True:
            violations.append(f"{label} must run with runAsNonRoot: true (pod or container)")
        if context.get("runAsUser") == 0:
            violations.append(f"{label} runs as user 0 (root)")

        seccomp = _mapping(context.get("seccompProfile")).get("type", pod_seccomp)
        if seccomp not in ALLOWED_SECCOMP_TYPES:
            violations.append(
                f"{label} needs seccompProfile RuntimeDefault or Localhost (pod or container)"
            )

        capabilities = _mapping(context.get("capabilities"))
        if "ALL" not in _list(capabilities.get("drop")):
            violations.append(f"{label} must drop ALL capabilities")
        for capability in _list(capabilities.get("add")):
            if capability not in ALLOWED_ADDED_CAPABILITIES:
                violations.append(f"{label} adds capability {capability}")

        for port in _list(container.get("ports")):
            if _mapping(port).get("hostPort"):
                violations.append(f"{label} uses a hostPort")
    return violations


def resource_limit_violations(pod_spec: Mapping[str, Any]) -> list[str]:
    """Every container must cap CPU and memory, so one workflow cannot starve the node."""
    violations: list[str] = []
    for label, container in _containers(pod_spec):
        limits = _mapping(_mapping(container.get("resources")).get("limits"))
        for resource in ("cpu", "memory"):
            if not _present(limits.get(resource)):
                violations.append(f"{label} has no {resource} limit")
    return violations


def workload_violations(resource_type: str, props: Props) -> list[str]:
    """Restricted security and resource limits for any workload; [] for other types."""
    pod_spec = pod_spec_of(resource_type, props)
    if pod_spec is None:
        return []
    return restricted_pod_violations(pod_spec) + resource_limit_violations(pod_spec)


# --- RBAC ----------------------------------------------------------------------------------


def rbac_violations(resource_type: str, props: Props) -> list[str]:
    """Namespaced, explicit RBAC only."""
    if resource_type in CLUSTER_RBAC_TYPES:
        kind = resource_type.rsplit(":", 1)[-1]
        return [f"{kind} is not allowed: grant namespaced Roles only"]

    violations: list[str] = []
    if resource_type == ROLE_TYPE:
        for index, rule in enumerate(_list(props.get("rules"))):
            rule = _mapping(rule)
            for field in RULE_LIST_FIELDS:
                if "*" in _list(rule.get(field)):
                    violations.append(f"rules[{index}].{field} contains the wildcard '*'")
    elif resource_type == ROLE_BINDING_TYPE:
        role_ref = _mapping(props.get("roleRef"))
        if role_ref.get("kind") != "Role":
            violations.append(
                f"RoleBinding refers to a {role_ref.get('kind')}; bind a namespaced Role"
            )
    return violations


# --- SQS -----------------------------------------------------------------------------------


def _json_attribute(value: Any) -> Mapping[str, Any]:
    """Queue policies are JSON strings in the inputs; accept an already decoded object too."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return _mapping(value)


def sqs_queue_violations(resource_type: str, props: Props) -> list[str]:
    """Encrypted queues; a redrive policy on every queue that is not a dead-letter queue."""
    if resource_type != SQS_QUEUE_TYPE:
        return []
    violations: list[str] = []

    if props.get("sqsManagedSseEnabled") is not True and not _present(props.get("kmsMasterKeyId")):
        violations.append("queue is not encrypted: set sqsManagedSseEnabled or kmsMasterKeyId")

    is_dead_letter_queue = _present(props.get("redriveAllowPolicy"))
    if not is_dead_letter_queue:
        redrive = _json_attribute(props.get("redrivePolicy"))
        if not _present(redrive.get("deadLetterTargetArn")):
            violations.append("queue has no redrive policy with a deadLetterTargetArn")
        elif not _present(redrive.get("maxReceiveCount")):
            violations.append("queue's redrive policy has no maxReceiveCount")
    return violations


#: Every rule, for callers that check a resource against the whole pack.
ALL_RULES = (workload_violations, rbac_violations, sqs_queue_violations)


def all_violations(resource_type: str, props: Props) -> list[str]:
    return [violation for rule in ALL_RULES for violation in rule(resource_type, props)]
