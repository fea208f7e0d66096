"""The SQS queue between dispatcher and spawner, and its dead-letter queue.

The queue is the platform's buffer and retry mechanism (docs/architecture.md): a message the spawner cannot
finish becomes visible again after the visibility timeout and is retried, and after
`max_receive_count` receives SQS moves it to the DLQ, where `wfctl dlq list/redrive` find it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

#: The spawner long-polls; 20 s is the SQS maximum and saves empty receives.
RECEIVE_WAIT_TIME_SECONDS = 20


@dataclass(frozen=True)
class WorkQueueArgs:
    #: Physical queue name; the DLQ is `<queue_name>-dlq`.
    queue_name: str
    region: str
    max_receive_count: int = 5
    #: Must exceed the spawner's longest processing of one message (a 20 s poll, then the
    #: database insert and the Job creation), or a message is delivered twice while in flight.
    visibility_timeout_seconds: int = 120
    message_retention_seconds: int = 345_600
    #: 14 days, the SQS maximum: dead letters wait for an operator, who may be on holiday.
    dlq_message_retention_seconds: int = 1_209_600


def redrive_policy(dlq_arn: pulumi.Input[str], max_receive_count: int) -> pulumi.Output[str]:
    """The source queue's RedrivePolicy attribute (JSON, as SQS expects it)."""
    return pulumi.Output.json_dumps(
        {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count}
    )


def redrive_allow_policy(source_queue_arn: pulumi.Input[str]) -> pulumi.Output[str]:
    """The DLQ's RedriveAllowPolicy: only our queue may dead-letter into it."""
    return pulumi.Output.json_dumps(
        {"redrivePermission": "byQueue", "sourceQueueArns": [source_queue_arn]}
    )


class WorkQueue(pulumi.ComponentResource):
    """An encrypted SQS queue with a redrive policy into an encrypted, locked-down DLQ."""

    queue_url: pulumi.Output[str]
    queue_arn: pulumi.Output[str]
    dlq_url: pulumi.Output[str]
    dlq_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: WorkQueueArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("workflow-runtime:index:WorkQueue", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {"app.kubernetes.io/part-of": "workflow-runtime"}

        # The DLQ's allow policy names the source queue, and the source queue's redrive policy
        # names the DLQ. Referencing each other's `arn` outputs would be a cycle, so the source
        # queue's ARN is derived from its (fixed) name, the partition and the account.
        invoke = pulumi.InvokeOutputOptions(parent=self)
        account_id = aws.get_caller_identity_output(opts=invoke).account_id
        partition = aws.get_partition_output(opts=invoke).partition
        source_queue_arn = pulumi.Output.concat(
            "arn:", partition, ":sqs:", args.region, ":", account_id, ":", args.queue_name
        )

        dlq = aws.sqs.Queue(
            f"{name}-dlq",
            name=f"{args.queue_name}-dlq",
            message_retention_seconds=args.dlq_message_retention_seconds,
            visibility_timeout_seconds=args.visibility_timeout_seconds,
            sqs_managed_sse_enabled=True,
            redrive_allow_policy=redrive_allow_policy(source_queue_arn),
            tags={**tags, "workflow-runtime/queue-role": "dead-letter"},
            opts=child,
        )
        queue = aws.sqs.Queue(
            f"{name}-queue",
            name=args.queue_name,
            visibility_timeout_seconds=args.visibility_timeout_seconds,
            message_retention_seconds=args.message_retention_seconds,
            receive_wait_time_seconds=RECEIVE_WAIT_TIME_SECONDS,
            sqs_managed_sse_enabled=True,
            redrive_policy=redrive_policy(dlq.arn, args.max_receive_count),
            tags={**tags, "workflow-runtime/queue-role": "work"},
            opts=child,
        )

        self.queue_url = queue.url
        self.queue_arn = queue.arn
        self.dlq_url = dlq.url
        self.dlq_arn = dlq.arn
        self.register_outputs(
            {
                "queueUrl": self.queue_url,
                "queueArn": self.queue_arn,
                "dlqUrl": self.dlq_url,
                "dlqArn": self.dlq_arn,
            }
        )
