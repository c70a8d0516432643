"""The token vault: API keys are encrypted at rest with MultiFernet.

Keys come from FTDASH_ENCRYPTION_KEYS, newest first: new secrets are encrypted with the first
key and any listed key can still decrypt, which is what makes rotation possible.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class VaultError(Exception):
    """A stored token cannot be decrypted with the configured keys."""


def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in settings.FTDASH_ENCRYPTION_KEYS])


def encrypt(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def decrypt(ciphertext: str) -> str:
    try:
        return _fernet().decrypt(ciphertext.encode()).decode()
    except (InvalidToken, ValueError):
        raise VaultError(
            "This token cannot be decrypted with the configured FTDASH_ENCRYPTION_KEYS. "
            "Was the key changed? Add the old key back (after the new one) or save the token again."
        ) from None


def reencrypt(ciphertext: str) -> str:
    """The same secret under the newest key (for key rotation)."""
    try:
        return _fernet().rotate(ciphertext.encode()).decode()
    except (InvalidToken, ValueError):
        raise VaultError("A stored token cannot be decrypted with any configured key.") from None
