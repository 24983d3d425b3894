"""``edgeai.export``: torch -> ONNX / ``.pte`` / Core ML / ``.tflite``, then a load-and-compare check."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from edgeai.errors import EdgeAIError, ExportCheckError
from edgeai.export._files import atomic_output

__all__ = ["FORMATS", "ExportResult", "export"]

FORMATS: dict[str, str] = {
    "onnx": ".onnx",
    "pte": ".pte",
    "coreml": ".mlpackage",
    "tflite": ".tflite",
}
"""Export formats and the file suffix each writes."""

_ALIASES = {"executorch": "pte", "mlpackage": "coreml", "mlprogram": "coreml", "litert": "tflite"}

# Largest error allowed, as a fraction of the reference output's largest magnitude.
# float32 formats differ from torch only in summation order; Core ML's default
# float16 compute precision rounds weights and activations to 11-bit mantissas;
# int8 is compared with torch's own simulation of the same quantization.
_TOLERANCE = {
    ("onnx", None): 1e-4,
    ("pte", None): 1e-3,
    ("tflite", None): 1e-3,
    ("coreml", "float32"): 1e-3,
    ("coreml", "float16"): 2e-2,
    ("pte", "int8"): 5e-2,
    ("coreml", "int8"): 5e-2,
}


class ExportResult(BaseModel):
    """What :func:`export` wrote and how well it agreed with torch."""

    model_config = ConfigDict(frozen=True)

    path: Path
    format: str
    quantize: str | None = None
    device: str
    """The edgeai device the check ran on."""
    max_abs_error: float
    """Largest absolute difference from the reference outputs on the example inputs."""
    relative_error: float
    """``max_abs_error`` divided by the reference's largest magnitude."""
    tolerance: float
    """The ``relative_error`` the check allowed."""
    reference: str
    """What the outputs were compared with."""
    seconds: float
    """Wall time of conversion and check."""


def export(
    model: Any,
    example_inputs: Any,
    format: str = "onnx",
    path: str | Path | None = None,
    *,
    quantize: str | None = None,
    calibration: Iterable[Any] | None = None,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    opset: int = 17,
    dynamo: bool | None = None,
    precision: str = "float16",
    tolerance: float | None = None,
    check: bool = True,
) -> ExportResult:
    """Export ``model`` to ``format`` at ``path``; check that it loads and agrees with torch.

    Args:
        model: a ``torch.nn.Module`` (put in eval mode here).
        example_inputs: a tensor or a tuple of tensors; their shapes become the
            model's input shapes.
        format: ``"onnx"``, ``"pte"`` (ExecuTorch, XNNPACK-lowered),
            ``"coreml"`` (ML program ``.mlpackage``) or ``"tflite"``.
        path: where to write; default ``model.<suffix>`` in the working folder.
            Written atomically: a failed export leaves an existing file as it was.
        quantize: ``None`` or ``"int8"``: for ``pte`` static int8 with the
            XNNPACK quantizer (calibrated on ``calibration``, default the example
            inputs); for ``coreml`` int8 linear weight quantization
            (``constexpr_affine_dequantize``).
        calibration: input tuples for int8 calibration.
        input_names, output_names: names in the exported model; default
            ``input``/``output`` (``input_0``, ``input_1``, ... when several).
        opset: ONNX opset for ``format="onnx"``.
        dynamo: ONNX only: use torch's dynamo exporter (needs onnxscript);
            default: dynamo when onnxscript is installed, else the TorchScript exporter.
        precision: Core ML compute precision, ``"float16"`` or ``"float32"``.
        tolerance: largest allowed error relative to the largest reference
            output magnitude (a per-format default otherwise).
        check: load the result with :class:`edgeai.Session` and compare with torch.

    Returns:
        An :class:`ExportResult` with the path and the measured error.

    Raises:
        MissingDependencyError: the converter for ``format`` is not installed.
        ExportCheckError: the result disagrees with torch beyond ``tolerance``.

    Example:
        >>> import torch
        >>> from edgeai.export import export
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU()).eval()
        >>> export(net, torch.randn(1, 1, 8, 8), "onnx", "/tmp/doc_conv.onnx").format
        'onnx'
    """
    fmt = _ALIASES.get(format.lower(), format.lower())
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    if quantize not in (None, "int8"):
        raise ValueError(f"quantize must be None or 'int8', not {quantize!r}")
    if quantize and fmt not in ("pte", "coreml"):
        raise ValueError(
            f"quantize='int8' is supported for 'pte' and 'coreml'; for ONNX use edgeai.optimize "
            f"on the exported float model (asked for {fmt!r})"
        )
    if precision not in ("float16", "float32"):
        raise ValueError(f"precision must be 'float16' or 'float32', not {precision!r}")
    import torch

    from edgeai.export import _converters

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, not {type(model).__name__}")
    args = _as_tuple(example_inputs)
    # a torch.export module (from a .pt2) refuses eval(): it is already in inference form
    with contextlib.suppress(NotImplementedError):
        model = model.eval()
    in_names = list(input_names) if input_names else _default_names("input", len(args))
    if len(in_names) != len(args):
        raise ValueError(f"{len(in_names)} input_names given for {len(args)} example inputs")
    try:
        with torch.no_grad():
            ref_out = _flatten(model(*args))
    except Exception as exc:
        shapes = ", ".join(str(tuple(a.shape)) for a in args)
        raise ValueError(f"the torch model fails on the example inputs (shapes {shapes}): {exc}") from exc
    out_names = list(output_names) if output_names else _default_names("output", len(ref_out))
    if len(out_names) != len(ref_out):
        raise ValueError(f"{len(out_names)} output_names given but the model returns {len(ref_out)} outputs")
    target = Path(path) if path is not None else Path(f"model{FORMATS[fmt]}")
    if target.suffix.lower() != FORMATS[fmt]:
        target = target.with_name(target.name + FORMATS[fmt])
    start = time.perf_counter()
    reference = "torch model (float)"
    ref_fn = None
    with atomic_output(target) as tmp:
        if fmt == "onnx":
            _converters.to_onnx(model, args, tmp, in_names, out_names, opset, dynamo)
        elif fmt == "pte":
            ref_fn = _converters.to_pte(model, args, tmp, quantize, calibration)
            if ref_fn is not None:
                reference = "torch model with the same int8 quantization simulated (pt2e convert)"
        elif fmt == "coreml":
            _converters.to_coreml(model, args, tmp, in_names, out_names, precision, quantize)
        else:
            _converters.to_tflite(model, args, tmp)
        if ref_fn is not None:
            with torch.no_grad():
                ref_out = _flatten(ref_fn(*args))
        key = (fmt, quantize or (precision if fmt == "coreml" else None))
        tol = float(tolerance) if tolerance is not None else _TOLERANCE[key]
        device, err, rel = "", 0.0, 0.0
        if check:
            device, err, rel = _check(tmp, fmt, args, in_names, out_names, ref_out, tol, target)
    return ExportResult(
        path=target,
        format=fmt,
        quantize=quantize,
        device=device or "(not checked)",
        max_abs_error=err,
        relative_error=rel,
        tolerance=tol,
        reference=reference,
        seconds=time.perf_counter() - start,
    )


