"""Native TFLite int8 ops, bit for bit against LiteRT's reference kernels.

Each test builds a one-operator ``.tflite`` model with hypothesis-drawn
shapes, strides, paddings, fused activations, scales and zero points (per
tensor and per channel), runs it on LiteRT with
``OpResolverType.BUILTIN_REF`` and on the native engine (through the
importer), and requires identical int8 outputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

# the TFLite schema module (for building models) ships with ai-edge-litert
pytest.importorskip("ai_edge_litert.schema_py_generated", reason="needs ai-edge-litert (pip install 'edgeai[litert]')")

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests import tflite_builder as tb

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def interpreter() -> tuple[Any, Any]:
    """(Interpreter, OpResolverType) of the installed TFLite runtime (ai-edge-litert, else tflite-runtime)."""
    from edgeai.backends.litert import _interpreter_module

    module, _ = _interpreter_module()
    return module.Interpreter, module.OpResolverType


def run_litert(model: bytes, feeds: list[np.ndarray], reference: bool = True) -> list[np.ndarray]:
    Interpreter, OpResolverType = interpreter()
    kind = OpResolverType.BUILTIN_REF if reference else OpResolverType.AUTO
    it = Interpreter(model_content=model, experimental_op_resolver_type=kind)
    it.allocate_tensors()
    for d, x in zip(it.get_input_details(), feeds):
        it.set_tensor(d["index"], x)
    it.invoke()
    return [it.get_tensor(d["index"]).copy() for d in it.get_output_details()]


def run_native(model: bytes, feeds: list[np.ndarray], kernels: bool = True) -> list[np.ndarray]:
    """The model on the native engine; ``kernels=False`` keeps the numpy reference path of the convolutions."""
    from edgeai.backends.native import BACKEND
    from edgeai.formats.tflite_format import import_tflite

    graph = import_tflite(model)
    exe = BACKEND.compile(graph, BACKEND.devices()[0], {"graph_passes": (), "tflite_kernels": kernels})
    return exe.run(dict(zip(graph.inputs, feeds)))


def assert_bit_exact(model: bytes, feeds: list[np.ndarray]) -> None:
    want = run_litert(model, feeds)
    for kernels in (True, False):
        got = run_native(model, feeds, kernels)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.dtype == w.dtype and g.shape == w.shape
            if not np.array_equal(g, w):
                diff = np.abs(g.astype(np.int64) - w.astype(np.int64))
                raise AssertionError(
                    f"{'numba kernel' if kernels else 'numpy reference'}: {int((diff > 0).sum())} of {diff.size} "
                    f"elements differ, max by {diff.max()}"
                )


scales = st.floats(1e-3, 0.5).map(lambda v: float(np.float32(v)))
zero_points = st.integers(-128, 127)
activations = st.sampled_from(["NONE", "RELU", "RELU6", "RELU_N1_TO_1"])
paddings = st.sampled_from(["SAME", "VALID"])


def act(name: str) -> int:
    return int(getattr(tb.schema().ActivationFunctionType, name))


def q8(name: str, shape: list[int], scale: Any, zp: Any, data: np.ndarray | None = None, axis: int = 0) -> dict:
    spec: dict[str, Any] = {"name": name, "shape": shape, "dtype": np.int8, "scale": scale, "zero_point": zp}
    if data is not None:
        spec["data"] = data
    if isinstance(scale, list):
        spec["axis"] = axis
    return spec


def rand_int8(rng: np.random.Generator, shape: Any, lo: int = -128) -> np.ndarray:
    return rng.integers(lo, 128, shape).astype(np.int8)


@st.composite
def conv_cases(draw: Any, depthwise: bool) -> dict[str, Any]:
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    eff = [(k[i] - 1) * dil[i] + 1 for i in range(2)]
    h, w = draw(st.integers(eff[0], 9)), draw(st.integers(eff[1], 9))
    c = draw(st.integers(1, 5))
    mult = draw(st.integers(1, 2)) if depthwise else 0
    o = c * mult if depthwise else draw(st.integers(1, 6))
    return {
        "n": draw(st.integers(1, 2)), "h": h, "w": w, "c": c, "o": o, "k": k, "stride": stride, "dil": dil,
        "mult": mult, "padding": draw(paddings), "act": draw(activations), "per_channel": draw(st.booleans()),
        "bias": draw(st.booleans()), "xs": draw(scales), "xz": draw(zero_points), "ys": draw(scales),
        "yz": draw(zero_points), "ws": draw(st.floats(1e-3, 0.05)), "seed": draw(st.integers(0, 2**16)),
    }  # fmt: skip


def conv_model(case: dict[str, Any], depthwise: bool) -> tuple[bytes, np.ndarray]:
    s = tb.schema()
    rng = np.random.default_rng(case["seed"])
    o, (kh, kw) = case["o"], case["k"]
    w_shape = [1, kh, kw, o] if depthwise else [o, kh, kw, case["c"]]
    w = rand_int8(rng, w_shape, -127)
    ws = rng.uniform(0.3, 1.0, o) * case["ws"] if case["per_channel"] else np.array([case["ws"]])
    ws = ws.astype(np.float32)
    axis = 3 if depthwise else 0
    w_scale: Any = [float(v) for v in ws] if case["per_channel"] else float(ws[0])
    w_zp: Any = [0] * o if case["per_channel"] else 0
    inputs = [
        q8("x", [case["n"], case["h"], case["w"], case["c"]], case["xs"], case["xz"]),
        q8("w", w_shape, w_scale, w_zp, w, axis),
    ]
    # LiteRT's int8 convolutions require a bias; case["bias"] False means all zeros
    bs = (np.float32(case["xs"]) * ws).astype(np.float32)
    b_scale: Any = [float(v) for v in bs] if case["per_channel"] else float(bs[0])
    inputs.append({"name": "b", "shape": [o], "dtype": np.int32, "data": rng.integers(-3000, 3000, o).astype(np.int32) * case["bias"],
                   "scale": b_scale, "zero_point": w_zp})  # fmt: skip
    opts = s.DepthwiseConv2DOptionsT() if depthwise else s.Conv2DOptionsT()
    opts.padding = getattr(s.Padding, case["padding"])
    opts.strideH, opts.strideW = case["stride"]
    opts.dilationHFactor, opts.dilationWFactor = case["dil"]
    opts.fusedActivationFunction = act(case["act"])
    if depthwise:
        opts.depthMultiplier = case["mult"]
    h_out = -(-case["h"] // case["stride"][0]) if case["padding"] == "SAME" else (
        (case["h"] - ((kh - 1) * case["dil"][0] + 1)) // case["stride"][0] + 1)  # fmt: skip
    w_out = -(-case["w"] // case["stride"][1]) if case["padding"] == "SAME" else (
        (case["w"] - ((kw - 1) * case["dil"][1] + 1)) // case["stride"][1] + 1)  # fmt: skip
    out = q8("y", [case["n"], h_out, w_out, o], case["ys"], case["yz"])
    model = tb.single_op("DEPTHWISE_CONV_2D" if depthwise else "CONV_2D", inputs, [out], opts)
    return model, rand_int8(rng, (case["n"], case["h"], case["w"], case["c"]))


@SETTINGS
@given(conv_cases(depthwise=False))
def test_conv_2d_bit_exact(case: dict[str, Any]) -> None:
    model, x = conv_model(case, depthwise=False)
    assert_bit_exact(model, [x])


@SETTINGS
@given(conv_cases(depthwise=True))
def test_depthwise_conv_2d_bit_exact(case: dict[str, Any]) -> None:
    model, x = conv_model(case, depthwise=True)
    assert_bit_exact(model, [x])


@SETTINGS
@given(
    batch=st.integers(1, 3), k=st.integers(1, 40), units=st.integers(1, 8), xs=scales, xz=zero_points,
    ys=scales, yz=zero_points, ws=st.floats(1e-3, 0.05), a=activations, bias=st.booleans(),
    keep=st.booleans(), per_channel=st.booleans(), seed=st.integers(0, 2**16),
)  # fmt: skip
def test_fully_connected_bit_exact(
    batch: int, k: int, units: int, xs: float, xz: int, ys: float, yz: int, ws: float, a: str, bias: bool,
    keep: bool, per_channel: bool, seed: int,
) -> None:  # fmt: skip
    from edgeai.backends.litert import _interpreter_module

    # tflite-runtime 2.14 predates per-channel FULLY_CONNECTED (its outputs are not per-channel)
    assume(not (per_channel and units > 1 and _interpreter_module()[1] == "tflite-runtime"))
    s = tb.schema()
    rng = np.random.default_rng(seed)
    w = rand_int8(rng, (units, k), -127)
    w_scales = (rng.uniform(0.3, 1.0, units) * ws if per_channel else np.array([ws])).astype(np.float32)
    w_scale: Any = [float(v) for v in w_scales] if per_channel else float(w_scales[0])
    w_zp: Any = [0] * units if per_channel else 0
    inputs = [q8("x", [batch, 2, k], xs, xz), q8("w", [units, k], w_scale, w_zp, w, 0)]
    if bias:
        b_scales = (np.float32(xs) * w_scales).astype(np.float32)
        inputs.append({"name": "b", "shape": [units], "dtype": np.int32,
                       "scale": [float(v) for v in b_scales] if per_channel else float(b_scales[0]),
                       "zero_point": w_zp, "data": rng.integers(-3000, 3000, units).astype(np.int32)})  # fmt: skip
    opts = s.FullyConnectedOptionsT()
    opts.fusedActivationFunction = act(a)
    opts.keepNumDims = keep
    out = q8("y", [batch, 2, units] if keep else [batch * 2, units], ys, yz)
    model = tb.single_op("FULLY_CONNECTED", inputs, [out], opts)
    assert_bit_exact(model, [rand_int8(rng, (batch, 2, k))])


@SETTINGS
@given(
    kind=st.sampled_from(["AVERAGE_POOL_2D", "MAX_POOL_2D"]), h=st.integers(3, 9), w=st.integers(3, 9),
    c=st.integers(1, 4), f=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)), padding=paddings, a=activations,
    xs=scales, xz=zero_points, seed=st.integers(0, 2**16),
)  # fmt: skip
def test_pool_bit_exact(
    kind: str, h: int, w: int, c: int, f: tuple[int, int], stride: tuple[int, int], padding: str, a: str,
    xs: float, xz: int, seed: int,
) -> None:  # fmt: skip
    s = tb.schema()
    rng = np.random.default_rng(seed)
    opts = s.Pool2DOptionsT()
    opts.padding = getattr(s.Padding, padding)
    opts.strideH, opts.strideW = stride
    opts.filterHeight, opts.filterWidth = f
    opts.fusedActivationFunction = act(a)
    if padding == "SAME":
        oh, ow = -(-h // stride[0]), -(-w // stride[1])
    else:
        oh, ow = (h - f[0]) // stride[0] + 1, (w - f[1]) // stride[1] + 1
    model = tb.single_op(kind, [q8("x", [1, h, w, c], xs, xz)], [q8("y", [1, oh, ow, c], xs, xz)], opts)
    assert_bit_exact(model, [rand_int8(rng, (1, h, w, c))])


@SETTINGS
@given(
    kind=st.sampled_from(["ADD", "MUL"]), shapes=st.sampled_from([([2, 3, 4], [2, 3, 4]), ([2, 3, 4], [4]),
    ([1, 3, 1], [2, 1, 5]), ([5], [1])]), sa=scales, za=zero_points, sb=scales, zb=zero_points,
    sy=scales, zy=zero_points, a=activations, seed=st.integers(0, 2**16),
)  # fmt: skip
def test_add_mul_bit_exact(
    kind: str, shapes: tuple[list[int], list[int]], sa: float, za: int, sb: float, zb: int, sy: float, zy: int,
    a: str, seed: int,
) -> None:  # fmt: skip
    s = tb.schema()
    rng = np.random.default_rng(seed)
    opts = s.AddOptionsT() if kind == "ADD" else s.MulOptionsT()
    opts.fusedActivationFunction = act(a)
    out_shape = list(np.broadcast_shapes(tuple(shapes[0]), tuple(shapes[1])))
    model = tb.single_op(kind, [q8("a", shapes[0], sa, za), q8("b", shapes[1], sb, zb)], [q8("y", out_shape, sy, zy)],
                         opts)  # fmt: skip
    assert_bit_exact(model, [rand_int8(rng, shapes[0]), rand_int8(rng, shapes[1])])


@SETTINGS
@given(xs=scales, xz=zero_points, ys=scales, yz=zero_points, seed=st.integers(0, 2**16))
def test_quantize_dequantize_bit_exact(xs: float, xz: int, ys: float, yz: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    f = {"name": "f", "shape": [3, 7], "dtype": np.float32}
    x = (rng.standard_normal((3, 7)) * 100 * ys).astype(np.float32)
    x[0, :3] = np.float32(ys) * np.array([0.5, -0.5, 2.5], np.float32)  # ties: away from zero
    assert_bit_exact(tb.single_op("QUANTIZE", [f], [q8("q", [3, 7], ys, yz)]), [x])
    assert_bit_exact(tb.single_op("QUANTIZE", [q8("a", [3, 7], xs, xz)], [q8("b", [3, 7], ys, yz)]),
                     [rand_int8(rng, (3, 7))])  # fmt: skip
    q = rand_int8(rng, (3, 7))
    model = tb.single_op("DEQUANTIZE", [q8("q", [3, 7], xs, xz)], [f])
    assert_bit_exact(model, [q])


@SETTINGS
@given(xs=scales, xz=zero_points, axis=st.integers(0, 2), seed=st.integers(0, 2**16))
def test_reshape_concatenation_bit_exact(xs: float, xz: int, axis: int, seed: int) -> None:
    s = tb.schema()
    rng = np.random.default_rng(seed)
    shape_t = {"name": "shape", "shape": [2], "dtype": np.int32, "data": np.array([-1, 6], np.int32)}
    model = tb.single_op("RESHAPE", [q8("x", [2, 3, 4], xs, xz), shape_t], [q8("y", [4, 6], xs, xz)],
                         s.ReshapeOptionsT())  # fmt: skip
    assert_bit_exact(model, [rand_int8(rng, (2, 3, 4))])
    opts = s.ConcatenationOptionsT()
    opts.axis = axis
    a, b = [2, 3, 4], [2, 3, 4]
    b[axis] = 2
    y = list(a)
    y[axis] += 2
    model = tb.single_op("CONCATENATION", [q8("a", a, xs, xz), q8("b", b, xs, xz)], [q8("y", y, xs, xz)], opts)
    assert_bit_exact(model, [rand_int8(rng, a), rand_int8(rng, b)])


@SETTINGS
@given(
    rows=st.integers(1, 4), depth=st.integers(1, 40), xs=scales, xz=zero_points,
    beta=st.sampled_from([1.0, 0.5, 2.0, 0.25]), seed=st.integers(0, 2**16),
)  # fmt: skip
def test_softmax_bit_exact(rows: int, depth: int, xs: float, xz: int, beta: float, seed: int) -> None:
    s = tb.schema()
    opts = s.SoftmaxOptionsT()
    opts.beta = beta
    model = tb.single_op("SOFTMAX", [q8("x", [rows, depth], xs, xz)], [q8("y", [rows, depth], 1 / 256, -128)], opts)
    assert_bit_exact(model, [rand_int8(np.random.default_rng(seed), (rows, depth))])


def test_int8_cnn_whole_model_bit_exact() -> None:
    """The test CNN (conv, pool, reshape, fully connected, softmax) on the native engine, batch 1 and 3."""
    from edgeai.backends.native import BACKEND
    from edgeai.formats.tflite_format import import_tflite

    data = tb.int8_cnn()
    graph = import_tflite(data)
    part = graph.replace(outputs=("logits", "probs"))
    exe = BACKEND.compile(part, BACKEND.devices()[0], {"graph_passes": ()})
    Interpreter, OpResolverType = interpreter()

    it = Interpreter(model_content=data, experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                     experimental_preserve_all_tensors=True)  # fmt: skip
    rng = np.random.default_rng(3)
    for batch in (1, 3):
        x = rand_int8(rng, (batch, 8, 8, 1))
        it.resize_tensor_input(it.get_input_details()[0]["index"], x.shape)
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        logits = next(it.get_tensor(d["index"]) for d in it.get_tensor_details() if d["name"] == "logits")
        probs = it.get_tensor(it.get_output_details()[0]["index"])
        got = exe.run({"image": x})
        np.testing.assert_array_equal(got[0], logits)
        np.testing.assert_array_equal(got[1], probs)


def test_float_input_is_refused_clearly() -> None:
    from edgeai.errors import UnsupportedOpError

    s = tb.schema()
    opts = s.Conv2DOptionsT()
    opts.strideH = opts.strideW = 1
    f = np.float32
    model = tb.single_op("CONV_2D", [{"name": "x", "shape": [1, 4, 4, 1], "dtype": f},
                                     {"name": "w", "shape": [1, 1, 1, 1], "dtype": f, "data": np.ones((1, 1, 1, 1), f)}],
                         [{"name": "y", "shape": [1, 4, 4, 1], "dtype": f}], opts)  # fmt: skip
    with pytest.raises(UnsupportedOpError, match="float32"):
        run_native(model, [np.zeros((1, 4, 4, 1), f)])


def test_mobile_cnn_every_tensor_bit_exact() -> None:
    """A MobileNet-like int8 CNN on the native engine: every intermediate tensor equals LiteRT's reference."""
    Interpreter, OpResolverType = interpreter()

    from edgeai.backends.native import BACKEND
    from edgeai.formats.tflite_format import import_tflite

    data = tb.int8_mobile_cnn(seed=1, size=24)
    graph = import_tflite(data)
    it = Interpreter(model_content=data, experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                     experimental_preserve_all_tensors=True)  # fmt: skip
    it.allocate_tensors()
    x = rand_int8(np.random.default_rng(5), (1, 24, 24, 3))
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    ref = {d["name"]: it.get_tensor(d["index"]) for d in it.get_tensor_details()}
    names = [o for n in graph.nodes for o in n.outputs]
    part = graph.replace(outputs=tuple(names))
    got = BACKEND.compile(part, BACKEND.devices()[0], {"graph_passes": ()}).run({"image": x})
    for name, value in zip(names, got):
        np.testing.assert_array_equal(value, ref[name], err_msg=name)
    assert len(np.unique(ref["pw1"])) > 20  # the activations are spread, not saturated


