"""Core ML models built in torch, converted by coremltools here, run through edgeai.Session.

Off macOS the session imports the ML program into the graph IR and runs it
on the native engine; outputs are compared with torch's.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ct = pytest.importorskip("coremltools", reason='Core ML is optional: pip install "edgeai[coreml]"')
torch = pytest.importorskip("torch")

import edgeai  # noqa: E402
from edgeai.backends.coreml import NATIVE_ID, can_predict  # noqa: E402
from edgeai.errors import ModelFormatError, UnsupportedOpError  # noqa: E402
from edgeai.formats.coreml_mil import covered_mil_ops, covered_nn_layers, import_coreml  # noqa: E402

pytestmark = pytest.mark.skipif(can_predict(), reason="these tests cover the off-Apple import path")


from torch_models import SmallCNN  # noqa: E402


class ManyOps(torch.nn.Module):
    """Batch norm, pooling, depthwise conv, activations, matmul, layer norm, concat, reshape."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 8, 3, padding=1, bias=False)
        self.bn = torch.nn.BatchNorm2d(8)
        self.dw = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.ln = torch.nn.LayerNorm(16)
        self.fc = torch.nn.Linear(16, 6)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.nn.functional.hardtanh(self.bn(self.conv(x)), -1.5, 1.5)
        y = torch.nn.functional.max_pool2d(y, 2, 2)
        z = torch.nn.functional.silu(self.dw(y)) + torch.sigmoid(y) * torch.tanh(y)
        z = torch.nn.functional.avg_pool2d(z, 2, 2)  # (1, 8, 2, 2)
        flat = z.reshape(1, 8, 4)
        cat = torch.cat([flat, torch.nn.functional.leaky_relu(flat, 0.1)], dim=2)  # (1, 8, 8)
        att = torch.softmax(cat @ cat.transpose(1, 2) / 4.0, dim=-1)  # (1, 8, 8)
        h = self.ln(torch.cat([att, cat], dim=2))  # (1, 8, 16)
        out = self.fc(torch.nn.functional.gelu(h))
        return out, (out - h.mean(-1, keepdim=True)).abs().sqrt()


class UpDown(torch.nn.Module):
    """Pad, strided slicing, nearest upsampling, split, transposed conv (with crop), reflect pad."""

    def __init__(self) -> None:
        super().__init__()
        self.up = torch.nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1)
        self.c = torch.nn.Conv2d(3, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.nn.functional.pad(x, (1, 2, 0, 1))[:, :, 1:-1, ::2]
        y = torch.nn.functional.interpolate(self.c(y), scale_factor=2, mode="nearest")
        a, b = torch.chunk(y, 2, dim=1)
        return self.up(torch.cat([b, a], 1)), torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")


def _convert(model: torch.nn.Module, x: torch.Tensor, path: Path, precision: str = "float32") -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exported = torch.export.export(model.eval(), (x,)).run_decompositions({})
        mlmodel = ct.convert(
            exported,
            inputs=[ct.TensorType(name="x", shape=tuple(x.shape), dtype=np.float32)],
            convert_to="mlprogram",
            compute_precision=ct.precision.FLOAT32 if precision == "float32" else ct.precision.FLOAT16,
            minimum_deployment_target=ct.target.iOS16,
        )
    mlmodel.save(str(path))
    return mlmodel


@pytest.fixture(scope="module")
def cnn_model() -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return SmallCNN().eval(), torch.randn(1, 3, 16, 16)


def _torch_out(model: torch.nn.Module, x: torch.Tensor) -> list[np.ndarray]:
    with torch.no_grad():
        out = model(x)
    return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]


