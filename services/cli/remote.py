"""Remote wfctl: with WFCTL_API_URL and WFCTL_TOKEN set, operator commands go through the API.

Operators then never hold DATABASE_URL or queue credentials; their token's role decides what
they may do, and the server records each change under the token's name. API errors come back
as the same one-line `error: field: message` (exit 2) as local ones.
"""

from __future__ import annotations

from typing import Any

import httpx

from services.core.errors import NotFoundError, UserError
from services.core.settings import Settings

TIMEOUT_SECONDS = 30.0


class ApiUnreachable(Exception):
    """The API did not answer (refused, timed out, TLS): a service error, exit status 1."""


class RemoteApi:
    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}", "User-Agent": "wfctl"},
            timeout=TIMEOUT_SECONDS,
        )

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.client.request(method, f"/api/v1{path}", **kwargs)
        except httpx.TransportError as error:
            raise ApiUnreachable(f"cannot reach the API at {self.base_url} ({type(error).__name__}: {error})") from None
        if response.status_code >= 400:
            raise _error(response)
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def pages(self, path: str, limit: int, page_size: int, **params: Any) -> list[Any]:
        """Up to `limit` items of a paginated list (`items`, `next_cursor`), a page at a time."""
        items: list[Any] = []
        cursor = None
        while len(items) < limit:
            page = self.get(path, limit=min(page_size, limit - len(items)), cursor=cursor, **params)
            items.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor or not page["items"]:
                break
        return items[:limit]


def _error(response: httpx.Response) -> UserError:
    try:
        error = response.json()["error"]
        field, message = error.get("field"), str(error.get("message"))
    except (ValueError, KeyError, TypeError, AttributeError):
        field, message = None, f"HTTP {response.status_code} from the API"
    if response.status_code in (401, 403):
        return UserError("WFCTL_TOKEN", message)
    if response.status_code == 404:
        return NotFoundError(field or "api", message)
    return UserError(field or "api", message)


def remote_api(env: dict[str, str] | None = None) -> RemoteApi | None:
    """The API to use instead of the database, or None when WFCTL_API_URL is not set."""
    settings = Settings.from_env(env)
    url, token = settings.api_url, settings.api_token
    if not url:
        return None
    if not url.startswith(("http://", "https://")):
        raise UserError("WFCTL_API_URL", f"{url!r} is not an http:// or https:// URL")
    if not token:
        raise UserError("WFCTL_TOKEN", "is not set (WFCTL_API_URL is; create one with `wfctl tokens create`)")
    return RemoteApi(url, token)
