"""Encryption keys for integration credentials (docs/workflows.md, Integrations).

`INTEGRATION_ENCRYPTION_KEY` holds one or more comma-separated Fernet keys. The first key
encrypts; every key decrypts. That is what lets an operator rotate without downtime: prepend a
new key, run `wfctl integrations rotate-key`, then drop the old key.

Fernet is authenticated encryption (AES-128-CBC + HMAC-SHA256), so a wrong key or a tampered row
is detected instead of decrypting to garbage.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from services.core.errors import ConfigError

KEY_ENV = "INTEGRATION_ENCRYPTION_KEY"


class EncryptionKeyError(ConfigError):
    """The key is missing, malformed, or does not decrypt a stored credential (one line)."""


def generate_key() -> str:
    """A new random key, in the form `INTEGRATION_ENCRYPTION_KEY` expects."""
    return Fernet.generate_key().decode()


def parse_keys(value: str | None) -> list[str]:
    """Split the variable into keys; raises EncryptionKeyError when there are none."""
    keys = [part.strip() for part in (value or "").split(",") if part.strip()]
    if not keys:
        raise EncryptionKeyError(
            f"{KEY_ENV} is not set (create one with `wfctl integrations generate-key`)"
        )
    return keys


class Keyring:
    """The keys of one process: encrypt with the first, decrypt with any."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise EncryptionKeyError(f"{KEY_ENV} holds no key")
        fernets = []
        for index, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key.encode()))
            except (ValueError, TypeError):
                raise EncryptionKeyError(
                    f"{KEY_ENV}: key {index} of {len(keys)} is not a valid key "
                    "(32 url-safe base64-encoded bytes)"
                ) from None
        self._fernet = MultiFernet(fernets)

    def encrypt(self, plaintext: bytes) -> bytes:
        return self._fernet.encrypt(plaintext)

    def decrypt(self, token: bytes, what: str = "a credential") -> bytes:
        try:
            return self._fernet.decrypt(token)
        except InvalidToken:
            raise EncryptionKeyError(
                f"{what} cannot be decrypted with any key in {KEY_ENV} (wrong key?)"
            ) from None

    def encrypt_json(self, value: Any) -> bytes:
        """A JSON value sealed whole (integrations, notification channels)."""
        return self.encrypt(json.dumps(value, separators=(",", ":")).encode())

    def decrypt_json(self, token: bytes, what: str) -> Any:
        return json.loads(self.decrypt(bytes(token), what=what))

    def rotate(self, token: bytes, what: str = "a credential") -> bytes:
        """Re-encrypt under the first key (decrypting with any)."""
        try:
            return self._fernet.rotate(token)
        except InvalidToken:
            raise EncryptionKeyError(
                f"{what} cannot be decrypted with any key in {KEY_ENV} (wrong key?)"
            ) from None


def keyring_from_value(value: str | None) -> Keyring:
    return Keyring(parse_keys(value))


def keyring_from_env(env: Mapping[str, str] | None = None) -> Keyring:
    from services.core.settings import Settings

    return keyring_from_value(Settings.from_env(env).encryption_keys)
