"""Runner Jobs in a Kubernetes cluster, through the official client.

Uses only what the spawner's Role grants: create/get/list/delete Jobs, get/list Pods. Label
selectors are sent to the API server and also applied here, so a server (or an emulator) that
ignores them cannot make the reconciler touch Jobs that are not the runner's.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes.client import ApiException, BatchV1Api, CoreV1Api, V1Job

from services.contract import APP_LABEL, EXECUTION_ID_LABEL, RUNNER_APP
from services.spawner.launchers.base import LaunchError
from services.spawner.outcomes import JobOutcome, classify_job

log = logging.getLogger(__name__)

RUNNER_SELECTOR = f"{APP_LABEL}={RUNNER_APP}"
#: (connect, read) seconds for every API call: a hung API server must not hang a worker.
REQUEST_TIMEOUT = (5, 30)


def _describe(error: ApiException) -> str:
    return f"Kubernetes API answered HTTP {error.status} {error.reason or ''}".strip()


def _is_runner(item: Mapping[str, Any]) -> bool:
    labels = (item.get("metadata") or {}).get("labels") or {}
    return labels.get(APP_LABEL) == RUNNER_APP


def api_client_from_environment() -> Any:
    """In-cluster configuration (the spawner's ServiceAccount), else the local kubeconfig."""
    from kubernetes import config
    from kubernetes.client import ApiClient

    from services.core.errors import ConfigError

    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config()
        except (config.ConfigException, OSError) as error:
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise ConfigError(f"no Kubernetes configuration (not in a cluster, no kubeconfig): {first}") from None
    return ApiClient()


class KubernetesLauncher:
    def __init__(
        self,
        api_client: Any,
        namespace: str,
        start_timeout: timedelta = timedelta(minutes=10),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.api_client = api_client
        self.batch = BatchV1Api(api_client)
        self.core = CoreV1Api(api_client)
        self.namespace = namespace
        self.start_timeout = start_timeout
        self.clock = clock

    def launch(self, job: V1Job) -> bool:
        try:
            # The created Job is not read back: parsing it into typed objects would cost more
            # CPU than building it did. Errors still raise ApiException (from the status).
            response = self.batch.create_namespaced_job(
                self.namespace, job, _request_timeout=REQUEST_TIMEOUT, _preload_content=False
            )
            response.drain_conn()
            response.release_conn()
            return True
        except ApiException as error:
            if error.status == 409:
                return False
            raise LaunchError(_describe(error)) from None
        except Exception as error:  # connection refused, time-out, TLS: all worth a retry
            raise LaunchError(f"Kubernetes API unreachable: {type(error).__name__}: {error}") from None

    def delete(self, job_name: str) -> None:
        try:
            self.batch.delete_namespaced_job(
                job_name, self.namespace, propagation_policy="Foreground", _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as error:
            if error.status != 404:
                raise LaunchError(_describe(error)) from None
        except Exception as error:
            raise LaunchError(f"Kubernetes API unreachable: {type(error).__name__}: {error}") from None

    def _list(self, call: Callable[..., Any]) -> list[dict[str, Any]]:
        # Raw JSON, not typed models: the reconciler reads a few fields, and one odd object (a
        # field a newer API server adds or omits) must not break a whole pass.
        response = call(
            self.namespace, label_selector=RUNNER_SELECTOR, _request_timeout=REQUEST_TIMEOUT, _preload_content=False
        )
        items = json.loads(response.data).get("items") or []
        return [item for item in items if _is_runner(item)]

    def observe(self) -> list[JobOutcome]:
        jobs = self._list(self.batch.list_namespaced_job)
        pods_by_execution: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for pod in self._list(self.core.list_namespaced_pod):
            labels = (pod.get("metadata") or {}).get("labels") or {}
            if labels.get(EXECUTION_ID_LABEL):
                pods_by_execution[labels[EXECUTION_ID_LABEL]].append(pod)
        now = self.clock()
        outcomes = []
        for job in jobs:
            execution = ((job.get("metadata") or {}).get("labels") or {}).get(EXECUTION_ID_LABEL, "")
            outcomes.append(classify_job(job, pods_by_execution.get(execution, []), now, self.start_timeout))
        return outcomes

    def process_ended(self, job_name: str) -> bool:
        return False

    def close(self) -> None:
        close = getattr(self.api_client, "close", None)
        if callable(close):
            close()
