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


def _storable_text(text: str) -> str:
    """Postgres refuses NUL, and a lone surrogate cannot be encoded: both become U+FFFD."""
    text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


def json_safe(value: Any) -> Any:
    """JSON-shaped data Postgres accepts: str keys, no NULs or lone surrogates, non-JSON values as str()."""
    if isinstance(value, str):
        return _storable_text(value)
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if isinstance(value, dict):
        return {json_safe(str(k)): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return json_safe(str(value))


def json_size(value: Any) -> int:
    """Bytes of JSON-safe `value` as compact UTF-8 JSON, added up while walking it (no copy)."""
    size = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            size += len(json.dumps(item, ensure_ascii=False).encode())
        elif isinstance(item, dict):
            size += 2 + max(len(item) - 1, 0) + len(item)  # braces, commas, colons
            for key, child in item.items():
                size += len(json.dumps(key, ensure_ascii=False).encode())
                stack.append(child)
        elif isinstance(item, list):
            size += 2 + max(len(item) - 1, 0)
            stack.extend(item)
        else:
            size += len(json.dumps(item))
    return size


def json_preview(value: Any, chars: int = PREVIEW_CHARS) -> str:
    """The first `chars` characters of `value` as compact JSON, encoding no further than that."""
    encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
    pieces: list[str] = []
    length = 0
    for piece in encoder.iterencode(value):  # the streaming (pure-Python) encoder
        pieces.append(piece[: chars - length])
        length += len(pieces[-1])
        if length >= chars:
            break
    return "".join(pieces)


def bound_output(value: Any) -> Any:
    """The value, or `{"truncated": true, "size_bytes": n, "preview": "..."}` when over 64 KiB.

    The size is added up and the preview encoded piece by piece: a 10 MiB output is never
    serialised whole just to be cut.
    """
    size = json_size(value)
    if size <= MAX_OUTPUT_BYTES:
        return value
    return {"truncated": True, "size_bytes": size, "preview": json_preview(value)}


def one_line(message: str, limit: int = MAX_ERROR_CHARS) -> str:
    """Errors users see are one line, bounded, and storable."""
    text = " ".join(str(message).replace("\x00", "\ufffd").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
