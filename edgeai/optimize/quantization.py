"""Post-training quantization of ONNX models to INT8.

Static quantization calibrates activation ranges on sample feeds (min-max,
percentile or entropy/KL), then writes a QDQ model (QuantizeLinear /
DequantizeLinear pairs around float ops, which every runtime reads) or, on
request, a QOperator model (QLinearConv, QLinearMatMul, ...). Weights are
symmetric int8, per channel by default; activations are asymmetric uint8 or
int8. ``reduce_range`` keeps weights to 7 bits for CPUs without VNNI, where the
u8 x s8 multiply-add could saturate.

edgeai checks the inputs and measures the activation ranges itself
(:mod:`edgeai.optimize.calibrate`, once, with a progress bar); the graph
rewriting into Q/DQ or QLinear ops is done by ``onnxruntime.quantization``
from those ranges. edgeai then drives the accuracy budget loop and reports what
was done.

With ``max_accuracy_drop`` and ``eval_fn``, layers are kept in float, most
sensitive first, until the accuracy drop is within budget. Sensitivity is the
SQNR (dB) between the float model and a model where only that layer is
quantized, at the model's outputs; the report says which layers stayed float
and why.

Example:
    >>> import edgeai
    >>> from edgeai.optimize import quantize
    >>> images, _ = edgeai.demo.samples()
    >>> result = quantize(edgeai.demo.model_path(), [x[None] for x in images], progress=False)
    >>> result.format, result.activation_type, len(result.quantized_nodes) > 0
    ('qdq', 'uint8', True)
    >>> sess = edgeai.Session(result.model)
    >>> sess.run({"image": images})["probabilities"].shape
    (32, 10)
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from edgeai.optimize._errors import AlreadyQuantizedError, OptimizationError
from edgeai.optimize._model import as_proto, model_size, quantized_ops, save_atomic
from edgeai.optimize.calibrate import (
    CALIBRATION_METHODS,
    CalibrationSet,
    collect_ranges,
    progress_bar,
    quiet_ort_quantization_logs,
    ranges_to_ort,
)

__all__ = ["FloatLayer", "LayerSensitivity", "QuantizationResult", "quantize", "quantize_dynamic", "sqnr_db"]

_TYPES = ("uint8", "int8")
_FORMATS = ("qdq", "qoperator")
# Ops whose quantization decides accuracy: they carry weights. The budget loop
# considers these first (and only these).
_WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def sqnr_db(reference: np.ndarray, test: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio in dB: ``10 log10(sum(ref²) / sum((ref - test)²))``.

    ``inf`` when the two are identical.

    >>> round(sqnr_db(np.array([1.0, 2.0]), np.array([1.1, 2.0])), 2)
    26.99
    """
    ref = np.asarray(reference, np.float64)
    err = ref - np.asarray(test, np.float64)
    noise = float(np.sum(err * err))
    signal = float(np.sum(ref * ref))
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


class LayerSensitivity(BaseModel):
    """How much quantizing one layer alone hurts: SQNR at its own output and at the model's outputs."""

    name: str
    op_type: str
    layer_sqnr_db: float
    """SQNR of this layer's output when only this layer is quantized."""
    output_sqnr_db: float
    """SQNR of the model's outputs when only this layer is quantized (lower = more sensitive)."""


class FloatLayer(BaseModel):
    """A layer left in float, and why."""

    name: str
    op_type: str
    reason: str
    output_sqnr_db: float | None = None


class BudgetStep(BaseModel):
    """One step of the accuracy-budget search."""

    float_layers: list[str]
    accuracy: float
    drop: float


