"""The console component: Deployment (two replicas, probes), Service, PDB, optional Ingress."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pulumi
import pytest
from infra_harness import (
    LOCAL_STACK_FILE,
    TEST_SECRETS,
    ProgramRun,
    is_secret,
    load_stack_config,
    run_program,
    stack_config,
)

from policy import rules

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
SECRET = "kubernetes:core/v1:Secret"
SESSION_KEY = "session-key-5e1f-NEVER-IN-PLAIN-INPUTS"


@pytest.fixture(scope="module")
def ingress_run() -> ProgramRun:
    config = stack_config(
        LOCAL_STACK_FILE,
        consoleIngressHost="console.example.com",
        consoleIngressTlsSecret="console-tls",
        consoleIngressClass="nginx",
        consoleReplicas="3",
        consoleSecretKey=SESSION_KEY,
    )
    return run_program(config, stack="local")


def console_container(run: ProgramRun) -> dict[str, Any]:
    pod = run.one(DEPLOYMENT, "console-deployment").props["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return container


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container["env"]}


def test_console_deployment(any_run: ProgramRun) -> None:
    deployment = any_run.one(DEPLOYMENT, "console-deployment").props
    assert deployment["metadata"]["name"] == "workflow-console"
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == "workflow-console"
    container = console_container(any_run)
    assert container["command"] == ["wfctl", "serve", "--host", "0.0.0.0", "--port", "8080"]
    assert container["image"] == any_run.exports["consoleImage"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    env = env_of(container)
    for name, secret in (("DATABASE_URL", "workflow-runtime-database"), ("CONSOLE_SECRET_KEY", "workflow-runtime-console")):
        assert "value" not in env[name]
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": secret, "key": name, "optional": False}
    assert env["QUEUE_URL"]["value"] == any_run.exports["queueUrl"]
    assert env["DLQ_URL"]["value"] == any_run.exports["dlqUrl"]
    assert env["CONSOLE_SECURE_COOKIES"]["value"] == "0"
    assert rules.workload_violations(DEPLOYMENT, any_run.one(DEPLOYMENT, "console-deployment").props) == []


def test_service_and_disruption_budget_select_the_console_pods(any_run: ProgramRun) -> None:
    pod_labels = any_run.one(DEPLOYMENT, "console-deployment").props["spec"]["template"]["metadata"]["labels"]
    service = any_run.one(SERVICE, "console-service").props
    assert service["metadata"]["name"] == "workflow-console"
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    pdb = any_run.one(PDB, "console-pdb").props
    assert pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]
    for selector in (service["spec"]["selector"], pdb["spec"]["selector"]["matchLabels"]):
        assert selector.items() <= pod_labels.items()
    assert any_run.of_type(INGRESS) == []
    assert "consoleUrl" not in any_run.exports


def test_session_key_is_a_secret_shared_by_the_replicas(any_run: ProgramRun, ingress_run: ProgramRun) -> None:
    derived = any_run.one(SECRET, "console-secret")
    assert is_secret(derived.inputs["stringData"])
    key = derived.props["stringData"]["CONSOLE_SECRET_KEY"]
    assert len(key) == 64 and TEST_SECRETS["workflow-runtime:integrationEncryptionKey"] not in key
    given = ingress_run.one(SECRET, "console-secret")
    assert given.props["stringData"]["CONSOLE_SECRET_KEY"] == SESSION_KEY
    for recorded in ingress_run.resources:
        if recorded.type != SECRET:
            assert SESSION_KEY not in str(recorded.inputs), recorded.name


def test_ingress_from_stack_config(ingress_run: ProgramRun) -> None:
    ingress = ingress_run.one(INGRESS, "console-ingress").props
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"hosts": ["console.example.com"], "secretName": "console-tls"}]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "console.example.com"
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "workflow-console", "port": {"name": "http"}}
    assert ingress_run.exports["consoleUrl"] == "https://console.example.com/"
    assert ingress_run.one(DEPLOYMENT, "console-deployment").props["spec"]["replicas"] == 3
    assert env_of(console_container(ingress_run))["CONSOLE_SECURE_COOKIES"]["value"] == "1"
    for recorded in ingress_run.kubernetes_objects():
        for version in ("1.30", kubernetes_validate.latest_version()):
            kubernetes_validate.validate(recorded.manifest(), version, strict=True)
        assert rules.all_violations(recorded.type, recorded.props) == [], recorded.name


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"consoleIngressTlsSecret": "console-tls"}, "consoleIngressTlsSecret"),
        ({"consoleIngressHost": "Not A Host"}, "consoleIngressHost"),
        ({"consoleReplicas": "0"}, "consoleReplicas"),
    ],
)
def test_bad_console_config_names_the_key(overrides: dict[str, str], key: str) -> None:
    with pytest.raises(pulumi.RunError, match=f"workflow-runtime:{key}"):
        load_stack_config(stack_config(LOCAL_STACK_FILE, **overrides))


def test_production_console_role_may_enqueue_and_redrive_only(production_run: ProgramRun) -> None:
    import json

    policies = [
        r.props for r in production_run.of_type("aws:iam/rolePolicy:RolePolicy") if "console" in r.name
    ]
    assert len(policies) == 1
    document = policies[0]["policy"]
    statements = (json.loads(document) if isinstance(document, str) else document)["Statement"]
    actions = {s["Sid"]: sorted(s["Action"]) for s in statements}
    assert actions == {
        "EnqueueRuns": ["sqs:GetQueueAttributes", "sqs:SendMessage"],
        "InspectAndRedriveDeadLetters": [
            "sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage",
        ],
    }
    account = production_run.one("kubernetes:core/v1:ServiceAccount", "console-service-account").props
    assert "eks.amazonaws.com/role-arn" in account["metadata"]["annotations"]


def test_notifications_link_to_the_console_behind_its_ingress(ingress_run: ProgramRun, local_run: ProgramRun) -> None:
    """The dispatcher delivers notifications; with an Ingress their links point at the console."""

    def dispatcher_env(run: ProgramRun) -> dict[str, dict[str, Any]]:
        cron_job = run.one("kubernetes:batch/v1:CronJob").props
        (container,) = cron_job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        return env_of(container)

    assert dispatcher_env(ingress_run)["CONSOLE_URL"]["value"] == "https://console.example.com"
    assert "CONSOLE_URL" not in dispatcher_env(local_run)
