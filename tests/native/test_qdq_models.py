"""Quantized models on the native engine, bit for bit against ONNX Runtime.

* MobileNetV2 (published architecture, seeded weights) quantized by
  ``onnxruntime.quantization.quantize_static`` in QDQ and QOperator formats
  (the ``mobilenetv2_qdq`` / ``mobilenetv2_qoperator`` fixtures): identical
  outputs; the float model agrees within float tolerance.
* Small float models of one quantizable op (and a chain), quantized the same
  way: identical outputs, and :func:`fuse_qdq` makes the same QLinear ops as
  ONNX Runtime's optimizer (read back from its optimized model file).
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import edgeai
from edgeai.graph.qdq_fusion import fuse_qdq

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

FUSED_TYPES = {
    "QLinearConv", "QLinearMatMul", "QGemm", "QLinearAdd", "QLinearMul", "QLinearAveragePool",
    "QLinearGlobalAveragePool", "QLinearLeakyRelu", "QLinearSigmoid", "QLinearSoftmax", "QLinearConcat",
    "MatMulIntegerToFloat",
}  # fmt: skip


def _ort(path: Path, optimized: Path | None = None) -> Any:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    if optimized is not None:
        so.optimized_model_filepath = str(optimized)
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _fused_ops(types: list[str]) -> dict[str, int]:
    return dict(collections.Counter(t for t in types if t in FUSED_TYPES))


def _check_same_as_ort(
    path: Path, feeds_list: list[dict[str, np.ndarray]], tmp: Path, expect: str | None = None
) -> None:
    ref = _ort(path, optimized=tmp / f"{path.stem}.ort-optimized.onnx")
    ours = edgeai.Session(path, device="native")
    for feeds in feeds_list:
        want = ref.run(None, feeds)
        got = ours.run(None, feeds)
        for g, w in zip(got, want):
            assert g.dtype == w.dtype and g.shape == w.shape
            diff = np.abs(g.astype(np.float64) - w.astype(np.float64))
            assert np.array_equal(g, w), f"{int(np.sum(diff > 0))} values differ (max {diff.max()})"
    from edgeai.graph.onnx_import import import_onnx

    ort_types = [n.op_type for n in onnx.load(str(tmp / f"{path.stem}.ort-optimized.onnx")).graph.node]
    our_types = [n.op_type for n in fuse_qdq(import_onnx(path)).nodes]
    assert _fused_ops(our_types) == _fused_ops(ort_types)
    if expect is not None:
        assert expect in _fused_ops(ort_types), f"ORT did not make {expect}: {ort_types}"


# ----------------------------------------------------------------- MobileNetV2


def _mbv2_feeds() -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(123)
    return [{"input": rng.standard_normal((n, 3, 96, 96)).astype(np.float32)} for n in (1, 2)]


@pytest.mark.slow
def test_mobilenetv2_qdq_bit_exact(mobilenetv2_qdq: Path, tmp_path: Path) -> None:
    _check_same_as_ort(mobilenetv2_qdq, _mbv2_feeds(), tmp_path)


@pytest.mark.slow
def test_mobilenetv2_qoperator_bit_exact(mobilenetv2_qoperator: Path, tmp_path: Path) -> None:
    _check_same_as_ort(mobilenetv2_qoperator, _mbv2_feeds(), tmp_path)


@pytest.mark.slow
def test_mobilenetv2_float_close(mobilenetv2_float: Path) -> None:
    ref = _ort(mobilenetv2_float)
    ours = edgeai.Session(mobilenetv2_float, device="native")
    for feeds in _mbv2_feeds():
        np.testing.assert_allclose(ours.run(None, feeds)[0], ref.run(None, feeds)[0], rtol=1e-4, atol=1e-4)


def test_mobilenetv2_qdq_reference_path_bit_exact(mobilenetv2_qdq: Path) -> None:
    """The reference integer path alone (no fast kernels) is bit-exact too."""
    ref = _ort(mobilenetv2_qdq)
    ours = edgeai.Session(mobilenetv2_qdq, device="native", int8_kernels=False)
    feeds = _mbv2_feeds()[0]
    assert np.array_equal(ours.run(None, feeds)[0], ref.run(None, feeds)[0])


@pytest.mark.parametrize("form", ["qdq", "qoperator"])
def test_mobilenetv2_kernels_packed_at_creation_and_two_threads_bit_exact(
    form: str, mobilenetv2_qdq: Path, mobilenetv2_qoperator: Path
) -> None:
    """Every convolution and the classifier GEMM are packed when the session is created, each
    convolution knows its input shape (for QOperator models, where onnx's shape inference stops at
    the first com.microsoft op, from the executor), and a two-thread session gives ORT's bytes."""
    path = mobilenetv2_qdq if form == "qdq" else mobilenetv2_qoperator
    ours = edgeai.Session(path, device="native", threads=2)
    compiled = ours._exec._compiled
    convs = [op for op in compiled.ops if op.ctx.op_type == "QLinearConv"]
    assert len(convs) == 52
    for op in convs:
        assert op.nhwc_kernel is not None
        shape = op.ctx.input_values[0].shape
        assert shape is not None and all(isinstance(d, int) for d in shape[1:]), shape
        assert op.nhwc_kernel.threads == 1  # MobileNetV2 at 96x96: too little work per call for two
    assert [op.fused is not None for op in compiled.ops if op.ctx.op_type == "QGemm"] == [True]
    ref = _ort(path)
    for feeds in _mbv2_feeds():
        got, want = ours.run(None, feeds)[0], ref.run(None, feeds)[0]
        assert got.flags.c_contiguous and np.array_equal(got, want)


