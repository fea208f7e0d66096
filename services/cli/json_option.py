"""Reading a JSON option the way every `wfctl` JSON option reads (SPEC §6): text, `@FILE` or `-`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from services.core.errors import UserError

MAX_OPTION_BYTES = 256 * 1024


def read_option_text(text: str, field: str) -> str:
    if text == "-":
        return sys.stdin.read()
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            return path.read_text()
        except OSError as exc:
            raise UserError(field, f"cannot read {path}: {exc.strerror}") from None
    return text


def parse_json_option(text: str | None, field: str) -> Any:
    """None stays None; otherwise JSON (one line naming the field when it is not)."""
    if text is None:
        return None
    raw = read_option_text(text, field)
    if len(raw.encode()) > MAX_OPTION_BYTES:
        raise UserError(field, f"is larger than {MAX_OPTION_BYTES} bytes")
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise UserError(field, f"not valid JSON ({exc.msg} at position {exc.pos})") from None
