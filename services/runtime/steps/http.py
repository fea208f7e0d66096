"""`http`: one HTTP request; output `{status, headers, body}` (body parsed when JSON).

`with`: `method` (GET), `url`, `headers`, `query`, `json` or `body`, `timeout_seconds` (30),
`expect_status` (list; default any 2xx). Every request carries an `Idempotency-Key` header
(stable across the step's attempts and the run's retries). `query` and a query credential are
merged into the URL's own query string (a key given in both takes the later value).
`timeout_seconds` bounds the whole request — connecting, redirects, headers and body — so a
server trickling bytes cannot hold the step past it. With `integration: NAME` the request authenticates
with that credential: bearer → `Authorization: Bearer …`, basic → `Authorization: Basic …`,
header → the named header, query → the named query parameter.

Every request, redirects included, passes the network policy (`netguard`) first; a `header`
credential is dropped when a redirect leaves the URL's origin (as httpx does for Authorization).
The response body is read in chunks up to 10 MiB, checking for cancellation between chunks; a
compressed body is inflated piece by piece against the same limit (so a small gzip "bomb" never
expands in memory).
"""

from __future__ import annotations

import base64
import json
import re
import socket
import threading
import zlib
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from services.core.credentials import secret_values
from services.runtime.netguard import NetworkPolicyError, check_url
from services.runtime.redaction import Redactor
from services.runtime.steps.base import StepContext, StepError

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
DEFAULT_TIMEOUT_SECONDS = 30.0
MAX_REDIRECTS = 5
MAX_RESPONSE_BYTES = 10 * 1024 * 1024
BODY_SNIPPET_CHARS = 200
INFLATE_PIECE_BYTES = 64 * 1024
# Codings inflated here (httpx's own decoding is bypassed: it inflates a whole network chunk at
# once, ~1000x for gzip and without bound for stacked codings). Others are passed through as is.
ACCEPT_ENCODING = "gzip, deflate"
#: Sent on every request (unless `with.headers` sets it): the same value for every attempt of
#: the step and every retry of the run, so the server can tell a repeat from a new request.
IDEMPOTENCY_HEADER = "Idempotency-Key"

#: An HTTP header name (RFC 9110 token), matched whole: a name ending in a newline is refused.
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class TotalDeadline:
    """Ends a request when its whole time is up, wherever it is blocked.

    httpx's timeouts bound each connect, write and read; a server sending a byte every few
    seconds satisfies every one of them forever. A timer shuts down the request's sockets
    (captured through httpcore's `trace` extension) at the deadline: a blocked read returns at
    once, and the step fails as timed out.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = threading.Event()
        self._streams: list[Any] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self.expire)
        self._timer.daemon = True

    def __enter__(self) -> TotalDeadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's trace hook: remember every connection's network stream."""
        if event.endswith(("connect_tcp.complete", "start_tls.complete")) and info.get("return_value"):
            with self._lock:
                self._streams.append(info["return_value"])
            if self.expired.is_set():
                self._shutdown(info["return_value"])

    def expire(self) -> None:
        self.expired.set()
        with self._lock:
            streams = list(self._streams)
        for stream in streams:
            self._shutdown(stream)

    @staticmethod
    def _shutdown(stream: Any) -> None:
        sock = stream.get_extra_info("socket")
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def apply_credential(
    credential: Mapping[str, str] | None, headers: dict[str, str], query: dict[str, Any]
) -> None:
    """Add the integration's authentication to the request's headers or query (in place)."""
    if credential is None:
        return
    kind = credential["type"]
    if kind == "bearer":
        headers["Authorization"] = f"Bearer {credential['token']}"
    elif kind == "basic":
        pair = f"{credential['username']}:{credential['password']}".encode()
        headers["Authorization"] = f"Basic {base64.b64encode(pair).decode()}"
    elif kind == "header":
        headers[credential["name"]] = credential["value"]
    elif kind == "query":
        query[credential["name"]] = credential["value"]
    else:
        raise StepError(f"unsupported credential type {kind!r}")


RequestParts = tuple[str, str, dict[str, str], dict[str, Any], float, list[int] | None]


def _request_parts(params: Mapping[str, Any]) -> RequestParts:
    method = str(params.get("method") or "GET").upper()
    if method not in METHODS:
        raise StepError(f"with.method must be one of {', '.join(sorted(METHODS))}, got {method!r}")
    url = params.get("url")
    if not isinstance(url, str) or not url:
        raise StepError("with.url must be a non-empty string")
    headers = params.get("headers") or {}
    query = params.get("query") or {}
    if not isinstance(headers, Mapping) or not isinstance(query, Mapping):
        raise StepError("with.headers and with.query must be mappings")
    if "json" in params and "body" in params:
        raise StepError("give either with.json or with.body, not both")
    try:
        timeout = float(params.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS))
    except (TypeError, ValueError):
        raise StepError("with.timeout_seconds must be a number") from None
    expect = params.get("expect_status")
    if expect is not None and (not isinstance(expect, list) or not all(isinstance(s, int) for s in expect)):
        raise StepError("with.expect_status must be a list of status codes")
    if not 0 < timeout <= 3600:
        raise StepError("with.timeout_seconds must be more than 0 and at most 3600")
    for name in headers:
        if not HEADER_NAME.fullmatch(str(name)):
            raise StepError(f"with.headers: {str(name)[:80]!r} is not a valid HTTP header name")
    return method, url, {str(k): str(v) for k, v in headers.items()}, dict(query), timeout, expect


