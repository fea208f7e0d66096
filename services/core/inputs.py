"""Run inputs: a JSON object of at most 256 KiB, checked the same way everywhere.

The CLI, the dispatcher and the runner all take inputs; one check here means a value the CLI
accepts is one the runner accepts (the size is measured as compact UTF-8 JSON in both).
Standard library only, so the runner imports it without cost.
"""

from __future__ import annotations

import json
from typing import Any

from services.contract import MAX_INPUT_BYTES
from services.core.errors import UserError


class InputError(UserError):
    """An input that is not a JSON object of at most 256 KiB; `field` names where it came from."""


def json_size(value: Any) -> int:
    """Bytes of `value` as compact JSON in UTF-8 (non-ASCII text is not inflated by escapes)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def _too_large(size: int) -> str:
    return f"is {size} bytes; the limit is {MAX_INPUT_BYTES} (256 KiB)"


def check_input(value: Any, field: str = "input") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError(field, f"must be a JSON object, got {type(value).__name__}")
    size = json_size(value)
    if size > MAX_INPUT_BYTES:
        raise InputError(field, _too_large(size))
    return value


def parse_input(text: str | None, field: str = "input") -> dict[str, Any]:
    """Parse an input given as JSON text; None means an empty object."""
    if text is None:
        return {}
    size = len(text.encode())
    if size > MAX_INPUT_BYTES:
        raise InputError(field, _too_large(size))
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(field, f"is not valid JSON ({error.msg} at position {error.pos})") from None
    return check_input(value, field)
