"""Run inputs: a JSON object of at most 256 KiB (README, CLI)."""

from __future__ import annotations

import json
from typing import Any

from services.core.errors import UserError
from services.core.messages import MAX_INPUT_BYTES


def check_input(value: Any, field: str = "input") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UserError(field, "must be a JSON object")
    size = len(json.dumps(value, separators=(",", ":")).encode())
    if size > MAX_INPUT_BYTES:
        raise UserError(field, f"is {size} bytes; the limit is {MAX_INPUT_BYTES} (256 KiB)")
    return value


def parse_input(text: str | None, field: str = "input") -> dict[str, Any]:
    """Parse `--input JSON`; None means an empty object."""
    if text is None:
        return {}
    if len(text.encode()) > MAX_INPUT_BYTES:
        raise UserError(field, f"is {len(text.encode())} bytes; the limit is {MAX_INPUT_BYTES} (256 KiB)")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(field, f"not valid JSON ({exc.msg} at position {exc.pos})") from None
    return check_input(value, field)
