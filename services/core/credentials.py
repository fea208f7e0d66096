"""Integration credentials as data: validation, sealing and the secret strings they hold.

Pure functions with no database access, so the runner can use them without the ORM.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any

from services.core.crypto import Keyring
from services.core.errors import UserError
from services.core.inputs import check_json

# type → the fields it must have (and may only have, besides `type`).
CREDENTIAL_FIELDS: dict[str, tuple[str, ...]] = {
    "bearer": ("token",),
    "basic": ("username", "password"),
    "header": ("name", "value"),
    "query": ("name", "value"),
}
# The header / parameter name is an identifier, not a secret; everything else is.
SECRET_FIELDS: dict[str, tuple[str, ...]] = {
    "bearer": ("token",),
    "basic": ("username", "password"),
    "header": ("value",),
    "query": ("value",),
}
#: An HTTP header name (RFC 9110 token); always matched whole (`fullmatch`), so no newline.
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: A credential file is a few short strings.
MAX_CREDENTIAL_BYTES = 64 * 1024

Credential = dict[str, str]


def validate_credential(document: Any, field: str = "credential") -> Credential:
    """Check one of the four shapes in docs/workflows.md; raises UserError naming the field."""
    if not isinstance(document, dict):
        raise UserError(field, "must be a mapping with a type (bearer, basic, header or query)")
    check_json(document, field, MAX_CREDENTIAL_BYTES)
    kind = document.get("type")
    if not isinstance(kind, str) or kind not in CREDENTIAL_FIELDS:
        raise UserError(f"{field}.type", f"must be one of {', '.join(CREDENTIAL_FIELDS)}, got {str(kind)[:40]!r}")
    required = CREDENTIAL_FIELDS[kind]
    unknown = sorted(set(document) - set(required) - {"type"})
    if unknown:
        raise UserError(f"{field}.{unknown[0]}", f"unknown field for a {kind} credential")
    for name in required:
        value = document.get(name)
        if not isinstance(value, str) or not value:
            raise UserError(f"{field}.{name}", "is required and must be a non-empty string")
    if kind == "header" and not HEADER_NAME.fullmatch(document["name"]):
        raise UserError(f"{field}.name", "is not a valid HTTP header name")
    return {"type": kind, **{name: document[name] for name in required}}


def secret_values(credential: Mapping[str, str]) -> list[str]:
    """Every string that would reveal the credential, including derived encodings.

    Basic auth travels as base64("user:password"), which reveals both, so it is a secret too.
    """
    kind = credential["type"]
    values = [credential[name] for name in SECRET_FIELDS[kind]]
    if kind == "basic":
        pair = f"{credential['username']}:{credential['password']}".encode()
        values.append(base64.b64encode(pair).decode())
    return values


def seal(credential: Credential, keyring: Keyring) -> bytes:
    return keyring.encrypt_json(credential)


def unseal(ciphertext: bytes, keyring: Keyring, name: str) -> Credential:
    what = f"integration {name!r}"
    return validate_credential(keyring.decrypt_json(ciphertext, what), field=what)
