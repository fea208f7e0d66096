"""The step interface: what a step type implements and what it is given.

A step type is any object with `run(params, context) -> output`:
- `params` is the step's `with`, already rendered (templates resolved, JSON types kept);
- `context` (`StepContext`) carries the run's identity, the template data, the integration's
  credential when the step names one, a logger, and the cancellation signal;
- the return value is the step's output: JSON-shaped data (it is stored and offered to later
  steps as `steps.<id>.output`);
- to fail, raise `StepError` with a one-line message; any other exception also fails the step.

Steps run in a worker thread so the runner can stop them on SIGTERM or a timeout. A step that
waits should wait with `context.wait(seconds)` (or check `context.cancelled`) so it stops
promptly; a step blocked in I/O should bound it with its own timeout.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from services.contract import MAX_TIMEOUT_SECONDS


class StepError(Exception):
    """The step failed. `output`, when given, is stored with the failure (e.g. an HTTP response).

    `kind` (optional) names the outcome for a step's `retry.on` when the output cannot tell it
    (e.g. "timeout" for a request that timed out); see services.runtime.retries.
    """

    def __init__(self, message: str, output: Any = None, kind: str | None = None) -> None:
        super().__init__(message)
        self.output = output
        self.kind = kind


class StepCancelled(StepError):
    """The run is being stopped (SIGTERM or a timeout) and the step gave up."""


@dataclass
class StepContext:
    execution_id: str
    step_id: str
    workflow: str
    # The template context: input, steps.<id>.output, execution, workflow.
    data: Mapping[str, Any]
    # The decrypted credential of the step's `integration`, if it names one.
    credential: Mapping[str, str] | None = None
    deny_private_networks: bool = False
    # Stable across this step's attempts and the run's retries of one fire time: steps that
    # call other systems send it (http: the `Idempotency-Key` header) so they can deduplicate.
    idempotency_key: str | None = None
    # 1 for the first attempt of the step, 2 for its first retry, and so on.
    attempt: int = 1
    cancelled: threading.Event = field(default_factory=threading.Event)
    logger: logging.LoggerAdapter[logging.Logger] = field(
        default_factory=lambda: logging.LoggerAdapter(logging.getLogger("services.runtime.steps"), {})
    )

    def wait(self, seconds: float) -> None:
        """Sleep up to `seconds`; raise StepCancelled as soon as the run is being stopped.

        No run lasts longer than MAX_TIMEOUT_SECONDS: a longer sleep waits for the deadline (a
        wait of 1e10 seconds would overflow the platform's timer).
        """
        if self.cancelled.wait(min(max(0.0, seconds), MAX_TIMEOUT_SECONDS + 1.0)):
            raise StepCancelled("interrupted")

    def check_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise StepCancelled("interrupted")


@runtime_checkable
class Step(Protocol):
    def run(self, params: Mapping[str, Any], context: StepContext) -> Any: ...
