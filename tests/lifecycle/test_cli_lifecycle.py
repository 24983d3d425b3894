"""`edgeai bundle ...` and `edgeai store ...` end to end, in process."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from lifecycle_models import SAMPLE, affine_onnx, expected

from edgeai.cli import main


def test_bundle_and_store_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys, out, models = tmp_path / "keys", tmp_path / "out", tmp_path / "models"
    models.mkdir()
    for version, scale in (("1.0.0", 2.0), ("1.1.0", 3.0)):
        (models / f"m{version}.onnx").write_bytes(affine_onnx(scale))
    np.save(models / "x.npy", SAMPLE)
    assert main(["bundle", "keygen", "--out", str(keys), "--encryption"]) == 0
    assert (keys / "release.key").stat().st_mode & 0o077 == 0  # private files are owner-only
    assert (keys / "release.aeskey").stat().st_mode & 0o077 == 0
    pub = str(keys / "release.pub")
    for version in ("1.0.0", "1.1.0"):
        args = ["bundle", "create", str(models / f"m{version}.onnx"), "-o", str(out / f"a-{version}.eai")]
        args += ["--name", "affine", "--version", version, "--signing-key", str(keys / "release.key")]
        args += ["--target", "cpu", "--sample-input", f"x={models / 'x.npy'}"]
        assert main(args) == 0
    capsys.readouterr()
    assert main(["bundle", "verify", str(out / "a-1.0.0.eai"), "--trusted-key", pub, "--name", "affine"]) == 0
    assert "OK: affine 1.0.0 for cpu" in capsys.readouterr().out
    assert main(["bundle", "inspect", str(out / "a-1.0.0.eai"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["verified"] is False and info["metadata"]["version"] == "1.0.0"
    bad = bytearray((out / "a-1.0.0.eai").read_bytes())
    bad[-3] ^= 1
    (out / "bad.eai").write_bytes(bytes(bad))
    assert main(["bundle", "verify", str(out / "bad.eai"), "--trusted-key", pub]) == 2
    assert "IntegrityError" not in capsys.readouterr().err  # the message, not a traceback
    assert main(["bundle", "verify", str(out / "a-1.0.0.eai"), "--trusted-key", pub, "--min-version", "1.1.0"]) == 2
    assert "anti-rollback" in capsys.readouterr().err

    store = str(tmp_path / "store")
    assert main(["store", "install", store, str(out / "a-1.0.0.eai"), "--activate", "--trusted-key", pub]) == 0
    assert main(["store", "update", store, str(out / "a-1.1.0.eai"), "--trusted-key", pub]) == 0
    assert "activated: 1.1.0" in capsys.readouterr().out
    assert main(["store", "list", store, "--json", "--trusted-key", pub]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [(v["version"], v["active"]) for v in listing] == [("1.1.0", True), ("1.0.0", False)]
    assert main(["store", "rollback", store, "--trusted-key", pub]) == 0
    assert main(["store", "activate", store, "1.1.0", "--trusted-key", pub]) == 0
    assert main(["store", "activate", store, "7.0.0", "--trusted-key", pub]) == 2
    from edgeai.lifecycle import ModelStore

    with ModelStore(store, trusted_keys=[pub]).open_session() as sess:
        np.testing.assert_allclose(sess.run({"x": SAMPLE})["y"], expected("1.1.0"), rtol=1e-6)


def test_encrypted_bundle_cli_keeps_key_apart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = tmp_path / "keys"
    assert main(["bundle", "keygen", "--out", str(keys), "--encryption"]) == 0
    (tmp_path / "m.onnx").write_bytes(affine_onnx(2.0))
    base = ["bundle", "create", str(tmp_path / "m.onnx"), "--name", "affine", "--version", "1.0.0"]
    base += ["--signing-key", str(keys / "release.key"), "--encrypt-key", str(keys / "release.aeskey")]
    assert main([*base, "-o", str(keys / "m.eai")]) == 2  # beside the key: refused
    assert "beside" in capsys.readouterr().err
    assert main([*base, "-o", str(tmp_path / "m.eai")]) == 0
    pub = str(keys / "release.pub")
    assert main(["bundle", "verify", str(tmp_path / "m.eai"), "--trusted-key", pub]) == 0
    assert "encrypted" in capsys.readouterr().out
    key = f"file:{keys / 'release.aeskey'}"
    assert main(["bundle", "verify", str(tmp_path / "m.eai"), "--trusted-key", pub, "--key", key]) == 0
    other = tmp_path / "other.aeskey"
    other.write_text("00" * 32)
    assert main(["bundle", "verify", str(tmp_path / "m.eai"), "--trusted-key", pub, "--key", str(other)]) == 2
    assert "not with the key given" in capsys.readouterr().err