def _check(
    path: Path,
    fmt: str,
    args: tuple[Any, ...],
    in_names: list[str],
    out_names: list[str],
    ref_out: list[np.ndarray],
    tol: float,
    target: Path,
) -> tuple[str, float, float]:
    from edgeai.session import Session

    backend = {"onnx": "onnxruntime", "pte": "executorch", "coreml": "coreml", "tflite": "litert"}[fmt]
    try:
        sess = Session(path, device=backend)
    except EdgeAIError as exc:
        raise type(exc)(f"the exported {fmt} model does not load through edgeai ({target}): {exc}") from exc
    with sess:
        names = [s.name for s in sess.inputs]
        feeds = dict(zip(names, (a.detach().cpu().numpy() for a in args)))
        got = sess.run(feeds)
        outs = [got[s.name] for s in sess.outputs]
        device = sess.device.id
    if len(outs) != len(ref_out):
        raise ExportCheckError(
            f"the exported {fmt} model has {len(outs)} outputs but the torch model returns {len(ref_out)}"
        )
    worst, worst_rel, worst_i = 0.0, 0.0, 0
    for i, (o, r) in enumerate(zip(outs, ref_out)):
        if tuple(o.shape) != tuple(r.shape):
            raise ExportCheckError(
                f"output {out_names[i]!r} of the exported {fmt} model has shape {tuple(o.shape)}, "
                f"torch gives {tuple(r.shape)}"
            )
        diff = float(np.max(np.abs(o.astype(np.float64) - r.astype(np.float64)))) if r.size else 0.0
        scale = max(float(np.max(np.abs(r))) if r.size else 0.0, 1e-6)
        if diff / scale >= worst_rel:
            worst, worst_rel, worst_i = diff, diff / scale, i
    if worst_rel > tol:
        raise ExportCheckError(
            f"the exported {fmt} model disagrees with torch on the example inputs: output "
            f"{out_names[worst_i]!r} is off by {worst:.3g} ({worst_rel:.2%} of its largest value, "
            f"allowed {tol:.2%}). Nothing was written to {target}. Pass tolerance= to accept it, "
            "or check the model for ops the converter handles differently."
        )
    return device, worst, worst_rel


def _as_tuple(example_inputs: Any) -> tuple[Any, ...]:
    import torch

    args = (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)
    if not args:
        raise ValueError("example_inputs is empty: pass a tensor or a tuple of tensors")
    for i, a in enumerate(args):
        if not isinstance(a, torch.Tensor):
            raise TypeError(f"example input {i} is a {type(a).__name__}, not a torch.Tensor")
    return args


def _flatten(out: Any) -> list[np.ndarray]:
    import torch

    if isinstance(out, torch.Tensor):
        return [out.detach().cpu().numpy()]
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        flat: list[np.ndarray] = []
        for o in out:
            flat.extend(_flatten(o))
        return flat
    raise TypeError(f"the model returned a {type(out).__name__}; export needs tensors")


def _default_names(prefix: str, n: int) -> list[str]:
    return [prefix] if n == 1 else [f"{prefix}_{i}" for i in range(n)]
