"""The spawner's Prometheus metrics, on a registry of its own (no global state between tests)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

#: Message sent → Job created: the platform's scheduling latency users feel.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)


class SpawnerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.messages_received = Counter(
            "spawner_messages_received", "Messages received from the work queue", registry=self.registry
        )
        self.executions_created = Counter(
            "spawner_executions_created", "Execution records created", registry=self.registry
        )
        self.duplicates = Counter(
            "spawner_duplicate_messages",
            "Messages whose execution already existed (at-least-once delivery absorbed)",
            registry=self.registry,
        )
        self.jobs_created = Counter("spawner_jobs_created", "Runner Jobs created", registry=self.registry)
        self.spawn_failures = Counter(
            "spawner_spawn_failures", "Job creations that failed and were left for redelivery", registry=self.registry
        )
        self.dead_lettered = Counter(
            "spawner_dead_lettered", "Messages moved to the dead-letter queue", ["reason"], registry=self.registry
        )
        self.skipped = Counter(
            "spawner_executions_skipped", "Executions recorded skipped by overlap: skip", registry=self.registry
        )
        self.cancelled = Counter(
            "spawner_executions_cancelled", "Executions cancelled by overlap: replace", registry=self.registry
        )
        self.queued = Counter(
            "spawner_executions_queued",
            "Executions held back as queued by a concurrency limit, a pool or a buffering overlap",
            registry=self.registry,
        )
        self.relaunched = Counter(
            "spawner_jobs_relaunched",
            "Runner Jobs launched again for starting executions whose Job or process was gone",
            registry=self.registry,
        )
        self.admitted = Counter(
            "spawner_executions_admitted", "Queued executions given a slot and launched", registry=self.registry
        )
        self.cancel_stops = Counter(
            "spawner_cancel_job_deletions", "Jobs deleted because their execution was cancelled", registry=self.registry
        )
        self.reconciled = Counter(
            "spawner_reconciled_executions",
            "Executions ended by the reconciler",
            ["status"],
            registry=self.registry,
        )
        self.message_to_job = Histogram(
            "spawner_message_to_job_seconds",
            "Seconds from the message being sent to its Job being created",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
