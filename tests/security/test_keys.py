"""Key loading and the decryption-key sources, with their errors."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from edgeai.errors import DecryptionError, SignatureError
from edgeai.security import (
    TrustedKeys,
    generate_encryption_key,
    generate_signing_key,
    key_id,
    load_public_key,
    load_signing_key,
    resolve_encryption_key,
    save_public_key,
    save_signing_key,
)


def test_key_files_round_trip_and_private_file_is_owner_only(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    sk = generate_signing_key()
    save_signing_key(sk, tmp_path / "k.pem")
    save_public_key(sk.public_key(), tmp_path / "k.pub")
    if os.name == "posix":
        assert (tmp_path / "k.pem").stat().st_mode & 0o077 == 0
    assert key_id(load_signing_key(tmp_path / "k.pem").public_key()) == key_id(sk.public_key())
    raw = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    for source in (tmp_path / "k.pub", raw, (tmp_path / "k.pub").read_bytes(), tmp_path / "k.pem", sk):
        assert key_id(load_public_key(source)) == key_id(sk.public_key())
    # the id is SHA-256 of the raw public key, as documented
    import hashlib

    assert key_id(sk.public_key()) == hashlib.sha256(raw).hexdigest()


def test_trusted_keys_from_a_folder_and_bad_keys(tmp_path: Path) -> None:
    a, b = generate_signing_key(), generate_signing_key()
    save_public_key(a.public_key(), tmp_path / "a.pub")
    save_public_key(b.public_key(), tmp_path / "b.pem")
    (tmp_path / "notes.txt").write_text("ignored")
    trusted = TrustedKeys(tmp_path)
    assert set(trusted.ids()) == {key_id(a.public_key()), key_id(b.public_key())}
    with pytest.raises(SignatureError, match="does not exist"):
        TrustedKeys([tmp_path / "missing.pub"])
    (tmp_path / "junk.pub").write_bytes(b"-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n")
    with pytest.raises(SignatureError, match="not an Ed25519 public key"):
        TrustedKeys(tmp_path)


def test_rsa_keys_are_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(SignatureError, match="Ed25519"):
        load_public_key(pem)


def test_encryption_key_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = generate_encryption_key()
    assert len(key) == 32
    assert resolve_encryption_key(key) == key
    assert resolve_encryption_key(key.hex()) == key
    assert resolve_encryption_key(base64.urlsafe_b64encode(key).decode()) == key
    monkeypatch.setenv("MY_KEY", key.hex())
    assert resolve_encryption_key("env:MY_KEY") == key
    (tmp_path / "raw.key").write_bytes(key)
    (tmp_path / "hex.key").write_text(key.hex() + "\n")
    assert resolve_encryption_key(f"file:{tmp_path / 'raw.key'}") == key
    assert resolve_encryption_key(tmp_path / "hex.key") == key
    monkeypatch.delenv("EDGEAI_BUNDLE_KEY", raising=False)
    monkeypatch.setenv("EDGEAI_BUNDLE_KEY_FILE", str(tmp_path / "hex.key"))
    assert resolve_encryption_key(None) == key
    monkeypatch.delenv("EDGEAI_BUNDLE_KEY_FILE")
    assert resolve_encryption_key(None, required=False) is None
    with pytest.raises(DecryptionError, match="EDGEAI_BUNDLE_KEY"):
        resolve_encryption_key(None)
    with pytest.raises(DecryptionError, match="not set"):
        resolve_encryption_key("env:NOPE_NOT_SET")
    with pytest.raises(DecryptionError, match="16 bytes"):
        resolve_encryption_key(os.urandom(16))
    with pytest.raises(DecryptionError, match="does not exist"):
        resolve_encryption_key(f"file:{tmp_path / 'absent'}")
