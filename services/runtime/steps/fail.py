"""`fail`: fail the step (and so the run) with `message`, e.g. behind an `if`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

from services.runtime.steps.base import StepContext, StepError

DEFAULT_MESSAGE = "failed by a fail step"


class FailStep:
    def run(self, params: Mapping[str, Any], context: StepContext) -> NoReturn:
        message = params.get("message")
        raise StepError(str(message) if message not in (None, "") else DEFAULT_MESSAGE)
