"""Against a real cluster (only when KUBECONFIG is set): the API server admits what we build.

Server-side dry runs: nothing is created. `WFR_CLUSTER_NAMESPACE` (default `default`) names the
namespace; label it `pod-security.kubernetes.io/enforce=restricted` to check the profile too.
"""

from __future__ import annotations

import os

import pytest

from services.spawner.jobs import build_job
from services.spawner.runner_template import DEFAULT_TEMPLATE_PATH, load_template_file
from tests.fakes import FakeExecution, FakeWorkflow

pytestmark = pytest.mark.cluster




def test_runner_job_is_admitted_by_the_api_server() -> None:
    from kubernetes import client, config

    config.load_kube_config()
    namespace = os.environ.get("WFR_CLUSTER_NAMESPACE", "default")
    job = build_job(load_template_file(DEFAULT_TEMPLATE_PATH, namespace), FakeExecution(), FakeWorkflow())
    created = client.BatchV1Api().create_namespaced_job(namespace, job, dry_run="All")
    assert created.metadata.name == job.metadata.name
    assert created.spec.backoff_limit == 0 and created.spec.ttl_seconds_after_finished == 3600
