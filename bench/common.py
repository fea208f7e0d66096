"""Shared set-up for the benchmarks: a real Postgres database and an embedded SQS endpoint."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from services.core.queue import Queue, sqs_client
from services.local.embedded import DUMMY_AWS_ENV, create_queues, scratch_database, start_sqs

#: Every benchmark prints each of its targets on one line starting with this; `make bench`
#: (bench/run_all.py) collects those lines into its summary.
TARGET_PREFIX = "target: "


def check_target(what: str, value: float, unit: str, limit: float, *, at_least: bool = False) -> bool:
    """Print `target: WHAT: VALUE UNIT (target <= LIMIT): met|MISSED` and return whether it is met.

    `at_least` for a rate or a ratio that must reach `limit` rather than stay under it.
    """
    met = value >= limit if at_least else value <= limit
    print(f"{TARGET_PREFIX}{what}: {value:,.2f} {unit} (target {'>=' if at_least else '<='} {limit:g} {unit}): "
          f"{'met' if met else 'MISSED'}", flush=True)
    return met


def fresh_database() -> AbstractContextManager[str]:
    """A migrated database on BENCH_DATABASE_URL's (or TEST_DATABASE_URL's) server, else embedded."""
    server = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    return scratch_database(server, prefix="wfr_bench")


@contextmanager
def embedded_queue() -> Iterator[tuple[Queue, Queue]]:
    os.environ.update({k: os.environ.get(k, v) for k, v in DUMMY_AWS_ENV.items()})
    sqs = start_sqs()
    try:
        client = sqs_client(DUMMY_AWS_ENV["AWS_REGION"], sqs.endpoint_url)
        queue_url, dlq_url = create_queues(client, f"bench-{uuid.uuid4().hex[:8]}")
        yield Queue(client, queue_url), Queue(client, dlq_url)
    finally:
        sqs.stop()
