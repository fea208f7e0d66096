"""The spawner's RBAC is least privilege: one namespaced Role with exactly what it uses."""

from __future__ import annotations

from typing import Any

from infra_harness import ProgramRun

ROLE = "kubernetes:rbac.authorization.k8s.io/v1:Role"
ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"


def normalised(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(
        (
            {
                key: sorted(value) if isinstance(value, list) else value
                for key, value in rule.items()
            }
            for rule in rules
        ),
        key=lambda rule: (rule["apiGroups"], rule["resources"]),
    )


def test_role_rules_are_exactly_what_the_spawner_uses(any_run: ProgramRun) -> None:
    role = any_run.one(ROLE).props
    assert role["metadata"]["namespace"] == any_run.exports["namespace"]
    assert normalised(role["rules"]) == normalised(
        [
            {
                "apiGroups": ["batch"],
                "resources": ["jobs"],
                "verbs": ["create", "list", "delete"],
            },
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
            {
                "apiGroups": [""],
                "resources": ["podtemplates"],
                "verbs": ["get"],
                "resourceNames": [any_run.exports["runnerTemplateName"]],
            },
        ]
    )


def test_no_wildcards_anywhere(any_run: ProgramRun) -> None:
    for rule in any_run.one(ROLE).props["rules"]:
        for values in rule.values():
            assert "*" not in values


def test_only_namespaced_rbac(any_run: ProgramRun) -> None:
    types = {r.type for r in any_run.resources}
    assert not {t for t in types if ":ClusterRole" in t}
    assert len(any_run.of_type(ROLE)) == 1
    assert len(any_run.of_type(ROLE_BINDING)) == 1


def test_binding_grants_the_role_to_the_spawner_only(any_run: ProgramRun) -> None:
    binding = any_run.one(ROLE_BINDING).props
    role = any_run.one(ROLE).props
    namespace = any_run.exports["namespace"]
    assert binding["metadata"]["namespace"] == namespace
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "workflow-spawner", "namespace": namespace}
    ]
    spawner_pod = any_run.one("kubernetes:apps/v1:Deployment", "spawner-deployment").props["spec"]["template"]["spec"]
    assert spawner_pod["serviceAccountName"] == "workflow-spawner"


def test_other_service_accounts_have_no_token_and_no_binding(any_run: ProgramRun) -> None:
    accounts = {
        r.props["metadata"]["name"]: r.props
        for r in any_run.of_type("kubernetes:core/v1:ServiceAccount")
    }
    assert set(accounts) == {"workflow-dispatcher", "workflow-spawner", "workflow-runner", "workflow-console"}
    for name in ("workflow-dispatcher", "workflow-runner", "workflow-console"):
        assert accounts[name]["automountServiceAccountToken"] is False
