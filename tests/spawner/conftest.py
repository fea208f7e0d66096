"""Fixtures for the spawner: a Kubernetes API emulator (kmock) in a background thread, workflows,
messages, fake runners, and a spawner driven in a thread with bounded waits.

kmock is asyncio-based; running its server on its own event loop in a daemon thread lets the
(synchronous) official client and spawner talk to it over 127.0.0.1 like to a real API server.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import kmock
import pytest
from kubernetes.client import ApiClient, Configuration

from services.core.db.models import Execution, Schedule, Workflow
from services.core.db.session import session_factory
from services.core.messages import RunMessage, schedule_dedup_key
from services.core.settings import Settings, SpawnerSettings
from services.spawner.runner_template import DEFAULT_TEMPLATE_PATH
from services.spawner.service import SpawnerParts, build_spawner

NAMESPACE = "runs"
JOBS = kmock.resource("batch", "v1", "jobs")
PODS = kmock.resource("", "v1", "pods")
PODTEMPLATES = kmock.resource("", "v1", "podtemplates")
WORKTREE = Path(__file__).resolve().parents[2]


class FlakyEmulator(kmock.KubernetesEmulator):
    """The emulator, plus failures injected before a create reaches the store.

    (A kmock reaction answering 500 runs after the emulator stored the object, which models
    "created, but the answer was lost"; this models "not created".)
    """

    async def _handle(self, request: Any) -> Any:
        if request.resource is not None and request.action == kmock.action.CREATE:
            self.creates_seen = getattr(self, "creates_seen", 0) + 1
            delay = getattr(self, "create_delay", 0.0)
            if delay:
                generation = getattr(self, "generation", 0)
                await asyncio.sleep(delay)
                if getattr(self, "generation", 0) != generation:  # a later test reset the emulator
                    raise kmock.KubernetesError(status=503, reason="ServiceUnavailable", message="reset")
            if getattr(self, "fail_creates", 0) > 0:
                self.fail_creates -= 1
                raise kmock.KubernetesError(status=500, reason="InternalError", message="injected failure")
        return await super()._handle(request)


class Emulator:
    """A running emulator: its URL, a client for it, and thread-safe access to its objects."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="kmock", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the Kubernetes emulator did not start")

    def _serve(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            async with FlakyEmulator() as handler, kmock.Server(handler) as server:
                handler.resources["batch/v1/jobs"] = {}
                handler.resources["v1/pods"] = {}
                handler.resources["v1/podtemplates"] = {}
                self.handler = handler
                self.url = str(server.url).rstrip("/")
                self._ready.set()
                await self._stop.wait()

        asyncio.run(main())

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=5)

    def api_client(self) -> ApiClient:
        configuration = Configuration()
        configuration.host = self.url
        return ApiClient(configuration)

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: kmock\n"
            f"clusters: [{{name: kmock, cluster: {{server: '{self.url}'}}}}]\n"
            "users: [{name: kmock, user: {token: test}}]\n"
            "contexts: [{name: kmock, context: {cluster: kmock, user: kmock}}]\n"
        )
        return path

    def _call(self, fn: Callable[[], Any]) -> Any:
        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(5)

    def fail_creates(self, count: int) -> None:
        self._call(lambda: setattr(self.handler, "fail_creates", count))

    def slow_creates(self, seconds: float) -> None:
        self._call(lambda: setattr(self.handler, "create_delay", seconds))

    def _live(self, resource: Any) -> dict[str, dict[str, Any]]:
        def collect() -> dict[str, dict[str, Any]]:
            return {
                name: dict(obj.raw)
                for (res, _, name), obj in self.handler.objects.items()
                if res == resource and not obj.deleted
            }

        return self._call(collect)

    def jobs(self) -> dict[str, dict[str, Any]]:
        return self._live(JOBS)

    def put(self, resource: Any, name: str, body: dict[str, Any]) -> None:
        def store() -> None:
            key = (resource, NAMESPACE, name)
            if key in self.handler.objects and not self.handler.objects[key].deleted:
                self.handler.objects[key].patch(body)
            else:
                self.handler.objects[key] = body

        self._call(store)

    def creates_seen(self) -> int:
        """Create requests received so far (including ones still being answered)."""
        return int(self._call(lambda: getattr(self.handler, "creates_seen", 0)))


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[Emulator]:
    emulator = Emulator()
    yield emulator
    emulator.stop()


@pytest.fixture
def emulator(emulator_server: Emulator) -> Emulator:
    """The shared emulator, emptied and with no injected failures."""

    def reset() -> None:
        emulator_server.handler.objects.clear()
        emulator_server.handler.fail_creates = 0
        emulator_server.handler.create_delay = 0.0
        emulator_server.handler.creates_seen = 0
        emulator_server.handler.generation = getattr(emulator_server.handler, "generation", 0) + 1

    emulator_server._call(reset)
    return emulator_server


