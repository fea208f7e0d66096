"""Integration storage: named credentials, encrypted at rest (docs/workflows.md, Integrations).

Only the credential type is stored in clear; the rest is one authenticated ciphertext. Nothing
here ever returns a secret to a listing.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.core import audit
from services.core.credentials import Credential, seal, unseal
from services.core.crypto import Keyring
from services.core.db.models import Integration
from services.core.errors import NotFoundError, UserError

NAME = re.compile(r"[a-z0-9]([a-z0-9._-]{0,251}[a-z0-9])?")


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise UserError("name", "must be lowercase letters, digits, '.', '_' or '-' (at most 253)")
    return name


def set_integration(
    session: Session, name: str, credential: Credential, keyring: Keyring, *, actor: str = audit.SYSTEM_ACTOR
) -> bool:
    """Create or replace an integration; returns True when it was created."""
    check_name(name)
    existing = session.scalar(select(Integration).where(Integration.name == name).with_for_update())
    ciphertext = seal(credential, keyring)
    if existing is None:
        session.add(Integration(name=name, type=credential["type"], ciphertext=ciphertext))
        session.flush()
        audit.record(session, actor, "integration.create", "integration", name, {"type": credential["type"]})
        return True
    existing.type = credential["type"]
    existing.ciphertext = ciphertext
    existing.updated_at = datetime.now(UTC)
    audit.record(session, actor, "integration.update", "integration", name, {"type": credential["type"]})
    return False


def list_integrations(session: Session) -> list[dict[str, Any]]:
    """Name, type and timestamps; never the credential."""
    rows = session.scalars(select(Integration).order_by(Integration.name))
    return [
        {"name": r.name, "type": r.type, "created_at": r.created_at, "updated_at": r.updated_at}
        for r in rows
    ]


def read_integration(session: Session, name: str, keyring: Keyring) -> Credential:
    row = session.scalar(select(Integration).where(Integration.name == name))
    if row is None:
        raise NotFoundError("integration", f"no integration named {name!r}")
    return unseal(row.ciphertext, keyring, name)


def rotate_key(session: Session, keyring: Keyring, *, actor: str = audit.SYSTEM_ACTOR) -> int:
    """Re-encrypt every integration under the first key; returns how many.

    All rows or none: one that no key decrypts raises before anything is committed.
    """
    rows = list(session.scalars(select(Integration).order_by(Integration.name).with_for_update()))
    now = datetime.now(UTC)
    for row in rows:
        row.ciphertext = keyring.rotate(bytes(row.ciphertext), what=f"integration {row.name!r}")
        row.updated_at = now
    session.flush()
    audit.record(session, actor, "integration.rotate_key", "integration", "*", {"count": len(rows)})
    return len(rows)
