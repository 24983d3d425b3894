"""AES-256-GCM encryption of bundle contents, with the key kept apart from the bundle.

The key (32 bytes) comes from, in order:

1. the caller: raw bytes, a 64-character hex string, URL-safe base64, or a
   string ``"env:NAME"`` / ``"file:PATH"`` naming where it is;
2. ``EDGEAI_BUNDLE_KEY`` (hex or base64) in the environment;
3. ``EDGEAI_BUNDLE_KEY_FILE``: a file holding the key (raw, hex or base64).

edgeai never writes the key into or beside a bundle. The bundle records only
a key id (a salted SHA-256 of the key) so that a wrong key is named as such.

Example:
    >>> from edgeai.security.encryption import generate_encryption_key, encrypt, decrypt
    >>> key = generate_encryption_key()
    >>> nonce, blob = encrypt(key, b"model bytes", b"context")
    >>> decrypt(key, nonce, blob, b"context")
    b'model bytes'
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path
from typing import Any

from edgeai.errors import DecryptionError

__all__ = [
    "KEY_ENV",
    "KEY_FILE_ENV",
    "decrypt",
    "encrypt",
    "encryption_key_id",
    "generate_encryption_key",
    "resolve_encryption_key",
]

KEY_ENV = "EDGEAI_BUNDLE_KEY"
KEY_FILE_ENV = "EDGEAI_BUNDLE_KEY_FILE"
_NONCE_BYTES = 12


def generate_encryption_key() -> bytes:
    """32 random bytes for AES-256-GCM (from the OS's CSPRNG via ``cryptography``)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM.generate_key(bit_length=256)


def encryption_key_id(key: bytes) -> str:
    """A short public fingerprint of a key (does not reveal the key)."""
    return hashlib.sha256(b"edgeai-bundle-key-id\x00" + key).hexdigest()[:16]


def _decode_text_key(text: str, what: str) -> bytes:
    text = text.strip()
    if len(text) == 64:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise DecryptionError(f"{what} is neither hex nor base64: {exc}") from exc
    return raw


def _check_len(key: bytes, what: str) -> bytes:
    if len(key) != 32:
        raise DecryptionError(
            f"{what} is {len(key)} bytes; AES-256-GCM needs a 32-byte key "
            "(make one with edgeai.security.generate_encryption_key() or `edgeai bundle keygen --encryption`)"
        )
    return key


def _read_key_file(path: Path, what: str) -> bytes:
    if not path.is_file():
        raise DecryptionError(f"{what}: key file {str(path)!r} does not exist")
    data = path.read_bytes()
    if len(data) == 32:
        return data
    return _check_len(_decode_text_key(data.decode("ascii", "replace"), f"key file {str(path)!r}"), what)


def resolve_encryption_key(key: Any = None, *, required: bool = True) -> bytes | None:
    """Turn whatever the caller passed (or the environment) into 32 key bytes.

    Returns ``None`` when no key is available and ``required`` is false;
    raises :class:`~edgeai.errors.DecryptionError` saying where a key may come
    from otherwise.
    """
    if isinstance(key, (bytes, bytearray, memoryview)):
        return _check_len(bytes(key), "the key passed in")
    if isinstance(key, os.PathLike):
        return _read_key_file(Path(key), "the key file passed in")
    if isinstance(key, str):
        if key.startswith("env:"):
            name = key[4:]
            value = os.environ.get(name)
            if not value:
                raise DecryptionError(f"key='env:{name}' but the environment variable {name} is not set")
            return _check_len(_decode_text_key(value, f"${name}"), f"${name}")
        if key.startswith("file:"):
            return _read_key_file(Path(key[5:]).expanduser(), "key='file:...'")
        return _check_len(_decode_text_key(key, "the key string"), "the key string")
    if key is not None:
        raise DecryptionError(f"key must be bytes or a string, not {type(key).__name__}")
    if os.environ.get(KEY_ENV):
        return _check_len(_decode_text_key(os.environ[KEY_ENV], f"${KEY_ENV}"), f"${KEY_ENV}")
    if os.environ.get(KEY_FILE_ENV):
        return _read_key_file(Path(os.environ[KEY_FILE_ENV]).expanduser(), f"${KEY_FILE_ENV}")
    if required:
        raise DecryptionError(
            f"the bundle is encrypted and no key was given: pass key=..., or set ${KEY_ENV} "
            f"(hex or base64) or ${KEY_FILE_ENV} (a file path)"
        )
    return None


def encrypt(key: bytes, plaintext: bytes, associated: bytes) -> tuple[bytes, bytes]:
    """Encrypt with AES-256-GCM under a fresh random nonce; returns ``(nonce, ciphertext+tag)``."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(_NONCE_BYTES)
    return nonce, AESGCM(_check_len(key, "the encryption key")).encrypt(nonce, plaintext, associated)


def decrypt(key: bytes, nonce: bytes, ciphertext: bytes, associated: bytes) -> bytes:
    """Decrypt and authenticate; :class:`~edgeai.errors.DecryptionError` when the key is wrong."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        return AESGCM(_check_len(key, "the decryption key")).decrypt(nonce, ciphertext, associated)
    except InvalidTag as exc:
        raise DecryptionError(
            "decryption failed: the key is wrong or the ciphertext was altered (AES-GCM tag mismatch)"
        ) from exc
