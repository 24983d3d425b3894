"""Model bundles: one signed (and optionally encrypted) file holding a model and its metadata.

Layout (all integers big-endian)::

    b"EDGEAI-BUNDLE"  13 bytes   magic
    0x01               1 byte    layout version
    signed_len         4 bytes
    sigs_len           4 bytes
    signed             JSON      metadata + manifest (name, version, target, format, inputs,
                                 expiry, encryption, and size + SHA-256 of every section)
    signatures         JSON      [{"keyid": sha256(public key), "sig": base64 Ed25519}]
    sections           bytes     "model" then "smoke.npz" (sample input + expected output),
                                 each AES-256-GCM encrypted when the bundle is encrypted

The Ed25519 signature covers the exact ``signed`` bytes; the manifest's hashes
and the exact total length cover everything after it. Verification runs
before anything is parsed or decrypted, so a changed byte anywhere raises a
:class:`~edgeai.errors.SecurityError`. Decryption happens in memory only.

Example:
    >>> import edgeai, numpy as np
    >>> from edgeai.lifecycle.bundle import create_bundle, read_bundle
    >>> from edgeai.security import generate_signing_key
    >>> sk = generate_signing_key()
    >>> data = create_bundle(edgeai.demo.model_path(), name="digits", version="1.0.0", signing_key=sk)
    >>> bundle = read_bundle(data, trusted_keys=[sk.public_key()])
    >>> bundle.metadata.name, bundle.metadata.format
    ('digits', 'onnx')
    >>> sess = edgeai.Session(data, trusted_keys=[sk.public_key()])
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import struct
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edgeai.errors import IntegrityError, ModelFormatError
from edgeai.formats import ModelSource, open_model
from edgeai.lifecycle.version import SemVer
from edgeai.security._atomic import atomic_write_bytes
from edgeai.security.encryption import decrypt, encrypt, encryption_key_id, resolve_encryption_key
from edgeai.security.keys import key_id, load_signing_key
from edgeai.security.trust import SIGNATURE_CONTEXT, TrustPolicy

__all__ = [
    "BUNDLE_MAGIC",
    "Bundle",
    "BundleMetadata",
    "create_bundle",
    "inspect_bundle",
    "open_bundle_source",
    "read_bundle",
    "write_bundle",
]

BUNDLE_MAGIC = b"EDGEAI-BUNDLE"
_LAYOUT = 1
_FIXED = struct.Struct(">13sBII")
_MAX_HEADER = 1 << 20
_MODEL = "model"
_SMOKE = "smoke.npz"


class InputInfo(BaseModel):
    """One model input as recorded in the bundle."""

    model_config = ConfigDict(extra="forbid")
    name: str
    dtype: str
    shape: list[int | str | None] | None


class FileEntry(BaseModel):
    """One section of the bundle's payload: its stored size, SHA-256 and GCM nonce."""

    model_config = ConfigDict(extra="forbid")
    name: str
    size: int = Field(ge=0)
    sha256: str
    nonce: str | None = None


class SmokeTest(BaseModel):
    """Tolerances for comparing the model's output on the sample input with the expected one."""

    model_config = ConfigDict(extra="forbid")
    rtol: float = 1e-4
    atol: float = 1e-5


class BundleMetadata(BaseModel):
    """The signed part of a bundle."""

    model_config = ConfigDict(extra="forbid")
    type: str = "edgeai-bundle"
    name: str
    version: str
    target: str = "any"
    format: str
    inputs: list[InputInfo] = Field(default_factory=list)
    preprocessing: str = ""
    description: str = ""
    created: str
    expires: str | None = None
    encryption: dict[str, str] | None = None
    smoke: SmokeTest | None = None
    extra: dict[str, Any] = Field(default_factory=dict)
    files: list[FileEntry]


