"""HTTP health probes of the long-running services (spawner, console): `/healthz` says the
process works (a failure restarts it), `/readyz` that it can serve (a failure takes it out of
its Service until it recovers)."""

from __future__ import annotations

import pulumi_kubernetes as k8s


def _http_probe(path: str, initial_delay_seconds: int, period_seconds: int) -> k8s.core.v1.ProbeArgs:
    return k8s.core.v1.ProbeArgs(
        http_get=k8s.core.v1.HTTPGetActionArgs(path=path, port="http"),
        initial_delay_seconds=initial_delay_seconds,
        period_seconds=period_seconds,
        timeout_seconds=3,
        failure_threshold=3,
    )


def liveness(initial_delay_seconds: int) -> k8s.core.v1.ProbeArgs:
    return _http_probe("/healthz", initial_delay_seconds, period_seconds=10)


def readiness(initial_delay_seconds: int) -> k8s.core.v1.ProbeArgs:
    return _http_probe("/readyz", initial_delay_seconds, period_seconds=5)
