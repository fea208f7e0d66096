"""Run one step in a worker thread so the main thread can stop it.

Python cannot kill a thread, so stopping is cooperative: the runner sets the step's `cancelled`
event, gives the step a short grace period to notice (sleep and http steps do), and then moves
on regardless. The worker is a daemon thread, so a step stuck in C code cannot keep the process
alive past the runner's exit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

POLL_SECONDS = 0.05
GRACE_SECONDS = 1.0


class Ending(StrEnum):
    FINISHED = "finished"  # returned or raised on its own
    TIMED_OUT = "timed_out"  # ran past its time limit
    STOPPED = "stopped"  # a stop was requested (SIGTERM)


@dataclass
class WorkerResult:
    ending: Ending
    output: Any = None
    error: BaseException | None = None
    seconds: float = 0.0


def run_interruptible(
    function: Callable[[], Any],
    cancelled: threading.Event,
    limit_seconds: float | None,
    stop_requested: Callable[[], bool],
    name: str = "step",
) -> WorkerResult:
    """Run `function` in a thread until it ends, its limit passes, or a stop is requested."""
    done = threading.Event()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["output"] = function()
        except BaseException as error:  # noqa: BLE001 - handed to the main thread
            box["error"] = error
        finally:
            done.set()

    started = time.monotonic()
    deadline = None if limit_seconds is None else started + limit_seconds
    threading.Thread(target=target, name=name, daemon=True).start()
    ending = Ending.FINISHED
    while True:
        wait = POLL_SECONDS if deadline is None else max(0.0, min(POLL_SECONDS, deadline - time.monotonic()))
        if done.wait(wait):
            break
        if stop_requested():
            ending = Ending.STOPPED
            break
        if deadline is not None and time.monotonic() >= deadline:
            ending = Ending.TIMED_OUT
            break
    seconds = time.monotonic() - started
    if ending is not Ending.FINISHED:
        cancelled.set()
        done.wait(GRACE_SECONDS)
        return WorkerResult(ending, seconds=seconds)
    return WorkerResult(ending, output=box.get("output"), error=box.get("error"), seconds=seconds)
