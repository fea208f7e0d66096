"""SIGTERM and SIGINT, routed to a callback while a block runs.

Kubernetes sends SIGTERM to stop a pod (a deploy, an eviction, a Job's deadline); Ctrl-C sends
SIGINT. Every long-running process (the spawner, the runner) reacts through this one helper. A
callback should only record the request (set a flag, wake a loop): a handler that takes locks or
touches the database can deadlock the thread it interrupted.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def stop_on_signals(on_stop: Callable[[str], None]) -> Iterator[None]:
    """Call `on_stop(signal name)` on SIGTERM/SIGINT while the block runs.

    Signal handlers can only be installed from the main thread; elsewhere (a test driving a
    service in a thread) this is a no-op and the caller stops the service directly.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        on_stop(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handle) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