@SETTINGS
@given(kind=st.sampled_from(["LOGISTIC", "TANH"]), xs=scales, xz=zero_points)
def test_logistic_tanh_bit_exact_on_every_int8_value(kind: str, xs: float, xz: int) -> None:
    ys, yz = (1 / 256, -128) if kind == "LOGISTIC" else (1 / 128, 0)  # the output quantization LiteRT requires
    model = tb.single_op(kind, [q8("x", [2, 128], xs, xz)], [q8("y", [2, 128], ys, yz)])
    assert_bit_exact(model, [np.arange(-128, 128).astype(np.int8).reshape(2, 128)])


# -- the fast paths (numba loops, tables, 1x1 convolutions as GEMMs) against their references ----------------


def compiled_ops(model: bytes, options: dict[str, Any] | None = None) -> list[Any]:
    """The op objects of the model compiled on the native engine."""
    from edgeai.backends.native import BACKEND
    from edgeai.formats.tflite_format import import_tflite

    exe = BACKEND.compile(import_tflite(model), BACKEND.devices()[0], {"graph_passes": (), **(options or {})})
    return list(exe._compiled.ops)


@st.composite
def pointwise_cases(draw: Any) -> dict[str, Any]:
    case = draw(conv_cases(depthwise=False))
    case.update(k=(1, 1), dil=(1, 1), c=draw(st.integers(1, 40)), o=draw(st.integers(1, 40)))
    return case