class Bundle:
    """A verified, decrypted bundle held in memory."""

    def __init__(self, metadata: BundleMetadata, sections: dict[str, bytes], signer: str) -> None:
        self.metadata = metadata
        self.signer = signer
        self._sections = sections

    @property
    def model_bytes(self) -> bytes:
        return self._sections[_MODEL]

    def smoke_data(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None:
        """The sample input and expected output stored in the bundle, if any."""
        raw = self._sections.get(_SMOKE)
        if raw is None:
            return None
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            ins = {k[3:]: npz[k] for k in npz.files if k.startswith("in/")}
            outs = {k[4:]: npz[k] for k in npz.files if k.startswith("out/")}
        return ins, outs

    def source(self) -> ModelSource:
        """The inner model as a :class:`~edgeai.formats.ModelSource` (bytes, never a file)."""
        return ModelSource(
            format=self.metadata.format,
            data=self.model_bytes,
            metadata={"bundle": self.metadata.model_dump(), "signer": self.signer},
        )


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _aad(name: str, version: str, section: str) -> bytes:
    return b"\x00".join([b"edgeai-bundle", name.encode(), version.encode(), section.encode()])


def _expiry(created: datetime, expires: datetime | timedelta | None) -> str | None:
    if expires is None:
        return None
    when = created + expires if isinstance(expires, timedelta) else expires
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).isoformat(timespec="seconds")


def _input_infos(source: ModelSource) -> list[InputInfo]:
    import edgeai

    with edgeai.Session(source) as sess:
        return [
            InputInfo(name=s.name, dtype=str(s.dtype), shape=None if s.shape is None else list(s.shape))
            for s in sess.inputs
        ]


def _smoke_npz(
    source: ModelSource,
    sample_inputs: Mapping[str, np.ndarray],
    expected_outputs: Mapping[str, np.ndarray] | None,
) -> bytes:
    if expected_outputs is None:
        import edgeai

        with edgeai.Session(source) as sess:
            expected_outputs = sess.run(dict(sample_inputs))
    arrays = {f"in/{k}": np.asarray(v) for k, v in sample_inputs.items()}
    arrays.update({f"out/{k}": np.asarray(v) for k, v in expected_outputs.items()})
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False, **arrays)
    return buf.getvalue()


def create_bundle(
    model: Any,
    *,
    name: str,
    version: str,
    signing_key: Any,
    target: str = "any",
    preprocessing: str = "",
    description: str = "",
    expires: datetime | timedelta | None = timedelta(days=365),
    encryption_key: bytes | str | None = None,
    sample_inputs: Mapping[str, np.ndarray] | None = None,
    expected_outputs: Mapping[str, np.ndarray] | None = None,
    smoke_rtol: float = 1e-4,
    smoke_atol: float = 1e-5,
    extra: Mapping[str, Any] | None = None,
) -> bytes:
    """Build a signed bundle; returns its bytes (see :func:`write_bundle` to save it).

    Args:
        model: a model path or bytes in any format edgeai runs (not a bundle).
        name, version, target: what the device checks (mix-and-match, anti-rollback);
            ``version`` is a semantic version.
        signing_key: an Ed25519 private key, its PEM/raw bytes, or a PEM file path.
        expires: when the bundle stops being accepted (freeze protection); a
            ``timedelta`` counts from now; ``None`` never expires.
        encryption_key: 32 bytes (or ``"env:NAME"``, ``"file:PATH"``, hex) to
            encrypt the model and samples with AES-256-GCM; ``None`` leaves them plain.
        sample_inputs: a sample input for the update client's smoke test;
            ``expected_outputs`` default to running the model on it now.
    """
    SemVer.parse(version)
    if not name or "/" in name or "\x00" in name:
        raise ModelFormatError(f"bundle name {name!r} must be non-empty and contain no '/'")
    source = open_model(model)
    if source.format == "bundle":
        raise ModelFormatError("cannot put a bundle inside a bundle: pass the model file itself")
    model_bytes = source.read_bytes() if source.proto is None else source.proto.SerializeToString()
    source = ModelSource(format=source.format, data=model_bytes)
    sk = load_signing_key(signing_key)
    sections: dict[str, bytes] = {_MODEL: model_bytes}
    if sample_inputs is not None:
        sections[_SMOKE] = _smoke_npz(source, sample_inputs, expected_outputs)
    try:
        inputs = _input_infos(source)
    except Exception:  # no installed runtime reads this format: record no input specs
        inputs = []
    key = resolve_encryption_key(encryption_key) if encryption_key is not None else None
    entries: list[FileEntry] = []
    payload: list[bytes] = []
    for section, data in sections.items():
        nonce = None
        if key is not None:
            raw_nonce, data = encrypt(key, data, _aad(name, version, section))
            nonce = base64.b64encode(raw_nonce).decode()
        entries.append(FileEntry(name=section, size=len(data), sha256=_sha256(data), nonce=nonce))
        payload.append(data)
    created = datetime.now(timezone.utc)
    meta = BundleMetadata(
        name=name,
        version=version,
        target=target,
        format=source.format,
        inputs=inputs,
        preprocessing=preprocessing,
        description=description,
        created=created.isoformat(timespec="seconds"),
        expires=_expiry(created, expires),
        encryption=None if key is None else {"alg": "AES-256-GCM", "key_id": encryption_key_id(key)},
        smoke=SmokeTest(rtol=smoke_rtol, atol=smoke_atol) if sample_inputs is not None else None,
        extra=dict(extra or {}),
        files=entries,
    )
    signed = _canonical(meta.model_dump())
    sig = sk.sign(SIGNATURE_CONTEXT + signed)
    sigs = _canonical([{"keyid": key_id(sk.public_key()), "sig": base64.b64encode(sig).decode()}])
    return b"".join([_FIXED.pack(BUNDLE_MAGIC, _LAYOUT, len(signed), len(sigs)), signed, sigs, *payload])


