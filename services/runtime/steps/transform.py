"""`transform`: evaluate a JMESPath `expression` over the template context; output = the value.

The context is the same one templates see: `input`, `steps.<id>.output`, `execution`, `workflow`
(e.g. `length(steps.fetch.output.body.items)`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.visitor import Options, TreeInterpreter

from services.runtime.steps.base import StepContext, StepError

#: Work one evaluation may do: one per node visited plus the items (list elements, object
#: members, string characters) every intermediate result holds. Chained projections
#: (`[].[@, @, @][].[@, @, @]…`) multiply their input and would otherwise allocate gigabytes and
#: run for minutes; an ordinary projection over a 100,000-item response stays well within it.
MAX_ITEMS = 2_000_000


class BudgetExceeded(StepError):
    """The expression built more than MAX_ITEMS items."""


class BoundedInterpreter(TreeInterpreter):
    """jmespath's interpreter, counting what every node produces against a budget."""

    def __init__(self, budget: int = MAX_ITEMS) -> None:
        super().__init__(Options())
        self.remaining = budget

    def visit(self, node: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        result = super().visit(node, *args, **kwargs)
        self.remaining -= 1 + (len(result) if isinstance(result, list | dict | str) else 0)
        if self.remaining < 0:
            raise BudgetExceeded(f"the expression does more than {MAX_ITEMS} steps of work (items built or visited)")
        return result


def search(expression: str, data: Any, budget: int = MAX_ITEMS) -> Any:
    """`jmespath.search` under a budget of produced items."""
    return BoundedInterpreter(budget).visit(jmespath.compile(expression).parsed, data)


class TransformStep:
    def run(self, params: Mapping[str, Any], context: StepContext) -> Any:
        expression = params.get("expression")
        if not isinstance(expression, str) or not expression.strip():
            raise StepError("with.expression must be a non-empty JMESPath expression")
        try:
            return search(expression, context.data)
        except JMESPathError as error:
            detail = " ".join(str(error).split())
            raise StepError(f"JMESPath expression {expression!r} failed: {detail}") from None
