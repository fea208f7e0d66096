"""The console of `wfctl local up`: a fresh admin token per start, printed as a sign-in link."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from services.core.db.models import ApiToken
from services.core.db.session import session_scope
from services.core.tokens import create_token, revoke_token

LOCAL_ADMIN_PREFIX = "local-admin-"
ACTOR = "local:up"


def fresh_admin_token(database_url: str, now: datetime | None = None) -> str:
    """Revoke the admin tokens earlier starts made, and make a new one (only this start's link works)."""
    current = now or datetime.now(UTC)
    with session_scope(database_url) as session:
        earlier = session.scalars(
            select(ApiToken.name).where(ApiToken.name.startswith(LOCAL_ADMIN_PREFIX), ApiToken.revoked_at.is_(None))
        )
        for name in list(earlier):
            revoke_token(session, name, actor=ACTOR)
        name = f"{LOCAL_ADMIN_PREFIX}{current:%Y%m%d-%H%M%S-%f}"
        return create_token(session, name, "admin", actor=ACTOR)
