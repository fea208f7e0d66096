"""`log`: write a message to the run's log; the output is the message (any JSON value)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from services.runtime.steps.base import StepContext, StepError


class LogStep:
    def run(self, params: Mapping[str, Any], context: StepContext) -> Any:
        if "message" not in params:
            raise StepError("with.message is required")
        message = params["message"]
        text = message if isinstance(message, str) else json.dumps(message, default=str)
        context.logger.info(text)
        return message
