"""Fixtures of the optimization tests: the digits split the demo model was trained on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import edgeai


@pytest.fixture(scope="session")
def digits() -> dict[str, np.ndarray]:
    """scikit-learn's digits, split as scripts/train_demo.py split them (edgeai/demo/split.npz)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[:, None, :, :]
    y = data.target.astype(np.int64)
    split_file = Path(edgeai.demo.__file__).with_name("split.npz")
    with np.load(split_file) as split:
        tr, te = split["train_idx"], split["test_idx"]
    return {"x_train": x[tr], "y_train": y[tr], "x_test": x[te], "y_test": y[te]}


@pytest.fixture(scope="session")
def demo_calibration(digits: dict[str, np.ndarray]) -> list[np.ndarray]:
    """100 training images, one feed each."""
    return [digits["x_train"][i : i + 1] for i in range(100)]


@pytest.fixture(scope="session")
def demo_float() -> Path:
    return edgeai.demo.model_path()