def write_bundle(path: str | os.PathLike[str], model: Any, **kwargs: Any) -> Path:
    """Create a bundle (see :func:`create_bundle`) and write it atomically to ``path``."""
    return atomic_write_bytes(path, create_bundle(model, **kwargs))


def _load(source: Any, policy: TrustPolicy) -> tuple[bytes, str]:
    if isinstance(source, ModelSource):
        if source.data is not None:
            source = source.data
        elif source.path is not None:
            source = source.path
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        policy.check_size(len(data), "the bundle")
        return data, "the bundle"
    path = Path(source).expanduser()
    what = f"bundle {str(path)!r}"
    if not path.is_file():
        from edgeai.errors import ModelNotFoundError

        raise ModelNotFoundError(f"{what} does not exist")
    policy.check_size(path.stat().st_size, what)
    with path.open("rb") as f:  # read at most one byte past the limit: the file may grow
        data = f.read(policy.max_size + 1)
    policy.check_size(len(data), what)
    return data, what


def _split(data: bytes, what: str) -> tuple[bytes, bytes, int]:
    if len(data) < _FIXED.size:
        raise IntegrityError(f"{what} is truncated ({len(data)} bytes): not a complete edgeai bundle")
    magic, layout, signed_len, sigs_len = _FIXED.unpack_from(data)
    if magic != BUNDLE_MAGIC:
        raise IntegrityError(f"{what} does not start with {BUNDLE_MAGIC!r}: corrupted or not an edgeai bundle")
    if layout != _LAYOUT:
        raise IntegrityError(
            f"{what} has layout version {layout}; this edgeai reads version {_LAYOUT} "
            "(corrupted, or made by a newer edgeai)"
        )
    end = _FIXED.size + signed_len + sigs_len
    if signed_len > _MAX_HEADER or sigs_len > _MAX_HEADER or end > len(data):
        raise IntegrityError(f"{what}: header lengths are out of range; the file is corrupted or truncated")
    return data[_FIXED.size : _FIXED.size + signed_len], data[_FIXED.size + signed_len : end], end


def _parse_signatures(raw: bytes, what: str) -> list[dict[str, Any]]:
    try:
        sigs = json.loads(raw)
        ok = isinstance(sigs, list) and all(
            isinstance(s, dict)
            and isinstance(s.get("sig"), str)
            and base64.b64encode(base64.b64decode(s["sig"], validate=True)).decode() == s["sig"]
            for s in sigs
        )
    except (ValueError, TypeError):
        ok = False
    # Only the canonical encoding is accepted: no byte of the file is without meaning.
    if not ok or _canonical(sigs) != raw:
        raise IntegrityError(f"{what}: the signature block is corrupted")
    return sigs  # type: ignore[no-any-return]


