"""The policy pack's rules (policy/rules.py): a passing and a failing input for every rule,
the program's own resources against the whole pack, and the pack's wiring to pulumi-policy."""

from __future__ import annotations

import copy
import json
import runpy
from types import SimpleNamespace
from typing import Any

import pulumi_policy
import pytest
from infra_harness import REPO_ROOT, ProgramRun

from policy import rules

JOB = "kubernetes:batch/v1:Job"
CRON_JOB = "kubernetes:batch/v1:CronJob"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
POD_TEMPLATE = "kubernetes:core/v1:PodTemplate"
ROLE = "kubernetes:rbac.authorization.k8s.io/v1:Role"
ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
CLUSTER_ROLE = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole"
CLUSTER_ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding"
QUEUE = "aws:sqs/queue:Queue"


# --- fixtures: compliant inputs -----------------------------------------------------------


def compliant_pod_spec() -> dict[str, Any]:
    return {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "app",
                "image": "example/app:1",
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}},
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
            }
        ],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }


def wrap(resource_type: str, pod_spec: dict[str, Any]) -> dict[str, Any]:
    """Place a pod spec where each workload type keeps it."""
    template = {"metadata": {"labels": {"app": "x"}}, "spec": pod_spec}
    if resource_type == POD_TEMPLATE:
        return {"template": template}
    if resource_type == CRON_JOB:
        return {"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}}
    return {"spec": {"template": template}}


WORKLOAD_TYPES = [JOB, CRON_JOB, DEPLOYMENT, POD_TEMPLATE]


# --- restricted workloads ------------------------------------------------------------------


@pytest.mark.parametrize("resource_type", WORKLOAD_TYPES)
def test_compliant_workloads_pass(resource_type: str) -> None:
    assert rules.workload_violations(resource_type, wrap(resource_type, compliant_pod_spec())) == []


def test_container_level_settings_are_enough() -> None:
    pod = compliant_pod_spec()
    del pod["securityContext"]
    pod["containers"][0]["securityContext"].update(
        {"runAsNonRoot": True, "seccompProfile": {"type": "Localhost", "localhostProfile": "p"}}
    )
    assert rules.workload_violations(JOB, wrap(JOB, pod)) == []


def mutate(path: str, value: Any) -> dict[str, Any]:
    """A compliant pod spec with one dotted path set (or deleted when value is DELETE)."""
    pod = compliant_pod_spec()
    node: Any = pod
    *parents, leaf = path.split(".")
    for key in parents:
        node = node[int(key)] if key.isdigit() else node.setdefault(key, {})
    if value is DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return pod


DELETE = object()

FAILING_PODS = {
    "runs as root": ("securityContext.runAsNonRoot", DELETE, "runAsNonRoot"),
    "root uid": ("securityContext.runAsUser", 0, "user 0"),
    "container root uid": ("containers.0.securityContext.runAsUser", 0, "user 0"),
    "container opts out of non-root": (
        "containers.0.securityContext.runAsNonRoot",
        False,
        "runAsNonRoot",
    ),
    "privilege escalation": (
        "containers.0.securityContext.allowPrivilegeEscalation",
        True,
        "allowPrivilegeEscalation",
    ),
    "escalation unset": (
        "containers.0.securityContext.allowPrivilegeEscalation",
        DELETE,
        "allowPrivilegeEscalation",
    ),
    "writable root fs": (
        "containers.0.securityContext.readOnlyRootFilesystem",
        False,
        "readOnlyRootFilesystem",
    ),
    "capabilities kept": ("containers.0.securityContext.capabilities", {}, "drop ALL"),
    "capability added": (
        "containers.0.securityContext.capabilities",
        {"drop": ["ALL"], "add": ["NET_ADMIN"]},
        "NET_ADMIN",
    ),
    "privileged": ("containers.0.securityContext.privileged", True, "privileged"),
    "no seccomp": ("securityContext.seccompProfile", DELETE, "seccompProfile"),
    "unconfined seccomp": (
        "securityContext.seccompProfile",
        {"type": "Unconfined"},
        "Unconfined",
    ),
    "host network": ("hostNetwork", True, "hostNetwork"),
    "host pid": ("hostPID", True, "hostPID"),
    "host path volume": ("volumes", [{"name": "h", "hostPath": {"path": "/"}}], "hostPath"),
    "host port": (
        "containers.0.ports",
        [{"containerPort": 80, "hostPort": 80}],
        "hostPort",
    ),
    "no cpu limit": ("containers.0.resources.limits", {"memory": "1Gi"}, "cpu limit"),
    "no memory limit": ("containers.0.resources.limits", {"cpu": "1"}, "memory limit"),
    "no resources": ("containers.0.resources", DELETE, "limit"),
    "no containers": ("containers", [], "no containers"),
}


@pytest.mark.parametrize("resource_type", WORKLOAD_TYPES)
@pytest.mark.parametrize("case", sorted(FAILING_PODS))
def test_non_compliant_workloads_fail(resource_type: str, case: str) -> None:
    path, value, expected = FAILING_PODS[case]
    violations = rules.workload_violations(resource_type, wrap(resource_type, mutate(path, value)))
    assert violations, case
    assert any(expected in violation for violation in violations), violations


def test_init_containers_are_checked_too() -> None:
    pod = compliant_pod_spec()
    pod["initContainers"] = [{"name": "init", "image": "x", "resources": {}}]
    violations = rules.workload_violations(JOB, wrap(JOB, pod))
    assert any("container 'init'" in v for v in violations)


def test_other_resource_types_are_not_workloads() -> None:
    assert rules.workload_violations("kubernetes:core/v1:Secret", {"stringData": {}}) == []
    assert rules.pod_spec_of("kubernetes:core/v1:ConfigMap", {}) is None


# --- RBAC ----------------------------------------------------------------------------------


def role(*rule_overrides: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "r", "namespace": "n"},
        "rules": list(rule_overrides)
        or [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "create"]}],
    }


