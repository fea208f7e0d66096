"""Dispatcher tick throughput: N schedules due at once, over few distinct (expression, zone) pairs.

Run: .venv/bin/python bench/bench_dispatcher.py [--schedules 2000]

Two figures: the tick against Postgres with a queue that accepts instantly (our own cost: claim,
cron math, advance, commit), and the same tick sending to the embedded SQS endpoint (moto's
server, much slower per message than SQS itself, so this is a floor, not a ceiling).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import embedded_queue, fresh_database  # noqa: E402
from services.core import cron  # noqa: E402
from services.core.db.models import Schedule  # noqa: E402
from services.core.db.session import session_factory  # noqa: E402
from services.core.queue import OutgoingMessage  # noqa: E402
from services.core.workflows import apply_workflow, parse_workflow  # noqa: E402
from services.dispatcher.tick import tick  # noqa: E402

EXPRESSIONS = ["*/5 * * * *", "0 * * * *", "*/15 9-17 * * mon-fri", "0,30 * * * *"]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Lord_Howe"]
NOW = datetime(2026, 11, 30, 10, 0, 5, tzinfo=UTC)  # a Monday, on the hour: every expression is due


class AcceptingQueue:
    """Accepts every message at once: isolates the dispatcher's own cost."""

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> int:
        return len(messages)


def seed(url: str, count: int) -> None:
    maker = session_factory(url)
    with maker() as session, session.begin():
        session.query(Schedule).delete()
        definition = parse_workflow("name: bench\nsteps: [{id: a, type: log, with: {message: hi}}]")
        workflow, _ = apply_workflow(session, definition)
        for index in range(count):
            session.add(Schedule(
                name=f"s{index}", workflow_id=workflow.id, cron=EXPRESSIONS[index % len(EXPRESSIONS)],
                timezone=ZONES[index % len(ZONES)], input={}, enabled=True, catchup="latest",
                catchup_window_seconds=86400, overlap="allow", jitter_seconds=0, next_run_at=NOW.replace(second=0),
            ))
    cron.fire_times.cache_clear()
    cron.next_fire_time.cache_clear()


def measure(label: str, url: str, queue: object) -> None:
    started = time.perf_counter()
    summary = tick(session_factory(url), queue, now=NOW)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    print(f"{label}: {summary.schedules_claimed} schedules claimed, {summary.messages_sent} messages "
          f"in {elapsed:.2f}s ({summary.schedules_claimed / elapsed:.0f} schedules/s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--schedules", type=int, default=2000)
    args = parser.parse_args()
    with fresh_database() as url:
        seed(url, args.schedules)
        measure("dispatcher, Postgres only", url, AcceptingQueue())
        with embedded_queue() as (queue, _dlq):
            seed(url, args.schedules)
            measure("dispatcher, with embedded SQS", url, queue)


if __name__ == "__main__":
    main()