def read_bundle(
    source: Any, *, trusted_keys: Any = None, key: bytes | str | None = None, decrypt_sections: bool = True
) -> Bundle:
    """Verify a bundle (path, bytes or ``ModelSource``) and decrypt it in memory.

    ``trusted_keys`` is a :class:`~edgeai.security.TrustPolicy` or the keys it
    takes. Raises a :class:`~edgeai.errors.SecurityError` subclass naming the
    failed check; nothing is decrypted or parsed before the signature holds.
    """
    policy = TrustPolicy.coerce(trusted_keys)
    data, what = _load(source, policy)
    signed, sigs_raw, offset = _split(data, what)
    signer = policy.check_signatures(signed, _parse_signatures(sigs_raw, what), what)
    try:
        meta = BundleMetadata.model_validate_json(signed)
    except ValueError as exc:  # signed by a trusted key yet unreadable: a bug in the producer
        raise IntegrityError(f"{what}: the signed metadata is not valid: {exc}") from exc
    policy.check_metadata(meta.model_dump(), what)
    expected = offset + sum(e.size for e in meta.files)
    if expected != len(data):
        raise IntegrityError(
            f"{what} is {len(data):,} bytes but its signed manifest says {expected:,}: bytes were cut off or appended"
        )
    names = [e.name for e in meta.files]
    if _MODEL not in names:
        raise IntegrityError(f"{what}: the manifest lists no model section")
    if (meta.encryption is not None) != all(e.nonce is not None for e in meta.files):
        raise IntegrityError(f"{what}: the manifest's encryption fields are inconsistent")
    sections: dict[str, bytes] = {}
    for entry in meta.files:
        chunk = data[offset : offset + entry.size]
        offset += entry.size
        if _sha256(chunk) != entry.sha256:
            raise IntegrityError(
                f"{what}: section {entry.name!r} does not match its signed SHA-256; the bundle was "
                "tampered with or damaged in transit"
            )
        sections[entry.name] = chunk
    if meta.encryption is not None and decrypt_sections:
        dkey = resolve_encryption_key(key)
        assert dkey is not None
        if encryption_key_id(dkey) != meta.encryption.get("key_id"):
            from edgeai.errors import DecryptionError

            raise DecryptionError(
                f"{what} is encrypted with key {meta.encryption.get('key_id')}, not with the key given "
                f"({encryption_key_id(dkey)}); pass the key the bundle was made with"
            )
        for entry in meta.files:
            nonce = base64.b64decode(entry.nonce or "")
            sections[entry.name] = decrypt(dkey, nonce, sections[entry.name], _aad(meta.name, meta.version, entry.name))
    return Bundle(meta, sections, signer)


def inspect_bundle(source: Any) -> BundleMetadata:
    """The bundle's metadata WITHOUT verifying it: for display only, never for trust decisions."""
    data = source if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
    signed, _, _ = _split(bytes(data), "the bundle")
    try:
        return BundleMetadata.model_validate_json(signed)
    except ValueError as exc:
        raise IntegrityError(f"the bundle's metadata is not valid: {exc}") from exc


def open_bundle_source(source: ModelSource, *, key: Any = None, trusted_keys: Any = None) -> ModelSource:
    """``Session``'s hook: verify a bundle and return its model, decrypted in memory.

    ``trusted_keys`` is a :class:`~edgeai.security.TrustPolicy`, keys, key
    files, or ``None`` for ``$EDGEAI_TRUSTED_KEYS`` / ``~/.config/edgeai/trusted_keys``.
    ``key`` decrypts encrypted bundles (else ``$EDGEAI_BUNDLE_KEY`` /
    ``$EDGEAI_BUNDLE_KEY_FILE``).
    """
    bundle = read_bundle(source, trusted_keys=trusted_keys, key=key)
    inner = bundle.source()
    if source.path is not None:
        inner.metadata["bundle_path"] = str(source.path)
    return inner