def merged_url(url: str, query: Mapping[str, Any]) -> httpx.URL:
    """The URL with `query` merged into its own query string (httpx's `params=` replaces it)."""
    parsed = httpx.URL(url)
    return parsed.copy_merge_params(dict(query)) if query else parsed


def _decode_body(response: httpx.Response, content: bytes) -> Any:
    text = content.decode(response.encoding or "utf-8", errors="replace")
    if "json" in response.headers.get("content-type", "").lower():
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _inflate(chunks: Iterator[bytes], coding: str) -> Iterator[bytes]:
    """Inflate a gzip or deflate stream in pieces of at most INFLATE_PIECE_BYTES."""
    decompressor = None
    for chunk in chunks:
        if not chunk:
            continue
        if decompressor is None:
            # deflate is zlib-wrapped by the standard, raw by some servers (httpx accepts both).
            zlib_header = len(chunk) >= 2 and chunk[0] & 0x0F == 8 and (chunk[0] << 8 | chunk[1]) % 31 == 0
            wbits = zlib.MAX_WBITS | 16 if coding != "deflate" else zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS
            decompressor = zlib.decompressobj(wbits)
        data = chunk
        while True:
            try:
                piece = decompressor.decompress(data, INFLATE_PIECE_BYTES)
            except zlib.error as error:
                raise StepError(f"response body is not valid {coding}: {error}") from None
            if piece:
                yield piece
            data = decompressor.unconsumed_tail
            if not data and len(piece) < INFLATE_PIECE_BYTES:
                break
    if decompressor is not None:
        rest = decompressor.flush()
        if rest:
            yield rest


def _decoded_chunks(response: httpx.Response) -> Iterator[bytes]:
    """The body as sent, with its gzip/deflate content codings undone (last applied, first undone)."""
    chunks: Iterator[bytes] = response.iter_raw()
    codings = [c.strip().lower() for c in response.headers.get("content-encoding", "").split(",")]
    for coding in reversed(codings):
        if coding in ("gzip", "x-gzip", "deflate"):
            chunks = _inflate(chunks, coding)
    return chunks


def _read_limited(response: httpx.Response, context: StepContext, deadline: TotalDeadline | None = None) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in _decoded_chunks(response):
        context.check_cancelled()
        if deadline is not None and deadline.expired.is_set():
            raise httpx.ReadTimeout("total deadline passed")
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise StepError(f"response body exceeds {MAX_RESPONSE_BYTES // (1024 * 1024)} MiB")
        chunks.append(chunk)
    return b"".join(chunks)


def _where(url: httpx.URL) -> str:
    """The URL without its query string (which may hold an API key)."""
    return f"{url.scheme}://{url.host}{':' + str(url.port) if url.port else ''}{url.path}"


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


class HttpStep:
    def run(self, params: Mapping[str, Any], context: StepContext) -> dict[str, Any]:
        method, raw_url, headers, query, timeout, expect = _request_parts(params)
        if context.idempotency_key and not any(k.lower() == IDEMPOTENCY_HEADER.lower() for k in headers):
            headers[IDEMPOTENCY_HEADER] = context.idempotency_key
        apply_credential(context.credential, headers, query)
        try:
            url = merged_url(raw_url, query)
        except (httpx.InvalidURL, TypeError) as error:
            raise StepError(f"with.url is not a valid URL: {error}") from None
        credential = context.credential
        credential_header = credential["name"] if credential and credential["type"] == "header" else None
        origin = _origin(url)

        def guard(request: httpx.Request) -> None:
            context.check_cancelled()
            try:
                check_url(str(request.url), context.deny_private_networks)
            except NetworkPolicyError as error:
                raise StepError(str(error)) from None
            if credential_header and _origin(request.url) != origin:
                request.headers.pop(credential_header, None)

        guard(httpx.Request(method, url))
        body: dict[str, Any] = {}
        if "json" in params:
            body["json"] = params["json"]
        elif "body" in params:
            body["content"] = str(params["body"]).encode()
        deadline = TotalDeadline(timeout)
        try:
            with deadline, httpx.Client(
                timeout=timeout,
                follow_redirects=True,
                max_redirects=MAX_REDIRECTS,
                trust_env=False,
                headers={"Accept-Encoding": ACCEPT_ENCODING},
                event_hooks={"request": [guard]},
            ) as client:
                extensions = {"trace": deadline.trace}
                with client.stream(method, url, headers=headers, extensions=extensions, **body) as response:
                    content = _read_limited(response, context, deadline)
        except StepError:
            raise
        except httpx.HTTPError as error:
            if isinstance(error, httpx.TimeoutException) or deadline.expired.is_set():
                raise StepError(f"{method} {_where(url)} timed out after {timeout:g}s", kind="timeout") from None
            raise StepError(f"{method} {_where(url)} failed: {type(error).__name__}: {error}") from None
        output = {
            "status": response.status_code,
            "headers": dict(response.headers.items()),
            "body": _decode_body(response, content),
        }
        ok = response.status_code in expect if expect else 200 <= response.status_code < 300
        if not ok:
            # Redact before cutting: a secret straddling the cut would otherwise leave its start.
            redact = Redactor(secret_values(context.credential) if context.credential else ())
            snippet = redact.text(content.decode("utf-8", errors="replace"))[:BODY_SNIPPET_CHARS]
            wanted = ", ".join(map(str, expect)) if expect else "2xx"
            raise StepError(
                f"{method} {_where(response.request.url)} returned {response.status_code} "
                f"(expected {wanted}): {snippet}",
                output=output,
            )
        return output
