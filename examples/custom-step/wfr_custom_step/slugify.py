"""`slugify`: turn `with.text` into a URL slug; output `{"slug": ...}`.

A step type is any object with `run(params, context) -> output`. `params` is the step's `with`,
already rendered; `context` carries `execution_id`, `step_id`, `workflow`, the template `data`,
the integration `credential` (if the step names one), a `logger`, and `wait(seconds)` /
`check_cancelled()` for steps that take a while. Raise an exception to fail the step; its
message becomes the step's error. The output must be JSON-shaped.

This package depends on nothing from Workflow Runtime, so it can be installed into the runner
image on its own (`pip install ./examples/custom-step`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any


class SlugifyStep:
    def run(self, params: Mapping[str, Any], context: Any) -> dict[str, str]:
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ValueError("with.text must be a non-empty string")
        slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
        context.logger.info(f"slugified {len(text)} characters")
        return {"slug": slug}
