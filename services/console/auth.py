"""Who is calling, and may they? Tokens, console sessions, CSRF and the trusted proxy header.

- API clients send `Authorization: Bearer <token>`.
- The console signs in once with a token; the browser then holds a signed, HttpOnly, SameSite
  session cookie that names the token (by id, never the token itself) and carries a CSRF secret.
  Every request re-checks that the token is still live, so revoking a token ends its sessions.
- Every console form carries the CSRF secret; a POST without it is refused (403) before anything
  is read from the form's action.
- Behind an authenticating proxy, `CONSOLE_TRUSTED_USER_HEADER` names a header whose value is the
  signed-in user, given `CONSOLE_TRUSTED_USER_ROLE`. Off by default: the proxy must strip the
  header from client requests.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.core import audit
from services.core.db.models import ApiToken, Role
from services.core.settings import SESSION_MAX_AGE_SECONDS, ConsoleSettings
from services.core.tokens import Principal, authenticate

SESSION_COOKIE = "wfr_session"
LOGIN_CSRF_COOKIE = "wfr_login_csrf"
CSRF_FIELD = "csrf_token"


class AuthError(Exception):
    """401 (no or bad credentials) or 403 (a role too small, a missing CSRF token)."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


@dataclass(frozen=True)
class ConsoleSession:
    principal: Principal
    csrf_token: str


class SessionSigner:
    """Signs and reads the session cookie (itsdangerous, HMAC-SHA1 over a derived key, timed)."""

    def __init__(self, secret_key: str) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt="wfr-console-session")
        self._login = URLSafeTimedSerializer(secret_key, salt="wfr-console-login")

    def dump(self, token_id: uuid.UUID, csrf_token: str) -> str:
        return self._serializer.dumps({"tid": str(token_id), "csrf": csrf_token})

    def load(self, cookie: str) -> dict[str, Any] | None:
        try:
            data = self._serializer.loads(cookie, max_age=SESSION_MAX_AGE_SECONDS)
        except BadSignature:
            return None
        return data if isinstance(data, dict) and "tid" in data and "csrf" in data else None

    def login_csrf(self) -> tuple[str, str]:
        """A fresh (form value, signed cookie value) pair for the sign-in form."""
        value = secrets.token_urlsafe(24)
        return value, self._login.dumps(value)

    def check_login_csrf(self, cookie: str | None, submitted: str | None) -> bool:
        if not cookie or not submitted:
            return False
        try:
            value = self._login.loads(cookie, max_age=3600)
        except BadSignature:
            return False
        return isinstance(value, str) and hmac.compare_digest(value, submitted)


def bearer_principal(session: Session, authorization: str | None) -> Principal | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return authenticate(session, token.strip())


def proxy_principal(settings: ConsoleSettings, headers: Any) -> Principal | None:
    if not settings.trusted_user_header:
        return None
    user = (headers.get(settings.trusted_user_header) or "").strip()
    if not user:
        return None
    return Principal(name=user[:200], role=settings.trusted_user_role, actor=f"proxy:{user[:200]}")


def session_principal(session: Session, signer: SessionSigner, cookie: str | None) -> ConsoleSession | None:
    """The console session of a cookie whose token is still live."""
    if not cookie:
        return None
    data = signer.load(cookie)
    if data is None:
        return None
    try:
        token_id = uuid.UUID(data["tid"])
    except ValueError:
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.id == token_id))
    if row is None or row.revoked_at is not None:
        return None
    principal = Principal(name=row.name, role=Role(row.role), actor=audit.token_actor(row.name))
    return ConsoleSession(principal=principal, csrf_token=str(data["csrf"]))


def sign_in(session: Session, signer: SessionSigner, token: str) -> tuple[Principal, str] | None:
    """Check a token typed into the sign-in form; returns the principal and the cookie value."""
    principal = authenticate(session, token.strip())
    if principal is None:
        return None
    token_id = session.scalar(select(ApiToken.id).where(ApiToken.name == principal.name))
    assert token_id is not None
    return principal, signer.dump(token_id, secrets.token_urlsafe(24))


def require(principal: Principal, needed: Role) -> None:
    if not principal.can(needed):
        raise AuthError(403, f"the {principal.role.value} role may not do this (needs {needed.value})")


def check_csrf(console_session: ConsoleSession, submitted: str | None) -> None:
    if not submitted or not hmac.compare_digest(console_session.csrf_token, submitted):
        raise AuthError(403, "missing or wrong CSRF token; reload the page and try again")
