"""`sleep`: wait `seconds`; output null. Interruptible: SIGTERM or a timeout ends it at once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.runtime.steps.base import StepContext, StepError


def parse_seconds(value: Any) -> float:
    if isinstance(value, bool):
        raise StepError(f"with.seconds must be a number, got {value!r}")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise StepError(f"with.seconds must be a number, got {value!r}") from None
    if not seconds >= 0:
        raise StepError(f"with.seconds must be zero or more, got {value!r}")
    return seconds


class SleepStep:
    def run(self, params: Mapping[str, Any], context: StepContext) -> None:
        context.wait(parse_seconds(params.get("seconds")))
        return None