@SETTINGS
@given(pointwise_cases())
def test_pointwise_conv_2d_bit_exact(case: dict[str, Any]) -> None:
    """1x1 CONV_2D (strided or not, SAME or VALID) runs as one GEMM over the pixels."""
    from edgeai.ops.tflite.conv import PointwiseGemm

    model, x = conv_model(case, depthwise=False)
    assert isinstance(compiled_ops(model)[0]._fast, PointwiseGemm)
    assert_bit_exact(model, [x])


@SETTINGS
@given(conv_cases(depthwise=True), st.integers(2, 4))
def test_depthwise_multiplier_on_repeated_channels_bit_exact(case: dict[str, Any], mult: int) -> None:
    """A depth multiplier above 1 runs the depthwise kernel over the input channels repeated."""
    from edgeai.ops.tflite.conv import RepeatedChannels

    case.update(mult=mult, o=case["c"] * mult)
    model, x = conv_model(case, depthwise=True)
    assert isinstance(compiled_ops(model)[0]._fast, RepeatedChannels)
    assert_bit_exact(model, [x])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["ADD", "MUL"]), sa=scales, za=zero_points, sb=scales, zb=zero_points, sy=scales,
       zy=zero_points, a=activations)  # fmt: skip
def test_add_mul_every_pair_of_int8_values_bit_exact(
    kind: str, sa: float, za: int, sb: float, zb: int, sy: float, zy: int, a: str
) -> None:
    """ADD and MUL look their output up in a table of every input pair: all 65536 pairs against LiteRT."""
    s = tb.schema()
    opts = s.AddOptionsT() if kind == "ADD" else s.MulOptionsT()
    opts.fusedActivationFunction = act(a)
    n = 256 * 256
    model = tb.single_op(kind, [q8("a", [n], sa, za), q8("b", [n], sb, zb)], [q8("y", [n], sy, zy)], opts)
    u = np.arange(256, dtype=np.uint8)
    assert_bit_exact(model, [np.repeat(u, 256).view(np.int8), np.tile(u, 256).view(np.int8)])


