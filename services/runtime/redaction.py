"""Keep decrypted credentials out of everything a run leaves behind (docs/workflows.md, Integrations).

A `Redactor` is built from the secret strings a run decrypted. It is applied to every step
output and error before they are stored, and (through `redacting_logs`) to every log record, so
an API that echoes the Authorization header, or an error that quotes a URL with an API key in
its query string, never writes the secret to Postgres or to the pod log.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, quote_plus

REDACTED = "[redacted]"

#: Escapes whose hex digits a server may write in either case (`%2f` / `%2F`, `\u00e9` / `\u00E9`).
_HEX_ESCAPE = re.compile(r"(%[0-9A-Fa-f]{2}|\\u[0-9A-Fa-f]{4})")


def _url_forms(secret: str) -> set[str]:
    """URL encodings: quote() and quote_plus(), with and without `/` kept, then each encoded
    again (double encoding). Hex case is handled by the pattern, not listed here."""
    once = {quote(secret, safe=""), quote(secret), quote_plus(secret), quote_plus(secret, safe="/")}
    lower_hex = {re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), form) for form in once}
    twice = {quote(form, safe="") for form in once | lower_hex}
    return once | twice


def _json_forms(secret: str) -> set[str]:
    """JSON string escapes: ASCII-only (`\\u00e9`) and raw UTF-8, each also with `/` written `\\/`,
    and the HTML-safe variant that escapes `<`, `>` and `&` as `\\u003c`… (Go, some frameworks)."""
    forms = {json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    forms |= {f.replace("/", "\\/") for f in forms}
    html_safe = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}
    forms |= {"".join(html_safe.get(c, c) for c in f) for f in forms}
    return forms


def _base64_forms(secret: str) -> set[str]:
    """base64 of the secret alone: standard and URL-safe alphabets, with and without padding."""
    raw = secret.encode("utf-8", "surrogatepass")
    forms = {base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}
    return forms | {f.rstrip("=") for f in forms}


def _html_forms(secret: str) -> set[str]:
    """HTML escapes: `html.escape` with and without quotes, and `'` as `&#39;` or `&#x27;`."""
    forms = {html.escape(secret), html.escape(secret, quote=False)}
    return forms | {f.replace("&#x27;", "&#39;") for f in forms}


def _variants(secret: str) -> set[str]:
    """Every form of a secret promised in docs/workflows.md ("What is redacted"): raw, URL-encoded,
    double URL-encoded, JSON-escaped, base64, HTML-escaped, and repr()-escaped (Python and Jinja
    error messages), each also with its whitespace collapsed (errors are made one line before
    they are stored)."""
    forms = {secret, repr(secret)[1:-1]}
    forms |= _url_forms(secret) | _json_forms(secret) | _base64_forms(secret) | _html_forms(secret)
    return forms | {" ".join(form.split()) for form in forms}


def _any_hex_case(form: str) -> str:
    """A regex for `form` in which every %XX and \\uXXXX escape matches in either case."""
    parts = []
    for index, part in enumerate(_HEX_ESCAPE.split(form)):
        if index % 2:
            prefix = 1 if part.startswith("%") else 2
            digits = "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in part[prefix:])
            parts.append(re.escape(part[:prefix]) + digits)
        else:
            parts.append(re.escape(part))
    return "".join(parts)


class Redactor:
    """Replaces every occurrence of the given secrets with `[redacted]`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        variants = {v for s in secrets if s for v in _variants(s) if v}
        # Longest first, so a secret containing another is replaced whole.
        ordered = sorted(variants, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(_any_hex_case, ordered))) if ordered else None

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
