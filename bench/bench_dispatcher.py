"""Dispatcher tick throughput: N schedules due in the same minute, against the raw-SQL floor and APScheduler.

Run: .venv/bin/python bench/bench_dispatcher.py [--schedules 100000] [--pairs diverse|few]
     (BENCH_DATABASE_URL or TEST_DATABASE_URL names the Postgres server; else an embedded one)

In one run, on the same server and the same schedules:

* `tick()` with a queue that accepts instantly (our own cost: claim, cron math, messages,
  advance, ledger, commit), one tick over every due schedule;
* the raw-SQL floor: the least any dispatcher must do in Postgres, claiming the same rows in
  batches with `FOR UPDATE SKIP LOCKED` and advancing each batch with one `UPDATE … FROM unnest`;
* APScheduler 3 with its SQLAlchemyJobStore on the same server, one `_process_jobs` pass over
  the same (expression, zone) pairs due at once (at most 10,000 jobs: it writes one row per job);
* the sending side alone: messages/s to the embedded SQS endpoint (moto's server in this
  process, much slower per message than SQS itself), batches of 10 on 8 concurrent threads, as
  the tick sends them, with the queue kept shallow as consumers keep a real one.

`--pairs diverse` gives about one distinct (expression, zone) pair per four schedules, as in a
real fleet (caches cannot hide the cron math); `--pairs few` uses 20 pairs. Targets (issue 10):
100,000 diverse due schedules in <= 5 s, <= 3.5x the raw-SQL floor, >= 25x APScheduler's rate.
"""

from __future__ import annotations

import argparse
import io
import logging
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, available_timezones

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402

from bench.common import check_target, embedded_queue, fresh_database  # noqa: E402
from services.core import cron  # noqa: E402
from services.core.db.session import session_factory  # noqa: E402
from services.core.queue import OutgoingMessage, Queue  # noqa: E402
from services.core.settings import libpq_url, sqlalchemy_url  # noqa: E402
from services.core.workflows import apply_workflow, parse_workflow  # noqa: E402
from services.dispatcher.tick import tick  # noqa: E402
from services.local.embedded import create_queues  # noqa: E402

FEW_EXPRESSIONS = ["*/5 * * * *", "0 * * * *", "*/15 9-17 * * mon-fri", "0,30 * * * *"]
FEW_ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Lord_Howe"]
NOW = datetime(2026, 11, 30, 10, 0, 5, tzinfo=UTC)  # a Monday, on the hour
DUE = NOW.replace(second=0)
APSCHEDULER_MAX = 10_000
TARGET_SECONDS_PER_100K = 5.0
TARGET_FLOOR_RATIO = 3.5
TARGET_APSCHEDULER_RATIO = 25.0


class AcceptingQueue:
    """Accepts every message at once: isolates the dispatcher's own cost."""

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> int:
        return len(messages)


# --- the schedules ---------------------------------------------------------------------------


def _due_expression(zone: str, rng: random.Random) -> str:
    """A random cron expression that fires at DUE in `zone` (so every schedule is due)."""
    local = DUE.astimezone(ZoneInfo(zone))
    minute, hour, day, month, weekday = local.minute, local.hour, local.day, local.month, local.isoweekday() % 7
    minutes = rng.choice([f"{minute}", f"{minute},{(minute + rng.randint(1, 59)) % 60}", "*",
                          f"{minute}-{min(59, minute + rng.randint(1, 20))}"])
    hours = rng.choice([f"{hour}", f"{hour},{(hour + rng.randint(1, 23)) % 24}", "*",
                        f"{min(hour, rng.randint(0, 23))}-{hour}"])
    days = rng.choice(["*", "*", f"{day}", f"{day},{rng.randint(1, 28)}"])
    months = rng.choice(["*", "*", "*", f"{month}"])
    weekdays = rng.choice(["*", "*", f"{weekday}", "1-5" if 1 <= weekday <= 5 else "0,6"])
    return f"{minutes} {hours} {days} {months} {weekdays}"


