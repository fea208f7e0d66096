"""Requests refused before any route, authentication or parsing runs.

A body larger than MAX_BODY_BYTES would otherwise be read into memory and parsed before the
caller is even known (a 200 MB POST without a token cost the server half a gigabyte), and a NUL
character in the path or query reaches Postgres, which refuses it with an error the routes
would report as a server fault. Both are answered here, in the API's JSON error shape.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote_to_bytes

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The largest request body accepted: a workflow definition or an input (256 KiB) with room to spare.
MAX_BODY_BYTES = 2 * 1024 * 1024
#: A chunked body is read in at most this many parts (each may be empty).
MAX_BODY_MESSAGES = 100_000


def refusal(scope: Scope) -> tuple[int, str, str] | None:
    """(status, field, message) when the request's head alone is reason to refuse it (pure)."""
    if b"\x00" in unquote_to_bytes(scope.get("raw_path") or scope.get("path", "").encode()):
        return 400, "path", "contains a NUL character"
    if b"\x00" in unquote_to_bytes(scope.get("query_string", b"")):
        return 400, "query", "contains a NUL character"
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                return 400, "content-length", "is not a number"
            if length > MAX_BODY_BYTES:
                return 413, "body", f"is larger than {MAX_BODY_BYTES} bytes"
    return None


async def _answer(send: Send, status: int, field: str, message: str) -> None:
    body = json.dumps({"error": {"field": field, "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """ASGI middleware: refuses what `refusal` names, and reads a body sent without a
    Content-Length (chunked) up to MAX_BODY_BYTES before the application sees any of it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = refusal(scope)
        if refused is not None:
            await _answer(send, *refused)
            return
        if any(name == b"content-length" for name, _ in scope.get("headers", [])):
            await self.app(scope, receive, send)  # the server reads no more than it announces
            return
        chunks: list[bytes] = []
        size = 0
        for _ in range(MAX_BODY_MESSAGES):
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                await _answer(send, 413, "body", f"is larger than {MAX_BODY_BYTES} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        else:
            await _answer(send, 413, "body", f"comes in more than {MAX_BODY_MESSAGES} parts")
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