@SETTINGS
@given(
    kind=st.sampled_from(["ADD", "MUL"]), sa=st.floats(1e-6, 100.0), za=zero_points, sb=st.floats(1e-6, 100.0),
    zb=zero_points, sy=st.floats(1e-7, 100.0), zy=zero_points, lo=st.integers(-128, 0), hi=st.integers(0, 127),
)  # fmt: skip
def test_pair_table_equals_numpy_reference(
    kind: str, sa: float, za: int, sb: float, zb: int, sy: float, zy: int, lo: int, hi: int
) -> None:
    """The ADD/MUL table (one numba loop) against :func:`add_int8` / :func:`mul_int8` on all 65536 pairs,
    over scales wide enough for left shifts in the output multiplier."""
    from edgeai.ops.tflite.elementwise import add_int8, mul_int8, pair_table

    u = np.arange(256, dtype=np.uint8)
    a, b = np.repeat(u, 256).view(np.int8), np.tile(u, 256).view(np.int8)
    ref = (add_int8 if kind == "ADD" else mul_int8)(a, sa, za, b, sb, zb, sy, zy, lo, hi)
    np.testing.assert_array_equal(pair_table(kind, sa, za, sb, zb, sy, zy, lo, hi), ref)


@SETTINGS
@given(
    kind=st.sampled_from(["AVERAGE_POOL_2D", "MAX_POOL_2D"]), n=st.integers(1, 3), h=st.integers(1, 17),
    w=st.integers(1, 17), c=st.integers(1, 70), f=st.tuples(st.integers(1, 17), st.integers(1, 17)),
    stride=st.tuples(st.integers(1, 4), st.integers(1, 4)), padding=paddings, lo=st.integers(-128, 0),
    hi=st.integers(0, 127), seed=st.integers(0, 2**16),
)  # fmt: skip
def test_pool_loop_equals_numpy_reference(
    kind: str, n: int, h: int, w: int, c: int, f: tuple[int, int], stride: tuple[int, int], padding: str, lo: int,
    hi: int, seed: int,
) -> None:  # fmt: skip
    """The numba pooling loop against the numpy reference: batches, wide channels, global windows."""
    from edgeai.ops.tflite._common import SAME, VALID, pad_and_out
    from edgeai.ops.tflite.loops import pool_nhwc
    from edgeai.ops.tflite.pooling import average_pool_int8, max_pool_int8

    pad = SAME if padding == "SAME" else VALID
    assume(padding == "SAME" or (f[0] <= h and f[1] <= w))
    oh, pt = pad_and_out(pad, h, f[0], stride[0])
    ow, pl = pad_and_out(pad, w, f[1], stride[1])
    x = rand_int8(np.random.default_rng(seed), (n, h, w, c))
    ref = (average_pool_int8 if kind == "AVERAGE_POOL_2D" else max_pool_int8)(
        x, f[0], f[1], stride[0], stride[1], pt, pl, oh, ow, lo, hi
    )
    got = np.empty((n, oh, ow, c), np.int8)
    pool_nhwc(x, f[0], f[1], stride[0], stride[1], pt, pl, kind == "AVERAGE_POOL_2D", lo, hi, got)
    np.testing.assert_array_equal(got, ref)


