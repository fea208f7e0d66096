"""Where `wfctl local up` keeps its state: a folder of the working tree (ignored by git).

The embedded Postgres data, the encryption key, the queue contents saved at shutdown and the
environment other `wfctl` commands need all live there, so a restart resumes.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

DEFAULT_STATE_DIR = Path(".local")


@dataclass(frozen=True)
class LocalState:
    root: Path

    @property
    def pgdata(self) -> Path:
        return self.root / "pgdata"

    @property
    def env_file(self) -> Path:
        return self.root / "env.json"

    @property
    def queue_snapshot(self) -> Path:
        return self.root / "queue-snapshot.json"

    @property
    def key_file(self) -> Path:
        return self.root / "encryption.key"

    def prepare(self, reset: bool) -> None:
        if reset and self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True, exist_ok=True)

    def encryption_key(self) -> str:
        """The local Fernet key, created on first use and kept across restarts."""
        if not self.key_file.exists():
            self.key_file.write_text(base64.urlsafe_b64encode(os.urandom(32)).decode())
            self.key_file.chmod(0o600)
        return self.key_file.read_text().strip()

    def write_env(self, env: dict[str, str]) -> None:
        self.env_file.write_text(json.dumps(env, indent=2, sort_keys=True))
        self.env_file.chmod(0o600)

    def read_env(self) -> dict[str, str]:
        return dict(json.loads(self.env_file.read_text()))
