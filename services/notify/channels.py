"""Notification channels: validation, sealing and storage (docs/notifications.md, Channels).

A channel is stored like an integration: its type in clear, everything else (URLs, which often
embed a token, signing secrets, SMTP credentials) as one authenticated ciphertext under
`INTEGRATION_ENCRYPTION_KEY`. Nothing here returns a secret to a listing.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.core import audit
from services.core.crypto import Keyring
from services.core.db.models import Channel, ChannelType
from services.core.errors import NotFoundError, UserError

NAME = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,251}[a-z0-9])?$")
EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")

# type → (required fields, optional fields with their defaults)
FIELDS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    ChannelType.WEBHOOK: (("url",), {"secret": None}),
    ChannelType.SLACK: (("url",), {}),
    ChannelType.EMAIL: (
        ("host", "from", "to"),
        {"port": 587, "starttls": True, "username": None, "password": None, "ca_pem": None},
    ),
}
# Values never shown anywhere (the URL of a Slack incoming webhook is itself the credential).
SECRET_FIELDS = ("url", "secret", "username", "password")

ChannelConfig = dict[str, Any]


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):  # `$` in `match` would accept a trailing newline
        raise UserError("name", "must be lowercase letters, digits, '.', '_' or '-' (at most 253)")
    return name


def _check_url(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise UserError(field, "is required and must be a non-empty string")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(field, "must be an http:// or https:// URL")
    return value


def _string(document: dict[str, Any], name: str, field: str) -> str:
    value = document.get(name)
    if not isinstance(value, str) or not value:
        raise UserError(f"{field}.{name}", "is required and must be a non-empty string")
    return value


def validate_channel(document: Any, field: str = "channel") -> ChannelConfig:
    """Check one channel file; raises UserError naming the field. Returns it with defaults."""
    if not isinstance(document, dict):
        raise UserError(field, "must be a mapping with a type (webhook, slack or email)")
    kind = document.get("type")
    if kind not in FIELDS:
        raise UserError(f"{field}.type", f"must be one of webhook, slack, email, got {kind!r}")
    required, optional = FIELDS[kind]
    unknown = sorted(str(key) for key in set(document) - set(required) - set(optional) - {"type"})
    if unknown:
        raise UserError(f"{field}.{unknown[0]}", f"unknown field for a {kind} channel")
    config: ChannelConfig = {"type": kind, **optional}
    if kind in (ChannelType.WEBHOOK, ChannelType.SLACK):
        config["url"] = _check_url(document.get("url"), f"{field}.url")
        if kind == ChannelType.WEBHOOK and document.get("secret") is not None:
            config["secret"] = _string(document, "secret", field)
        return config
    config["host"] = _string(document, "host", field)
    port = document.get("port", 587)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise UserError(f"{field}.port", "must be a TCP port (1-65535)")
    config["port"] = port
    starttls = document.get("starttls", True)
    if not isinstance(starttls, bool):
        raise UserError(f"{field}.starttls", "must be true or false")
    config["starttls"] = starttls
    sender = _string(document, "from", field)
    if not EMAIL.fullmatch(sender):
        raise UserError(f"{field}.from", "must be an email address")
    config["from"] = sender
    recipients = document.get("to")
    if isinstance(recipients, str):
        recipients = [recipients]
    if not isinstance(recipients, list) or not recipients:
        raise UserError(f"{field}.to", "must be an email address or a non-empty list of them")
    for recipient in recipients:
        if not isinstance(recipient, str) or not EMAIL.fullmatch(recipient):
            raise UserError(f"{field}.to", f"{recipient!r} is not an email address")
    config["to"] = recipients
    has_user, has_password = document.get("username") is not None, document.get("password") is not None
    if has_user != has_password:
        raise UserError(f"{field}.{'password' if has_user else 'username'}", "username and password go together")
    if has_user:
        config["username"] = _string(document, "username", field)
        config["password"] = _string(document, "password", field)
        if not starttls:
            raise UserError(f"{field}.starttls", "must be true when credentials are given (never sent in clear)")
    if document.get("ca_pem") is not None:
        config["ca_pem"] = _string(document, "ca_pem", field)
        if "BEGIN CERTIFICATE" not in config["ca_pem"]:
            raise UserError(f"{field}.ca_pem", "must be PEM-encoded certificates")
    return config


#: A path segment or query of a secret URL at least this long is a secret of its own: a receiver
#: that fails often echoes the path it was sent to ("Cannot POST /services/T0/B0/XXXX").
MIN_SECRET_PART = 8


def secret_values(config: ChannelConfig) -> list[str]:
    """Strings that must never appear in an output, an error or a table: each secret field and,
    for a secret URL (a Slack or webhook address), its path, query and long path segments."""
    values = [str(config[name]) for name in SECRET_FIELDS if config.get(name)]
    for value in list(values):
        parts = urlsplit(value) if "://" in value else None
        if parts is None:
            continue
        pieces = [parts.path, parts.query, *parts.path.split("/")]
        values.extend(p for p in pieces if len(p) >= MIN_SECRET_PART)
    return values


def redact(text: str, config: ChannelConfig) -> str:
    for value in sorted(secret_values(config), key=len, reverse=True):
        text = text.replace(value, "***")
    return text


def seal(config: ChannelConfig, keyring: Keyring) -> bytes:
    return keyring.encrypt_json(config)


def unseal(ciphertext: bytes, keyring: Keyring, name: str) -> ChannelConfig:
    what = f"channel {name!r}"
    return validate_channel(keyring.decrypt_json(ciphertext, what), field=what)


def set_channel(
    session: Session, name: str, config: ChannelConfig, keyring: Keyring, *, actor: str = audit.SYSTEM_ACTOR
) -> bool:
    """Create or replace a channel; returns True when it was created (audited, never its secrets)."""
    check_name(name)
    existing = session.scalar(select(Channel).where(Channel.name == name).with_for_update())
    ciphertext = seal(config, keyring)
    if existing is None:
        session.add(Channel(name=name, type=config["type"], ciphertext=ciphertext))
        session.flush()
        audit.record(session, actor, "channel.create", "channel", name, {"type": config["type"]})
        return True
    existing.type = config["type"]
    existing.ciphertext = ciphertext
    existing.updated_at = datetime.now(UTC)
    audit.record(session, actor, "channel.update", "channel", name, {"type": config["type"]})
    return False


def list_channels(session: Session) -> list[dict[str, Any]]:
    """Name, type and timestamps; never the configuration."""
    rows = session.scalars(select(Channel).order_by(Channel.name))
    return [
        {"name": r.name, "type": r.type, "created_at": r.created_at, "updated_at": r.updated_at} for r in rows
    ]


def unknown_channels(session: Session, settings: dict[str, Any] | None) -> list[str]:
    """Channels a workflow's or schedule's `notify` rules name that do not exist (yet): worth a
    warning when they are applied, since a notification to one fails only when it is due."""
    names = {rule.get("channel") for rule in (settings or {}).get("notify") or [] if isinstance(rule, dict)}
    names.discard(None)
    if not names:
        return []
    existing = set(session.scalars(select(Channel.name).where(Channel.name.in_(names))))
    return sorted(str(name) for name in names - existing)


def read_channel(session: Session, name: str, keyring: Keyring) -> ChannelConfig:
    row = session.scalar(select(Channel).where(Channel.name == name))
    if row is None:
        raise NotFoundError("channel", f"no channel named {name!r}")
    return unseal(row.ciphertext, keyring, name)


def rotate_channels(session: Session, keyring: Keyring) -> int:
    """Re-encrypt every channel under the first key (with `wfctl integrations rotate-key`)."""
    rows = list(session.scalars(select(Channel).order_by(Channel.name).with_for_update()))
    now = datetime.now(UTC)
    for row in rows:
        row.ciphertext = keyring.rotate(bytes(row.ciphertext), what=f"channel {row.name!r}")
        row.updated_at = now
    session.flush()
    return len(rows)
