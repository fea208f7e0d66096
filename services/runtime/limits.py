"""Size bounds and JSON hygiene for what a run reads and stores (docs/workflows.md).

Inputs are checked by `services.core.inputs`; a step output over 64 KiB is stored as a marker with a preview
so one chatty API cannot bloat the executions table. Postgres refuses NUL characters in text and
JSONB, so they are replaced before anything is stored.
"""

from __future__ import annotations

import json
from typing import Any

from services.contract import MAX_OUTPUT_BYTES

PREVIEW_CHARS = 4096
MAX_ERROR_CHARS = 2000


def json_safe(value: Any) -> Any:
    """JSON-shaped data Postgres accepts: str keys, no NULs, non-JSON values as their str()."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if isinstance(value, dict):
        return {json_safe(str(k)): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return json_safe(str(value))


def bound_output(value: Any) -> Any:
    """The value, or `{"truncated": true, "size_bytes": n, "preview": "..."}` when over 64 KiB."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    size = len(text.encode())
    if size <= MAX_OUTPUT_BYTES:
        return value
    return {"truncated": True, "size_bytes": size, "preview": text[:PREVIEW_CHARS]}


def one_line(message: str, limit: int = MAX_ERROR_CHARS) -> str:
    """Errors users see are one line, bounded, and storable."""
    text = " ".join(str(message).replace("\x00", "\ufffd").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