# ------------------------------------------------------------- one-op models


def _float_model(kind: str) -> tuple[Any, dict[str, tuple[int, ...]]]:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)
    f = TensorProto.FLOAT
    inits: list[Any] = []
    shapes: dict[str, tuple[int, ...]] = {"x": (1, 8, 9, 9)}

    def w(name: str, *shape: int, scale: float = 0.3) -> str:
        inits.append(numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name))
        return name

    nodes: list[Any] = []
    out_shape: list[Any] = []
    if kind in ("conv_relu", "conv_clip", "depthwise"):
        group = 8 if kind == "depthwise" else 1
        nodes.append(
            helper.make_node("Conv", ["x", w("w", 8, 8 // group, 3, 3), w("b", 8)], ["c"], pads=[1] * 4, group=group)
        )
        if kind == "conv_clip":
            nodes.append(helper.make_node("Clip", ["c", w("lo", scale=0.0), w("hi", scale=0.0)], ["y"]))
            inits[-2] = numpy_helper.from_array(np.array(0.0, np.float32), "lo")
            inits[-1] = numpy_helper.from_array(np.array(6.0, np.float32), "hi")
        else:
            nodes.append(helper.make_node("Relu", ["c"], ["y"]))
    elif kind in ("matmul", "gemm"):
        shapes = {"x": (4, 16)}
        if kind == "matmul":
            nodes.append(helper.make_node("MatMul", ["x", w("w", 16, 10)], ["y"]))
        else:
            nodes.append(helper.make_node("Gemm", ["x", w("w", 10, 16), w("b", 10)], ["y"], transB=1))
    elif kind in ("add", "mul"):
        shapes = {"x": (2, 8, 5), "x2": (2, 8, 5)}
        nodes.append(helper.make_node(kind.capitalize(), ["x", "x2"], ["y"]))
    elif kind == "concat":
        shapes = {"x": (2, 3, 5), "x2": (2, 4, 5)}
        nodes.append(helper.make_node("Concat", ["x", "x2"], ["y"], axis=1))
    elif kind in ("avgpool", "gap", "leakyrelu", "sigmoid"):
        # behind a Conv: quantize_static quantizes these only when their input is quantized
        nodes.append(helper.make_node("Conv", ["x", w("w", 8, 8, 1, 1)], ["c"]))
        op, attrs = {
            "avgpool": ("AveragePool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1] * 4}),
            "gap": ("GlobalAveragePool", {}),
            "leakyrelu": ("LeakyRelu", {"alpha": 0.2}),
            "sigmoid": ("Sigmoid", {}),
        }[kind]
        nodes.append(helper.make_node(op, ["c"], ["y"], **attrs))
    elif kind == "softmax":
        shapes = {"x": (3, 20)}
        nodes.append(helper.make_node("Softmax", ["x"], ["y"], axis=-1))
    elif kind == "chain":
        nodes += [
            helper.make_node("Conv", ["x", w("w", 8, 8, 3, 3), w("b", 8)], ["c"], pads=[1] * 4),
            helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[3, 3], strides=[3, 3]),
            helper.make_node("Reshape", ["p", "shape"], ["flat"]),
            helper.make_node("MatMul", ["flat", w("w2", 72, 10)], ["m"]),
            helper.make_node("Sigmoid", ["m"], ["s"]),
            helper.make_node("Softmax", ["s"], ["y"], axis=-1),
        ]
        inits.append(numpy_helper.from_array(np.array([1, 72], np.int64), "shape"))
    else:  # pragma: no cover
        raise AssertionError(kind)
    graph = helper.make_graph(
        nodes,
        kind,
        [helper.make_tensor_value_info(k, f, v) for k, v in shapes.items()],
        [helper.make_tensor_value_info("y", f, out_shape or None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model, shapes


KINDS = {
    "conv_relu": "QLinearConv",
    "conv_clip": "QLinearConv",
    "depthwise": "QLinearConv",
    "matmul": "QLinearMatMul",
    "gemm": "QGemm",
    "add": "QLinearAdd",
    "mul": "QLinearMul",
    "concat": "QLinearConcat",
    "avgpool": "QLinearAveragePool",
    "gap": "QLinearGlobalAveragePool",
    "leakyrelu": "QLinearLeakyRelu",
    "sigmoid": "QLinearSigmoid",
    "softmax": "QLinearSoftmax",
    "chain": "QLinearMatMul",
}  # fmt: skip (kind -> a QLinear op ONNX Runtime must make of it)


@pytest.mark.parametrize("activation", ["QUInt8", "QInt8"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_quantized_op_models_bit_exact(kind: str, activation: str, tmp_path: Path) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    model, shapes = _float_model(kind)
    float_path = tmp_path / f"{kind}.onnx"
    onnx.save(model, str(float_path))
    rng = np.random.default_rng(11)

    def feeds() -> dict[str, np.ndarray]:
        return {k: (rng.standard_normal(v) * 2).astype(np.float32) for k, v in shapes.items()}

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter([feeds() for _ in range(4)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    qpath = tmp_path / f"{kind}_{activation}.onnx"
    quantize_static(
        str(float_path),
        str(qpath),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=kind in ("conv_relu", "depthwise", "gemm", "matmul"),
        activation_type=getattr(QuantType, activation),
        weight_type=QuantType.QInt8,
    )
    _check_same_as_ort(qpath, [feeds() for _ in range(3)], tmp_path, expect=KINDS[kind])


# --------------------------------------------------------- fusion boundaries


def test_fuse_qdq_leaves_groups_ort_does_not_fuse() -> None:
    """int16 QDQ, a float op output read twice, a DQ output that is a graph output: no fusion."""
    from edgeai.graph import Graph, Node, Value

    f32, i16, u8 = np.dtype("float32"), np.dtype("int16"), np.dtype("uint8")

    def graph(zp_dtype: np.dtype[Any], extra_reader: bool) -> Graph:
        inits = {"s": np.array(0.1, np.float32), "z": np.array(3, zp_dtype)}
        nodes = [
            Node("dqa", "DequantizeLinear", inputs=("a", "s", "z"), outputs=("fa",)),
            Node("dqb", "DequantizeLinear", inputs=("b", "s", "z"), outputs=("fb",)),
            Node("add", "Add", inputs=("fa", "fb"), outputs=("fc",)),
            Node("q", "QuantizeLinear", inputs=("fc", "s", "z"), outputs=("c",)),
        ]
        outs = [Value("c", zp_dtype, (4,))]
        if extra_reader:
            nodes.append(Node("neg", "Neg", inputs=("fc",), outputs=("n",)))
            outs.append(Value("n", f32, (4,)))
        return Graph.build(
            nodes=nodes,
            inputs=[Value("a", zp_dtype, (4,)), Value("b", zp_dtype, (4,))],
            outputs=outs,
            initializers=inits,
        )

    assert [n.op_type for n in fuse_qdq(graph(u8, False)).nodes] == ["QLinearAdd"]
    for g in (graph(i16, False), graph(u8, True)):
        assert fuse_qdq(g) is g


@pytest.mark.parametrize("op", ["MatMul", "Gemm"])
@pytest.mark.parametrize("act", ["uint8", "int8"])
def test_float_output_groups_bit_exact(op: str, act: str, tmp_path: Path) -> None:
    """``Q -> DQ -> MatMul|Gemm`` with a float result: MatMulIntegerToFloat / QGemm without y_scale."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    adt = np.dtype(act)
    w = rng.integers(-127, 128, (16, 6)).astype(np.int8)
    inits = [
        numpy_helper.from_array(np.array(0.05, np.float32), "xs"),
        numpy_helper.from_array(np.array(3, adt), "xz"),
        numpy_helper.from_array(w, "wq"),
        numpy_helper.from_array(np.array(0.01, np.float32), "ws"),
        numpy_helper.from_array(np.array(0, np.int8), "wz"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xf"]),
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wf"]),
        helper.make_node(op, ["xf", "wf"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, (5, 16))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, (5, 6))],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / f"{op}_{act}.onnx"
    onnx.save(model, str(path))
    feeds = [{"x": (rng.standard_normal((5, 16)) * 3).astype(np.float32)} for _ in range(3)]
    _check_same_as_ort(path, feeds, tmp_path, expect={"MatMul": "MatMulIntegerToFloat", "Gemm": "QGemm"}[op])


@pytest.mark.parametrize("op", ["Conv", "Gemm"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_float_bias_and_alpha_like_ort(op: str, seed: int, tmp_path: Path) -> None:
    """A float bias is quantized to int32 (scale x_scale * w_scale) and fused, as ONNX Runtime
    does; a Gemm with alpha != 1 stays in float, as in ONNX Runtime."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    conv = op == "Conv"
    wshape = (6, 4, 3, 3) if conv else (16, 6)
    xshape = (1, 4, 7, 7) if conv else (5, 16)
    inits = [
        numpy_helper.from_array(np.array(0.05, np.float32), "xs"),
        numpy_helper.from_array(np.array(3, np.uint8), "xz"),
        numpy_helper.from_array(rng.integers(-127, 128, wshape).astype(np.int8), "wq"),
        numpy_helper.from_array(rng.uniform(0.002, 0.02, 6).astype(np.float32), "ws"),
        numpy_helper.from_array(np.zeros(6, np.int8), "wz"),
        numpy_helper.from_array((rng.standard_normal(6) * 2).astype(np.float32), "bias"),
        numpy_helper.from_array(np.array(0.1, np.float32), "ys"),
        numpy_helper.from_array(np.array(100, np.uint8), "yz"),
    ]
    waxis = 0 if conv else 1
    attrs: dict[str, Any] = {"pads": [1, 1, 1, 1]} if conv else {}
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xf"]),
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wf"], axis=waxis),
        helper.make_node(op, ["xf", "wf", "bias"], ["g"], **attrs),
        helper.make_node("QuantizeLinear", ["g", "ys", "yz"], ["gq"]),
        helper.make_node("DequantizeLinear", ["gq", "ys", "yz"], ["y"]),
    ]
    if not conv:  # the same Gemm with alpha = 0.5 beside it: not fused
        nodes += [
            helper.make_node("Gemm", ["xf", "wf", "bias"], ["g2"], alpha=0.5),
            helper.make_node("QuantizeLinear", ["g2", "ys", "yz"], ["gq2"]),
            helper.make_node("DequantizeLinear", ["gq2", "ys", "yz"], ["y2"]),
        ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if not conv:
        outputs.append(helper.make_tensor_value_info("y2", TensorProto.FLOAT, None))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, xshape)], outputs, inits
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / f"{op}_float_bias.onnx"
    onnx.save(model, str(path))
    feeds = [{"x": (rng.standard_normal(xshape) * 3).astype(np.float32)} for _ in range(3)]
    _check_same_as_ort(path, feeds, tmp_path, expect="QLinearConv" if conv else "QGemm")


@pytest.mark.parametrize("op", ["Conv", "Gemm"])
@pytest.mark.parametrize("act", ["uint8", "int8"])
def test_float_weights_quantized_like_ort(op: str, act: str, tmp_path: Path) -> None:
    """``DQ(x) -> Conv|Gemm(float W, float B) -> Q``: ONNX Runtime quantizes W (int8, per tensor,
    asymmetric) and B (int32) itself and fuses; the native engine does the same arithmetic."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(5)
    adt = np.dtype(act)
    conv = op == "Conv"
    wshape, xshape = ((6, 4, 3, 3), (1, 4, 7, 7)) if conv else ((16, 6), (5, 16))
    inits = [
        numpy_helper.from_array(np.array(0.05, np.float32), "xs"),
        numpy_helper.from_array(np.array(3, adt), "xz"),
        numpy_helper.from_array((rng.standard_normal(wshape) * 0.3 + 0.1).astype(np.float32), "w"),
        numpy_helper.from_array(rng.standard_normal(6).astype(np.float32), "bias"),
        numpy_helper.from_array(np.array(0.1, np.float32), "ys"),
        numpy_helper.from_array(np.array(10, adt), "yz"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xf"]),
        helper.make_node(op, ["xf", "w", "bias"], ["g"]),
        helper.make_node("QuantizeLinear", ["g", "ys", "yz"], ["gq"]),
        helper.make_node("DequantizeLinear", ["gq", "ys", "yz"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, xshape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / f"{op}_{act}_float_weights.onnx"
    onnx.save(model, str(path))
    feeds = [{"x": (rng.standard_normal(xshape) * 3).astype(np.float32)} for _ in range(3)]
    _check_same_as_ort(path, feeds, tmp_path, expect="QLinearConv" if conv else "QGemm")
