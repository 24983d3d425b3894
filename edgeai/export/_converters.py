"""The converters behind :func:`edgeai.export.export`: one function per format.

Each writes to the path it is given (a temporary path chosen by the caller)
and imports its converter only when called.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from edgeai.errors import ConversionError, MissingDependencyError

__all__ = ["tflite_converter_status", "to_coreml", "to_onnx", "to_pte", "to_tflite"]


def to_onnx(
    model: Any,
    args: tuple[Any, ...],
    path: Path,
    input_names: list[str],
    output_names: list[str],
    opset: int,
    dynamo: bool | None,
) -> None:
    import torch

    has_onnxscript = importlib.util.find_spec("onnxscript") is not None
    if dynamo is None:
        dynamo = has_onnxscript
    if dynamo and not has_onnxscript:
        raise MissingDependencyError(
            "the dynamo ONNX exporter needs onnxscript: pip install onnxscript, or pass dynamo=False "
            "to use torch's TorchScript exporter"
        )
    kwargs: dict[str, Any] = {"dynamo": dynamo}
    if dynamo:
        kwargs["external_data"] = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                args,
                str(path),
                input_names=input_names,
                output_names=output_names,
                opset_version=opset,
                **kwargs,
            )
    except Exception as exc:
        raise ConversionError(f"torch.onnx.export failed: {exc}") from exc


def to_pte(
    model: Any,
    args: tuple[Any, ...],
    path: Path,
    quantize: str | None,
    calibration: Iterable[Any] | None,
) -> Callable[..., Any] | None:
    """Write a ``.pte`` lowered with XNNPACK; return the quantized torch reference for int8."""
    try:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower
    except ImportError as exc:
        raise MissingDependencyError(
            f'exporting to .pte needs ExecuTorch ({exc}): pip install "edgeai[executorch]" '
            "(executorch==1.5.1 torchao==0.18.0 with torch 2.13.0)"
        ) from exc
    import torch

    reference = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if quantize == "int8":
                reference = _quantize_xnnpack(model, args, calibration)
                exported = torch.export.export(reference, args)
            else:
                exported = torch.export.export(model, args)
            edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
            program = edge.to_executorch()
    except MissingDependencyError:
        raise
    except Exception as exc:
        raise ConversionError(f"ExecuTorch export failed: {exc}") from exc
    with open(path, "wb") as f:
        program.write_to_file(f)
    return reference


def _quantize_xnnpack(model: Any, args: tuple[Any, ...], calibration: Iterable[Any] | None) -> Any:
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    graph = torch.export.export(model, args).module()
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(graph, quantizer)
    batches = list(calibration) if calibration is not None else [args]
    if not batches:
        raise ValueError("calibration is empty: pass at least one input tuple for int8")
    with torch.no_grad():
        for batch in batches:
            batch = (batch,) if isinstance(batch, torch.Tensor) else tuple(batch)
            prepared(*batch)
    return convert_pt2e(prepared)


def to_coreml(
    model: Any,
    args: tuple[Any, ...],
    path: Path,
    input_names: list[str],
    output_names: list[str],
    precision: str,
    quantize: str | None,
) -> None:
    try:
        import coremltools as ct
    except ImportError as exc:
        raise MissingDependencyError(
            f'exporting to Core ML needs coremltools ({exc}): pip install "edgeai[coreml]" (coremltools==9.0)'
        ) from exc
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exported = torch.export.export(model, args).run_decompositions({})
            mlmodel = ct.convert(
                exported,
                # float32 at the boundary (as the other formats), whatever the compute precision
                inputs=[
                    ct.TensorType(name=n, shape=tuple(a.shape), dtype=_ct_dtype(a)) for n, a in zip(input_names, args)
                ],
                outputs=[ct.TensorType(name=n, dtype=np.float32) for n in output_names],
                convert_to="mlprogram",
                compute_precision=(ct.precision.FLOAT16 if precision == "float16" else ct.precision.FLOAT32),
                # iOS16 keeps int8 weights as constexpr_affine_dequantize (iOS18 would use
                # constexpr_blockwise_shift_scale).
                minimum_deployment_target=ct.target.iOS16,
            )
            if quantize == "int8":
                from coremltools.optimize.coreml import (
                    OpLinearQuantizerConfig,
                    OptimizationConfig,
                    linear_quantize_weights,
                )

                config = OptimizationConfig(
                    global_config=OpLinearQuantizerConfig(mode="linear_symmetric", weight_threshold=0)
                )
                mlmodel = linear_quantize_weights(mlmodel, config)
    except Exception as exc:
        raise ConversionError(f"coremltools conversion failed: {exc}") from exc
    mlmodel.save(str(path))


def _ct_dtype(tensor: Any) -> Any:
    import torch

    return {torch.int32: np.int32, torch.int64: np.int32, torch.float16: np.float16}.get(tensor.dtype, np.float32)


_LITERT_MODULES = ("litert_torch", "ai_edge_torch")


def tflite_converter_status() -> tuple[str | None, str]:
    """The importable torch-to-TFLite converter module, or ``None`` and why not."""
    for name in _LITERT_MODULES:
        if importlib.util.find_spec(name) is not None:
            return name, "installed"
    why = "no torch-to-TFLite converter is installed (litert-torch)"
    try:
        from importlib.metadata import version

        pyd = version("pydantic")
        major, minor = (int(p) for p in pyd.split(".")[:2])
        if (major, minor) >= (2, 12):
            why += (
                f"; litert-torch cannot be installed beside pydantic {pyd} (it needs pydantic<2.12, "
                "which edgeai's other parts do not support): install it in a separate environment "
                "with torch and export there, or export to ONNX and convert with onnx2tf"
            )
        else:
            why += ": pip install litert-torch"
    except Exception:
        why += ": pip install litert-torch"
    return None, why


def to_tflite(model: Any, args: tuple[Any, ...], path: Path) -> None:
    name, why = tflite_converter_status()
    if name is None:
        raise MissingDependencyError(f"cannot export to .tflite: {why}")
    converter = importlib.import_module(name)
    try:
        edge_model = converter.convert(model, args)
        edge_model.export(str(path))
    except Exception as exc:
        raise ConversionError(f"{name}.convert failed: {exc}") from exc
