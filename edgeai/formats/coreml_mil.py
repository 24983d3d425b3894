"""Core ML to graph IR: ML programs (MIL) and the older NeuralNetwork spec.

Off Apple hardware coremltools cannot predict, so edgeai imports the model
into its graph IR as standard ONNX ops and runs it on the native engine.
coremltools is used only to read the files: the protobuf spec, and for ML
programs its MIL loader, which also reads the ``weights/weight.bin`` blob.

Numerics: float16 tensors are computed in float32 (fp16 constants widen
exactly); a model whose declared inputs or outputs are float16 keeps those
dtypes at its boundary, with Casts inserted. int8/uint8 weights of
``constexpr_affine_dequantize`` (and ``constexpr_blockwise_shift_scale``)
are dequantized once at import as ``(q - zero_point) * scale`` in float32,
exactly the op's definition before Core ML's fp16 rounding.

Covered ML program (MIL) ops are the keys of :data:`MIL_OPS`; covered
NeuralNetwork layers the keys of :data:`NN_LAYERS`. Anything else raises
:class:`~edgeai.errors.UnsupportedOpError` naming the op and its node.

Example:
    >>> from edgeai.formats.coreml_mil import covered_mil_ops
    >>> "conv" in covered_mil_ops() and "constexpr_affine_dequantize" in covered_mil_ops()
    True
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgeai.errors import MissingDependencyError, ModelFormatError, UnsupportedOpError
from edgeai.graph.ir import Graph, Node, Value

__all__ = [
    "MIL_OPS",
    "NN_LAYERS",
    "OPSET",
    "covered_mil_ops",
    "covered_nn_layers",
    "import_coreml",
    "load_spec",
]

OPSET = 21
"""The ONNX opset of the imported graph."""

_F32 = np.dtype("float32")

# ONNX TensorProto element types used by Cast.
_ONNX_FLOAT, _ONNX_INT32, _ONNX_INT64, _ONNX_BOOL, _ONNX_FLOAT16 = 1, 6, 7, 9, 10


def _ct() -> Any:
    try:
        import coremltools
    except ImportError as exc:
        raise MissingDependencyError(
            f'reading Core ML models needs coremltools ({exc}): pip install "edgeai[coreml]" (coremltools==9.0)'
        ) from exc
    return coremltools


def load_spec(path: Path) -> tuple[Any, Path | None]:
    """The ``Model`` protobuf of a ``.mlmodel`` file or ``.mlpackage`` folder, and its weights folder."""
    _ct()
    from coremltools.models.utils import load_spec as ct_load_spec

    path = Path(path)
    try:
        spec = ct_load_spec(str(path))
    except Exception as exc:
        raise ModelFormatError(f"{path} is not a readable Core ML model: {exc}") from exc
    weights = path / "Data" / "com.apple.CoreML" / "weights" if path.is_dir() else None
    return spec, weights


def import_coreml(path: Path, what: str | None = None) -> Graph:
    """Import a Core ML model (``.mlpackage`` or ``.mlmodel``) into the graph IR.

    Raises :class:`~edgeai.errors.UnsupportedOpError` for an op or layer not
    covered here, and :class:`~edgeai.errors.ModelFormatError` for a model
    type other than an ML program or a neural network.
    """
    what = what or str(path)
    spec, weights = load_spec(path)
    kind = spec.WhichOneof("Type")
    if kind == "mlProgram":
        return _import_mlprogram(spec, weights, what)
    if kind in ("neuralNetwork", "neuralNetworkClassifier", "neuralNetworkRegressor"):
        return _import_neuralnetwork(spec, getattr(spec, kind), what)
    raise ModelFormatError(
        f"{what} is a Core ML {kind!r} model; edgeai imports ML programs and neural networks "
        "(off Apple hardware). Convert it with coremltools to an ML program."
    )


def covered_mil_ops() -> list[str]:
    """The MIL op types the importer translates."""
    return sorted(MIL_OPS)


def covered_nn_layers() -> list[str]:
    """The NeuralNetwork layer types the importer translates."""
    return sorted(NN_LAYERS)


class _Builder:
    """Collects IR nodes, initializers and values while an importer walks a model."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.nodes: list[Node] = []
        self.inits: dict[str, np.ndarray] = {}
        self.values: dict[str, Value] = {}
        self.names: dict[str, str] = {}
        """Model tensor name -> IR value name."""
        self.origin: dict[str, str] = {}
        """IR node name -> the Core ML op or layer it came from."""
        self.current = "model"
        self._n = 0

    def fresh(self, hint: str) -> str:
        self._n += 1
        return f"{hint}__{self._n}"

    def const(self, value: Any, hint: str = "const", dtype: Any = None) -> str:
        arr = np.asarray(value)
        if dtype is not None:
            arr = arr.astype(dtype)
        elif arr.dtype == np.float16 or arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        name = self.fresh(hint)
        self.inits[name] = np.ascontiguousarray(arr)
        return name

    def add(self, op_type: str, inputs: list[str], outputs: list[str] | None = None, **attrs: Any) -> str:
        outs = outputs or [self.fresh(op_type.lower())]
        name = self.fresh(op_type)
        self.origin[name] = self.current
        self.nodes.append(Node(name, op_type, inputs=tuple(inputs), outputs=tuple(outs), attrs=attrs))
        return outs[0]

    def graph(self, name: str, inputs: list[Value], outputs: list[Value], metadata: dict[str, Any]) -> Graph:
        g = Graph.build(
            nodes=self.nodes,
            inputs=inputs,
            outputs=outputs,
            initializers=self.inits,
            values=list(self.values.values()),
            opsets={"": OPSET},
            name=name,
        )
        return g.replace(metadata={**metadata, "origin": dict(self.origin)})


