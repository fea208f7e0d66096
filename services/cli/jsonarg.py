"""JSON-taking options also take `@FILE` and `-` (standard input) (SPEC §6).

A shell argument cannot carry 256 KiB of input; a file or a pipe can.
"""

from __future__ import annotations

import sys
from pathlib import Path

from services.core.errors import UserError


def read_json_argument(value: str | None, field: str) -> str | None:
    """The JSON text an option names: itself, the contents of `@FILE`, or stdin for `-`."""
    if value is None:
        return None
    if value == "-":
        return sys.stdin.read()
    if value.startswith("@"):
        path = Path(value[1:])
        try:
            return path.read_text()
        except OSError as exc:
            raise UserError(field, f"cannot read {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise UserError(field, f"{path} is not UTF-8 text") from None
    return value
