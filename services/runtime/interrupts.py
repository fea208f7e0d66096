"""SIGTERM handling: Kubernetes sends SIGTERM at the Job's deadline or on eviction.

The handler only records that a stop was requested. Everything else (cancelling the step,
recording `timed_out`) happens on the main thread when it next looks, because a signal handler
that takes locks or touches the database can deadlock the thread it interrupted.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


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

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.request(signal.Signals(signum).name)


@contextmanager
def stop_on_signals(stop: StopRequest) -> Iterator[StopRequest]:
    """Route SIGTERM/SIGINT to `stop` while the block runs (main thread only; else a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.signal(sig, stop) for sig in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