# ---------------------------------------------------------------------------------------------
# ML programs (MIL)
# ---------------------------------------------------------------------------------------------


def _mil_np_dtype(builtin: Any) -> np.dtype[Any]:
    from coremltools.converters.mil.mil import types

    if builtin in (types.fp16, types.fp32, types.fp64):
        return _F32
    try:
        return np.dtype(types.nptype_from_builtin(builtin))
    except Exception:
        return np.dtype(object)


def _declared_dtype(builtin: Any) -> np.dtype[Any]:
    from coremltools.converters.mil.mil import types

    if builtin == types.fp16:
        return np.dtype("float16")
    return _mil_np_dtype(builtin)


def _shape(shape: Any) -> tuple[int | str | None, ...]:
    dims: list[int | str | None] = []
    for d in shape:
        try:
            dims.append(int(d))
        except (TypeError, ValueError):
            dims.append(str(d))
    return tuple(dims)


class _MilContext(_Builder):
    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.folded: dict[str, np.ndarray] = {}
        """Outputs of constexpr ops, dequantized at import."""
        self.int8_weights: list[str] = []

    # -- reading an op's inputs -------------------------------------------------
    def tensor(self, op: Any, key: str) -> str:
        var = op.inputs[key]
        if var.name in self.names:
            return self.names[var.name]
        if var.name in self.folded:
            name = self.const(self.folded[var.name], var.name)
        elif var.val is not None:
            name = self.const(var.val, var.name)
        else:
            raise ModelFormatError(f"{self.what}: op {op.name!r} reads {var.name!r}, which nothing produces")
        self.names[var.name] = name
        return name

    def opt_tensor(self, op: Any, key: str) -> str:
        return self.tensor(op, key) if op.inputs.get(key) is not None else ""

    def value(self, op: Any, key: str, default: Any = None) -> Any:
        var = op.inputs.get(key)
        if var is None:
            return default
        if var.name in self.folded:
            return self.folded[var.name]
        if var.val is None:
            raise UnsupportedOpError(
                f"{self.what}: input {key!r} of MIL op {op.op_type} ({op.name!r}) is computed at run time; "
                "the importer needs it constant",
                op_type=op.op_type,
                domain="coreml.mil",
                node=op.name,
            )
        val = var.val
        return val.tolist() if isinstance(val, np.ndarray) else (val.item() if hasattr(val, "item") else val)

    def out(self, op: Any, i: int = 0) -> str:
        var = op.outputs[i]
        name = self.names.setdefault(var.name, var.name)
        self.values[name] = Value(name, _mil_np_dtype(var.dtype), _shape(var.shape))
        return name


MilHandler = Callable[[_MilContext, Any], None]
MIL_OPS: dict[str, MilHandler] = {}
"""MIL op type -> translator. The keys are the ops this importer covers."""


def _mil(*op_types: str) -> Callable[[MilHandler], MilHandler]:
    def deco(fn: MilHandler) -> MilHandler:
        for t in op_types:
            MIL_OPS[t] = fn
        return fn

    return deco


@_mil("const")
def _m_const(c: _MilContext, op: Any) -> None:
    pass  # materialised as an initializer where a tensor input reads it


@_mil("constexpr_affine_dequantize")
def _m_affine_dequantize(c: _MilContext, op: Any) -> None:
    q = np.asarray(op.inputs["quantized_data"].val)
    zp = np.asarray(op.inputs["zero_point"].val)
    scale = np.asarray(op.inputs["scale"].val).astype(np.float32)
    axis = int(c.value(op, "axis", 0))
    shape = [1] * q.ndim
    if zp.ndim == 1 and zp.size > 1:
        shape[axis] = -1
        zp = zp.reshape(shape)
    if scale.ndim == 1 and scale.size > 1:
        shape = [1] * q.ndim
        shape[axis] = -1
        scale = scale.reshape(shape)
    deq = (q.astype(np.int32) - zp.astype(np.int32)).astype(np.float32) * scale
    c.folded[op.outputs[0].name] = deq.astype(np.float32)
    c.int8_weights.append(op.outputs[0].name)


