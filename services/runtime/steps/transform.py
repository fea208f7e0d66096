"""`transform`: evaluate a JMESPath `expression` over the template context; output = the value.

The context is the same one templates see: `input`, `steps.<id>.output`, `execution`, `workflow`
(e.g. `length(steps.fetch.output.body.items)`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

from services.runtime.steps.base import StepContext, StepError


class TransformStep:
    def run(self, params: Mapping[str, Any], context: StepContext) -> Any:
        expression = params.get("expression")
        if not isinstance(expression, str) or not expression.strip():
            raise StepError("with.expression must be a non-empty JMESPath expression")
        try:
            return jmespath.search(expression, context.data)
        except JMESPathError as error:
            detail = " ".join(str(error).split())
            raise StepError(f"JMESPath expression {expression!r} failed: {detail}") from None