@pytest.fixture
def workflow(db: str) -> Workflow:
    return make_workflow(db)


def make_workflow(db: str, name: str = "hello", timeout_seconds: int = 120, max_attempts: int = 1) -> Workflow:
    with session_factory(db)() as session:
        workflow = Workflow(
            name=name,
            definition={
                "name": name,
                "steps": [{"id": "greet", "type": "log", "with": {"message": "hi"}}],
                "retry": {"max_attempts": max_attempts, "backoff_seconds": 30, "backoff_multiplier": 2},
            },
            timeout_seconds=timeout_seconds,
        )
        session.add(workflow)
        session.commit()
        return workflow


def make_schedule(db: str, workflow: Workflow, overlap: str = "allow", name: str = "every-minute") -> Schedule:
    with session_factory(db)() as session:
        schedule = Schedule(name=name, workflow_id=workflow.id, cron="* * * * *", overlap=overlap, input={})
        session.add(schedule)
        session.commit()
        return session.get(Schedule, schedule.id)  # type: ignore[return-value]


def manual_message(workflow: Workflow, payload: dict[str, Any] | None = None) -> RunMessage:
    from services.core.db.models import Trigger
    from services.core.messages import manual_dedup_key

    return RunMessage(
        trigger=Trigger.MANUAL,
        dedup_key=manual_dedup_key(uuid.uuid4()),
        workflow_id=workflow.id,
        input=payload or {"who": "world"},
    )


def schedule_message(schedule: Schedule, fire_time: datetime) -> RunMessage:
    from services.core.db.models import Trigger

    return RunMessage(
        trigger=Trigger.SCHEDULE,
        dedup_key=schedule_dedup_key(schedule.id, fire_time),
        workflow_id=schedule.workflow_id,
        schedule_id=schedule.id,
        scheduled_for=fire_time,
    )


def send(queues: Any, *bodies: str) -> None:
    for body in bodies:
        queues.client.send_message(QueueUrl=queues.queue_url, MessageBody=body)


def executions(db: str) -> list[Execution]:
    from sqlalchemy import select

    with session_factory(db)() as session:
        return list(session.scalars(select(Execution).order_by(Execution.created_at)))


def set_visibility_timeout(queues: Any, seconds: int) -> None:
    queues.client.set_queue_attributes(QueueUrl=queues.queue_url, Attributes={"VisibilityTimeout": str(seconds)})


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


@dataclass
class RunningSpawner:
    parts: SpawnerParts
    thread: threading.Thread
    result: dict[str, Any]

    def stop(self, timeout: float = 10.0) -> int:
        self.parts.spawner.request_stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the spawner did not stop"
        self.parts.close()
        if "error" in self.result:
            raise self.result["error"]
        return int(self.result["status"])


@pytest.fixture
def start_spawner(db: str, queues: Any, emulator: Emulator) -> Iterator[Callable[..., RunningSpawner]]:
    """Start a spawner in a thread (kubernetes launcher on the emulator unless told otherwise)."""
    running: list[RunningSpawner] = []

    def start(**overrides: Any) -> RunningSpawner:
        options: dict[str, Any] = {
            "launcher": "kubernetes",
            "namespace": NAMESPACE,
            "runner_template": DEFAULT_TEMPLATE_PATH,
            "health_port": None,
            "wait_seconds": 0,
            "reconcile_seconds": 3600.0,
            "retry_backoff_seconds": 0,
            "grace_seconds": 5.0,
            "concurrency": 4,
        }
        options.update(overrides)
        client = options.pop("kube_api_client", None)
        if options["launcher"] == "kubernetes" and client is None:
            client = emulator.api_client()
        checkpoint = options.pop("checkpoint", None)
        parts = build_spawner(
            SpawnerSettings(**options), Settings.from_env(), kube_api_client=client, checkpoint=checkpoint
        )
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                result["status"] = parts.spawner.run()
            except BaseException as error:  # surfaced by stop()
                result["error"] = error

        thread = threading.Thread(target=run, name="spawner", daemon=True)
        thread.start()
        handle = RunningSpawner(parts, thread, result)
        running.append(handle)
        return handle

    yield start
    for handle in running:
        if handle.thread.is_alive():
            handle.parts.spawner.request_stop()
            handle.thread.join(10)
            handle.parts.close()


def queue_empty(queues: Any) -> bool:
    attributes = queues.client.get_queue_attributes(QueueUrl=queues.queue_url, AttributeNames=["All"])["Attributes"]
    return all(
        int(attributes.get(key, "0")) == 0
        for key in (
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        )
    )


def dlq_messages(queues: Any) -> list[dict[str, Any]]:
    return queues.drain(queues.dlq_url)


PYTHON = sys.executable
