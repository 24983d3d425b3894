"""Test models built from published architectures with seeded random weights.

MobileNetV2 follows Sandler et al. 2018 (arXiv:1801.04381), Table 2: an
initial 3x3 conv, 17 inverted-residual bottlenecks with expansion t, channels
c, repeats n and stride s, a final 1x1 conv to 1280, global pooling and a
classifier. ``width`` scales channels and ``resolution`` the input, so tests
can use a small variant with the same structure.

Built in torch, exported with ``torch.onnx.export(dynamo=False)``, quantized
with ``onnxruntime.quantization.quantize_static``. Files are cached per
process under a temporary folder (pytest's ``tmp_path_factory`` in conftest).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# t, c, n, s from Table 2 of the paper
MOBILENETV2_CFG = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def _make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def build_mobilenetv2(width: float = 1.0, num_classes: int = 1000, seed: int = 0):  # type: ignore[no-untyped-def]
    """A torch MobileNetV2 in eval mode with seeded random weights (BN stats randomised too)."""
    import torch
    from torch import nn

    torch.manual_seed(seed)

    def conv_bn(inp: int, out: int, k: int, s: int, groups: int = 1, act: bool = True) -> nn.Sequential:
        layers: list[nn.Module] = [
            nn.Conv2d(inp, out, k, s, (k - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out),
        ]
        if act:
            layers.append(nn.ReLU6(inplace=False))
        return nn.Sequential(*layers)

    class InvertedResidual(nn.Module):
        def __init__(self, inp: int, out: int, stride: int, t: int) -> None:
            super().__init__()
            hidden = inp * t
            self.use_res = stride == 1 and inp == out
            layers: list[nn.Module] = []
            if t != 1:
                layers.append(conv_bn(inp, hidden, 1, 1))
            layers += [
                conv_bn(hidden, hidden, 3, stride, groups=hidden),
                conv_bn(hidden, out, 1, 1, act=False),
            ]
            self.conv = nn.Sequential(*layers)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.conv(x) if self.use_res else self.conv(x)

    class MobileNetV2(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            inp = _make_divisible(32 * width)
            last = _make_divisible(1280 * max(1.0, width))
            feats: list[nn.Module] = [conv_bn(3, inp, 3, 2)]
            for t, c, n, s in MOBILENETV2_CFG:
                out = _make_divisible(c * width)
                for i in range(n):
                    feats.append(InvertedResidual(inp, out, s if i == 0 else 1, t))
                    inp = out
            feats.append(conv_bn(inp, last, 1, 1))
            self.features = nn.Sequential(*feats)
            self.classifier = nn.Linear(last, num_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.features(x)
            x = x.mean((2, 3))
            return self.classifier(x)

    model = MobileNetV2()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) * 0.5 + 0.75)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
    return model.eval()


def export_mobilenetv2(path: Path, *, width: float = 0.5, resolution: int = 96, seed: int = 0) -> Path:
    """Export the float model to ONNX (opset 17, input ``input`` N x 3 x R x R)."""
    import torch

    model = build_mobilenetv2(width=width, num_classes=100, seed=seed)
    x = torch.randn(1, 3, resolution, resolution, generator=torch.Generator().manual_seed(seed))
    torch.onnx.export(
        model,
        (x,),
        str(path),
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
        opset_version=17,
        dynamo=False,
    )
    return path


def calibration_data(n: int = 8, resolution: int = 96, seed: int = 1) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"input": rng.standard_normal((1, 3, resolution, resolution)).astype(np.float32)} for _ in range(n)]


def quantize_mobilenetv2(
    float_path: Path,
    out_path: Path,
    *,
    fmt: str = "QDQ",
    per_channel: bool = True,
    reduce_range: bool = False,
    resolution: int = 96,
) -> Path:
    """Quantize with onnxruntime's ``quantize_static`` (QDQ or QOperator, uint8 activations)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(calibration_data(resolution=resolution))

        def get_next(self):  # type: ignore[no-untyped-def]
            return next(self._it, None)

    quantize_static(
        str(float_path),
        str(out_path),
        Reader(),
        quant_format=QuantFormat.QDQ if fmt == "QDQ" else QuantFormat.QOperator,
        per_channel=per_channel,
        reduce_range=reduce_range,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    return out_path