def test_cnn_float32_matches_torch(cnn_model, tmp_path: Path) -> None:
    model, x = cnn_model
    path = tmp_path / "cnn.mlpackage"
    _convert(model, x, path)
    sess = edgeai.Session(path)
    assert sess.format == "coreml" and sess.device.id == NATIVE_ID
    assert [(s.name, s.dtype, s.shape) for s in sess.inputs] == [("x", np.float32, (1, 3, 16, 16))]
    (out,) = sess.run(None, {"x": x.numpy()})
    np.testing.assert_allclose(out, _torch_out(model, x)[0], rtol=1e-5, atol=1e-6)
    report = sess.placement
    assert report.device_share() == {NATIVE_ID: 1.0}
    reasons = " ".join(n.reason for n in report.nodes)
    assert "MIL op conv" in reasons and "MIL op linear" in reasons


def test_cnn_float16_program_keeps_its_boundary_dtypes(cnn_model, tmp_path: Path) -> None:
    model, x = cnn_model
    path = tmp_path / "cnn16.mlpackage"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ep = torch.export.export(model, (x,)).run_decompositions({})
        # iOS16, float16 precision, TensorTypes without a dtype: float16 inputs and outputs
        ct.convert(
            ep,
            inputs=[ct.TensorType(name="x", shape=tuple(x.shape))],
            outputs=[ct.TensorType(name="y")],
            convert_to="mlprogram",
            minimum_deployment_target=ct.target.iOS16,
        ).save(str(path))
    sess = edgeai.Session(path)
    assert sess.inputs[0].dtype == np.float16 and sess.outputs[0].dtype == np.float16
    out = sess.run([x.numpy().astype(np.float16)])
    (got,) = out.values()
    assert got.dtype == np.float16
    want = _torch_out(model, x)[0]
    # fp16 weights and input: within fp16 rounding of the float32 result
    np.testing.assert_allclose(got.astype(np.float32), want, rtol=0, atol=2e-3 * np.abs(want).max() + 1e-3)


