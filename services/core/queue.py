"""A thin shell over SQS (boto3): batched sends, receives, batched deletes, visibility, DLQ.

`AWS_ENDPOINT_URL` is honoured by boto3 itself, so the same code talks to AWS, LocalStack or the
embedded endpoint of `wfctl local up`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MAX_BATCH_ENTRIES = 10
MAX_BATCH_BYTES = 256 * 1024
MAX_DELAY_SECONDS = 900


class QueueError(RuntimeError):
    """SQS refused part of a request; the message says which entries and why."""


@dataclass(frozen=True)
class OutgoingMessage:
    body: str
    delay_seconds: int = 0
    attributes: dict[str, str] | None = None


@dataclass(frozen=True)
class ReceivedMessage:
    message_id: str
    receipt_handle: str
    body: str
    receive_count: int
    sent_at_ms: int
    attributes: dict[str, str]


def sqs_client(region: str, endpoint_url: str | None = None) -> Any:
    """An SQS client; credentials come from the usual boto3 chain (env, IRSA, profile).

    boto3 is imported here, not at module level, so the runner never pays for it.
    """
    import boto3

    return boto3.client("sqs", region_name=region, endpoint_url=endpoint_url)


def batches_of(messages: Sequence[OutgoingMessage]) -> list[list[OutgoingMessage]]:
    """Split into SendMessageBatch calls: at most 10 entries and 256 KiB of bodies each."""
    batches: list[list[OutgoingMessage]] = []
    current: list[OutgoingMessage] = []
    size = 0
    for message in messages:
        length = len(message.body.encode())
        if current and (len(current) == MAX_BATCH_ENTRIES or size + length > MAX_BATCH_BYTES):
            batches.append(current)
            current, size = [], 0
        current.append(message)
        size += length
    if current:
        batches.append(current)
    return batches


class Queue:
    """One SQS queue, addressed by URL."""

    def __init__(self, client: Any, url: str) -> None:
        self.client = client
        self.url = url

    def send_batch(self, messages: Sequence[OutgoingMessage], parallelism: int = 8) -> int:
        """Send every message or raise `QueueError`; returns how many were sent.

        SendMessageBatch calls run on up to `parallelism` threads (boto3 clients are thread-safe),
        so a tick with thousands of fire times is bound by SQS latency / parallelism.
        """
        batches = batches_of(messages)
        if len(batches) <= 1 or parallelism <= 1:
            return sum(self._send_one_batch(batch) for batch in batches)
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(parallelism, len(batches))) as pool:
            return sum(pool.map(self._send_one_batch, batches))

    def _send_one_batch(self, batch: list[OutgoingMessage]) -> int:
        entries = []
        for index, message in enumerate(batch):
            entry: dict[str, Any] = {
                "Id": str(index),
                "MessageBody": message.body,
                "DelaySeconds": max(0, min(MAX_DELAY_SECONDS, message.delay_seconds)),
            }
            if message.attributes:
                entry["MessageAttributes"] = {
                    key: {"DataType": "String", "StringValue": value} for key, value in message.attributes.items()
                }
            entries.append(entry)
        response = self.client.send_message_batch(QueueUrl=self.url, Entries=entries)
        failed = response.get("Failed") or []
        if failed:
            reasons = "; ".join(f"{f.get('Code')}: {f.get('Message')}" for f in failed[:3])
            raise QueueError(f"SQS refused {len(failed)} of {len(entries)} messages ({reasons})")
        return len(entries)

    def send(self, message: OutgoingMessage) -> None:
        self.send_batch([message])

    def receive(
        self, max_messages: int = 10, wait_seconds: int = 20, visibility_timeout: int | None = None
    ) -> list[ReceivedMessage]:
        kwargs: dict[str, Any] = {
            "QueueUrl": self.url,
            "MaxNumberOfMessages": max(1, min(10, max_messages)),
            "WaitTimeSeconds": wait_seconds,
            "MessageSystemAttributeNames": ["ApproximateReceiveCount", "SentTimestamp"],
            "MessageAttributeNames": ["All"],
        }
        if visibility_timeout is not None:
            kwargs["VisibilityTimeout"] = visibility_timeout
        response = self.client.receive_message(**kwargs)
        received = []
        for raw in response.get("Messages", []):
            system = raw.get("Attributes", {})
            attributes = {
                key: value.get("StringValue", "")
                for key, value in (raw.get("MessageAttributes") or {}).items()
            }
            received.append(
                ReceivedMessage(
                    message_id=raw["MessageId"],
                    receipt_handle=raw["ReceiptHandle"],
                    body=raw.get("Body", ""),
                    receive_count=int(system.get("ApproximateReceiveCount", "1")),
                    sent_at_ms=int(system.get("SentTimestamp", "0")),
                    attributes=attributes,
                )
            )
        return received

    def delete_batch(self, receipt_handles: Sequence[str]) -> list[str]:
        """Delete messages in batches of 10; returns the receipt handles that failed."""
        failed: list[str] = []
        for start in range(0, len(receipt_handles), MAX_BATCH_ENTRIES):
            chunk = list(receipt_handles[start : start + MAX_BATCH_ENTRIES])
            response = self.client.delete_message_batch(
                QueueUrl=self.url,
                Entries=[{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(chunk)],
            )
            failed.extend(chunk[int(f["Id"])] for f in response.get("Failed") or [])
        return failed

    def change_visibility(self, receipt_handle: str, timeout_seconds: int) -> None:
        self.client.change_message_visibility(
            QueueUrl=self.url, ReceiptHandle=receipt_handle, VisibilityTimeout=timeout_seconds
        )

    def attributes(self) -> dict[str, str]:
        response = self.client.get_queue_attributes(QueueUrl=self.url, AttributeNames=["All"])
        return dict(response.get("Attributes", {}))

    def approximate_depth(self) -> int:
        attributes = self.attributes()
        return int(attributes.get("ApproximateNumberOfMessages", "0")) + int(
            attributes.get("ApproximateNumberOfMessagesNotVisible", "0")
        ) + int(attributes.get("ApproximateNumberOfMessagesDelayed", "0"))