def test_explicit_namespaced_role_passes() -> None:
    assert rules.rbac_violations(ROLE, role()) == []
    binding = {"roleRef": {"kind": "Role", "name": "r", "apiGroup": "rbac.authorization.k8s.io"}}
    assert rules.rbac_violations(ROLE_BINDING, binding) == []


@pytest.mark.parametrize("field", ["apiGroups", "resources", "verbs", "resourceNames"])
def test_wildcards_fail(field: str) -> None:
    rule = {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get"], field: ["*"]}
    (violation,) = rules.rbac_violations(ROLE, role(rule))
    assert field in violation and "'*'" in violation


@pytest.mark.parametrize("resource_type", [CLUSTER_ROLE, CLUSTER_ROLE_BINDING])
def test_cluster_scoped_rbac_fails(resource_type: str) -> None:
    (violation,) = rules.rbac_violations(resource_type, role())
    assert "not allowed" in violation


def test_binding_to_a_cluster_role_fails() -> None:
    binding = {"roleRef": {"kind": "ClusterRole", "name": "admin"}}
    (violation,) = rules.rbac_violations(ROLE_BINDING, binding)
    assert "ClusterRole" in violation


# --- SQS -----------------------------------------------------------------------------------


def work_queue() -> dict[str, Any]:
    return {
        "name": "work",
        "sqsManagedSseEnabled": True,
        "redrivePolicy": json.dumps(
            {"deadLetterTargetArn": "arn:aws:sqs:us-east-1:1:work-dlq", "maxReceiveCount": 5}
        ),
    }


def dead_letter_queue() -> dict[str, Any]:
    return {
        "name": "work-dlq",
        "sqsManagedSseEnabled": True,
        "redriveAllowPolicy": json.dumps(
            {"redrivePermission": "byQueue", "sourceQueueArns": ["arn:aws:sqs:us-east-1:1:work"]}
        ),
    }


def test_encrypted_queue_with_redrive_passes() -> None:
    assert rules.sqs_queue_violations(QUEUE, work_queue()) == []


def test_kms_encryption_counts() -> None:
    queue = work_queue()
    del queue["sqsManagedSseEnabled"]
    queue["kmsMasterKeyId"] = "alias/sqs"
    assert rules.sqs_queue_violations(QUEUE, queue) == []


def test_dead_letter_queue_needs_no_redrive_policy() -> None:
    assert rules.sqs_queue_violations(QUEUE, dead_letter_queue()) == []


def test_unencrypted_queue_fails() -> None:
    queue = work_queue()
    queue["sqsManagedSseEnabled"] = False
    (violation,) = rules.sqs_queue_violations(QUEUE, queue)
    assert "not encrypted" in violation


def test_unencrypted_dead_letter_queue_fails() -> None:
    dlq = dead_letter_queue()
    del dlq["sqsManagedSseEnabled"]
    (violation,) = rules.sqs_queue_violations(QUEUE, dlq)
    assert "not encrypted" in violation


@pytest.mark.parametrize(
    "redrive",
    [None, "", "{}", json.dumps({"maxReceiveCount": 5}), "not json"],
)
def test_queue_without_a_redrive_target_fails(redrive: str | None) -> None:
    queue = work_queue()
    queue["redrivePolicy"] = redrive
    (violation,) = rules.sqs_queue_violations(QUEUE, queue)
    assert "redrive" in violation


def test_redrive_without_max_receive_count_fails() -> None:
    queue = work_queue()
    queue["redrivePolicy"] = {"deadLetterTargetArn": "arn:aws:sqs:us-east-1:1:work-dlq"}
    (violation,) = rules.sqs_queue_violations(QUEUE, queue)
    assert "maxReceiveCount" in violation


def test_other_types_are_not_queues() -> None:
    assert rules.sqs_queue_violations("aws:s3/bucket:Bucket", {}) == []


# --- the program itself passes the pack --------------------------------------------------------


def test_the_program_complies_with_every_rule(any_run: ProgramRun) -> None:
    checked = set()
    for recorded in any_run.resources:
        assert rules.all_violations(recorded.type, recorded.props) == [], recorded.name
        checked.add(recorded.type)
    assert {POD_TEMPLATE, CRON_JOB, DEPLOYMENT, ROLE, QUEUE} <= checked


def test_the_program_fails_the_pack_when_weakened(local_run: ProgramRun) -> None:
    """The same check catches a regression: drop the template's limits and escalate."""
    template = copy.deepcopy(local_run.one(POD_TEMPLATE).props)
    container = template["template"]["spec"]["containers"][0]
    del container["resources"]["limits"]
    container["securityContext"]["allowPrivilegeEscalation"] = True
    violations = rules.all_violations(POD_TEMPLATE, template)
    assert len(violations) == 3


# --- the pack's wiring to pulumi-policy ------------------------------------------------------


@pytest.fixture
def pack(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """Run policy/__main__.py with PolicyPack replaced, so no analyzer server starts."""
    captured = SimpleNamespace()

    def fake_pack(**kwargs: Any) -> None:
        captured.__dict__.update(kwargs)

    monkeypatch.setattr(pulumi_policy, "PolicyPack", fake_pack)
    runpy.run_path(str(REPO_ROOT / "policy"), run_name="__main__")
    return captured


def test_pack_declares_the_three_policies_as_mandatory(pack: SimpleNamespace) -> None:
    assert pack.name == "workflow-runtime"
    assert pack.enforcement_level == pulumi_policy.EnforcementLevel.MANDATORY
    assert [policy.name for policy in pack.policies] == [
        "restricted-workloads",
        "namespaced-rbac-without-wildcards",
        "sqs-encrypted-with-redrive",
    ]


@pytest.mark.parametrize(
    ("policy_name", "resource_type", "props"),
    [
        ("restricted-workloads", JOB, wrap(JOB, mutate("hostNetwork", True))),
        ("namespaced-rbac-without-wildcards", CLUSTER_ROLE, role()),
        ("sqs-encrypted-with-redrive", QUEUE, {"name": "plain"}),
    ],
)
def test_pack_reports_violations(
    pack: SimpleNamespace, policy_name: str, resource_type: str, props: dict[str, Any]
) -> None:
    policy = next(p for p in pack.policies if p.name == policy_name)
    reported: list[str] = []
    args = SimpleNamespace(resource_type=resource_type, props=props)
    policy.validate(args, lambda message, urn=None: reported.append(message))
    assert reported
