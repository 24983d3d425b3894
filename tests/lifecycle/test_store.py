"""The versioned store: install, activate, rollback, keep-N, and crash safety at every write."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from lifecycle_models import SAMPLE, affine_onnx, expected

from edgeai.errors import MixAndMatchError, RollbackError, SignatureError
from edgeai.lifecycle import ModelStore, StoreError


def check_store(root: Path, pub: Path, allowed: set[str]) -> str:
    """Reopen the store, assert it is valid, run its active model against the reference."""
    store = ModelStore(root, trusted_keys=[pub])
    assert store.verify() == []
    assert list((root / "tmp").iterdir()) == []
    named = {Path(v.file).name for v in store.list()}
    assert {p.name for p in (root / "versions").iterdir()} == named
    active = store.active
    assert active in allowed
    with store.open_session() as sess:
        out = sess.run({"x": SAMPLE})["y"]
    np.testing.assert_allclose(out, expected(active), rtol=1e-6)  # type: ignore[arg-type]
    return active  # type: ignore[return-value]


def test_install_activate_rollback(tmp_path: Path, bundles: dict[str, Path]) -> None:
    store = ModelStore(tmp_path / "s", trusted_keys=[bundles["pub"]], keep=2)
    assert store.active is None
    store.install(bundles["1.0.0"], activate=True)
    store.install(bundles["1.1.0"])
    assert store.active == "1.0.0"
    store.activate("1.1.0")
    assert check_store(store.root, bundles["pub"], {"1.1.0"}) == "1.1.0"
    assert store.rollback() == "1.0.0"
    assert check_store(store.root, bundles["pub"], {"1.0.0"}) == "1.0.0"
    with pytest.raises(StoreError, match="no earlier version"):
        store.rollback()
    with pytest.raises(StoreError, match="not installed"):
        store.activate("9.9.9")
    # keep=2: installing a third version drops the oldest non-active one
    store.activate("1.1.0")
    store.install(bundles["2.0.0"], activate=True)
    assert [v.version for v in store.list()] == ["2.0.0", "1.1.0"]
    assert [v.active for v in store.list()] == [True, False]
    assert len(list((store.root / "versions").iterdir())) == 2


def test_store_refuses_rollback_mix_and_match_and_strangers(
    tmp_path: Path,
    bundles: dict[str, Path],
    signer,  # type: ignore[no-untyped-def]
) -> None:
    from edgeai.lifecycle import create_bundle
    from edgeai.security import generate_signing_key

    store = ModelStore(tmp_path / "s", trusted_keys=[bundles["pub"]])
    store.install(bundles["1.1.0"], activate=True)
    with pytest.raises(RollbackError, match=r"older than the installed 1\.1\.0"):
        store.install(bundles["1.0.0"])
    other = create_bundle(affine_onnx(9), name="faces", version="3.0.0", signing_key=signer)
    with pytest.raises(MixAndMatchError, match="'faces'"):
        store.install(other)
    wrong_target = ModelStore(tmp_path / "t", trusted_keys=[bundles["pub"]], target="rpi5")
    with pytest.raises(MixAndMatchError, match="target"):
        wrong_target.install(bundles["1.0.0"])
    stranger = create_bundle(affine_onnx(9), name="affine", version="3.0.0", signing_key=generate_signing_key())
    with pytest.raises(SignatureError):
        store.install(stranger)
    same_version = create_bundle(affine_onnx(9), name="affine", version="1.1.0", signing_key=signer)
    with pytest.raises(RollbackError, match="different content"):
        store.install(same_version)
    # the anti-rollback floor survives rollback() and reopening
    store.install(bundles["2.0.0"], activate=True)
    store.rollback()
    assert ModelStore(store.root, trusted_keys=[bundles["pub"]]).state.highest == "2.0.0"
    with pytest.raises(RollbackError):
        ModelStore(store.root, trusted_keys=[bundles["pub"]]).install(bundles["1.0.0"])
    assert check_store(store.root, bundles["pub"], {"1.1.0"}) == "1.1.0"


_CHILD = textwrap.dedent(
    """
    import sys
    from edgeai.lifecycle import ModelStore
    root, pub, op = sys.argv[1], sys.argv[2], sys.argv[3]
    store = ModelStore(root, trusted_keys=[pub], keep=2)
    if op == "rollback":
        store.rollback()
    elif op.startswith("activate:"):
        store.activate(op[9:])
    else:
        store.install(op, activate=True)
    """
)


def _kill_at_every_step(template: Path, work: Path, pub: Path, op: str, allowed: set[str], final: str) -> int:
    step = 0
    while True:
        step += 1
        assert step < 50, "the operation never completed"
        if work.exists():
            shutil.rmtree(work)
        shutil.copytree(template, work)
        env = dict(os.environ, EDGEAI_STORE_CRASH_AT=str(step))
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(work), str(pub), op],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if proc.returncode == 0:
            assert check_store(work, pub, {final}) == final
            return step - 1
        assert proc.returncode == 86, proc.stderr
        assert "simulated crash" in proc.stderr
        check_store(work, pub, allowed)


@pytest.mark.slow
def test_kill_at_every_write_step_leaves_a_valid_store(tmp_path: Path, bundles: dict[str, Path]) -> None:
    template = tmp_path / "template"
    store = ModelStore(template, trusted_keys=[bundles["pub"]], keep=2)
    store.install(bundles["1.0.0"], activate=True)
    store.install(bundles["1.1.0"], activate=True)
    # install + activate 2.0.0 with keep=2: writes the bundle, the state, and prunes 1.0.0
    steps = _kill_at_every_step(
        template, tmp_path / "w1", bundles["pub"], str(bundles["2.0.0"]), {"1.1.0", "2.0.0"}, "2.0.0"
    )
    assert steps >= 9  # half-written, tmp-written, renamed, synced for bundle and state, removal
    # rollback from 1.1.0 to 1.0.0
    steps = _kill_at_every_step(template, tmp_path / "w2", bundles["pub"], "rollback", {"1.0.0", "1.1.0"}, "1.0.0")
    assert steps >= 4
    # plain activation of an installed older version
    steps = _kill_at_every_step(
        template, tmp_path / "w3", bundles["pub"], "activate:1.0.0", {"1.0.0", "1.1.0"}, "1.0.0"
    )
    assert steps >= 4
