"""The public face: light import, exported names, demo assets."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

import edgeai

HEAVY = ("onnxruntime", "onnx", "numba", "torch", "tensorflow", "coremltools", "executorch", "pydantic")


def test_import_loads_no_runtime() -> None:
    code = f"import sys, edgeai; heavy = [m for m in {HEAVY!r} if m in sys.modules]; print(','.join(heavy))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import edgeai loaded {out.stdout.strip()}"


def test_all_names_resolve() -> None:
    for name in edgeai.__all__:
        assert getattr(edgeai, name) is not None, name
    assert callable(edgeai.devices)
    assert isinstance(edgeai.errors.EdgeAIError("x"), Exception)


def test_every_error_is_an_edgeai_error() -> None:
    for name in edgeai.errors.__all__:
        cls = getattr(edgeai.errors, name)
        assert issubclass(cls, edgeai.errors.EdgeAIError), name


def test_py_typed_ships() -> None:
    from importlib import resources

    assert resources.files("edgeai").joinpath("py.typed").is_file()


def test_demo_assets_are_real_data() -> None:
    """The shipped samples are images of scikit-learn's digits test split, with their labels."""
    from sklearn.datasets import load_digits

    images, labels = edgeai.demo.samples()
    with np.load(edgeai.demo.model_path().parent / "samples.npz") as data:
        index = data["index"]
    digits = load_digits()
    np.testing.assert_allclose(images[:, 0], digits.images[index] / 16.0, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(labels, digits.target[index])
    assert edgeai.demo.model_path().stat().st_size < 1_000_000
    with np.load(edgeai.demo.model_path().parent / "split.npz") as split:
        assert not set(split["train_idx"]) & set(index), "shipped samples must be held out"


def test_demo_model_accuracy_on_full_held_out_split() -> None:
    """Accuracy over all 450 held-out digits, not just the 32 shipped samples."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    with np.load(edgeai.demo.model_path().parent / "split.npz") as split:
        test_idx = split["test_idx"]
    x = (digits.images[test_idx] / 16.0).astype(np.float32)[:, None]
    sess = edgeai.Session(edgeai.demo.model_path())
    acc = float((sess(x)["probabilities"].argmax(1) == digits.target[test_idx]).mean())
    assert acc > 0.95, acc
