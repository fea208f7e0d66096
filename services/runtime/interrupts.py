"""SIGTERM handling: Kubernetes sends SIGTERM at the Job's deadline or on eviction.

The handler (services.core.signals) only records that a stop was requested. Everything else (cancelling the step,
recording `timed_out`) happens on the main thread when it next looks, because a signal handler
that takes locks or touches the database can deadlock the thread it interrupted.
"""

from __future__ import annotations


class StopRequest:
    """Set by a signal handler; read by the runner's main loop."""

    def __init__(self) -> None:
        self.signal_name: str | None = None

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def request(self, name: str) -> None:
        if self.signal_name is None:
            self.signal_name = name

