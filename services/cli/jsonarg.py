"""JSON-taking options also take `@FILE` and `-` (standard input) (SPEC §6).

A shell argument cannot carry 256 KiB of input; a file or a pipe can.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from services.core.errors import UserError


def read_standard_input(field: str) -> str:
    """All of standard input as text, for an option given as `-`; a one-line error naming
    `field` when it cannot be read (closed, not UTF-8)."""
    try:
        return sys.stdin.read()
    except UnicodeDecodeError:  # before ValueError, of which it is a kind
        raise UserError(field, "standard input is not UTF-8 text") from None
    except (OSError, ValueError) as exc:  # not readable, or closed (ValueError)
        raise UserError(field, f"cannot read standard input: {exc}") from None


def read_json_argument(value: str | None, field: str) -> str | None:
    """The JSON text an option names: itself, the contents of `@FILE`, or stdin for `-`."""
    if value is None:
        return None
    if value == "-":
        return read_standard_input(field)
    if value.startswith("@"):
        path = Path(value[1:])
        try:
            return path.read_text()
        except OSError as exc:
            raise UserError(field, f"cannot read {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise UserError(field, f"{path} is not UTF-8 text") from None
    return value


MAX_OPTION_BYTES = 256 * 1024


def parse_json_option(value: str | None, field: str) -> Any:
    """An option's JSON value (text, `@FILE` or `-`); None stays None."""
    text = read_json_argument(value, field)
    if text is None:
        return None
    if len(text.encode()) > MAX_OPTION_BYTES:
        raise UserError(field, f"is larger than {MAX_OPTION_BYTES} bytes")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(field, f"is not valid JSON ({exc.msg} at position {exc.pos})") from None
