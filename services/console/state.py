"""What every request handler of the console shares: settings, the database, queues, signing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from services.console.auth import SessionSigner
from services.core.db.session import session_scope
from services.core.queue import Queue, sqs_client
from services.core.settings import ConsoleSettings


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def to_json(data: Any, indent: int | None = None) -> str:
    return json.dumps(data, default=_default, indent=indent, ensure_ascii=False)


class ApiJSON(JSONResponse):
    """JSON with UTC times as `…Z` and UUIDs as strings, like `wfctl --output json`."""

    def render(self, content: Any) -> bytes:
        return to_json(content).encode()


def error_body(field: str | None, message: str) -> dict[str, Any]:
    return {"error": {"field": field, "message": message}}


@dataclass
class ConsoleState:
    settings: ConsoleSettings
    database_url: str
    signer: SessionSigner

    @contextmanager
    def db(self) -> Iterator[Session]:
        with session_scope(self.database_url) as session:
            yield session

    def work_queue(self) -> Queue:
        platform = self.settings.platform
        return Queue(sqs_client(platform.aws_region, platform.aws_endpoint_url), platform.require_queue_url())

    def dead_letter_queue(self) -> Queue:
        platform = self.settings.platform
        return Queue(sqs_client(platform.aws_region, platform.aws_endpoint_url), platform.require_dlq_url())


def state_of(request: Request) -> ConsoleState:
    return request.app.state.console  # type: ignore[no-any-return]