def test_global_average_pool_bit_exact() -> None:
    """The benchmark model's pool: one 16x16 window over 64 channels, every sum sign and remainder."""
    s = tb.schema()
    opts = s.Pool2DOptionsT()
    opts.padding, opts.strideH, opts.strideW, opts.filterHeight, opts.filterWidth = s.Padding.VALID, 1, 1, 16, 16
    model = tb.single_op("AVERAGE_POOL_2D", [q8("x", [2, 16, 16, 64], 0.1, 3)], [q8("y", [2, 1, 1, 64], 0.1, 3)],
                         opts)  # fmt: skip
    x = rand_int8(np.random.default_rng(7), (2, 16, 16, 64))
    x[0, :, :, :8] = np.int8(-128)  # saturated channels
    x[1, :, :, 8:16] = np.int8(127)
    assert_bit_exact(model, [x])


EDGE_ACCS = [-(2**31), -(2**31) + 1, -(2**30), -65536, -129, -1, 0, 1, 64, 65535, 2**30, 2**31 - 1]


@SETTINGS
@given(
    m=st.one_of(st.sampled_from([1 << 30, (1 << 31) - 1, (1 << 30) + 1]), st.integers(1 << 30, (1 << 31) - 1)),
    shift=st.integers(-31, 30), zp=zero_points, seed=st.integers(0, 2**16),
)  # fmt: skip
def test_fixed_point_requant_loop_equals_reference(m: int, shift: int, zp: int, seed: int) -> None:
    """MultiplyByQuantizedMultiplier in the numba loops (double and single rounding) against the numpy
    references, over int32 edge values and random accumulators, every shift TFLite allows."""
    from edgeai.ops.tflite._common import requant, requant_single_rounding
    from edgeai.ops.tflite.loops import requant_rows

    rng = np.random.default_rng(seed)
    acc = np.array(EDGE_ACCS + list(rng.integers(-(2**31), 2**31, 52)), np.int64).astype(np.int32).reshape(8, 8)
    ms = np.full(8, m, np.int64)
    shifts = np.full(8, shift, np.int64)
    got = np.empty(acc.shape, np.int8)
    requant_rows(acc, ms, shifts, zp, -128, 127, False, got)
    np.testing.assert_array_equal(got, requant(acc, ms, shifts, zp, -128, 127))
    requant_rows(acc, ms, shifts, zp, -100, 90, True, got)
    np.testing.assert_array_equal(got, requant_single_rounding(acc, ms, shifts, zp, -100, 90))


