"""Spawner throughput: messages → execution records → Jobs, at concurrency 1 and 8.

Run: .venv/bin/python bench/bench_spawner.py [--messages 200] [--concurrency 1 8]

Everything is real except the cluster: Postgres (embedded unless BENCH_DATABASE_URL is set), the
embedded SQS endpoint (moto's server, far slower per call than SQS itself, so these figures are a
floor), and a Kubernetes API emulator (kmock) on 127.0.0.1 answering Job creates over HTTP. Both
run in processes of their own, fresh for each concurrency level, so the spawner is measured
rather than the emulators competing with it for one interpreter; so does the feeder that sends
the messages as they are consumed (FEED_DEPTH). The CPU figure is this process's, which is the
spawner's: its workers, its receive loop and its housekeeping.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import check_target, fresh_database  # noqa: E402
from services.core.db.models import Trigger, Workflow  # noqa: E402
from services.core.db.session import session_factory  # noqa: E402
from services.core.messages import RunMessage, manual_dedup_key  # noqa: E402
from services.core.queue import OutgoingMessage, Queue, sqs_client  # noqa: E402
from services.core.settings import (
    Settings,  # noqa: E402
    SpawnerSettings,  # noqa: E402
)
from services.local.embedded import DUMMY_AWS_ENV, create_queues, free_port  # noqa: E402
from services.spawner.runner_template import DEFAULT_TEMPLATE_PATH  # noqa: E402
from services.spawner.service import build_spawner  # noqa: E402

TARGET_CONCURRENCY = 8
TARGET_JOBS_PER_SECOND = 50
TARGET_CPU_MS = 5.0

# kmock records every request for test assertions and scans that whole record on each new
# request to find the reaction that applies, so its cost per request grows with the number served
# (about 5 ms for the first Job create, about 90 ms for the 300th). A real API server has no such
# record. The benchmark's emulator keeps only the newest requests, so that the figures measure
# the spawner, not the growth of a test log.
EMULATOR = """
import asyncio, sys, kmock

class ShortMemoryEmulator(kmock.KubernetesEmulator):
    async def _handle(self, request):
        del self._requests[:-16]
        return await super()._handle(request)

