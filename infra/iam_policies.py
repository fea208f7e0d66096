"""IAM policy documents for production (EKS with IAM roles for service accounts).

Pure functions returning policy documents, so the exact grants can be reviewed and tested
without AWS. Each service role can do only what that service does with SQS:

- dispatcher: send to the work queue;
- spawner: receive, delete and extend visibility on the work queue, and send to the DLQ (the
  spawner dead-letters messages it cannot parse).

- console: send to the work queue (run now, backfill, redrive) and read, delete and return
  messages on the DLQ (list, redrive).

Operators' `wfctl dlq list/redrive` against SQS directly run with the operator's own credentials.
"""

from __future__ import annotations

from typing import Any

import pulumi

DISPATCHER_QUEUE_ACTIONS = ["sqs:GetQueueAttributes", "sqs:SendMessage"]
SPAWNER_QUEUE_ACTIONS = [
    "sqs:ChangeMessageVisibility",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:ReceiveMessage",
]
SPAWNER_DLQ_ACTIONS = ["sqs:SendMessage"]
CONSOLE_QUEUE_ACTIONS = ["sqs:GetQueueAttributes", "sqs:SendMessage"]
CONSOLE_DLQ_ACTIONS = [
    "sqs:ChangeMessageVisibility",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:ReceiveMessage",
]


def _statement(sid: str, actions: list[str], resource: pulumi.Input[str]) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": [resource]}


def dispatcher_policy(queue_arn: pulumi.Input[str]) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [_statement("SendToWorkQueue", DISPATCHER_QUEUE_ACTIONS, queue_arn)],
    }


def spawner_policy(queue_arn: pulumi.Input[str], dlq_arn: pulumi.Input[str]) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            _statement("ConsumeWorkQueue", SPAWNER_QUEUE_ACTIONS, queue_arn),
            _statement("DeadLetterUnprocessable", SPAWNER_DLQ_ACTIONS, dlq_arn),
        ],
    }


def console_policy(queue_arn: pulumi.Input[str], dlq_arn: pulumi.Input[str]) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            _statement("EnqueueRuns", CONSOLE_QUEUE_ACTIONS, queue_arn),
            _statement("InspectAndRedriveDeadLetters", CONSOLE_DLQ_ACTIONS, dlq_arn),
        ],
    }


def irsa_trust_policy(
    oidc_provider_arn: str, oidc_provider_url: str, namespace: str, service_account: str
) -> dict[str, Any]:
    """Trust exactly one Kubernetes service account of one cluster, and only for STS."""
    issuer = oidc_provider_url.removeprefix("https://").rstrip("/")
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": oidc_provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                        f"{issuer}:aud": "sts.amazonaws.com",
                    }
                },
            }
        ],
    }