@SETTINGS
@given(
    batch=st.integers(1, 4), k=st.integers(1, 600), units=st.integers(1, 40), xz=zero_points,
    wz=st.integers(-10, 10), rounding=st.sampled_from(["single", "double"]), a=activations,
    per_channel=st.booleans(), seed=st.integers(0, 2**16),
)  # fmt: skip
def test_fully_connected_loop_equals_numpy_reference(
    batch: int, k: int, units: int, xz: int, wz: int, rounding: str, a: str, per_channel: bool, seed: int
) -> None:
    """The numba FULLY_CONNECTED loop against the numpy reference (``tflite_kernels=False``): long rows,
    weight zero points, both roundings (LiteRT itself only runs one of them)."""
    s = tb.schema()
    rng = np.random.default_rng(seed)
    w = rand_int8(rng, (units, k), -127)
    ws: Any = [float(v) for v in rng.uniform(1e-3, 0.02, units).astype(np.float32)] if per_channel else 0.01
    wzp: Any = [wz] * units if per_channel else wz
    inputs = [q8("x", [batch, k], 0.05, xz), q8("w", [units, k], ws, wzp, w, 0),
              {"name": "b", "shape": [units], "dtype": np.int32, "data": rng.integers(-9000, 9000, units).astype(np.int32),
               "scale": 0.0005, "zero_point": 0}]  # fmt: skip
    opts = s.FullyConnectedOptionsT()
    opts.fusedActivationFunction = act(a)
    model = tb.single_op("FULLY_CONNECTED", inputs, [q8("y", [batch, units], 0.07, -3)], opts)
    x = rand_int8(rng, (batch, k))
    fast, ref = (
        run_native_options(model, [x], {"tflite_fc_rounding": rounding, "tflite_kernels": kernels})[0]
        for kernels in (True, False)
    )
    np.testing.assert_array_equal(fast, ref)
    assert compiled_ops(model)[0].loop is not None  # the loop ran, not the reference