async def main():
    async with ShortMemoryEmulator() as handler, kmock.Server(handler) as server:
        handler.resources["batch/v1/jobs"] = {}
        handler.resources["v1/pods"] = {}
        print(str(server.url).rstrip("/"), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


@contextmanager
def kubernetes_emulator() -> Iterator[str]:
    """kmock's emulator in a process of its own (its own GIL, like a real API server)."""
    process = subprocess.Popen(
        [sys.executable, "-c", EMULATOR], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError("the Kubernetes emulator did not start")
        yield url
    finally:
        process.terminate()
        process.wait(10)


# moto's ReceiveMessage scans every message in the queue: about 30 ms with 10 waiting, 540 ms
# with 400 (SQS itself answers in tens of milliseconds at any depth). Production queues stay
# shallow because spawners keep up, so the benchmark's messages arrive as a dispatcher would
# send them: a feeder process keeps about FEED_DEPTH waiting (in its own process, so its CPU is
# not counted as the spawner's).
FEED_DEPTH = 40
FEEDER = """
import json, sys, time, boto3
endpoint, queue_url, depth = sys.argv[1], sys.argv[2], int(sys.argv[3])
bodies = json.load(sys.stdin)
sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=endpoint)
sent = 0
for _ in range(1_000_000):
    if sent >= len(bodies):
        break
    waiting = int(sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
                  ["Attributes"]["ApproximateNumberOfMessages"])
    if waiting >= depth:
        time.sleep(0.005)
        continue
    batch = bodies[sent:sent + 10]
    sqs.send_message_batch(QueueUrl=queue_url, Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(batch)])
    sent += len(batch)
"""


@contextmanager
def feeder(queue: Queue, bodies: list[str], depth: int = FEED_DEPTH) -> Iterator[subprocess.Popen[str]]:
    """Sends `bodies` to `queue` from a process of its own, keeping about `depth` waiting."""
    endpoint = queue.client.meta.endpoint_url
    process = subprocess.Popen(
        [sys.executable, "-c", FEEDER, endpoint, queue.url, str(depth)], stdin=subprocess.PIPE, text=True
    )
    try:
        assert process.stdin is not None
        process.stdin.write(json.dumps(bodies))
        process.stdin.close()
        yield process
    finally:
        process.kill()
        process.wait(10)


@contextmanager
def sqs_endpoint() -> Iterator[tuple[Queue, Queue]]:
    """moto's SQS server in a process of its own, with a fresh queue and DLQ."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        os.environ.update({k: os.environ.get(k, v) for k, v in DUMMY_AWS_ENV.items()})
        client = sqs_client(DUMMY_AWS_ENV["AWS_REGION"], f"http://127.0.0.1:{port}")
        for _ in range(100):
            try:
                queue_url, dlq_url = create_queues(client, f"bench-{uuid.uuid4().hex[:8]}")
                break
            except Exception:
                time.sleep(0.1)
        else:
            raise RuntimeError("the SQS endpoint did not start")
        yield Queue(client, queue_url), Queue(client, dlq_url)
    finally:
        process.terminate()
        process.wait(10)


def api_client(url: str) -> object:
    from kubernetes.client import ApiClient, Configuration

    configuration = Configuration()
    configuration.host = url
    configuration.connection_pool_maxsize = 32
    return ApiClient(configuration)


def run_once(database_url: str, messages: int, concurrency: int) -> tuple[float, float]:
    """Wall seconds until every Job exists, and CPU seconds of this process meanwhile (the
    spawner: the emulators run in processes of their own)."""
    with sqs_endpoint() as (queue, dlq), kubernetes_emulator() as url:
        with session_factory(database_url)() as session:
            workflow = Workflow(name=f"bench-{uuid.uuid4().hex[:6]}", definition={"steps": []}, timeout_seconds=60)
            session.add(workflow)
            session.commit()
        bodies = [
            RunMessage(
                trigger=Trigger.MANUAL, dedup_key=manual_dedup_key(uuid.uuid4()), workflow_id=workflow.id
            ).to_json()
            for _ in range(messages)
        ]
        queue.send_batch([OutgoingMessage(body) for body in bodies[:FEED_DEPTH]])
        settings = Settings(
            database_url=database_url,
            queue_url=queue.url,
            dlq_url=dlq.url,
            aws_region="us-east-1",
            aws_endpoint_url=queue.client.meta.endpoint_url,
        )
        config = SpawnerSettings(
            launcher="kubernetes",
            concurrency=concurrency,
            runner_template=DEFAULT_TEMPLATE_PATH,
            namespace=f"bench-{concurrency}",
            health_port=None,
            wait_seconds=1,
            reconcile_seconds=3600,
        )
        parts = build_spawner(config, settings, kube_api_client=api_client(url))
        thread = threading.Thread(target=parts.spawner.run, daemon=True)
        with feeder(queue, bodies[FEED_DEPTH:]):
            started, cpu = time.perf_counter(), time.process_time()
            thread.start()
            deadline = started + 300
            while time.perf_counter() < deadline:
                if parts.metrics.jobs_created._value.get() >= messages and parts.spawner.idle():
                    break
                time.sleep(0.01)
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        created = int(parts.metrics.jobs_created._value.get())
        parts.spawner.request_stop()
        thread.join(30)
        parts.close()
        remaining = Queue(queue.client, queue.url).approximate_depth()
        if created != messages or remaining:
            raise SystemExit(f"incomplete run: {created}/{messages} Jobs, {remaining} messages left")
        return elapsed, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()
    met = True
    with fresh_database() as database_url:
        for concurrency in args.concurrency:
            elapsed, cpu = run_once(database_url, args.messages, concurrency)
            rate, cpu_ms = args.messages / elapsed, cpu * 1000 / args.messages
            print(
                f"spawner concurrency={concurrency}: {args.messages} messages → {args.messages} Jobs "
                f"in {elapsed:.2f}s = {rate:.1f} messages/s, {cpu_ms:.1f} ms CPU per message",
                flush=True,
            )
            if concurrency == TARGET_CONCURRENCY:
                met &= check_target(f"spawner, Jobs/s at concurrency {concurrency}", rate, "Jobs/s",
                                    TARGET_JOBS_PER_SECOND, at_least=True)
                met &= check_target(f"spawner, CPU per message at concurrency {concurrency}", cpu_ms, "ms",
                                    TARGET_CPU_MS)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
