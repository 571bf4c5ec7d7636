"""API keys: created once, shown once, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from akd_service.db.models import ApiKey

KEY_PREFIX = "akd_"


def hash_key(plaintext: str) -> str:
    """The stored form of a key: its SHA-256, hex.

    A plain fast hash is enough here (no salt, no bcrypt): keys are 256 random bits, not
    passwords people choose, so brute-forcing a leaked hash is hopeless; an unsalted hash
    also lets a request find its key with one indexed lookup.
    """
    return hashlib.sha256(plaintext.encode("utf-8", "surrogatepass")).hexdigest()


def create_key(session: Session, name: str) -> tuple[str, str]:
    """Create a key named `name`; return (key id, plaintext): the plaintext is never stored."""
    key_id = secrets.token_hex(8)
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiKey(id=key_id, name=name, key_hash=hash_key(plaintext), revoked=False))
    session.commit()
    return key_id, plaintext


def verify_key(session: Session, plaintext: str) -> ApiKey | None:
    """The live key matching `plaintext`, or None for unknown or revoked keys."""
    digest = hash_key(plaintext)
    key = session.execute(select(ApiKey).where(ApiKey.key_hash == digest)).scalar_one_or_none()
    # Constant-time compare as a second guard; the lookup itself is by hash, not by secret.
    if key is None or key.revoked or not hmac.compare_digest(key.key_hash, digest):
        return None
    return key


def revoke_key(session: Session, key_id: str) -> bool:
    """Revoke a key by id; False if there is no such key."""
    key = session.get(ApiKey, key_id)
    if key is None:
        return False
    key.revoked = True
    session.commit()
    return True


def list_keys(session: Session) -> list[ApiKey]:
    """All keys, oldest first (hashes only, never plaintext)."""
    return list(session.execute(select(ApiKey).order_by(ApiKey.created_at)).scalars())