def pairs_for(count: int, mode: str) -> list[tuple[str, str]]:
    """One (expression, zone) pair per schedule: ~count/4 distinct ones (diverse), or 20 (few)."""
    if mode == "few":
        pairs = [(e, z) for e in FEW_EXPRESSIONS for z in FEW_ZONES]
        return [pairs[index % len(pairs)] for index in range(count)]
    rng = random.Random(10)
    zones = sorted(z for z in available_timezones() if "/" in z and not z.startswith(("Etc/", "SystemV/")))
    wanted = max(1, count // 4)
    distinct: dict[tuple[str, str], None] = {}
    for _ in range(wanted * 50):
        if len(distinct) >= wanted:
            break
        zone = rng.choice(zones)
        distinct[(_due_expression(zone, rng), zone)] = None
    unique = list(distinct)
    return [unique[index % len(unique)] for index in range(count)]


def seed(url: str, pairs: list[tuple[str, str]]) -> None:
    """One workflow and a schedule per pair, all due at DUE, written with COPY."""
    maker = session_factory(url)
    with maker() as session, session.begin():
        definition = parse_workflow("name: bench\nsteps: [{id: a, type: log, with: {message: hi}}]")
        workflow, _ = apply_workflow(session, definition)
        workflow_id = str(workflow.id)
    buffer = io.StringIO()
    for index, (expression, zone) in enumerate(pairs):
        buffer.write(f"{uuid.uuid4()}\ts{index}\t{workflow_id}\t{expression}\t{zone}\t{{}}\tt\tlatest\t86400\t"
                     f"allow\t0\t{{}}\t{DUE.isoformat()}\n")
    columns = ("id, name, workflow_id, cron, timezone, input, enabled, catchup, catchup_window_seconds, "
               "overlap, jitter_seconds, notify, next_run_at")
    with psycopg.connect(libpq_url(url)) as conn:
        with conn.cursor().copy(f"COPY schedules ({columns}) FROM STDIN") as copy:
            copy.write(buffer.getvalue())
    reset(url)


def reset(url: str) -> None:
    """Every schedule due again, no ledger, and no dead rows left by the previous measurement."""
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute("UPDATE schedules SET next_run_at = %s, last_dispatched_at = NULL, completed_at = NULL", [DUE])
        conn.execute("TRUNCATE fire_times")
        conn.execute("VACUUM ANALYZE schedules")
        conn.execute("VACUUM ANALYZE fire_times")
    cron.clear_caches()  # the tick compiles every pair it meets, as a new CronJob process does


# --- the three measurements ------------------------------------------------------------------


def measure_tick(url: str) -> tuple[float, float, int, int]:
    """Wall seconds, CPU seconds of this process (the rest is waiting on Postgres), claimed, sent."""
    started, cpu = time.perf_counter(), time.process_time()
    summary = tick(session_factory(url), AcceptingQueue(), now=NOW)  # type: ignore[arg-type]
    return time.perf_counter() - started, time.process_time() - cpu, summary.schedules_claimed, summary.messages_sent


# One tick's work shared by N processes, as `dispatcherParallelism: N` runs N pods of the
# CronJob's Job: each process imports, connects, then waits for the same start signal.
TICK_PROCESS = """
import sys
sys.path.insert(0, sys.argv[2])
from bench.bench_dispatcher import NOW, AcceptingQueue
from services.core.db.session import session_factory
from services.dispatcher.tick import tick
maker = session_factory(sys.argv[1])
maker().close()
print("ready", flush=True)
sys.stdin.readline()
print(tick(maker, AcceptingQueue(), now=NOW).schedules_claimed, flush=True)
"""


def measure_parallel_tick(url: str, processes: int) -> tuple[float, list[int]]:
    """Wall seconds of one tick run by `processes` dispatcher processes at once, and what each claimed."""
    root = str(Path(__file__).resolve().parents[1])
    children = [
        subprocess.Popen([sys.executable, "-c", TICK_PROCESS, url, root], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        started = time.perf_counter()
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        claimed = [int(child.stdout.readline()) for child in children if child.stdout is not None]
        return time.perf_counter() - started, claimed
    finally:
        for child in children:
            child.kill()
            child.wait(10)


def measure_floor(url: str, batch_size: int = 2000) -> tuple[float, int]:
    """Claim with SKIP LOCKED, advance with one UPDATE … FROM unnest per batch, commit."""
    claimed = 0
    following = DUE + timedelta(hours=1)
    started = time.perf_counter()
    with psycopg.connect(libpq_url(url)) as conn:
        while True:
            with conn.transaction():
                rows = conn.execute(
                    "SELECT id::text, ctid::text FROM schedules WHERE enabled AND next_run_at <= %s "
                    "ORDER BY next_run_at LIMIT %s FOR UPDATE SKIP LOCKED", [NOW, batch_size]).fetchall()
                ids = [row[0] for row in rows]
                if not ids:
                    break
                conn.execute(  # each row by its address, as the tick does (not a scan of the table)
                    "UPDATE schedules AS s SET next_run_at = v.next, last_dispatched_at = %s "
                    "FROM unnest(%s::uuid[], %s::timestamptz[], %s::tid[]) AS v(id, next, address) "
                    "WHERE s.ctid = v.address AND s.id = v.id",
                    [NOW, ids, [following] * len(ids), [row[1] for row in rows]])
            claimed += len(ids)
    return time.perf_counter() - started, claimed


def noop() -> None:
    """The APScheduler job's function (never called: the executor only counts submissions)."""


def measure_apscheduler(url: str, pairs: list[tuple[str, str]]) -> tuple[float, int] | None:
    """One `_process_jobs` pass of APScheduler 3 over len(pairs) jobs due at once, or None."""
    try:
        from apscheduler.executors.base import BaseExecutor
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.base import BaseScheduler
        from apscheduler.triggers.cron import CronTrigger
    except ImportError:
        print("apscheduler: not installed (make install); skipped", flush=True)
        return None

    submitted: list[int] = [0]

    class CountingExecutor(BaseExecutor):  # type: ignore[misc]
        def _do_submit_job(self, job, run_times) -> None:  # type: ignore[no-untyped-def]
            submitted[0] += 1

    class ManualScheduler(BaseScheduler):  # type: ignore[misc]
        """A scheduler without a thread of its own: `_process_jobs` runs when called, once."""

        def wakeup(self) -> None:
            pass

        def shutdown(self, wait: bool = True) -> None:
            super().shutdown(wait)

    store = SQLAlchemyJobStore(url=sqlalchemy_url(url), tablename="apscheduler_jobs")
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    scheduler = ManualScheduler(
        jobstores={"default": store}, executors={"default": CountingExecutor()}, timezone="UTC",
        job_defaults={"coalesce": True, "misfire_grace_time": 3600, "max_instances": 1},
    )
    scheduler.start()
    try:
        due = datetime.now(UTC) - timedelta(seconds=1)
        for index, (expression, zone) in enumerate(pairs):
            trigger = CronTrigger.from_crontab(expression, timezone=ZoneInfo(zone))
            scheduler.add_job(f"{__name__}:noop", trigger, id=f"s{index}", next_run_time=due)
        started = time.perf_counter()
        scheduler._process_jobs()
        elapsed = time.perf_counter() - started
    finally:
        scheduler.shutdown(wait=False)
    return elapsed, submitted[0]


def measure_sending(count: int = 2000, depth: int = 200) -> float:
    """Messages/s to the embedded SQS endpoint: batches of 10 on 8 concurrent threads.

    moto's SendMessageBatch slows down as its queue fills (about 25 ms per batch on an empty
    queue, 140 ms with 500 messages waiting), while a real queue is drained by the spawners; so
    every `depth` messages go to a new, empty queue, as shallow as a drained one.
    """
    body = '{"attempt":1,"dedup_key":"schedule:x","input":{},"trigger":"schedule","version":1}'
    with embedded_queue() as (first, _dlq):
        first.send_batch([OutgoingMessage(body)] * 10)  # warm the client and the endpoint
        sent, seconds = 0, 0.0
        while sent < count:
            url, _ = create_queues(first.client, f"bench-send-{uuid.uuid4().hex[:8]}")  # an empty queue
            queue = Queue(first.client, url)
            started = time.perf_counter()
            sent += queue.send_batch([OutgoingMessage(body)] * depth, parallelism=8)
            seconds += time.perf_counter() - started
        return sent / seconds


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--schedules", type=int, default=100_000)
    parser.add_argument("--pairs", choices=["diverse", "few"], default="diverse")
    parser.add_argument("--apscheduler", type=int, default=APSCHEDULER_MAX,
                        help=f"APScheduler jobs (at most {APSCHEDULER_MAX}; 0 skips it)")
    parser.add_argument("--send", type=int, default=2000, help="messages for the sending figure (0 skips it)")
    parser.add_argument("--parallelism", type=int, default=2,
                        help="also measure one tick shared by this many processes (1 skips it)")
    args = parser.parse_args()
    pairs = pairs_for(args.schedules, args.pairs)
    distinct = len(set(pairs))
    print(f"{args.schedules} due schedules, {distinct} distinct (expression, zone) pairs ({args.pairs})", flush=True)
    with fresh_database() as url:
        seed(url, pairs)
        floor_seconds, floor_claimed = measure_floor(url)
        reset(url)
        seconds, cpu, claimed, sent = measure_tick(url)
        # Every schedule is claimed; in `few` mode some pairs (`9-17 * * mon-fri` in Tokyo) have no
        # fire time at that minute, so they advance without a message.
        if claimed != args.schedules or (args.pairs == "diverse" and sent != args.schedules):
            print(f"error: the tick claimed {claimed} and sent {sent} of {args.schedules}", flush=True)
            return 1
        rate, floor_rate = claimed / seconds, floor_claimed / floor_seconds
        print(f"tick():        {seconds:6.2f} s  {rate:9,.0f} schedules/s, {sent} messages  ({cpu:.2f} s CPU in "
              "the dispatcher process; the rest is Postgres)", flush=True)
        print(f"raw-SQL floor: {floor_seconds:6.2f} s  {floor_rate:9,.0f} schedules/s", flush=True)
        results = [check_target(f"dispatcher tick / raw-SQL floor ({args.pairs} pairs)", seconds / floor_seconds, "x",
                                TARGET_FLOOR_RATIO)]
        fleet_scale = args.schedules >= 100_000 and args.pairs == "diverse"
        if fleet_scale:
            results.append(check_target("dispatcher, 100,000 diverse due schedules, one process",
                                        seconds * 100_000 / args.schedules, "s", TARGET_SECONDS_PER_100K))
        if args.parallelism > 1:
            reset(url)
            parallel_seconds, claims = measure_parallel_tick(url, args.parallelism)
            if sum(claims) != args.schedules:
                print(f"error: {args.parallelism} ticks claimed {claims} of {args.schedules}", flush=True)
                return 1
            print(f"tick() in {args.parallelism} processes (dispatcherParallelism: {args.parallelism}): "
                  f"{parallel_seconds:6.2f} s  {args.schedules / parallel_seconds:9,.0f} schedules/s  "
                  f"(claimed {' + '.join(map(str, claims))})", flush=True)
            if fleet_scale:
                results.append(check_target(
                    f"dispatcher, 100,000 diverse due schedules, {args.parallelism} processes",
                    parallel_seconds * 100_000 / args.schedules, "s", TARGET_SECONDS_PER_100K))
        jobs = min(args.apscheduler, APSCHEDULER_MAX, args.schedules)
        if jobs > 0:
            result = measure_apscheduler(url, pairs[:jobs])
            if result is not None:
                aps_seconds, aps_submitted = result
                aps_rate = aps_submitted / aps_seconds
                print(f"APScheduler 3 ({jobs} jobs, SQLAlchemyJobStore): {aps_seconds:6.2f} s  "
                      f"{aps_rate:9,.0f} schedules/s", flush=True)
                results.append(aps_submitted == jobs)
                results.append(check_target("dispatcher tick rate / APScheduler 3's", rate / aps_rate, "x",
                                            TARGET_APSCHEDULER_RATIO, at_least=True))
    if args.send > 0:
        print(f"sending: {measure_sending(args.send):,.0f} messages/s to the embedded SQS endpoint "
              "(batches of 10, 8 concurrent)", flush=True)
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
