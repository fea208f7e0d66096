"""API tokens with roles (SPEC §9): created once, stored hashed, revocable.

A token is `wfr_` + 43 URL-safe characters (256 random bits). Only its SHA-256 is stored: with
that much entropy a fast hash is as safe as a slow one, and lookup stays one indexed query.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.core import audit
from services.core.db.models import ApiToken, Role
from services.core.errors import ConflictError, NotFoundError, UserError

PREFIX = "wfr_"
NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._@:-]{0,251}[A-Za-z0-9])?$")
#: `last_used_at` is written at most this often per token, so reads do not become writes.
LAST_USED_RESOLUTION = timedelta(minutes=1)
ROLE_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise UserError("role", f"{role!r} is not one of {', '.join(r.value for r in Role)}") from None


def allows(role: str, needed: Role) -> bool:
    """A role includes every role ranked below it (admin ⊃ operator ⊃ viewer)."""
    return ROLE_RANK[Role(role)] >= ROLE_RANK[needed]


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's name (or a proxy user) and the role it carries."""

    name: str
    role: Role
    actor: str

    def can(self, needed: Role) -> bool:
        return allows(self.role, needed)


def create_token(session: Session, name: str, role: str, actor: str) -> str:
    """Create a token and return it: the only time it is ever visible."""
    if not NAME.fullmatch(name):  # `$` in `match` would accept a name ending in a newline
        raise UserError("name", "must be letters, digits, '.', '_', '@', ':' or '-' (at most 253)")
    checked = check_role(role)
    if session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
        raise ConflictError("name", f"a token named {name!r} already exists (revoke it first)")
    token = PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, role=checked.value, token_hash=hash_token(token)))
    session.flush()
    audit.record(session, actor, "token.create", "token", name, {"role": checked.value})
    return token


def revoke_token(session: Session, name: str, actor: str) -> ApiToken:
    row = session.scalar(select(ApiToken).where(ApiToken.name == name).with_for_update())
    if row is None:
        raise NotFoundError("token", f"no token named {name!r}")
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        audit.record(session, actor, "token.revoke", "token", name)
    return row


def list_tokens(session: Session) -> list[dict[str, Any]]:
    """Name, role and dates; never the token or its hash."""
    rows = session.scalars(select(ApiToken).order_by(ApiToken.name))
    return [
        {
            "name": r.name,
            "role": r.role,
            "created_at": r.created_at,
            "last_used_at": r.last_used_at,
            "revoked_at": r.revoked_at,
        }
        for r in rows
    ]


def authenticate(session: Session, token: str, now: datetime | None = None) -> Principal | None:
    """The principal of a live token, or None (unknown, revoked or malformed)."""
    if not token or not token.startswith(PREFIX) or len(token) > 200:
        return None
    digest = hash_token(token)
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.token_hash, digest):
        return None
    current = now or datetime.now(UTC)
    if row.last_used_at is None or current - row.last_used_at >= LAST_USED_RESOLUTION:
        session.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=current))
    return Principal(name=row.name, role=Role(row.role), actor=audit.token_actor(row.name))