def test_many_ops_match_torch(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = ManyOps().eval()
    with torch.no_grad():  # non-trivial batch-norm statistics
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(1, 4, 8, 8)
    path = tmp_path / "many.mlpackage"
    _convert(model, x, path)
    graph = import_coreml(path)
    mil_ops = {o.split()[2] for o in graph.metadata["origin"].values() if o.startswith("MIL op")}
    # (coremltools folds the batch norm into the conv before saving)
    assert {"conv", "max_pool", "avg_pool", "matmul", "layer_norm", "softmax", "gelu"} <= mil_ops
    outs = edgeai.Session(path).run(None, {"x": x.numpy()})
    for got, want in zip(outs, _torch_out(model, x)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_resampling_ops_match_torch(tmp_path: Path) -> None:
    torch.manual_seed(6)
    model = UpDown().eval()
    x = torch.randn(1, 3, 6, 8)
    path = tmp_path / "updown.mlpackage"
    _convert(model, x, path)
    origin = " ".join(import_coreml(path).metadata["origin"].values())
    for op in ("pad", "slice_by_index", "upsample_nearest_neighbor", "split", "conv_transpose", "crop"):
        assert f"MIL op {op} " in origin
    outs = edgeai.Session(path).run(None, {"x": x.numpy()})
    for got, want in zip(outs, _torch_out(model, x)):
        assert got.shape == want.shape and np.abs(want).max() > 0.1
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_int8_weights_are_dequantized_exactly(cnn_model, tmp_path: Path) -> None:
    from coremltools.converters.mil.frontend.milproto.load import load
    from coremltools.optimize.coreml import (
        OpLinearQuantizerConfig,
        OptimizationConfig,
        linear_quantize_weights,
    )

    model, x = cnn_model
    mlmodel = _convert(model, x, tmp_path / "f32.mlpackage")
    config = OptimizationConfig(global_config=OpLinearQuantizerConfig(mode="linear", weight_threshold=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantized = linear_quantize_weights(mlmodel, config)
    path = tmp_path / "int8.mlpackage"
    quantized.save(str(path))

    # The int8 data, zero points and scales as stored in the file; dequantized here in float64.
    spec = ct.utils.load_spec(str(path))
    program = load(spec, spec.specificationVersion, file_weights_dir=str(path / "Data/com.apple.CoreML/weights"))
    deq: dict[str, np.ndarray] = {}
    for op in program.functions["main"].operations:
        if op.op_type == "constexpr_affine_dequantize":
            q = op.inputs["quantized_data"].val
            assert q.dtype in (np.int8, np.uint8)
            zp = op.inputs["zero_point"].val.astype(np.float64)
            scale = op.inputs["scale"].val.astype(np.float64)
            axis = int(op.inputs["axis"].val)
            shape = [1] * q.ndim
            shape[axis] = -1
            zp = zp.reshape(shape) if zp.size > 1 else zp
            scale = scale.reshape(shape) if scale.size > 1 else scale
            deq[op.outputs[0].name] = (q.astype(np.float64) - zp) * scale
    assert len(deq) == 3  # two convs and the linear layer

    graph = import_coreml(path)
    assert sorted(graph.metadata["int8_weights"]) == sorted(deq)
    by_shape = {v.shape: v for v in deq.values()}
    for arr in graph.initializers.values():
        if arr.shape in by_shape and arr.ndim >= 2:
            np.testing.assert_allclose(arr, by_shape[arr.shape], rtol=1e-6, atol=0)

    # The model with those weights put back into torch is the reference for the outputs.
    ref = SmallCNN().eval()
    ref.load_state_dict(model.state_dict())
    with torch.no_grad():
        ref.c1.weight.copy_(torch.from_numpy(by_shape[(8, 3, 3, 3)]))
        ref.c2.weight.copy_(torch.from_numpy(by_shape[(16, 8, 3, 3)]))
        ref.fc.weight.copy_(torch.from_numpy(by_shape[(10, 16)]))
    got = edgeai.Session(path).run({"x": x.numpy()})
    (out,) = got.values()
    np.testing.assert_allclose(out, _torch_out(ref, x)[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(out, _torch_out(model, x)[0], rtol=0, atol=1e-7)  # really int8


def test_uncovered_mil_op_is_named(tmp_path: Path) -> None:
    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 6))], opset_version=ct.target.iOS16)
    def prog(x: Any) -> Any:
        return mb.relu(x=mb.cumsum(x=x, axis=1, name="running_total"))

    path = tmp_path / "cumsum.mlpackage"
    ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16).save(str(path))
    with pytest.raises(UnsupportedOpError, match=r"cumsum \(at 'running_total") as info:
        edgeai.Session(path)
    assert info.value.op_type == "cumsum" and info.value.node.startswith("running_total")
    assert "cumsum" not in covered_mil_ops()


def _nn_model(path: Path, rng: np.random.Generator, extra_unary: bool = False) -> dict[str, np.ndarray]:
    from coremltools.models import datatypes
    from coremltools.models.neural_network import NeuralNetworkBuilder

    w = rng.standard_normal((3, 3, 2, 4)).astype(np.float32)  # (kh, kw, in, out) as the builder takes it
    b = rng.standard_normal(4).astype(np.float32)
    fc_w = rng.standard_normal((5, 4)).astype(np.float32)
    fc_b = rng.standard_normal(5).astype(np.float32)
    builder = NeuralNetworkBuilder(
        [("image", datatypes.Array(2, 6, 6))], [("probs", datatypes.Array(5))], disable_rank5_shape_mapping=True
    )
    builder.add_convolution("conv", 2, 4, 3, 3, 1, 1, "same", 1, w, b, True, input_name="image", output_name="conv")
    builder.add_activation("relu", "RELU", "conv", "relu")
    last = "relu"
    if extra_unary:
        builder.add_unary("cube", "relu", "cube", mode="power", alpha=3.0)
        last = "cube"
    builder.add_pooling("gap", 0, 0, 1, 1, "AVERAGE", "VALID", last, "gap", is_global=True)
    builder.add_flatten("flat", 0, "gap", "flat")
    builder.add_inner_product("fc", fc_w, fc_b, 4, 5, True, "flat", "logits")
    builder.add_softmax("softmax", "logits", "probs")
    ct.models.MLModel(builder.spec, skip_model_load=True).save(str(path))
    return {"w": w, "b": b, "fc_w": fc_w, "fc_b": fc_b}


def test_neuralnetwork_spec_matches_torch(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "nn.mlmodel"
    p = _nn_model(path, rng)
    x = rng.standard_normal((2, 6, 6)).astype(np.float32)
    sess = edgeai.Session(path)
    assert sess.inputs[0].shape == (2, 6, 6)  # as declared: (C, H, W)
    out = sess.run({"image": x})["probs"]
    assert out.shape == (5,)
    # the same model handed over as bytes (an .mlmodel is one file)
    from edgeai.formats import ModelSource

    from_bytes = edgeai.Session(ModelSource(format="coreml", data=path.read_bytes()))
    np.testing.assert_array_equal(from_bytes.run({"image": x})["probs"], out)
    xt = torch.from_numpy(x)[None]
    conv = torch.nn.functional.conv2d(
        xt, torch.from_numpy(p["w"]).permute(3, 2, 0, 1), torch.from_numpy(p["b"]), padding=1
    )
    logits = torch.relu(conv).mean((2, 3)) @ torch.from_numpy(p["fc_w"]).T + torch.from_numpy(p["fc_b"])
    np.testing.assert_allclose(out, torch.softmax(logits, 1).numpy()[0], rtol=1e-5, atol=1e-6)


def test_neuralnetwork_8bit_weights(tmp_path: Path) -> None:
    """An inner product with 8-bit linearly quantized weights (w = scale * q + bias per channel)."""
    from coremltools.models import datatypes
    from coremltools.models.neural_network import NeuralNetworkBuilder
    from coremltools.models.neural_network.quantization_utils import quantize_weights

    rng = np.random.default_rng(2)
    fc_w = rng.standard_normal((5, 4)).astype(np.float32)
    fc_b = rng.standard_normal(5).astype(np.float32)
    builder = NeuralNetworkBuilder(
        [("x", datatypes.Array(4))], [("y", datatypes.Array(5))], disable_rank5_shape_mapping=True
    )
    builder.add_inner_product("fc", fc_w, fc_b, 4, 5, True, "x", "y")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantized = quantize_weights(ct.models.MLModel(builder.spec, skip_model_load=True), nbits=8)
    spec = quantized if hasattr(quantized, "neuralNetwork") else quantized.get_spec()
    params = spec.neuralNetwork.layers[0].innerProduct.weights
    assert not params.floatValue and len(params.rawValue) == 20  # stored as 8-bit
    q = np.frombuffer(params.rawValue, np.uint8).astype(np.float64).reshape(5, 4)
    lin = params.quantization.linearQuantization
    w = q * np.asarray(lin.scale)[:, None] + np.asarray(lin.bias)[:, None]
    assert np.abs(w - fc_w).max() < 0.05  # a faithful 8-bit copy of the weights
    bias_params = spec.neuralNetwork.layers[0].innerProduct.bias  # quantized too, per tensor
    bias_q = bias_params.quantization.linearQuantization
    bias = np.frombuffer(bias_params.rawValue, np.uint8) * bias_q.scale[0] + bias_q.bias[0]
    assert np.abs(bias - fc_b).max() < 0.01
    path = tmp_path / "fc8.mlmodel"
    ct.models.MLModel(spec, skip_model_load=True).save(str(path))
    x = rng.standard_normal(4).astype(np.float32)
    out = edgeai.Session(path).run({"x": x})["y"]
    np.testing.assert_allclose(out, w @ x + bias, rtol=1e-5, atol=1e-5)


def test_uncovered_nn_layer_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nn_unary.mlmodel"
    _nn_model(path, np.random.default_rng(1), extra_unary=True)
    with pytest.raises(UnsupportedOpError, match=r"unary \(at 'cube'\)"):
        edgeai.Session(path)
    assert "convolution" in covered_nn_layers() and "unary" not in covered_nn_layers()


def test_bad_core_ml_files(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.mlmodel"
    bad.write_bytes(b"\x08\x07" + bytes(range(200)))
    with pytest.raises(ModelFormatError):
        edgeai.Session(bad)
    empty_pkg = tmp_path / "empty.mlpackage"
    empty_pkg.mkdir()
    with pytest.raises(ModelFormatError):
        edgeai.Session(empty_pkg)


def test_devices_off_apple() -> None:
    from edgeai.backends import get_backend

    found = get_backend("coreml").devices()
    assert [d.id for d in found] == [NATIVE_ID]
    assert found[0].kind == "CPU"


def _mil_model(path: Path, build: Any, shape: tuple[int, ...]) -> None:
    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec(shape=shape)], opset_version=ct.target.iOS16)
    def prog(x: Any) -> Any:
        return build(mb, x)

    ct.convert(
        prog,
        convert_to="mlprogram",
        compute_precision=ct.precision.FLOAT32,
        minimum_deployment_target=ct.target.iOS16,
    ).save(str(path))


def test_mil_elementwise_and_shape_ops_match_numpy(tmp_path: Path) -> None:
    """MIL ops torch does not produce directly, against their definitions in numpy float64."""

    def build(mb: Any, x: Any) -> Any:
        pos = mb.add(x=mb.abs(x=x), y=0.5)
        a = mb.rsqrt(x=pos, epsilon=1e-3)
        b = mb.inverse(x=pos, epsilon=1e-2)
        c = mb.square(x=mb.relu6(x=mb.mul(x=x, y=4.0)))
        d = mb.elu(x=mb.clip(x=x, alpha=-0.7, beta=0.9), alpha=0.5)
        e = mb.pow(x=pos, y=mb.maximum(x=mb.minimum(x=x, y=0.3), y=-0.3))
        s = mb.add(x=mb.add(x=a, y=b), y=mb.add(x=c, y=mb.sub(x=d, y=e)))  # (2, 3, 4)
        t = mb.transpose(x=s, perm=[2, 0, 1])  # (4, 2, 3)
        r = mb.reduce_max(x=t, axes=[2], keep_dims=True)  # (4, 2, 1)
        q = mb.squeeze(x=r, axes=[2])  # (4, 2)
        m = mb.reduce_mean(x=mb.expand_dims(x=q, axes=[0]), axes=[2], keep_dims=False)  # (1, 4)
        return mb.real_div(x=m, y=mb.reduce_sum(x=mb.exp(x=x), axes=[0, 1, 2], keep_dims=False))

    path = tmp_path / "elementwise.mlpackage"
    _mil_model(path, build, (2, 3, 4))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    (got,) = edgeai.Session(path).run(None, [x])

    xd = x.astype(np.float64)
    pos = np.abs(xd) + 0.5
    a = 1 / np.sqrt(pos + 1e-3)
    b = 1 / (pos + 1e-2)
    c = np.clip(xd * 4, 0, 6) ** 2
    clipped = np.clip(xd, -0.7, 0.9)
    d = np.where(clipped > 0, clipped, 0.5 * (np.exp(clipped) - 1))
    e = pos ** np.maximum(np.minimum(xd, 0.3), -0.3)
    s = a + b + c + (d - e)
    m = s.transpose(2, 0, 1).max(axis=2).mean(axis=1)[None, :]
    np.testing.assert_allclose(got, m / np.exp(xd).sum(), rtol=1e-5)


def test_blockwise_int8_weights_match_their_definition(tmp_path: Path) -> None:
    """iOS18 int8 weights (constexpr_blockwise_shift_scale), against numpy's dequantization."""
    from coremltools.converters.mil.frontend.milproto.load import load
    from coremltools.optimize.coreml import (
        OpLinearQuantizerConfig,
        OptimizationConfig,
        linear_quantize_weights,
    )

    torch.manual_seed(4)
    model = torch.nn.Sequential(torch.nn.Linear(32, 8)).eval()
    x = torch.randn(2, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exported = torch.export.export(model, (x,)).run_decompositions({})
        mlmodel = ct.convert(
            exported,
            inputs=[ct.TensorType(name="x", shape=(2, 32), dtype=np.float32)],
            convert_to="mlprogram",
            compute_precision=ct.precision.FLOAT32,
            minimum_deployment_target=ct.target.iOS18,
        )
        config = OptimizationConfig(
            global_config=OpLinearQuantizerConfig(
                mode="linear", dtype="int8", granularity="per_block", block_size=8, weight_threshold=0
            )
        )
        quantized = linear_quantize_weights(mlmodel, config)
    path = tmp_path / "blockwise.mlpackage"
    quantized.save(str(path))
    spec = ct.utils.load_spec(str(path))
    program = load(spec, spec.specificationVersion, file_weights_dir=str(path / "Data/com.apple.CoreML/weights"))
    (op,) = [o for o in program.functions["main"].operations if o.op_type == "constexpr_blockwise_shift_scale"]
    data = op.inputs["data"].val.astype(np.float64)
    scale = op.inputs["scale"].val.astype(np.float64)
    offset = op.inputs["offset"].val.astype(np.float64) if "offset" in op.inputs else np.zeros_like(scale)
    assert data.shape == (8, 32) and scale.shape == (8, 4)  # 4 blocks of 8 along the input axis
    weight = (data - np.repeat(offset, 8, axis=1)) * np.repeat(scale, 8, axis=1)

    out = edgeai.Session(path).run({"x": x.numpy()})
    (got,) = out.values()
    want = x.numpy().astype(np.float64) @ weight.T + model[0].bias.detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_macos_path_maps_devices_to_compute_units(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The macOS executable with a stand-in for coremltools' MLModel (predict needs macOS)."""
    from edgeai.backends.coreml import COMPUTE_UNITS, CoreMLExecutable
    from edgeai.hardware import Device

    rng = np.random.default_rng(3)
    path = tmp_path / "nn.mlmodel"
    _nn_model(path, rng)
    spec = ct.utils.load_spec(str(path))
    seen: list[Any] = []

    class FakeMLModel:
        def __init__(self, model_path: str, compute_units: Any) -> None:
            seen.append(compute_units)
            self._path = model_path

        def get_spec(self) -> Any:
            return spec

        def predict(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return {"probs": np.full(5, float(feeds["image"].sum()), np.float32)}

    monkeypatch.setattr(ct.models, "MLModel", FakeMLModel)
    for dev_id, (kind, units) in COMPUTE_UNITS.items():
        device = Device(dev_id, kind, "Apple", "Apple", "coreml", units)
        exe = CoreMLExecutable(path, "nn.mlmodel", device, {})
        assert seen[-1] == getattr(ct.ComputeUnit, units)
        assert [s.name for s in exe.inputs] == ["image"] and exe.inputs[0].shape == (2, 6, 6)
        x = rng.standard_normal((2, 6, 6)).astype(np.float32)
        (out,) = exe.run({"image": x})
        np.testing.assert_allclose(out, np.full(5, x.sum(), np.float32))
    assert [u.name for u in seen] == ["ALL", "CPU_AND_NE", "CPU_AND_GPU", "CPU_ONLY"]
    # an explicit compute_units option wins over the device's
    CoreMLExecutable(path, "nn.mlmodel", device, {"compute_units": "CPU_AND_NE"})
    assert seen[-1] == ct.ComputeUnit.CPU_AND_NE
