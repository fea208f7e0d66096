"""Keep decrypted credentials out of everything a run leaves behind (docs/workflows.md, Integrations).

A `Redactor` is built from the secret strings a run decrypted. It is applied to every step
output and error before they are stored, and (through `redacting_logs`) to every log record, so
an API that echoes the Authorization header, or an error that quotes a URL with an API key in
its query string, never writes the secret to Postgres or to the pod log.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, quote_plus

REDACTED = "[redacted]"


def _variants(secret: str) -> set[str]:
    """The forms a secret takes on the wire and in logs: raw, URL-encoded, JSON-escaped,
    repr()-escaped (Python and Jinja error messages), each also with its whitespace collapsed
    (errors are made one line before they are stored)."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1], repr(secret)[1:-1]}
    return forms | {" ".join(form.split()) for form in forms}


class Redactor:
    """Replaces every occurrence of the given secrets with `[redacted]`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        variants = {v for s in secrets if s for v in _variants(s) if v}
        # Longest first, so a secret containing another is replaced whole.
        ordered = sorted(variants, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def text(self, value: str) -> str:
        return self._pattern.sub(REDACTED, value) if self._pattern else value

    def value(self, value: Any) -> Any:
        """Redact every string inside JSON-shaped data (mapping keys included)."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value


_STANDARD_ATTRIBUTES = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message"}


class RedactingFilter(logging.Filter):
    """A handler filter that rewrites a record's message, extras and traceback."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redactor.text(record.getMessage())
        record.args = None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD_ATTRIBUTES and isinstance(value, str | dict | list | tuple):
                setattr(record, key, self.redactor.value(value))
        if record.exc_info:
            trace = logging.Formatter().formatException(record.exc_info)
            record.exception = self.redactor.text(trace)
            record.exc_info = None
            record.exc_text = None
        return True


@contextmanager
def redacting_logs(redactor: Redactor, logger: logging.Logger | None = None) -> Iterator[None]:
    """Redact every record that reaches the root logger's handlers while the block runs."""
    if not redactor:
        yield
        return
    handlers = list((logger or logging.getLogger()).handlers)
    log_filter = RedactingFilter(redactor)
    for handler in handlers:
        handler.addFilter(log_filter)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(log_filter)