def run_native_options(model: bytes, feeds: list[np.ndarray], options: dict[str, Any]) -> list[np.ndarray]:
    from edgeai.backends.native import BACKEND
    from edgeai.formats.tflite_format import import_tflite

    graph = import_tflite(model)
    exe = BACKEND.compile(graph, BACKEND.devices()[0], {"graph_passes": (), **options})
    return exe.run(dict(zip(graph.inputs, feeds)))


def test_quantize_from_float_extremes_equal_reference() -> None:
    """QUANTIZE's numba loop against :func:`quantize_float` on ties, huge values and infinities."""
    from edgeai.ops.tflite.loops import quantize_float_loop
    from edgeai.ops.tflite.quantize import quantize_float

    scale = np.float32(0.037)
    ties = scale * (np.arange(-300, 300, dtype=np.float32) + np.float32(0.5))
    x = np.concatenate([ties, np.array([0.0, -0.0, 1e30, -1e30, np.inf, -np.inf, 3e-39], np.float32)])
    x = np.concatenate([x, np.random.default_rng(1).standard_normal(500).astype(np.float32) * 10])
    for zp in (-128, -5, 0, 77, 127):
        got = np.empty(x.size, np.int8)
        quantize_float_loop(x, scale, zp, got)
        np.testing.assert_array_equal(got, quantize_float(x, float(scale), zp))


