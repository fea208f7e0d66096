"""Durations people write in workflow and schedule files: `2m`, `90s`, `1h30m`, `1d` (no I/O)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from services.core.errors import UserError

DURATION = re.compile(r"^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?\s*$")
MIN_DURATION = timedelta(seconds=1)
MAX_DURATION = timedelta(days=30)


def parse_duration(value: Any, field: str) -> timedelta:
    """`2m`, `90s`, `1h30m`, `1d`, or a bare number of minutes; between 1 s and 30 days."""
    hint = "must be a duration such as 2m, 90s or 1h30m"
    if isinstance(value, bool):
        raise UserError(field, hint)
    if isinstance(value, int | float):
        duration = timedelta(minutes=value)
    elif isinstance(value, str) and value.strip():
        text = value.strip().lower()
        if text.isdigit():
            duration = timedelta(minutes=int(text))
        else:
            match = DURATION.match(text)
            if match is None or not any(match.groups()):
                raise UserError(field, f"{value!r} is not a duration such as 2m, 90s or 1h30m")
            days, hours, mins, secs = (int(part or 0) for part in match.groups())
            duration = timedelta(days=days, hours=hours, minutes=mins, seconds=secs)
    else:
        raise UserError(field, hint)
    if not MIN_DURATION <= duration <= MAX_DURATION:
        raise UserError(field, "must be between 1s and 30d")
    return duration
