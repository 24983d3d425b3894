"""Ed25519 signing keys and the set of keys a device trusts.

Keys are ``cryptography`` objects; this module only loads, saves and names
them. A key's id is the SHA-256 of its 32 raw public bytes, in hex.

Where trusted keys come from when the caller passes none (first found wins):

1. ``EDGEAI_TRUSTED_KEYS``: paths separated by ``os.pathsep``; each a public
   key file (PEM or 32 raw bytes) or a folder of ``*.pub`` / ``*.pem`` files;
2. ``~/.config/edgeai/trusted_keys/`` (``$XDG_CONFIG_HOME`` respected).

Example:
    >>> from edgeai.security.keys import generate_signing_key, key_id, TrustedKeys
    >>> sk = generate_signing_key()
    >>> trusted = TrustedKeys([sk.public_key()])
    >>> key_id(sk.public_key()) in trusted
    True
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeai.errors import SignatureError
from edgeai.security._atomic import atomic_write_bytes

if TYPE_CHECKING:  # pragma: no cover
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "TRUSTED_KEYS_ENV",
    "TrustedKeys",
    "default_trusted_keys_dir",
    "generate_signing_key",
    "key_id",
    "load_public_key",
    "load_signing_key",
    "public_key_pem",
    "save_public_key",
    "save_signing_key",
]

TRUSTED_KEYS_ENV = "EDGEAI_TRUSTED_KEYS"


def generate_signing_key() -> Ed25519PrivateKey:
    """A new random Ed25519 private key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate()


def _raw_public(pub: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(pub: Ed25519PublicKey) -> str:
    """The key's id: SHA-256 of its raw 32-byte public key, hex."""
    return hashlib.sha256(_raw_public(pub)).hexdigest()


def public_key_pem(pub: Ed25519PublicKey) -> bytes:
    """The public key as PEM (SubjectPublicKeyInfo)."""
    from cryptography.hazmat.primitives import serialization

    return pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def save_signing_key(key: Ed25519PrivateKey, path: str | os.PathLike[str]) -> Path:
    """Write a private key as unencrypted PKCS#8 PEM, readable by the owner only (mode 0600)."""
    from cryptography.hazmat.primitives import serialization

    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return atomic_write_bytes(path, pem, mode=0o600)


def save_public_key(pub: Ed25519PublicKey, path: str | os.PathLike[str]) -> Path:
    """Write a public key as PEM."""
    return atomic_write_bytes(path, public_key_pem(pub))


def load_signing_key(source: Any) -> Ed25519PrivateKey:
    """An Ed25519 private key from a key object, PEM bytes, 32 raw bytes or a file path."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if isinstance(source, Ed25519PrivateKey):
        return source
    data, what = _read_key_bytes(source, "signing key")
    try:
        if len(data) == 32:
            return Ed25519PrivateKey.from_private_bytes(data)
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"{what} is not an Ed25519 private key (PEM or 32 raw bytes): {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"{what} is a {type(key).__name__}; bundles are signed with Ed25519 keys")
    return key


def load_public_key(source: Any) -> Ed25519PublicKey:
    """An Ed25519 public key from a key object, PEM bytes, 32 raw bytes or a file path.

    A private key is accepted too (its public half is used).
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    if isinstance(source, Ed25519PublicKey):
        return source
    if isinstance(source, Ed25519PrivateKey):
        return source.public_key()
    data, what = _read_key_bytes(source, "public key")
    try:
        if len(data) == 32:
            return Ed25519PublicKey.from_public_bytes(data)
        if b"PRIVATE KEY" in data:
            return load_signing_key(data).public_key()
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"{what} is not an Ed25519 public key (PEM or 32 raw bytes): {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError(f"{what} is a {type(key).__name__}; bundles are verified with Ed25519 keys")
    return key


def _read_key_bytes(source: Any, kind: str) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), f"the {kind} bytes"
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        if not path.is_file():
            raise SignatureError(f"{kind} file {str(path)!r} does not exist")
        return path.read_bytes(), f"{kind} file {str(path)!r}"
    raise SignatureError(f"cannot read a {kind} from {type(source).__name__}: pass a path, bytes or a key")


def default_trusted_keys_dir() -> Path:
    """``$XDG_CONFIG_HOME/edgeai/trusted_keys`` (``~/.config/edgeai/trusted_keys``)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "edgeai" / "trusted_keys"


class TrustedKeys:
    """The Ed25519 public keys whose signatures a device accepts, by key id.

    Args:
        keys: keys, key files, folders of ``*.pub``/``*.pem`` files, PEM or raw
            bytes, or another ``TrustedKeys``. ``None`` reads the defaults (see
            the module docstring).
    """

    def __init__(self, keys: Any = None) -> None:
        self._keys: dict[str, Ed25519PublicKey] = {}
        self.origin = "the keys passed in"
        if keys is None:
            keys, self.origin = _default_sources()
        elif isinstance(keys, TrustedKeys):
            self._keys = dict(keys._keys)
            self.origin = keys.origin
            return
        if isinstance(keys, (str, os.PathLike, bytes, bytearray)) or not isinstance(keys, Iterable):
            keys = [keys]
        for item in keys:
            for pub in _expand(item):
                self._keys[key_id(pub)] = pub

    def get(self, kid: str) -> Ed25519PublicKey | None:
        return self._keys.get(kid)

    def ids(self) -> list[str]:
        return sorted(self._keys)

    def __contains__(self, kid: object) -> bool:
        return kid in self._keys

    def __iter__(self) -> Iterator[Ed25519PublicKey]:
        return iter(self._keys.values())

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"TrustedKeys({[k[:12] for k in self.ids()]})"


def _expand(item: Any) -> list[Ed25519PublicKey]:
    if isinstance(item, (str, os.PathLike)) and Path(item).expanduser().is_dir():
        folder = Path(item).expanduser()
        files = sorted(p for p in folder.iterdir() if p.suffix in (".pub", ".pem") and p.is_file())
        return [load_public_key(p) for p in files]
    return [load_public_key(item)]


def _default_sources() -> tuple[list[Any], str]:
    env = os.environ.get(TRUSTED_KEYS_ENV)
    if env:
        return [p for p in env.split(os.pathsep) if p], f"${TRUSTED_KEYS_ENV}"
    folder = default_trusted_keys_dir()
    if folder.is_dir():
        return [folder], str(folder)
    return [], f"no trusted keys (${TRUSTED_KEYS_ENV} unset, {folder} absent)"