@SETTINGS
@given(xs=scales, xz=zero_points, ys=scales, yz=zero_points)
def test_quantize_int8_and_dequantize_tables_on_every_int8_value(xs: float, xz: int, ys: float, yz: int) -> None:
    """QUANTIZE int8 -> int8 and DEQUANTIZE are 256-entry tables: every input value against LiteRT."""
    every = np.arange(-128, 128).astype(np.int8).reshape(2, 128)
    assert_bit_exact(tb.single_op("QUANTIZE", [q8("a", [2, 128], xs, xz)], [q8("b", [2, 128], ys, yz)]), [every])
    f = {"name": "f", "shape": [2, 128], "dtype": np.float32}
    assert_bit_exact(tb.single_op("DEQUANTIZE", [q8("q", [2, 128], xs, xz)], [f]), [every])


@pytest.mark.parametrize("batch,k,units,per_channel", [(1, 1280, 100, True), (5, 300, 64, False), (3, 64, 600, True)])
def test_large_fully_connected_on_the_gemm_kernels_bit_exact(batch: int, k: int, units: int, per_channel: bool) -> None:
    """FULLY_CONNECTED layers above the loop's size run on the INT8 GEMM kernels (accumulators, then
    the runtime's rounding): against LiteRT, and against the numpy reference in the other rounding."""
    from edgeai.ops.tflite import conv

    assert batch * k * units > conv._LOOP_MACS
    s = tb.schema()
    rng = np.random.default_rng(k + units)
    w = rand_int8(rng, (units, k), -127)
    ws = rng.uniform(2e-4, 2e-3, units).astype(np.float32) if per_channel else np.array([1e-3], np.float32)
    w_scale: Any = [float(v) for v in ws] if per_channel else float(ws[0])
    b_scale: Any = [float(np.float32(0.05) * v) for v in ws] if per_channel else float(np.float32(0.05) * ws[0])
    inputs = [q8("x", [batch, k], 0.05, 7), q8("w", [units, k], w_scale, [0] * units if per_channel else 0, w, 0),
              {"name": "b", "shape": [units], "dtype": np.int32, "data": rng.integers(-9000, 9000, units).astype(np.int32),
               "scale": b_scale, "zero_point": [0] * units if per_channel else 0}]  # fmt: skip
    opts = s.FullyConnectedOptionsT()
    opts.fusedActivationFunction = act("RELU")
    x = rand_int8(rng, (batch, k))
    real = ((x.astype(np.float64) - 7) @ w.T.astype(np.float64)) * 0.05 * ws.astype(np.float64)
    y_scale = float(np.float32(real.std() / 30))  # outputs spread over the int8 range
    model = tb.single_op("FULLY_CONNECTED", inputs, [q8("y", [batch, units], y_scale, -60)], opts)
    assert compiled_ops(model)[0].gemm is not None
    assert_bit_exact(model, [x])
    other = "double" if conv.fully_connected_rounds_once() else "single"
    fast, ref = (
        run_native_options(model, [x], {"tflite_fc_rounding": other, "tflite_kernels": kernels})[0]
        for kernels in (True, False)
    )
    np.testing.assert_array_equal(fast, ref)
    assert len(np.unique(ref)) > 20  # spread outputs, not saturated


def test_reshape_to_a_fed_shape_follows_every_call() -> None:
    """RESHAPE remembers its output shape only for a constant target: a fed shape is read on every call."""
    s = tb.schema()
    shape_in = {"name": "shape", "shape": [2], "dtype": np.int32}
    model = tb.single_op("RESHAPE", [q8("x", [2, 3, 4], 0.1, 0), shape_in], [q8("y", [4, 6], 0.1, 0)],
                         s.ReshapeOptionsT())  # fmt: skip
    from edgeai.backends.native import BACKEND
    from edgeai.formats.tflite_format import import_tflite

    graph = import_tflite(model)
    exe = BACKEND.compile(graph, BACKEND.devices()[0], {"graph_passes": ()})  # one session, several calls
    x = rand_int8(np.random.default_rng(0), (2, 3, 4))
    for target in ([4, 6], [-1, 2], [3, 8], [4, 6]):
        got = exe.run(dict(zip(graph.inputs, [x, np.array(target, np.int32)])))[0]
        np.testing.assert_array_equal(got, x.reshape(target))
