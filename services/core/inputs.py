"""Plain JSON values, checked the same way everywhere (docs/workflows.md, "Input limits").

The CLI, the dispatcher, the spawner (queue messages) and the runner all take JSON values from
outside; workflow definitions are JSON values too once their YAML is read. One check here means
a value the CLI accepts is one the spawner can store and the runner can run, and a bad value is
refused up front with one line naming the field — never stored, never a database error later:

* plain JSON only: objects with string keys, arrays, strings, booleans, null, numbers;
* numbers are finite (no NaN, Infinity, 1e999) and integers fit in 64 bits (Python would
  otherwise spend quadratic time on, or refuse with a traceback, integers of thousands of digits);
* strings are valid Unicode without NUL (Postgres JSONB cannot hold U+0000, and a lone surrogate
  cannot be encoded as UTF-8);
* nesting is at most 64 levels deep;
* the size, measured as compact UTF-8 JSON, is bounded (256 KiB for an input) — measured while
  walking the value, so a value that expands to gigabytes (a YAML alias bomb) is refused after
  reading just past the limit, not after serialising it whole.

Standard library only, so the runner imports it without cost.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from services.contract import MAX_INPUT_BYTES
from services.core.errors import UserError

MAX_DEPTH = 64
MIN_INTEGER = -(2**63)
MAX_INTEGER = 2**63 - 1
#: Digits accepted by the parser before the range check (2**63 has 19), so a 4,000-digit
#: integer is refused before Python converts it.
_MAX_INTEGER_DIGITS = 19
#: Longest number text accepted for a float: longer ones are surely not meant as a float.
_MAX_FLOAT_TEXT = 400


class InputError(UserError):
    """A value that is not plain, bounded JSON; `field` names where it came from."""


class _Refused(Exception):
    """Raised inside the JSON parser's hooks; turned into an InputError naming the field."""


def _parse_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > _MAX_INTEGER_DIGITS:
        raise _Refused(f"has an integer of {digits} digits; integers must fit in 64 bits")
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > _MAX_FLOAT_TEXT:
        raise _Refused(f"has a number written with {len(text)} characters")
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"has a number out of range ({text[:40]})")
    return value


def _parse_constant(text: str) -> Any:
    raise _Refused(f"has {text}, which is not a JSON number (numbers must be finite)")


