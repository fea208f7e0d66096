"""`wfctl local up` keeps queued messages across a restart, including ones still delayed by jitter."""

from __future__ import annotations

from pathlib import Path

from services.core.queue import OutgoingMessage, Queue, sqs_client
from services.local.embedded import DUMMY_AWS_ENV, create_queues, start_sqs
from services.local.supervisor import QUEUE_NAME, LocalOptions, LocalPlatform


def _embedded_queues(platform: LocalPlatform) -> dict[str, str]:
    platform.sqs = start_sqs()
    env = dict(DUMMY_AWS_ENV)
    client = sqs_client(env["AWS_REGION"], platform.sqs.endpoint_url)
    env["QUEUE_URL"], env["DLQ_URL"] = create_queues(client, QUEUE_NAME)
    env["AWS_ENDPOINT_URL"] = platform.sqs.endpoint_url
    return env


def test_messages_survive_a_restart_with_their_remaining_delay(tmp_path: Path, sqs_endpoint: str) -> None:
    platform = LocalPlatform(LocalOptions(state_dir=tmp_path / "state"))
    platform.state.prepare(reset=False)
    platform.env = _embedded_queues(platform)
    queues = platform._queues(platform.env)
    queues["queue"].send_batch([OutgoingMessage(body="now"), OutgoingMessage(body="later", delay_seconds=3)])
    queues["dlq"].send(OutgoingMessage(body="poison", attributes={"reason": "not JSON"}))
    try:
        assert platform._save_queues() == 3
    finally:
        # What a real restart loses: the endpoint's memory (shared by every server in one process).
        for queue in queues.values():
            queue.client.delete_queue(QueueUrl=queue.url)
        platform.sqs.stop()

    env = _embedded_queues(platform)  # a new, empty endpoint, as after a restart
    try:
        assert platform._restore_queues(env) == 3
        client = sqs_client(env["AWS_REGION"], env["AWS_ENDPOINT_URL"])
        queue, dlq = Queue(client, env["QUEUE_URL"]), Queue(client, env["DLQ_URL"])
        assert [m.body for m in queue.receive(wait_seconds=0)] == ["now"]  # "later" is still delayed
        delayed = queue.receive(wait_seconds=6)
        assert [m.body for m in delayed] == ["later"]
        [dead] = dlq.receive(wait_seconds=0)
        assert dead.body == "poison" and dead.attributes == {"reason": "not JSON"}
        assert not platform.state.queue_snapshot.exists()
    finally:
        platform.sqs.stop()
