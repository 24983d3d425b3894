"""The TFLite importer (flatbuffer -> IR) and writer (IR node subset -> .tflite).

Checked against LiteRT's own view of the same model (tensor details,
quantization) and by running written partitions on LiteRT: every cut of
the test CNN, chained partition after partition, gives the whole model's
outputs bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

# the TFLite schema module (for building models) ships with ai-edge-litert
pytest.importorskip("ai_edge_litert.schema_py_generated", reason="needs ai-edge-litert (pip install 'edgeai[litert]')")

from edgeai.errors import ModelFormatError
from edgeai.formats.tflite_format import import_tflite
from edgeai.formats.tflite_writer import tflite_bytes, write_tflite
from edgeai.graph import Graph, Node
from tests import tflite_builder as tb
from tests.litert.test_tflite_native_ops import interpreter

Interpreter, OpResolverType = interpreter()


def _run(model: bytes, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    it = Interpreter(model_content=model, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    for d in it.get_input_details():
        it.resize_tensor_input(d["index"], feeds[d["name"]].shape)
    it.allocate_tensors()
    for d in it.get_input_details():
        it.set_tensor(d["index"], feeds[d["name"]])
    it.invoke()
    return {d["name"]: it.get_tensor(d["index"]).copy() for d in it.get_output_details()}


def test_import_matches_litert_tensor_details() -> None:
    data = tb.int8_cnn()
    g = import_tflite(data)
    assert [(n.domain, n.op_type) for n in g.nodes] == [
        ("tflite", "CONV_2D"),
        ("tflite", "AVERAGE_POOL_2D"),
        ("tflite", "RESHAPE"),
        ("tflite", "FULLY_CONNECTED"),
        ("tflite", "SOFTMAX"),
    ]
    assert g.inputs == ("image",) and g.outputs == ("probs",)
    assert g.nodes[0].attrs["padding"] == tb.schema().Padding.SAME
    assert g.nodes[0].attrs["fusedActivationFunction"] == tb.schema().ActivationFunctionType.RELU
    assert g.value("image").shape == ("N", 8, 8, 1)  # shape_signature -1 -> symbolic
    it = Interpreter(model_content=data)
    for d in it.get_tensor_details():
        v = g.value(d["name"])
        assert v.dtype == np.dtype(d["dtype"])
        q = d["quantization_parameters"]
        if len(q["scales"]):
            assert v.quant is not None
            np.testing.assert_array_equal(np.asarray(v.quant.scale, np.float32), q["scales"])
            np.testing.assert_array_equal(v.quant.zero_point, q["zero_points"])
            assert (v.quant.axis if len(q["scales"]) > 1 else 0) == q["quantized_dimension"]
        if v.name in g.initializers:
            np.testing.assert_array_equal(g.initializers[v.name], it.get_tensor(d["index"]))
    assert g.value("conv_w").quant.axis == 0 and len(g.value("conv_w").quant.scale) == 8  # per channel


def test_roundtrip_keeps_nodes_values_and_weights() -> None:
    g = import_tflite(tb.int8_cnn())
    back = import_tflite(tflite_bytes(g))
    assert [(n.op_type, n.inputs, n.outputs, dict(n.attrs)) for n in back.nodes] == [
        (n.op_type, n.inputs, n.outputs, dict(n.attrs)) for n in g.nodes
    ]
    assert back.values == g.values
    for k, arr in g.initializers.items():
        np.testing.assert_array_equal(back.initializers[k], arr)


@pytest.mark.parametrize("cut", [1, 2, 3, 4])
def test_written_partitions_chain_to_the_whole_model(cut: int) -> None:
    data = tb.int8_cnn()
    g = import_tflite(data)
    first = g.extract([n.name for n in g.nodes[:cut]])
    second = g.extract([n.name for n in g.nodes[cut:]])
    rng = np.random.default_rng(cut)
    for batch in (1, 2):
        x = rng.integers(-128, 128, (batch, 8, 8, 1)).astype(np.int8)
        want = _run(data, {"image": x})
        mid = _run(tflite_bytes(first), {"image": x})
        got = _run(tflite_bytes(second), mid)
        np.testing.assert_array_equal(got["probs"], want["probs"])


def test_custom_op_code_and_options_survive() -> None:
    data = tb.int8_model_with_custom_op()
    g = import_tflite(data)
    node = next(n for n in g.nodes if n.domain == "tflite.custom")
    assert node.op_type == "MaxPoolingWithArgmax2D"
    assert node.attrs["custom_options"] == tb.pool_params("VALID", 2, 2)
    again = import_tflite(tflite_bytes(g))
    assert next(n for n in again.nodes if n.domain == "tflite.custom").attrs == node.attrs


def test_write_tflite_is_atomic_and_loadable(tmp_path: Path) -> None:
    g = import_tflite(tb.float_add_mul())
    target = write_tflite(g, tmp_path / "m.tflite")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite"]
    a, b = np.ones((2, 3), np.float32), np.full((2, 3), 2, np.float32)
    np.testing.assert_array_equal(_run(target.read_bytes(), {"a": a, "b": b})["y"], (a + b) * a)


def test_bad_inputs_raise_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="TFL3"):
        import_tflite(b"not a flatbuffer at all")
    with pytest.raises(ModelFormatError, match="not a file"):
        import_tflite(tmp_path / "missing.tflite")
    onnx_like = Graph.build([Node("r", "Relu", inputs=("x",), outputs=("y",))], [], [])
    with pytest.raises(ModelFormatError, match="only TFLite nodes"):
        tflite_bytes(onnx_like)
    stateful = import_tflite(tb.stateful_accumulator())  # CALL_ONCE runs subgraph 1
    assert stateful.nodes[0].attrs["initSubgraphIndex"] == 1
    with pytest.raises(ModelFormatError, match="initSubgraphIndex"):
        tflite_bytes(stateful)


@pytest.mark.parametrize(
    "module",
    [
        "edgeai.formats.tflite_format",
        "edgeai.formats.tflite_writer",
        "edgeai.ops.tflite._common",
        "edgeai.ops.tflite.conv",
        "edgeai.ops.tflite.pooling",
        "edgeai.ops.tflite.elementwise",
        "edgeai.ops.tflite.quantize",
        "edgeai.ops.tflite.shape",
        "edgeai.ops.tflite.softmax",
        "edgeai.ops.tflite.activations",
        "edgeai.ops.tflite.mediapipe",
    ],
)
def test_docstring_examples(module: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
