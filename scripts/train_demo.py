"""Train and export edgeai's demo model: a small CNN on scikit-learn's handwritten digits.

The data set (1,797 8x8 grey-scale digits, UCI ML hand-written digits) ships
inside scikit-learn, so nothing is downloaded. The split is fixed by a seed;
the model is exported to ONNX (opset 17, dynamic batch) next to a handful of
held-out samples with their labels.

Run from the repository root (needs ``pip install torch==2.13.0 scikit-learn``):

    python scripts/train_demo.py

It writes ``edgeai/demo/digits_cnn.onnx``, ``edgeai/demo/samples.npz`` and
``edgeai/demo/split.npz`` (the indices of the train/calibration/test split,
used by the quantization work to calibrate on training samples only).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

SEED = 20261126
OUT = Path(__file__).resolve().parents[1] / "edgeai" / "demo"


def load_split() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]  # N,1,8,8 in [0, 1]
    y = digits.target.astype(np.int64)
    idx = np.arange(len(y))
    train_idx, test_idx = train_test_split(idx, test_size=0.25, random_state=SEED, stratify=y)
    return {"x": x, "y": y, "train_idx": train_idx, "test_idx": test_idx}


def build_model():  # type: ignore[no-untyped-def]
    import torch
    from torch import nn

    class DigitsCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(1, 16, 3, padding=1),  # 16x8x8
                nn.ReLU(),
                nn.Conv2d(16, 32, 3, stride=2, padding=1),  # 32x4x4
                nn.ReLU(),
                nn.Conv2d(32, 32, 3, padding=1),  # 32x4x4
                nn.ReLU(),
            )
            self.pool = nn.AdaptiveAvgPool2d(2)  # 32x2x2
            self.head = nn.Linear(128, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.pool(self.features(x)).flatten(1)
            return torch.softmax(self.head(h), dim=1)

    return DigitsCNN()


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args()
    torch.manual_seed(SEED)
    data = load_split()
    x = torch.from_numpy(data["x"])
    y = torch.from_numpy(data["y"])
    tr, te = data["train_idx"], data["test_idx"]
    model = build_model()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(SEED)
    for epoch in range(args.epochs):
        model.train()
        perm = torch.from_numpy(tr)[torch.randperm(len(tr), generator=gen)]
        for i in range(0, len(perm), 64):
            b = perm[i : i + 64]
            probs = model(x[b])
            loss = torch.nn.functional.nll_loss(torch.log(probs + 1e-9), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if epoch % 10 == 9 or epoch == args.epochs - 1:
            model.eval()
            with torch.no_grad():
                acc = (model(x[te]).argmax(1) == y[te]).float().mean().item()
            print(f"epoch {epoch + 1}: loss {loss.item():.4f}, held-out accuracy {acc:.4f}")
    model.eval()
    OUT.mkdir(parents=True, exist_ok=True)
    onnx_path = OUT / "digits_cnn.onnx"
    torch.onnx.export(
        model,
        (x[:1],),
        str(onnx_path),
        input_names=["image"],
        output_names=["probabilities"],
        dynamic_axes={"image": {0: "N"}, "probabilities": {0: "N"}},
        opset_version=17,
        dynamo=False,
    )
    import onnx

    proto = onnx.load(str(onnx_path))
    proto.doc_string = "edgeai demo: CNN trained on scikit-learn's 8x8 handwritten digits (scripts/train_demo.py)"
    proto.producer_name = "edgeai scripts/train_demo.py"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(onnx_path))
    # 32 held-out samples, stratified-ish: the first 32 of the test split.
    sample_idx = te[:32]
    np.savez_compressed(
        OUT / "samples.npz",
        images=data["x"][sample_idx],
        labels=data["y"][sample_idx].astype(np.int64),
        index=sample_idx,
    )
    np.savez_compressed(OUT / "split.npz", train_idx=tr, test_idx=te, seed=np.int64(SEED))
    print(f"wrote {onnx_path} ({onnx_path.stat().st_size} bytes) and samples")


if __name__ == "__main__":
    main()
