"""Fixtures for lifecycle tests: a signing key and signed bundles on disk."""

from __future__ import annotations

from pathlib import Path

import pytest
from lifecycle_models import SAMPLE, SCALES, affine_onnx


@pytest.fixture(scope="session")
def signer():  # type: ignore[no-untyped-def]
    from edgeai.security import generate_signing_key

    return generate_signing_key()


@pytest.fixture(scope="session")
def bundles(signer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    """One signed bundle per version in SCALES, with a smoke test, plus the public key file."""
    from edgeai.lifecycle import write_bundle
    from edgeai.security import save_public_key

    folder = tmp_path_factory.mktemp("bundles")
    out: dict[str, Path] = {}
    for version, scale in SCALES.items():
        out[version] = write_bundle(
            folder / f"affine-{version}.eai",
            affine_onnx(scale),
            name="affine",
            version=version,
            target="test-cpu",
            signing_key=signer,
            sample_inputs={"x": SAMPLE},
        )
    out["pub"] = save_public_key(signer.public_key(), folder / "release.pub")
    return out
