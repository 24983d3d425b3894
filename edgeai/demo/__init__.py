"""The demo model shipped with edgeai: a small CNN trained on handwritten digits.

Trained by ``scripts/train_demo.py`` on scikit-learn's 8x8 digits (1,797
images; 75% train, 25% held out, fixed seed). ``samples()`` returns 32
held-out images with their labels.

Example:
    >>> import edgeai
    >>> images, labels = edgeai.demo.samples()
    >>> images.shape, labels.shape
    ((32, 1, 8, 8), (32,))
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

__all__ = ["model_path", "samples"]


def _file(name: str) -> Path:
    return Path(str(resources.files(__name__).joinpath(name)))


def model_path(variant: str = "float") -> Path:
    """Path of the shipped demo model (``variant="float"``; ``"int8"`` once quantized)."""
    names = {"float": "digits_cnn.onnx", "int8": "digits_cnn_int8.onnx"}
    if variant not in names:
        raise ValueError(f"variant must be one of {sorted(names)}, not {variant!r}")
    path = _file(names[variant])
    if not path.exists():
        raise FileNotFoundError(f"the {variant} demo model is not shipped in this build: {path}")
    return path


def samples() -> tuple[np.ndarray, np.ndarray]:
    """32 held-out images (float32, N x 1 x 8 x 8, values in [0, 1]) and their labels."""
    with np.load(_file("samples.npz")) as data:
        return data["images"].astype(np.float32), data["labels"].astype(np.int64)