@_mil("constexpr_blockwise_shift_scale")
def _m_blockwise(c: _MilContext, op: Any) -> None:
    data = np.asarray(op.inputs["data"].val)
    scale = np.asarray(op.inputs["scale"].val).astype(np.float32)
    offset_var = op.inputs.get("offset")
    offset = np.asarray(offset_var.val) if offset_var is not None else np.zeros((1,) * data.ndim)

    def expand(a: np.ndarray) -> np.ndarray:
        for axis in range(data.ndim):
            if a.shape[axis] != data.shape[axis]:
                a = np.repeat(a, data.shape[axis] // a.shape[axis], axis=axis)
        return a

    deq = (data.astype(np.float32) - expand(offset).astype(np.float32)) * expand(scale)
    c.folded[op.outputs[0].name] = deq.astype(np.float32)
    c.int8_weights.append(op.outputs[0].name)


_UNARY = {
    "relu": "Relu",
    "sigmoid": "Sigmoid",
    "tanh": "Tanh",
    "exp": "Exp",
    "log": "Log",
    "sqrt": "Sqrt",
    "abs": "Abs",
    "floor": "Floor",
    "ceil": "Ceil",
    "erf": "Erf",
    "sin": "Sin",
    "cos": "Cos",
    "sign": "Sign",
    "round": "Round",
    "identity": "Identity",
}


@_mil(*_UNARY)
def _m_unary(c: _MilContext, op: Any) -> None:
    c.add(_UNARY[op.op_type], [c.tensor(op, "x")], [c.out(op)])


@_mil("rsqrt", "inverse")
def _m_rsqrt(c: _MilContext, op: Any) -> None:
    # rsqrt: 1 / sqrt(x + epsilon); inverse: 1 / (x + epsilon)
    default = 1e-12 if op.op_type == "rsqrt" else 1e-4
    shifted = c.add("Add", [c.tensor(op, "x"), c.const(np.float32(c.value(op, "epsilon", default)))])
    if op.op_type == "rsqrt":
        shifted = c.add("Sqrt", [shifted])
    c.add("Reciprocal", [shifted], [c.out(op)])


@_mil("square")
def _m_square(c: _MilContext, op: Any) -> None:
    x = c.tensor(op, "x")
    c.add("Mul", [x, x], [c.out(op)])


@_mil("relu6")
def _m_relu6(c: _MilContext, op: Any) -> None:
    c.add("Clip", [c.tensor(op, "x"), c.const(np.float32(0)), c.const(np.float32(6))], [c.out(op)])


@_mil("clip")
def _m_clip(c: _MilContext, op: Any) -> None:
    c.add(
        "Clip",
        [c.tensor(op, "x"), c.const(np.float32(c.value(op, "alpha"))), c.const(np.float32(c.value(op, "beta")))],
        [c.out(op)],
    )


@_mil("leaky_relu")
def _m_leaky(c: _MilContext, op: Any) -> None:
    c.add("LeakyRelu", [c.tensor(op, "x")], [c.out(op)], alpha=float(c.value(op, "alpha", 0.01)))


@_mil("elu")
def _m_elu(c: _MilContext, op: Any) -> None:
    c.add("Elu", [c.tensor(op, "x")], [c.out(op)], alpha=float(c.value(op, "alpha", 1.0)))


@_mil("gelu")
def _m_gelu(c: _MilContext, op: Any) -> None:
    mode = str(c.value(op, "mode", "EXACT"))
    if mode not in ("EXACT", "TANH_APPROXIMATION"):
        raise UnsupportedOpError(
            f"{c.what}: gelu mode {mode!r} at {op.name!r} is not covered (EXACT and TANH_APPROXIMATION are)",
            op_type="gelu",
            domain="coreml.mil",
            node=op.name,
        )
    approx = "tanh" if mode == "TANH_APPROXIMATION" else "none"
    c.add("Gelu", [c.tensor(op, "x")], [c.out(op)], approximate=approx)


@_mil("silu")
def _m_silu(c: _MilContext, op: Any) -> None:
    x = c.tensor(op, "x")
    c.add("Mul", [x, c.add("Sigmoid", [x])], [c.out(op)])


@_mil("softmax")
def _m_softmax(c: _MilContext, op: Any) -> None:
    c.add("Softmax", [c.tensor(op, "x")], [c.out(op)], axis=int(c.value(op, "axis", -1)))


_BINARY = {
    "add": "Add",
    "sub": "Sub",
    "mul": "Mul",
    "real_div": "Div",
    "maximum": "Max",
    "minimum": "Min",
    "pow": "Pow",
    "equal": "Equal",
    "greater": "Greater",
    "less": "Less",
}


@_mil(*_BINARY)
def _m_binary(c: _MilContext, op: Any) -> None:
    c.add(_BINARY[op.op_type], [c.tensor(op, "x"), c.tensor(op, "y")], [c.out(op)])


def _pads(c: _MilContext, op: Any, spatial: int) -> dict[str, Any]:
    pad_type = str(c.value(op, "pad_type", "valid"))
    if pad_type == "custom":
        pad = [int(p) for p in c.value(op, "pad", [0] * 2 * spatial)]
        # MIL: [begin_0, end_0, begin_1, end_1, ...]; ONNX: [begins..., ends...]
        return {"pads": pad[0::2] + pad[1::2]}
    if pad_type == "valid":
        return {"pads": [0] * 2 * spatial}
    if pad_type == "same":
        return {"auto_pad": "SAME_UPPER"}
    if pad_type == "same_lower":
        return {"auto_pad": "SAME_LOWER"}
    raise UnsupportedOpError(
        f"{c.what}: pad_type {pad_type!r} of {op.op_type} {op.name!r} is not covered",
        op_type=op.op_type,
        domain="coreml.mil",
        node=op.name,
    )


@_mil("conv")
def _m_conv(c: _MilContext, op: Any) -> None:
    spatial = len(op.inputs["weight"].shape) - 2
    attrs: dict[str, Any] = _pads(c, op, spatial)
    attrs["strides"] = [int(s) for s in c.value(op, "strides", [1] * spatial)]
    attrs["dilations"] = [int(d) for d in c.value(op, "dilations", [1] * spatial)]
    attrs["group"] = int(c.value(op, "groups", 1))
    inputs = [c.tensor(op, "x"), c.tensor(op, "weight")]
    if op.inputs.get("bias") is not None:
        inputs.append(c.tensor(op, "bias"))
    c.add("Conv", inputs, [c.out(op)], **attrs)


@_mil("linear")
def _m_linear(c: _MilContext, op: Any) -> None:
    x, w = c.tensor(op, "x"), c.tensor(op, "weight")
    bias = c.opt_tensor(op, "bias")
    if len(op.inputs["x"].shape) == 2:
        inputs = [x, w] + ([bias] if bias else [])
        c.add("Gemm", inputs, [c.out(op)], transB=1)
        return
    wt = c.add("Transpose", [w], perm=[1, 0])
    if bias:
        c.add("Add", [c.add("MatMul", [x, wt]), bias], [c.out(op)])
    else:
        c.add("MatMul", [x, wt], [c.out(op)])


def _transposed(c: _MilContext, name: str, rank: int) -> str:
    perm = list(range(rank))
    perm[-1], perm[-2] = perm[-2], perm[-1]
    return c.add("Transpose", [name], perm=perm)


@_mil("matmul")
def _m_matmul(c: _MilContext, op: Any) -> None:
    x, y = c.tensor(op, "x"), c.tensor(op, "y")
    if c.value(op, "transpose_x", False):
        x = _transposed(c, x, len(op.inputs["x"].shape))
    if c.value(op, "transpose_y", False):
        y = _transposed(c, y, len(op.inputs["y"].shape))
    c.add("MatMul", [x, y], [c.out(op)])


_REDUCE = {
    "reduce_mean": "ReduceMean",
    "reduce_sum": "ReduceSum",
    "reduce_max": "ReduceMax",
    "reduce_min": "ReduceMin",
    "reduce_prod": "ReduceProd",
}


@_mil(*_REDUCE)
def _m_reduce(c: _MilContext, op: Any) -> None:
    axes = c.value(op, "axes", None)
    keep = int(bool(c.value(op, "keep_dims", False)))
    inputs = [c.tensor(op, "x")]
    if axes is not None:
        inputs.append(c.const(np.asarray(axes, np.int64), "axes"))
    c.add(_REDUCE[op.op_type], inputs, [c.out(op)], keepdims=keep)


@_mil("avg_pool", "max_pool")
def _m_pool(c: _MilContext, op: Any) -> None:
    kernel = [int(k) for k in c.value(op, "kernel_sizes")]
    attrs = _pads(c, op, len(kernel))
    attrs["kernel_shape"] = kernel
    attrs["strides"] = [int(s) for s in c.value(op, "strides", [1] * len(kernel))]
    attrs["ceil_mode"] = int(bool(c.value(op, "ceil_mode", False)))
    if op.op_type == "avg_pool":
        attrs["count_include_pad"] = int(not c.value(op, "exclude_padding_from_average", False))
        c.add("AveragePool", [c.tensor(op, "x")], [c.out(op)], **attrs)
    else:
        c.add("MaxPool", [c.tensor(op, "x")], [c.out(op)], **attrs)


@_mil("batch_norm")
def _m_batch_norm(c: _MilContext, op: Any) -> None:
    channels = int(op.inputs["mean"].shape[0])
    gamma = c.opt_tensor(op, "gamma") or c.const(np.ones(channels, np.float32), "gamma")
    beta = c.opt_tensor(op, "beta") or c.const(np.zeros(channels, np.float32), "beta")
    c.add(
        "BatchNormalization",
        [c.tensor(op, "x"), gamma, beta, c.tensor(op, "mean"), c.tensor(op, "variance")],
        [c.out(op)],
        epsilon=float(c.value(op, "epsilon", 1e-5)),
    )


@_mil("layer_norm")
def _m_layer_norm(c: _MilContext, op: Any) -> None:
    rank = len(op.inputs["x"].shape)
    axes = sorted(int(a) % rank for a in c.value(op, "axes", [rank - 1]))
    if axes != list(range(axes[0], rank)):
        raise UnsupportedOpError(
            f"{c.what}: layer_norm over axes {axes} at {op.name!r}: only trailing axes are covered",
            op_type="layer_norm",
            domain="coreml.mil",
            node=op.name,
        )
    norm_shape = [int(d) for d in op.inputs["x"].shape[axes[0] :]]
    gamma = c.opt_tensor(op, "gamma") or c.const(np.ones(norm_shape, np.float32), "gamma")
    beta = c.opt_tensor(op, "beta") or c.const(np.zeros(norm_shape, np.float32), "beta")
    c.add(
        "LayerNormalization",
        [c.tensor(op, "x"), gamma, beta],
        [c.out(op)],
        axis=axes[0],
        epsilon=float(c.value(op, "epsilon", 1e-5)),
    )


@_mil("reshape")
def _m_reshape(c: _MilContext, op: Any) -> None:
    shape = c.const(np.asarray(c.value(op, "shape"), np.int64), "shape")
    c.add("Reshape", [c.tensor(op, "x"), shape], [c.out(op)])


@_mil("transpose")
def _m_transpose(c: _MilContext, op: Any) -> None:
    c.add("Transpose", [c.tensor(op, "x")], [c.out(op)], perm=[int(p) for p in c.value(op, "perm")])


@_mil("squeeze", "expand_dims")
def _m_squeeze(c: _MilContext, op: Any) -> None:
    axes = c.value(op, "axes", None)
    inputs = [c.tensor(op, "x")]
    if axes is not None:
        inputs.append(c.const(np.asarray(axes, np.int64), "axes"))
    c.add("Squeeze" if op.op_type == "squeeze" else "Unsqueeze", inputs, [c.out(op)])


@_mil("concat")
def _m_concat(c: _MilContext, op: Any) -> None:
    if c.value(op, "interleave", False):
        raise UnsupportedOpError(
            f"{c.what}: concat with interleave=True at {op.name!r} is not covered",
            op_type="concat",
            domain="coreml.mil",
            node=op.name,
        )
    names = []
    for var in op.inputs["values"]:
        if var.name in c.names:
            names.append(c.names[var.name])
        else:
            val = c.folded.get(var.name, var.val)
            names.append(c.const(val, var.name))
    c.add("Concat", names, [c.out(op)], axis=int(c.value(op, "axis")))


_INT64_MAX = np.iinfo(np.int64).max
_INT64_MIN = np.iinfo(np.int64).min


@_mil("pad")
def _m_pad(c: _MilContext, op: Any) -> None:
    rank = len(op.inputs["x"].shape)
    pad = [int(p) for p in c.value(op, "pad")]
    k = len(pad) // 2
    begins, ends = [0] * rank, [0] * rank
    for i in range(k):  # MIL pads the last k axes: [begin, end] per axis
        begins[rank - k + i], ends[rank - k + i] = pad[2 * i], pad[2 * i + 1]
    mode = str(c.value(op, "mode", "constant"))
    onnx_mode = {"constant": "constant", "reflect": "reflect", "replicate": "edge"}.get(mode)
    if onnx_mode is None:
        raise UnsupportedOpError(
            f"{c.what}: pad mode {mode!r} at {op.name!r} is not covered",
            op_type="pad",
            domain="coreml.mil",
            node=op.name,
        )
    inputs = [c.tensor(op, "x"), c.const(np.asarray(begins + ends, np.int64), "pads")]
    if onnx_mode == "constant":
        inputs.append(c.const(np.float32(c.value(op, "constant_val", 0.0)), "pad_value"))
    c.add("Pad", inputs, [c.out(op)], mode=onnx_mode)


@_mil("slice_by_index")
def _m_slice(c: _MilContext, op: Any) -> None:
    rank = len(op.inputs["x"].shape)
    begin = [int(v) for v in c.value(op, "begin")]
    end = [int(v) for v in c.value(op, "end")]
    stride = [int(v) for v in c.value(op, "stride", [1] * rank)]
    begin_mask = [bool(v) for v in c.value(op, "begin_mask", [False] * rank)]
    end_mask = [bool(v) for v in c.value(op, "end_mask", [False] * rank)]
    squeeze_mask = [bool(v) for v in c.value(op, "squeeze_mask", [False] * rank)]
    starts, stops = [], []
    for i in range(rank):
        forward = stride[i] > 0
        starts.append((0 if forward else _INT64_MAX) if begin_mask[i] else begin[i])
        if end_mask[i]:
            stops.append(_INT64_MAX if forward else _INT64_MIN)
        elif squeeze_mask[i]:
            stops.append(begin[i] + 1 if begin[i] != -1 else _INT64_MAX)
        else:
            stops.append(end[i])
    squeeze = [i for i in range(rank) if squeeze_mask[i]]
    inputs = [
        c.tensor(op, "x"),
        c.const(np.asarray(starts, np.int64), "starts"),
        c.const(np.asarray(stops, np.int64), "ends"),
        c.const(np.arange(rank, dtype=np.int64), "axes"),
        c.const(np.asarray(stride, np.int64), "steps"),
    ]
    if squeeze:
        sliced = c.add("Slice", inputs)
        c.add("Squeeze", [sliced, c.const(np.asarray(squeeze, np.int64), "axes")], [c.out(op)])
    else:
        c.add("Slice", inputs, [c.out(op)])


@_mil("crop")
def _m_crop(c: _MilContext, op: Any) -> None:
    top, bottom = (int(v) for v in c.value(op, "crop_height"))
    left, right = (int(v) for v in c.value(op, "crop_width"))
    ends = [-bottom if bottom else _INT64_MAX, -right if right else _INT64_MAX]
    c.add(
        "Slice",
        [
            c.tensor(op, "x"),
            c.const(np.asarray([top, left], np.int64), "starts"),
            c.const(np.asarray(ends, np.int64), "ends"),
            c.const(np.asarray([-2, -1], np.int64), "axes"),
        ],
        [c.out(op)],
    )


@_mil("split")
def _m_split(c: _MilContext, op: Any) -> None:
    axis = int(c.value(op, "axis"))
    sizes = c.value(op, "split_sizes", None)
    outs = [c.out(op, i) for i in range(len(op.outputs))]
    if sizes is None:
        dim = int(op.inputs["x"].shape[axis])
        sizes = [dim // len(outs)] * len(outs)
    split = c.const(np.asarray(sizes, np.int64), "split")
    c.add("Split", [c.tensor(op, "x"), split], outs, axis=axis)


@_mil("upsample_nearest_neighbor")
def _m_upsample_nearest(c: _MilContext, op: Any) -> None:
    sh = float(c.value(op, "scale_factor_height", 1.0))
    sw = float(c.value(op, "scale_factor_width", 1.0))
    scales = c.const(np.asarray([1.0, 1.0, sh, sw], np.float32), "scales")
    # Core ML: out[i] = in[floor(i / scale)]
    c.add(
        "Resize",
        [c.tensor(op, "x"), "", scales],
        [c.out(op)],
        mode="nearest",
        coordinate_transformation_mode="asymmetric",
        nearest_mode="floor",
    )


@_mil("conv_transpose")
def _m_conv_transpose(c: _MilContext, op: Any) -> None:
    w_shape = [int(d) for d in op.inputs["weight"].shape]
    spatial = len(w_shape) - 2
    attrs: dict[str, Any] = _pads(c, op, spatial)
    strides = [int(s) for s in c.value(op, "strides", [1] * spatial)]
    dilations = [int(d) for d in c.value(op, "dilations", [1] * spatial)]
    attrs.update(strides=strides, dilations=dilations, group=int(c.value(op, "groups", 1)))
    out_shape = c.value(op, "output_shape", None)
    x_shape = op.inputs["x"].shape
    if out_shape is not None and "pads" in attrs:
        pads = attrs["pads"]
        extra = []
        for i in range(spatial):
            natural = (
                (int(x_shape[2 + i]) - 1) * strides[i]
                - pads[i]
                - pads[spatial + i]
                + dilations[i] * (w_shape[2 + i] - 1)
                + 1
            )
            extra.append(int(out_shape[-spatial + i]) - natural)
        if any(e < 0 for e in extra):
            raise UnsupportedOpError(
                f"{c.what}: conv_transpose {op.name!r} asks for an output smaller than its pads give",
                op_type="conv_transpose",
                domain="coreml.mil",
                node=op.name,
            )
        if any(extra):
            attrs["output_padding"] = extra
    inputs = [c.tensor(op, "x"), c.tensor(op, "weight")]
    if op.inputs.get("bias") is not None:
        inputs.append(c.tensor(op, "bias"))
    c.add("ConvTranspose", inputs, [c.out(op)], **attrs)


@_mil("cast")
def _m_cast(c: _MilContext, op: Any) -> None:
    target = str(c.value(op, "dtype"))
    to = {
        "fp16": None,
        "fp32": None,
        "int32": _ONNX_INT32,
        "int64": _ONNX_INT64,
        "bool": _ONNX_BOOL,
    }
    if target not in to:
        raise UnsupportedOpError(
            f"{c.what}: cast to {target!r} at {op.name!r} is not covered",
            op_type="cast",
            domain="coreml.mil",
            node=op.name,
        )
    if to[target] is None and _mil_np_dtype(op.inputs["x"].dtype) == _F32:
        c.add("Identity", [c.tensor(op, "x")], [c.out(op)])  # float16 runs as float32 here
    else:
        c.add("Cast", [c.tensor(op, "x")], [c.out(op)], to=to[target] or _ONNX_FLOAT)


def _import_mlprogram(spec: Any, weights: Path | None, what: str) -> Graph:
    from coremltools.converters.mil.frontend.milproto.load import load

    try:
        program = load(spec, spec.specificationVersion, file_weights_dir=str(weights or ""))
    except Exception as exc:
        raise ModelFormatError(f"coremltools could not read the ML program of {what}: {exc}") from exc
    if "main" not in program.functions:
        raise ModelFormatError(f"{what} has no 'main' function (has: {', '.join(program.functions)})")
    func = program.functions["main"]
    c = _MilContext(what)
    unknown = [(op.op_type, op.name) for op in func.operations if op.op_type not in MIL_OPS]
    if unknown:
        types_ = sorted({t for t, _ in unknown})
        raise UnsupportedOpError(
            f"{what} uses MIL op(s) the importer does not cover: "
            + ", ".join(f"{t} (at {', '.join(repr(n) for t2, n in unknown if t2 == t)})" for t in types_)
            + ". Covered: see edgeai.formats.coreml_mil.covered_mil_ops(); on macOS the model runs "
            "through Core ML itself.",
            op_type=types_[0],
            domain="coreml.mil",
            node=unknown[0][1],
        )
    inputs: list[Value] = []
    for name, var in func.inputs.items():
        declared = _declared_dtype(var.dtype)
        inputs.append(Value(name, declared, _shape(var.shape)))
        if declared == np.float16:
            c.names[name] = c.add("Cast", [name], to=_ONNX_FLOAT)
        else:
            c.names[name] = name
    for op in func.operations:
        c.current = f"MIL op {op.op_type} {op.name!r}"
        MIL_OPS[op.op_type](c, op)
    c.current = "model outputs"
    outputs: list[Value] = []
    for var in func.outputs:
        declared = _declared_dtype(var.dtype)
        inner = c.names.get(var.name)
        if inner is None:  # a constant output
            inner = c.const(c.folded.get(var.name, var.val), var.name)
        if declared == np.float16:
            if inner == var.name:
                _rename_output(c, var.name, var.name + "__f32")
                inner = var.name + "__f32"
            c.add("Cast", [inner], [var.name], to=_ONNX_FLOAT16)
        elif inner != var.name:  # a constant, a graph input, or a renamed value
            c.add("Identity", [inner], [var.name])
        outputs.append(Value(var.name, declared, _shape(var.shape)))
    meta = {
        "format": "coreml",
        "coreml_type": "mlProgram",
        "specification_version": int(spec.specificationVersion),
        "int8_weights": list(c.int8_weights),
    }
    return c.graph("main", inputs, outputs, meta)


def _rename_output(b: _Builder, inner: str, final: str) -> None:
    """Make the node that produces ``inner`` write ``final`` (the model's output name) instead."""
    if inner == final:
        return
    for i, node in enumerate(b.nodes):
        if inner in node.outputs:
            outs = tuple(final if o == inner else o for o in node.outputs)
            b.nodes[i] = Node(node.name, node.op_type, node.domain, node.inputs, outs, dict(node.attrs))
    for i, node in enumerate(b.nodes):
        if inner in node.inputs:
            ins = tuple(final if x == inner else x for x in node.inputs)
            b.nodes[i] = Node(node.name, node.op_type, node.domain, ins, node.outputs, dict(node.attrs))
    b.values.pop(inner, None)


# ---------------------------------------------------------------------------------------------
# NeuralNetwork spec (Core ML before ML programs)
# ---------------------------------------------------------------------------------------------


def _weights(params: Any, what: str) -> np.ndarray:
    """A ``WeightParams`` as float32: float, float16 or 8-bit linearly quantized."""
    if len(params.floatValue):
        return np.asarray(params.floatValue, np.float32)
    if params.float16Value:
        return np.frombuffer(params.float16Value, np.float16).astype(np.float32)
    if params.rawValue:
        q = params.quantization
        if q.numberOfBits == 8 and q.WhichOneof("QuantizationType") == "linearQuantization":
            raw = np.frombuffer(params.rawValue, np.uint8).astype(np.float32)
            scale = np.asarray(q.linearQuantization.scale, np.float32)
            bias = np.asarray(q.linearQuantization.bias, np.float32)
            if scale.size > 1:  # per output channel
                raw = raw.reshape(scale.size, -1)
                return (raw * scale[:, None] + bias[:, None]).reshape(-1)
            return raw * scale + bias
        raise UnsupportedOpError(
            f"{what}: {q.numberOfBits}-bit {q.WhichOneof('QuantizationType')} weights are not covered",
            op_type="quantized_weights",
            domain="coreml.nn",
        )
    return np.zeros(0, np.float32)


NnHandler = Callable[[_Builder, Any, Any], None]
NN_LAYERS: dict[str, NnHandler] = {}
"""NeuralNetwork layer type -> translator. The keys are the layers this importer covers."""


def _nn(*kinds: str) -> Callable[[NnHandler], NnHandler]:
    def deco(fn: NnHandler) -> NnHandler:
        for k in kinds:
            NN_LAYERS[k] = fn
        return fn

    return deco


@_nn("convolution")
def _n_conv(b: _Builder, layer: Any, p: Any) -> None:
    if p.isDeconvolution:
        raise UnsupportedOpError(
            f"{b.what}: deconvolution layer {layer.name!r} is not covered",
            op_type="deconvolution",
            domain="coreml.nn",
            node=layer.name,
        )
    kh, kw = (list(p.kernelSize) or [3, 3])[:2]
    groups = int(p.nGroups or 1)
    w = _weights(p.weights, b.what).reshape(p.outputChannels, p.kernelChannels, kh, kw)
    attrs: dict[str, Any] = {
        "strides": list(p.stride) or [1, 1],
        "dilations": list(p.dilationFactor) or [1, 1],
        "group": groups,
        "kernel_shape": [kh, kw],
    }
    if p.WhichOneof("ConvolutionPaddingType") == "same":
        mode = p.same.asymmetryMode
        attrs["auto_pad"] = "SAME_LOWER" if mode == 1 else "SAME_UPPER"
    else:
        amounts = p.valid.paddingAmounts.borderAmounts
        if len(amounts) == 2:
            attrs["pads"] = [
                amounts[0].startEdgeSize,
                amounts[1].startEdgeSize,
                amounts[0].endEdgeSize,
                amounts[1].endEdgeSize,
            ]
        else:
            attrs["pads"] = [0, 0, 0, 0]
    inputs = [b.names[layer.input[0]], b.const(w, layer.name + "_W")]
    if p.hasBias:
        inputs.append(b.const(_weights(p.bias, b.what), layer.name + "_B"))
    b.add("Conv", inputs, [layer.output[0]], **attrs)


@_nn("innerProduct")
def _n_inner(b: _Builder, layer: Any, p: Any) -> None:
    w = _weights(p.weights, b.what).reshape(p.outputChannels, p.inputChannels)
    x = b.names[layer.input[0]]
    flat = b.add("Flatten", [x], axis=1)
    inputs = [flat, b.const(w, layer.name + "_W")]
    if p.hasBias:
        inputs.append(b.const(_weights(p.bias, b.what), layer.name + "_B"))
    # NeuralNetwork tensors stay (N, C, H, W): an inner product yields (N, C, 1, 1)
    b.add("Reshape", [b.add("Gemm", inputs, transB=1), b.const(_NCHW_VECTOR, "shape")], [layer.output[0]])


_NCHW_VECTOR = np.array([0, -1, 1, 1], np.int64)

_NN_ACT = {"ReLU": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}


@_nn("activation")
def _n_activation(b: _Builder, layer: Any, p: Any) -> None:
    kind = p.WhichOneof("NonlinearityType")
    x = b.names[layer.input[0]]
    if kind in _NN_ACT:
        b.add(_NN_ACT[kind], [x], [layer.output[0]])
    elif kind == "leakyReLU":
        b.add("LeakyRelu", [x], [layer.output[0]], alpha=float(p.leakyReLU.alpha))
    elif kind == "linear":
        scaled = b.add("Mul", [x, b.const(np.float32(p.linear.alpha))])
        b.add("Add", [scaled, b.const(np.float32(p.linear.beta))], [layer.output[0]])
    else:
        raise UnsupportedOpError(
            f"{b.what}: activation {kind!r} of layer {layer.name!r} is not covered "
            "(ReLU, sigmoid, tanh, leakyReLU, linear are)",
            op_type=f"activation.{kind}",
            domain="coreml.nn",
            node=layer.name,
        )


@_nn("pooling")
def _n_pooling(b: _Builder, layer: Any, p: Any) -> None:
    x = b.names[layer.input[0]]
    kind = {0: "Max", 1: "Average"}.get(p.type)
    if kind is None:
        raise UnsupportedOpError(
            f"{b.what}: L2 pooling at {layer.name!r} is not covered",
            op_type="pooling.L2",
            domain="coreml.nn",
            node=layer.name,
        )
    if p.globalPooling:
        b.add(f"Global{kind}Pool", [x], [layer.output[0]])
        return
    attrs: dict[str, Any] = {"kernel_shape": list(p.kernelSize), "strides": list(p.stride) or [1, 1]}
    pad_kind = p.WhichOneof("PoolingPaddingType")
    if pad_kind == "same":
        attrs["auto_pad"] = "SAME_UPPER"
    elif pad_kind == "valid":
        amounts = p.valid.paddingAmounts.borderAmounts
        attrs["pads"] = (
            [amounts[0].startEdgeSize, amounts[1].startEdgeSize, amounts[0].endEdgeSize, amounts[1].endEdgeSize]
            if len(amounts) == 2
            else [0, 0, 0, 0]
        )
    else:
        raise UnsupportedOpError(
            f"{b.what}: pooling padding {pad_kind!r} at {layer.name!r} is not covered",
            op_type=f"pooling.{pad_kind}",
            domain="coreml.nn",
            node=layer.name,
        )
    if kind == "Average":
        attrs["count_include_pad"] = int(not p.avgPoolExcludePadding)
    b.add(f"{kind}Pool", [x], [layer.output[0]], **attrs)


@_nn("batchnorm")
def _n_batchnorm(b: _Builder, layer: Any, p: Any) -> None:
    n = int(p.channels)
    gamma, beta = _weights(p.gamma, b.what), _weights(p.beta, b.what)
    mean, var = _weights(p.mean, b.what), _weights(p.variance, b.what)
    inputs = [b.names[layer.input[0]]] + [
        b.const(a.reshape(n), f"{layer.name}_{k}")
        for k, a in (("scale", gamma), ("B", beta), ("mean", mean), ("var", var))
    ]
    b.add("BatchNormalization", inputs, [layer.output[0]], epsilon=float(p.epsilon or 1e-5))


@_nn("add", "multiply")
def _n_add(b: _Builder, layer: Any, p: Any) -> None:
    op = "Add" if layer.WhichOneof("layer") == "add" else "Mul"
    names = [b.names[i] for i in layer.input]
    if len(names) == 1:
        names.append(b.const(np.float32(p.alpha), layer.name + "_alpha"))
    acc = names[0]
    for i, other in enumerate(names[1:]):
        last = i == len(names) - 2
        acc = b.add(op, [acc, other], [layer.output[0]] if last else None)


@_nn("softmax")
def _n_softmax(b: _Builder, layer: Any, p: Any) -> None:
    b.add("Softmax", [b.names[layer.input[0]]], [layer.output[0]], axis=1)  # over C


@_nn("flatten")
def _n_flatten(b: _Builder, layer: Any, p: Any) -> None:
    x = b.names[layer.input[0]]
    if p.mode == 1:  # CHANNEL_LAST: flatten in H, W, C order
        x = b.add("Transpose", [x], perm=[0, 2, 3, 1])
    b.add("Reshape", [b.add("Flatten", [x], axis=1), b.const(_NCHW_VECTOR, "shape")], [layer.output[0]])


def _import_neuralnetwork(spec: Any, nn: Any, what: str) -> Graph:
    b = _Builder(what)
    names = b.names
    unknown = [(layer.WhichOneof("layer"), layer.name) for layer in nn.layers]
    unknown = [(k, n) for k, n in unknown if k not in NN_LAYERS]
    if unknown:
        kinds = sorted({k for k, _ in unknown})
        raise UnsupportedOpError(
            f"{what} uses NeuralNetwork layer(s) the importer does not cover: "
            + ", ".join(f"{k} (at {', '.join(repr(n) for k2, n in unknown if k2 == k)})" for k in kinds)
            + ". Covered: see edgeai.formats.coreml_mil.covered_nn_layers().",
            op_type=kinds[0],
            domain="coreml.nn",
            node=unknown[0][1],
        )
    inputs: list[Value] = []
    for feat in spec.description.input:
        arr = feat.type.multiArrayType
        shape = tuple(int(d) for d in arr.shape)
        dtype = {65568: np.dtype("float32"), 65552: np.dtype("float16"), 131104: np.dtype("int32")}.get(
            int(arr.dataType), _F32
        )
        inputs.append(Value(feat.name, dtype, shape))
        inner = feat.name if dtype != np.float16 else b.add("Cast", [feat.name], to=_ONNX_FLOAT)
        # The NeuralNetwork runtime sees (C,) as (1, C, 1, 1) and (C, H, W) as (1, C, H, W)
        nchw = {1: (1, shape[0], 1, 1), 3: (1, *shape)}.get(len(shape)) if shape else None
        if nchw is not None:
            inner = b.add("Reshape", [inner, b.const(np.asarray(nchw, np.int64), "shape")])
        names[feat.name] = inner
    for layer in nn.layers:
        kind = layer.WhichOneof("layer")
        b.current = f"layer {kind} {layer.name!r}"
        NN_LAYERS[kind](b, layer, getattr(layer, kind))
        for out in layer.output:
            names[out] = out
    outputs = []
    for feat in spec.description.output:
        declared = tuple(int(d) for d in feat.type.multiArrayType.shape)
        if declared:  # Core ML returns the declared shape (batch 1), not the internal (N, C, H, W)
            inner = feat.name + "__nchw"
            _rename_output(b, feat.name, inner)
            b.add("Reshape", [inner, b.const(np.asarray(declared, np.int64), "shape")], [feat.name])
        outputs.append(Value(feat.name, _F32, declared or None))
    meta = {"format": "coreml", "coreml_type": "neuralNetwork", "specification_version": int(spec.specificationVersion)}
    return b.graph("main", inputs, outputs, meta)
