"""Every TUF threat a bundle defends against, each rejected with its own error."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

import edgeai
from edgeai.errors import (
    DecryptionError,
    ExpiredError,
    IntegrityError,
    MixAndMatchError,
    RollbackError,
    SecurityError,
    SignatureError,
    SizeLimitError,
)
from edgeai.lifecycle.bundle import create_bundle, read_bundle
from edgeai.security import TrustPolicy, generate_encryption_key, generate_signing_key

MODEL = edgeai.demo.model_path()


@pytest.fixture(scope="module")
def signer():  # type: ignore[no-untyped-def]
    return generate_signing_key()


@pytest.fixture(scope="module")
def bundle(signer) -> bytes:  # type: ignore[no-untyped-def]
    return create_bundle(MODEL, name="digits", version="1.2.0", target="cpu-x86", signing_key=signer)


def reference_output(x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    return sess.run(None, {"image": x})[0]  # type: ignore[no-any-return]


def test_valid_bundle_runs_like_the_plain_model(signer, bundle: bytes) -> None:  # type: ignore[no-untyped-def]
    images, _ = edgeai.demo.samples()
    with edgeai.Session(bundle, trusted_keys=[signer.public_key()]) as sess:
        out = sess.run({"image": images})["probabilities"]
    np.testing.assert_allclose(out, reference_output(images), rtol=1e-6, atol=1e-7)


def test_unknown_key_is_rejected(bundle: bytes) -> None:
    stranger = generate_signing_key().public_key()
    with pytest.raises(SignatureError, match="unknown key"):
        read_bundle(bundle, trusted_keys=[stranger])


def test_no_trusted_keys_is_rejected(bundle: bytes, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("EDGEAI_TRUSTED_KEYS", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    with pytest.raises(SignatureError, match="no trusted keys"):
        edgeai.Session(bundle)


def test_trusted_keys_from_environment(signer, bundle: bytes, monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from edgeai.security import save_public_key

    save_public_key(signer.public_key(), tmp_path / "release.pub")
    monkeypatch.setenv("EDGEAI_TRUSTED_KEYS", str(tmp_path))
    assert read_bundle(bundle).metadata.version == "1.2.0"


def test_every_single_byte_change_is_rejected(signer, tiny_model: bytes) -> None:  # type: ignore[no-untyped-def]
    bundle = create_bundle(
        tiny_model,
        name="tiny",
        version="1.0.0",
        signing_key=signer,
        encryption_key=generate_encryption_key(),
        sample_inputs={"x": np.ones((1, 4), np.float32)},
    )
    policy = TrustPolicy([signer.public_key()])
    read_bundle(bundle, trusted_keys=policy, decrypt_sections=False)
    accepted = []
    for i in range(len(bundle)):
        for flip in (0x01, 0x80):
            bad = bytearray(bundle)
            bad[i] ^= flip
            try:
                read_bundle(bytes(bad), trusted_keys=policy, decrypt_sections=False)
            except SecurityError:
                continue
            accepted.append((i, flip))
    assert accepted == []


@pytest.mark.parametrize("cut", [1, 100, 5000])
def test_truncated_or_extended_bundle_is_rejected(signer, bundle: bytes, cut: int) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(IntegrityError):
        read_bundle(bundle[:-cut], trusted_keys=[signer.public_key()])
    with pytest.raises(IntegrityError, match="appended"):
        read_bundle(bundle + b"\x00" * cut, trusted_keys=[signer.public_key()])


def test_header_signed_by_other_key_with_original_keyid_fails(signer, bundle: bytes) -> None:  # type: ignore[no-untyped-def]
    # An attacker re-signs the same header with their own key but keeps the trusted key id.
    import base64
    import json
    import struct

    from edgeai.security.trust import SIGNATURE_CONTEXT

    _, _, signed_len, sigs_len = struct.unpack_from(">13sBII", bundle)
    signed = bundle[22 : 22 + signed_len]
    sigs = json.loads(bundle[22 + signed_len : 22 + signed_len + sigs_len])
    forged_sig = generate_signing_key().sign(SIGNATURE_CONTEXT + signed)
    sigs[0]["sig"] = base64.b64encode(forged_sig).decode()
    raw = json.dumps(sigs, sort_keys=True, separators=(",", ":")).encode()
    forged = bundle[:18] + struct.pack(">I", len(raw)) + signed + raw + bundle[22 + signed_len + sigs_len :]
    with pytest.raises(SignatureError, match="invalid"):
        read_bundle(forged, trusted_keys=[signer.public_key()])


def test_rollback_is_rejected(signer, bundle: bytes) -> None:  # type: ignore[no-untyped-def]
    policy = TrustPolicy([signer.public_key()], min_version="1.10.0")
    with pytest.raises(RollbackError, match=r"1\.2\.0.*older than the installed 1\.10\.0"):
        read_bundle(bundle, trusted_keys=policy)
    # the same version and newer ones pass
    read_bundle(bundle, trusted_keys=TrustPolicy([signer.public_key()], min_version="1.2.0"))
    read_bundle(bundle, trusted_keys=TrustPolicy([signer.public_key()], min_version="1.2.0-rc.1"))


def test_expired_bundle_is_rejected(signer) -> None:  # type: ignore[no-untyped-def]
    data = create_bundle(MODEL, name="digits", version="1.0.0", signing_key=signer, expires=timedelta(hours=1))
    later = datetime.now(timezone.utc) + timedelta(hours=2)
    with pytest.raises(ExpiredError, match="freeze"):
        read_bundle(data, trusted_keys=TrustPolicy([signer.public_key()], now=later))
    read_bundle(data, trusted_keys=[signer.public_key()])  # still valid now
    past = create_bundle(
        MODEL,
        name="digits",
        version="1.0.0",
        signing_key=signer,
        expires=datetime.now(timezone.utc) - timedelta(seconds=1),
    )
    with pytest.raises(ExpiredError):
        edgeai.Session(past, trusted_keys=[signer.public_key()])


def test_mix_and_match_is_rejected(signer, bundle: bytes) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(MixAndMatchError, match=r"'digits'.*'faces'"):
        read_bundle(bundle, trusted_keys=TrustPolicy([signer.public_key()], name="faces"))
    with pytest.raises(MixAndMatchError, match="target 'cpu-x86'"):
        read_bundle(bundle, trusted_keys=TrustPolicy([signer.public_key()], target="rpi5"))
    read_bundle(bundle, trusted_keys=TrustPolicy([signer.public_key()], name="digits", target="cpu-x86"))


def test_oversized_bundle_is_rejected_before_reading(signer, bundle: bytes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "big.eai"
    path.write_bytes(bundle)
    policy = TrustPolicy([signer.public_key()], max_size=len(bundle) - 1)
    with pytest.raises(SizeLimitError, match="limit"):
        read_bundle(path, trusted_keys=policy)
    with pytest.raises(SizeLimitError):
        edgeai.Session(path, trusted_keys=policy)


def test_encrypted_bundle_needs_the_right_key(signer, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    key = generate_encryption_key()
    data = create_bundle(MODEL, name="digits", version="1.0.0", signing_key=signer, encryption_key=key)
    assert MODEL.read_bytes()[:4096] not in data  # the model is not in clear
    trusted = [signer.public_key()]
    for env in ("EDGEAI_BUNDLE_KEY", "EDGEAI_BUNDLE_KEY_FILE"):
        monkeypatch.delenv(env, raising=False)
    with pytest.raises(DecryptionError, match="no key was given"):
        edgeai.Session(data, trusted_keys=trusted)
    with pytest.raises(DecryptionError, match="not with the key given"):
        edgeai.Session(data, trusted_keys=trusted, key=generate_encryption_key())
    with pytest.raises(DecryptionError, match="32-byte"):
        edgeai.Session(data, trusted_keys=trusted, key=b"short")
    x = edgeai.demo.samples()[0][:4]
    want = reference_output(x)
    out = edgeai.Session(data, trusted_keys=trusted, key=key).run({"image": x})["probabilities"]
    np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-7)
    # the key from an environment variable, and from a file
    monkeypatch.setenv("EDGEAI_BUNDLE_KEY", key.hex())
    edgeai.Session(data, trusted_keys=trusted)
    monkeypatch.delenv("EDGEAI_BUNDLE_KEY")
    (tmp_path / "k.bin").write_bytes(key)
    edgeai.Session(data, trusted_keys=trusted, key=f"file:{tmp_path / 'k.bin'}")


def test_ciphertext_tampered_with_matching_hash_still_fails_decryption(signer) -> None:  # type: ignore[no-untyped-def]
    # A producer bug (or a trusted-key holder) cannot smuggle altered ciphertext past GCM.
    from edgeai.security.encryption import decrypt, encrypt

    key = generate_encryption_key()
    nonce, blob = encrypt(key, b"weights", b"aad")
    with pytest.raises(DecryptionError):
        decrypt(key, nonce, blob[:-1] + bytes([blob[-1] ^ 1]), b"aad")
    with pytest.raises(DecryptionError):
        decrypt(key, nonce, blob, b"other aad")


def test_session_over_encrypted_bundle_writes_no_plaintext(signer, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import tempfile

    key = generate_encryption_key()
    bundle_dir = tmp_path / "bundles"
    scratch = tmp_path / "scratch"
    bundle_dir.mkdir()
    scratch.mkdir()
    path = bundle_dir / "digits.eai"
    path.write_bytes(create_bundle(MODEL, name="digits", version="1.0.0", signing_key=signer, encryption_key=key))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.chdir(scratch)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    sess = edgeai.Session(path, trusted_keys=[signer.public_key()], key=key)
    sess.run({"image": np.zeros((1, 1, 8, 8), np.float32)})
    after = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    assert after == before
    assert sess.format == "onnx"
    assert os.path.getsize(path) > 0
