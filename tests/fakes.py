"""Stand-ins for an execution and its workflow: the two fields the Job builder reads from each."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FakeExecution:
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    input: dict[str, Any] = field(default_factory=lambda: {"who": "world"})


@dataclass
class FakeWorkflow:
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    timeout_seconds: int = 120
