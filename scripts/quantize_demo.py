"""Quantize the shipped demo model to INT8 and measure what it costs in accuracy.

Calibration uses TRAINING samples only (the split in ``edgeai/demo/split.npz``,
written by ``scripts/train_demo.py``); accuracy is measured on the held-out
split, which neither training nor calibration saw. Each calibrator is measured;
the shipped model uses the default (min-max, per-channel int8 weights, uint8
activations, QDQ).

Run from the repository root (needs scikit-learn, for the digits images):

    python scripts/quantize_demo.py            # measure and write edgeai/demo/digits_cnn_int8.onnx
    python scripts/quantize_demo.py --dry-run  # measure only
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "edgeai" / "demo"


def load_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train and held-out images (N x 1 x 8 x 8 in [0, 1]) and labels, as train_demo.py split them."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    y = digits.target.astype(np.int64)
    with np.load(DEMO / "split.npz") as split:
        train_idx, test_idx = split["train_idx"], split["test_idx"]
    assert not set(train_idx.tolist()) & set(test_idx.tolist()), "train and held-out splits overlap"
    return x[train_idx], y[train_idx], x[test_idx], y[test_idx]


def main() -> None:
    from edgeai.optimize import evaluate, quantize

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dry-run", action="store_true", help="do not write the INT8 model")
    parser.add_argument("--calibration-samples", type=int, default=500)
    args = parser.parse_args()

    x_train, _, x_test, y_test = load_split()
    rng = np.random.default_rng(20261126)
    pick = rng.choice(len(x_train), size=min(args.calibration_samples, len(x_train)), replace=False)
    calibration = [x_train[i : i + 1] for i in np.sort(pick)]
    float_model = DEMO / "digits_cnn.onnx"
    print(f"calibration: {len(calibration)} training samples; evaluation: {len(x_test)} held-out samples\n")
    print("| calibrator | float top-1 | int8 top-1 | drop (points) | agreement | output SQNR dB | size | calib s |")
    print("|---|---|---|---|---|---|---|---|")
    shipped = None
    for method in ("minmax", "percentile", "entropy"):
        start = time.perf_counter()
        result = quantize(float_model, calibration, method=method, progress=False)
        seconds = time.perf_counter() - start
        report = evaluate(result.model, x_test, y_test, reference=float_model)
        assert report.top1 is not None and report.reference_top1 is not None
        print(
            f"| {method} | {report.reference_top1:.4f} | {report.top1:.4f} | "
            f"{100 * (report.reference_top1 - report.top1):+.2f} | {report.agreement:.4f} | "
            f"{report.outputs[0].sqnr_db:.1f} | {report.size_bytes:,} / {report.reference_size_bytes:,} | "
            f"{seconds:.2f} |"
        )
        if method == "minmax":
            shipped = result
    assert shipped is not None
    if not args.dry_run:
        shipped.model.doc_string = (
            "edgeai demo, INT8 (QDQ, min-max calibration on training samples; scripts/quantize_demo.py)"
        )
        path = shipped.save(DEMO / "digits_cnn_int8.onnx")
        print(f"\nwrote {path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