def _describe_limit(limit: int) -> str:
    return f"{limit} ({limit // 1024} KiB)" if limit % 1024 == 0 else f"{limit} bytes"


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character (U+0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (not valid Unicode)"
    return None


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _step(part: str | int) -> str:
    if isinstance(part, int):
        return f"[{part}]"
    if _PLAIN_KEY.fullmatch(part):
        return f".{part}"
    return f"[{json.dumps(part[:40])}]"  # quoted and escaped: a key may hold a newline


def _where(field: str, path: list[str | int]) -> str:
    """`input.a[2].b`; without a field, just the path (`a[2].b`)."""
    where = field + "".join(_step(p) for p in path)
    return where if field else where.lstrip(".")


def measure_json(
    value: Any,
    field: str = "value",
    max_bytes: int | None = None,
    max_depth: int = MAX_DEPTH,
    strict: bool = True,
) -> int:
    """Check that `value` is plain, bounded JSON and return its compact UTF-8 JSON size.

    Walks the value iteratively, adding up the bytes it would take; stops as soon as the size
    passes `max_bytes` (so huge values cost only the bytes up to the limit). With `strict`
    (the default) every rule of the module docstring is enforced and a breach raises
    InputError naming `field` and the path inside the value.
    """
    size = 0
    # A stack of (value, path, depth); containers push their children in reverse order.
    stack: list[tuple[Any, list[str | int], int]] = [(value, [], 1)]
    while stack:
        item, path, depth = stack.pop()
        where = _where(field, path)
        if item is None or isinstance(item, bool):
            size += 4 if item is not False else 5
        elif isinstance(item, int):
            if not MIN_INTEGER <= item <= MAX_INTEGER:
                raise InputError(where, "is an integer that does not fit in 64 bits")
            size += len(str(item))
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise InputError(where, f"is {item}, which is not a JSON number (numbers must be finite)")
            if not MIN_INTEGER <= item <= MAX_INTEGER:
                # Postgres keeps JSON numbers exactly: 1e20 comes back as the integer 100000000000000000000,
                # which every later reader (the spawner's message, the runner) would then refuse.
                raise InputError(where, f"is {item!r}, beyond what a 64-bit integer holds (numbers are stored exactly)")
            size += len(repr(item))
        elif isinstance(item, str):
            problem = _text_problem(item) if strict else None
            if problem:
                raise InputError(where, problem)
            size += len(json.dumps(item, ensure_ascii=False).encode("utf-8", "surrogatepass"))
        elif isinstance(item, dict | list):
            if depth > max_depth:
                raise InputError(where, f"is nested more than {max_depth} levels deep")
            size += 2 + max(len(item) - 1, 0)  # brackets and commas
            if isinstance(item, dict):
                children: list[tuple[Any, list[str | int], int]] = []
                for key, child in item.items():
                    if not isinstance(key, str):
                        raise InputError(f"{where}", f"has a key {str(key)[:40]!r} that is not a string")
                    problem = _text_problem(key)
                    if problem:
                        raise InputError(where, f"has a key that {problem}")
                    size += len(json.dumps(key, ensure_ascii=False).encode("utf-8", "surrogatepass")) + 1
                    children.append((child, [*path, key], depth + 1))
                stack.extend(reversed(children))
            else:
                stack.extend((child, [*path, i], depth + 1) for i, child in reversed(list(enumerate(item))))
        else:
            raise InputError(where, f"is a {type(item).__name__}, which is not a JSON value")
        if max_bytes is not None and size > max_bytes:
            limit = _describe_limit(max_bytes)
            raise InputError(field, f"is more than {max_bytes} bytes as JSON; the limit is {limit}")
    return size


def json_size(value: Any) -> int:
    """Bytes of `value` as compact JSON in UTF-8 (non-ASCII text is not inflated by escapes)."""
    return measure_json(value)


def check_json(value: Any, field: str = "value", max_bytes: int | None = None) -> Any:
    """`value` if it is plain, bounded JSON (see the module docstring); InputError otherwise."""
    measure_json(value, field, max_bytes)
    return value


def loads(text: str | bytes, field: str = "value", max_bytes: int | None = None) -> Any:
    """Parse JSON text under the rules above; raises InputError naming `field`, never a traceback."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as error:
            raise InputError(field, f"is not valid UTF-8 (byte {error.start})") from None
    problem = _text_problem(text.replace("\x00", ""))
    if problem:  # e.g. invalid UTF-8 on the command line, decoded with surrogateescape
        raise InputError(field, "is not valid UTF-8")
    if max_bytes is not None and len(text.encode()) > max_bytes:
        raise InputError(field, f"is {len(text.encode())} bytes; the limit is {_describe_limit(max_bytes)}")
    try:
        value = json.loads(
            text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant
        )
    except _Refused as refused:
        raise InputError(field, str(refused)) from None
    except json.JSONDecodeError as error:
        raise InputError(field, f"is not valid JSON ({error.msg} at position {error.pos})") from None
    except RecursionError:
        raise InputError(field, f"is nested more than {MAX_DEPTH} levels deep") from None
    return check_json(value, field, max_bytes)


def check_input(value: Any, field: str = "input") -> dict[str, Any]:
    """A run's input: a JSON object of at most 256 KiB, under the rules above."""
    if not isinstance(value, dict):
        raise InputError(field, f"must be a JSON object, got {type(value).__name__}")
    return check_json(value, field, MAX_INPUT_BYTES)


def parse_input(text: str | None, field: str = "input") -> dict[str, Any]:
    """Parse an input given as JSON text; None means an empty object."""
    if text is None:
        return {}
    return check_input(loads(text, field, MAX_INPUT_BYTES), field)
