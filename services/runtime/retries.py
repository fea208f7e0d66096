"""Per-step retry: which outcome a failed attempt had, and whether the step's `retry` covers it.

Pure functions. The outcome names are the ones a workflow writes in `retry.on`:
`timeout` (the step's own `timeout_seconds`, or an HTTP request that timed out), `http_5xx`,
`http_429`, and `error` (anything else that failed: a refused connection, a step error). An
HTTP answer of another status (a 404, a 400) is `http_4xx` and is never retried: asking again
gets the same answer.
"""

from __future__ import annotations

from typing import Any

from services.runtime.definition import StepRetry


def failure_kind(error: BaseException | None, timed_out: bool = False) -> str:
    """The outcome class of one failed attempt."""
    if timed_out:
        return "timeout"
    kind = getattr(error, "kind", None)
    if isinstance(kind, str) and kind:
        return kind
    output: Any = getattr(error, "output", None)
    status = output.get("status") if isinstance(output, dict) else None
    if isinstance(status, int) and not isinstance(status, bool):
        if status == 429:
            return "http_429"
        if 500 <= status <= 599:
            return "http_5xx"
        return "http_4xx"
    return "error"


def should_retry(retry: StepRetry, attempt: int, kind: str) -> bool:
    """True when attempt `attempt` failed with `kind` and the step may try again."""
    return attempt < retry.max_attempts and kind in retry.on