class QuantizationResult(BaseModel):
    """What :func:`quantize` and :func:`quantize_dynamic` did. ``model`` is the quantized ``ModelProto``."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    mode: str
    """``"static"`` or ``"dynamic"``."""
    format: str
    method: str | None = None
    per_channel: bool
    reduce_range: bool
    activation_type: str
    weight_type: str
    calibration_samples: int = 0
    calibration_seconds: float = 0.0
    quantized_nodes: list[str] = Field(default_factory=list)
    float_layers: list[FloatLayer] = Field(default_factory=list)
    sensitivity: list[LayerSensitivity] = Field(default_factory=list)
    float_accuracy: float | None = None
    accuracy: float | None = None
    accuracy_drop: float | None = None
    max_accuracy_drop: float | None = None
    within_budget: bool | None = None
    budget_steps: list[BudgetStep] = Field(default_factory=list)
    float_size_bytes: int
    size_bytes: int
    path: str | None = None
    _model: Any = PrivateAttr(default=None)

    @property
    def model(self) -> Any:
        """The quantized ``onnx.ModelProto`` (feed it to ``edgeai.Session`` or :meth:`save`)."""
        return self._model

    @property
    def size_ratio(self) -> float:
        """Quantized size over float size."""
        return self.size_bytes / self.float_size_bytes

    def save(self, path: str | Path) -> Path:
        """Write the quantized model atomically; returns the path."""
        target = save_atomic(self._model, path)
        self.path = str(target)
        return target

    def summary(self) -> str:
        """One paragraph for people."""
        parts = [
            f"{self.mode} {self.format.upper()} int8 ({self.method or 'no calibration'}), "
            f"{len(self.quantized_nodes)} nodes quantized, size {self.float_size_bytes:,} -> "
            f"{self.size_bytes:,} bytes ({self.size_ratio:.1%})"
        ]
        if self.accuracy is not None and self.float_accuracy is not None:
            parts.append(f"accuracy {self.float_accuracy:.4f} -> {self.accuracy:.4f} (drop {self.accuracy_drop:+.4f})")
        if self.float_layers:
            parts.append("kept in float: " + ", ".join(f"{f.name} ({f.reason})" for f in self.float_layers))
        return "; ".join(parts)


def _check_choice(name: str, value: str, choices: Sequence[str]) -> str:
    v = str(value).lower().replace("-", "")
    if v not in choices:
        raise OptimizationError(f"{name} must be one of {list(choices)}, not {value!r}")
    return v


def _check_float_model(proto: Any, what: str) -> None:
    done = quantized_ops(proto)
    if done:
        raise AlreadyQuantizedError(
            f"{what} is already quantized ({len(done)} quantized nodes, e.g. {done[:3]}); "
            "quantize the float model it came from instead"
        )


def _qtype(name: str) -> Any:
    from onnxruntime.quantization import QuantType

    return QuantType.QUInt8 if name == "uint8" else QuantType.QInt8


def _quantized_node_names(qproto: Any) -> list[str]:
    """Nodes of a quantized model that compute on quantized data.

    QOperator and integer ops count; in QDQ form an op counts when every one of
    its float inputs (activations, weights, bias) comes out of a DequantizeLinear.
    Integer inputs (shapes, indices) are ignored.
    """
    from edgeai.optimize._model import QUANTIZED_OPS

    dq_outputs = {o for n in qproto.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    non_float = {i.name for i in qproto.graph.initializer if i.data_type not in (1, 10)}
    non_float |= {o for n in qproto.graph.node if n.op_type == "Constant" for o in n.output}
    names = []
    for n in qproto.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"):
            continue
        data = [i for i in n.input if i and i not in non_float]
        if n.op_type in QUANTIZED_OPS or (data and all(i in dq_outputs for i in data)):
            names.append(n.name or n.op_type)
    return names


class _StaticQuantizer:
    """Calibrates once, then quantizes as often as the budget loop needs."""

    def __init__(
        self,
        proto: Any,
        calib: CalibrationSet,
        *,
        method: str,
        percentile: float,
        per_channel: bool,
        reduce_range: bool,
        activation_type: str,
        weight_type: str,
        fmt: str,
        op_types: Sequence[str] | None,
        progress: bool,
    ) -> None:
        self.proto = proto
        self.calib = calib
        self.method = method
        self.percentile = percentile
        self.per_channel = per_channel
        self.reduce_range = reduce_range
        self.activation_type = activation_type
        self.weight_type = weight_type
        self.fmt = fmt
        self.op_types = list(op_types) if op_types else None
        self.progress = progress
        self._tmp = tempfile.TemporaryDirectory(prefix="edgeai-quant-")
        self.cache = Path(self._tmp.name) / "calibration.json"
        # ONNX Runtime's quantizer rewrites a ModelProto it is given (moving weights
        # to external data); it gets a file instead, so the caller's model stays intact.
        self.float_path = save_atomic(proto, Path(self._tmp.name) / "float.onnx")
        self.calibration_seconds = 0.0
        self.ranges: dict[str, tuple[float, float]] | None = None

    def close(self) -> None:
        self._tmp.cleanup()

    def _method(self) -> Any:
        from onnxruntime.quantization import CalibrationMethod

        return {
            "minmax": CalibrationMethod.MinMax,
            "percentile": CalibrationMethod.Percentile,
            "entropy": CalibrationMethod.Entropy,
        }[self.method]

    def run(
        self,
        exclude: Sequence[str] = (),
        only: Sequence[str] | None = None,
        exclude_op_types: Sequence[str] = (),
    ) -> Any:
        import onnx
        from onnxruntime.quantization import QuantFormat, quantize_static
        from onnxruntime.quantization.calibrate import save_tensors_data

        if self.ranges is None:
            start = time.perf_counter()
            passes = 1 if self.method == "minmax" else 2
            with progress_bar(passes * len(self.calib), f"calibrating ({self.method})", self.progress) as advance:
                self.ranges = collect_ranges(
                    self.proto, self.calib.feeds, self.method, percentile=self.percentile, advance=advance
                )
            save_tensors_data(ranges_to_ort(self.ranges, self.method), self.cache)
            self.calibration_seconds = time.perf_counter() - start
        op_types = self.op_types
        if exclude_op_types:
            from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

            registry = QDQRegistry if self.fmt == "qdq" else QLinearOpsRegistry
            op_types = [t for t in (op_types or list(registry)) if t not in set(exclude_op_types)]
        out = Path(self._tmp.name) / "quantized.onnx"
        try:
            with quiet_ort_quantization_logs():
                quantize_static(
                    str(self.float_path),
                    str(out),
                    None,  # ranges come from edgeai's calibration, through the cache file
                    quant_format=QuantFormat.QDQ if self.fmt == "qdq" else QuantFormat.QOperator,
                    op_types_to_quantize=op_types,
                    per_channel=self.per_channel,
                    reduce_range=self.reduce_range,
                    activation_type=_qtype(self.activation_type),
                    weight_type=_qtype(self.weight_type),
                    nodes_to_quantize=list(only) if only is not None else None,
                    nodes_to_exclude=list(exclude),
                    calibrate_method=self._method(),
                    calibration_cache_path=self.cache,
                )
        except (ValueError, TypeError, RuntimeError, KeyError) as exc:
            raise OptimizationError(f"ONNX Runtime's quantizer refused the model or options: {exc}") from exc
        return onnx.load(str(out))


def _run_outputs(proto: Any, feeds: Sequence[dict[str, np.ndarray]], tensors: Sequence[str] = ()) -> Any:
    from edgeai.optimize._model import run_with_intermediates

    return run_with_intermediates(proto, feeds, tensors)


def _sensitivities(
    quantizer: _StaticQuantizer,
    candidates: Sequence[Any],
    exclude: Sequence[str],
    exclude_op_types: Sequence[str],
    feeds: Sequence[dict[str, np.ndarray]],
    progress: bool,
) -> list[LayerSensitivity]:
    from edgeai.optimize._model import effective_output, produced_tensors, quantized_counterpart

    proto = quantizer.proto
    out_names = [o.name for o in proto.graph.output]
    layer_outputs = {n.name: effective_output(proto, n) for n in candidates}
    ref = _run_outputs(proto, feeds, list(layer_outputs.values()))
    found: list[LayerSensitivity] = []
    with progress_bar(len(candidates), "measuring layer sensitivity", progress) as adv:
        for node in candidates:
            q = quantizer.run(exclude=exclude, only=[node.name], exclude_op_types=exclude_op_types)
            tensor = layer_outputs[node.name]
            q_tensor = quantized_counterpart(tensor, produced_tensors(q))
            got = _run_outputs(q, feeds, [q_tensor] if q_tensor else [])
            layer = math.nan
            if q_tensor is not None:
                layer = sqnr_db(
                    np.concatenate([r[tensor].ravel() for r in ref]),
                    np.concatenate([g[q_tensor].ravel() for g in got]),
                )
            outs = sqnr_db(
                np.concatenate([r[n].ravel() for r in ref for n in out_names]),
                np.concatenate([g[n].ravel() for g in got for n in out_names]),
            )
            found.append(
                LayerSensitivity(name=node.name, op_type=node.op_type, layer_sqnr_db=layer, output_sqnr_db=outs)
            )
            adv(1)
    return sorted(found, key=lambda s: s.output_sqnr_db)


def quantize(
    model: Any,
    calibration_data: Iterable[Any],
    output: str | Path | None = None,
    *,
    method: str = "minmax",
    percentile: float = 99.999,
    per_channel: bool = True,
    activation_type: str = "uint8",
    weight_type: str = "int8",
    reduce_range: bool = False,
    format: str = "qdq",
    op_types: Sequence[str] | None = None,
    exclude_nodes: Sequence[str] = (),
    exclude_op_types: Sequence[str] = (),
    max_accuracy_drop: float | None = None,
    eval_fn: Callable[[Any], float] | None = None,
    sensitivity_samples: int = 16,
    progress: bool = True,
) -> QuantizationResult:
    """Post-training static INT8 quantization of an ONNX model.

    Args:
        model: the float ONNX model (path, bytes or ``onnx.ModelProto``).
        calibration_data: an iterable of feeds (dicts of input name to array; an
            array for a one-input model), drawn from the training distribution.
        output: where to write the quantized model (atomically); optional.
        method: calibrator: ``"minmax"``, ``"percentile"`` or ``"entropy"`` (KL).
        percentile: the percentile kept by the ``"percentile"`` calibrator.
        per_channel: one weight scale per output channel.
        activation_type: ``"uint8"`` (asymmetric) or ``"int8"``.
        weight_type: ``"int8"`` (symmetric) or ``"uint8"``.
        reduce_range: 7-bit weights, for CPUs without VNNI.
        format: ``"qdq"`` (default) or ``"qoperator"``.
        op_types: op types to quantize (default: every type the quantizer knows).
        exclude_nodes: node names to leave in float.
        exclude_op_types: op types to leave in float.
        max_accuracy_drop: the accuracy the model may lose (absolute, ``0.01`` is one
            point); needs ``eval_fn``.
        eval_fn: ``eval_fn(model_proto) -> accuracy`` (higher is better), e.g. top-1
            on held-out data through ``edgeai.Session(model_proto)``.
        sensitivity_samples: calibration samples used to measure layer sensitivity.
        progress: show progress bars.

    Raises:
        CalibrationError: empty calibration data.
        edgeai.errors.InputError: a calibration feed that does not match the model.
        AlreadyQuantizedError: the model is quantized already.
    """
    proto = as_proto(model)
    what = str(model) if isinstance(model, (str, Path)) else "the model"
    _check_float_model(proto, what)
    method = _check_choice("method", method, CALIBRATION_METHODS)
    act = _check_choice("activation_type", activation_type, _TYPES)
    wt = _check_choice("weight_type", weight_type, _TYPES)
    fmt = _check_choice("format", format, _FORMATS)
    if not 50.0 < percentile <= 100.0:
        raise OptimizationError(
            f"percentile must be in (50, 100] (the share of values kept at each end), not {percentile}"
        )
    if max_accuracy_drop is not None and eval_fn is None:
        raise OptimizationError("max_accuracy_drop needs eval_fn(model) -> accuracy to measure the drop")
    if max_accuracy_drop is not None and max_accuracy_drop < 0:
        raise OptimizationError(f"max_accuracy_drop must be >= 0, not {max_accuracy_drop}")
    names = {n.name for n in proto.graph.node}
    unknown = [n for n in exclude_nodes if n not in names]
    if unknown:
        raise OptimizationError(f"exclude_nodes names nodes the model does not have: {unknown}")
    calib = CalibrationSet.from_feeds(proto, calibration_data)
    quantizer = _StaticQuantizer(
        proto,
        calib,
        method=method,
        percentile=percentile,
        per_channel=per_channel,
        reduce_range=reduce_range,
        activation_type=act,
        weight_type=wt,
        fmt=fmt,
        op_types=op_types,
        progress=progress,
    )
    try:
        excluded = list(exclude_nodes)
        qproto = quantizer.run(exclude=excluded, exclude_op_types=exclude_op_types)
        float_layers = [FloatLayer(name=n, op_type=_op_of(proto, n), reason="excluded by name") for n in excluded]
        result = QuantizationResult(
            mode="static",
            format=fmt,
            method=method,
            per_channel=per_channel,
            reduce_range=reduce_range,
            activation_type=act,
            weight_type=wt,
            calibration_samples=len(calib),
            calibration_seconds=quantizer.calibration_seconds,
            float_size_bytes=model_size(proto),
            size_bytes=0,
        )
        if eval_fn is not None:
            result.float_accuracy = float(eval_fn(proto))
            result.accuracy = float(eval_fn(qproto))
            result.accuracy_drop = result.float_accuracy - result.accuracy
            result.budget_steps.append(
                BudgetStep(float_layers=list(excluded), accuracy=result.accuracy, drop=result.accuracy_drop)
            )
        if max_accuracy_drop is not None and eval_fn is not None:
            result.max_accuracy_drop = max_accuracy_drop
            qproto = _meet_budget(
                quantizer,
                qproto,
                result,
                excluded,
                exclude_op_types,
                float_layers,
                eval_fn,
                sensitivity_samples,
            )
        result.float_layers = float_layers
        result.quantized_nodes = _quantized_node_names(qproto)
        result.size_bytes = model_size(qproto)
        result._model = qproto
    finally:
        quantizer.close()
    if output is not None:
        result.save(output)
    return result


def _op_of(proto: Any, name: str) -> str:
    return next((n.op_type for n in proto.graph.node if n.name == name), "?")


def _meet_budget(
    quantizer: _StaticQuantizer,
    qproto: Any,
    result: QuantizationResult,
    excluded: list[str],
    exclude_op_types: Sequence[str],
    float_layers: list[FloatLayer],
    eval_fn: Callable[[Any], float],
    sensitivity_samples: int,
) -> Any:
    budget = result.max_accuracy_drop
    assert budget is not None and result.float_accuracy is not None and result.accuracy_drop is not None
    if result.accuracy_drop <= budget:
        result.within_budget = True
        return qproto
    quantized = set(_quantized_node_names(qproto))
    candidates = [
        n for n in quantizer.proto.graph.node if n.op_type in _WEIGHTED_OPS and n.name in quantized and n.name
    ]
    feeds = quantizer.calib.head(max(1, sensitivity_samples))
    result.sensitivity = _sensitivities(quantizer, candidates, excluded, exclude_op_types, feeds, quantizer.progress)
    for sens in result.sensitivity:
        excluded.append(sens.name)
        qproto = quantizer.run(exclude=excluded, exclude_op_types=exclude_op_types)
        acc = float(eval_fn(qproto))
        drop = result.float_accuracy - acc
        float_layers.append(
            FloatLayer(
                name=sens.name,
                op_type=sens.op_type,
                reason=(
                    f"most sensitive remaining layer (output SQNR {sens.output_sqnr_db:.1f} dB quantized "
                    f"alone); accuracy drop {result.accuracy_drop:+.4f} was over the budget {budget:.4f}"
                ),
                output_sqnr_db=sens.output_sqnr_db,
            )
        )
        result.accuracy, result.accuracy_drop = acc, drop
        result.budget_steps.append(BudgetStep(float_layers=list(excluded), accuracy=acc, drop=drop))
        if drop <= budget:
            break
    result.within_budget = bool(result.accuracy_drop is not None and result.accuracy_drop <= budget)
    return qproto


def _gemm_to_matmul(proto: Any) -> Any:
    """Rewrite ``Gemm`` with a constant B as ``MatMul`` (+ ``Add``), so dynamic quantization covers it."""
    import onnx
    from onnx import numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    inits = {i.name: i for i in model.graph.initializer}
    nodes = []
    for node in model.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if (
            node.op_type != "Gemm"
            or node.input[1] not in inits
            or attrs.get("transA", 0)
            or attrs.get("alpha", 1.0) != 1.0
            or attrs.get("beta", 1.0) != 1.0
        ):
            nodes.append(node)
            continue
        b = numpy_helper.to_array(inits[node.input[1]])
        if attrs.get("transB", 0):
            b = b.T
        b_name = f"{node.input[1]}_matmul"
        model.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(b), b_name))
        has_bias = len(node.input) > 2 and node.input[2]
        mm_out = f"{node.output[0]}_matmul" if has_bias else node.output[0]
        nodes.append(onnx.helper.make_node("MatMul", [node.input[0], b_name], [mm_out], name=node.name))
        if has_bias:
            nodes.append(
                onnx.helper.make_node("Add", [mm_out, node.input[2]], [node.output[0]], name=f"{node.name}_bias")
            )
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    used = {i for n in model.graph.node for i in n.input}
    keep = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    return model


def quantize_dynamic(
    model: Any,
    output: str | Path | None = None,
    *,
    op_types: Sequence[str] = ("MatMul", "Gemm", "LSTM"),
    per_channel: bool = False,
    reduce_range: bool = False,
    weight_type: str = "int8",
    exclude_nodes: Sequence[str] = (),
) -> QuantizationResult:
    """Dynamic quantization: int8 weights, activations quantized at run time (no calibration).

    Suits MatMul/Gemm/LSTM-heavy models. ``Gemm`` with constant weights is first
    rewritten as ``MatMul`` + ``Add`` so that it is covered too. LSTMs become
    ONNX Runtime's ``DynamicQuantizeLSTM`` (runs on ONNX Runtime only).

    Example:
        >>> import edgeai
        >>> from edgeai.optimize import quantize_dynamic
        >>> r = quantize_dynamic(edgeai.demo.model_path())
        >>> r.mode, r.quantized_nodes
        ('dynamic', ['/head/Gemm_quant'])
    """
    import onnx
    from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic

    proto = as_proto(model)
    _check_float_model(proto, str(model) if isinstance(model, (str, Path)) else "the model")
    wt = _check_choice("weight_type", weight_type, _TYPES)
    ops = [t for t in op_types if t != "Gemm"]
    if "Gemm" in op_types:
        proto_in = _gemm_to_matmul(proto)
        if "MatMul" not in ops:
            ops.append("MatMul")
    else:
        proto_in = proto
    with tempfile.TemporaryDirectory(prefix="edgeai-dq-") as tmp:
        out = Path(tmp) / "dynamic.onnx"
        src = save_atomic(proto_in, Path(tmp) / "float.onnx")
        try:
            with quiet_ort_quantization_logs():
                ort_quantize_dynamic(
                    str(src),
                    str(out),
                    op_types_to_quantize=ops,
                    per_channel=per_channel,
                    reduce_range=reduce_range,
                    weight_type=_qtype(wt),
                    nodes_to_exclude=list(exclude_nodes),
                )
        except (ValueError, TypeError, RuntimeError) as exc:
            raise OptimizationError(f"ONNX Runtime's dynamic quantizer refused the model: {exc}") from exc
        qproto = onnx.load(str(out))
    quantized = [
        n.name or n.op_type
        for n in qproto.graph.node
        if n.op_type in ("MatMulInteger", "ConvInteger", "DynamicQuantizeLSTM", "DynamicQuantizeMatMul")
    ]
    result = QuantizationResult(
        mode="dynamic",
        format="qoperator",
        per_channel=per_channel,
        reduce_range=reduce_range,
        activation_type="uint8",
        weight_type=wt,
        quantized_nodes=quantized,
        float_size_bytes=model_size(proto),
        size_bytes=model_size(qproto),
    )
    result._model = qproto
    if output is not None:
        result.save(output)
    return result
