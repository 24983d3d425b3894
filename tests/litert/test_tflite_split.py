"""A .tflite model with a custom op LiteRT cannot resolve runs split: LiteRT, native, LiteRT.

Also MediaPipe's custom ops on the native engine against independent
references: loops written from MediaPipe's kernel semantics, and LiteRT's
XNNPACK delegate, which implements three of them itself (with its own
integer, column-major argmax convention, converted here).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

# the TFLite schema module (for building models) ships with ai-edge-litert
pytest.importorskip("ai_edge_litert.schema_py_generated", reason="needs ai-edge-litert (pip install 'edgeai[litert]')")

from hypothesis import given, settings
from hypothesis import strategies as st

import edgeai
from edgeai.errors import UnsupportedOpError
from edgeai.formats.tflite_format import import_tflite
from tests import tflite_builder as tb
from tests.litert.test_tflite_native_ops import run_litert, run_native

F32 = np.float32


def litert_if_resolved(model: bytes, feeds: list[np.ndarray]) -> list[np.ndarray] | None:
    """The model on LiteRT with its default delegate, or None when this runtime does not resolve its
    custom op (ai-edge-litert's XNNPACK implements three MediaPipe ops; tflite-runtime 2.14 none)."""
    try:
        return run_litert(model, feeds, reference=False)
    except RuntimeError as exc:
        if "unresolved custom op" in str(exc):
            return None
        raise


def _q(x: np.ndarray, scale: float, zp: int) -> np.ndarray:
    """TFLite quantization in float64: round half away from zero, saturate to int8."""
    v = np.asarray(x, np.float64) / scale
    return np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5) + zp, -128, 127)


def landmarks_reference(graph: Any, x: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The landmark head of ``tb.landmarks_model_with_custom_op`` in float64 (int8 rounding at the same points)."""
    init = graph.initializers
    xq = _q(x, 1 / 64, 0)
    acc = xq @ init["fc1_w"].astype(np.float64).T + init["fc1_b"]
    h = (_q(acc * (1 / 64) * 0.01, 0.02, 3) - 3) * 0.02
    lm = h.reshape(1, 5, 3).copy()
    mm = m.astype(np.float64).reshape(4, 4)
    out = lm.copy()
    out[..., 0] = mm[0, 0] * lm[..., 0] + mm[0, 1] * lm[..., 1] + mm[0, 3]
    out[..., 1] = mm[1, 0] * lm[..., 0] + mm[1, 1] * lm[..., 1] + mm[1, 3]
    fq = _q(out.reshape(1, 15), 0.05, -2)
    acc2 = (fq + 2) @ init["fc2_w"].astype(np.float64).T + init["fc2_b"]
    y = _q(acc2 * 0.05 * 0.004, 0.05, 0) * 0.05
    return y, out


def _matrix(rng: np.random.Generator) -> np.ndarray:
    a = rng.uniform(-np.pi, np.pi)
    m = np.eye(4, dtype=F32)
    m[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    m[:2, 3] = rng.uniform(-1, 1, 2)
    return m[None]


def test_custom_op_in_the_middle_runs_litert_native_litert(tmp_path: Path) -> None:
    path = tmp_path / "landmarks.tflite"
    path.write_bytes(tb.landmarks_model_with_custom_op())
    with pytest.raises(Exception, match="TransformLandmarks"):
        edgeai.Session(path, device="litert:cpu")  # one device asked for: no split
    sess = edgeai.Session(path)
    parts = sess.placement.partitions
    assert [p.backend for p in parts] == ["litert", "native", "litert"]
    assert parts[1].nodes == ["4_TransformLandmarks"]
    graph = import_tflite(path)
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = rng.uniform(-1.5, 1.5, (1, 16)).astype(F32)
        m = _matrix(rng)
        out = sess.run({"x": x, "matrix": m})
        y_ref, lm_ref = landmarks_reference(graph, x, m)
        # landmarks: within one int8 step of h (scale 0.02) carried through the rotation
        np.testing.assert_allclose(out["landmarks"], lm_ref, atol=0.02 * np.sqrt(2) + 1e-5)
        assert np.abs(out["y"] - y_ref).max() <= 0.05 + 1e-6  # within one int8 step of y (scale 0.05)


def test_unknown_custom_op_is_named_with_the_split_path(tmp_path: Path) -> None:
    path = tmp_path / "unknown.tflite"
    path.write_bytes(tb.landmarks_model_with_custom_op("EdgeAINoSuchOp"))
    with pytest.raises(UnsupportedOpError, match="EdgeAINoSuchOp") as info:
        edgeai.Session(path)
    assert info.value.domain == "tflite.custom"


def _max_pool_argmax_loops(x: np.ndarray, f: int, s: int, same: bool) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's MaxPoolingWithArgmax2D, loop by loop."""
    n, h, w, c = x.shape
    oh, ow = ((h + s - 1) // s, (w + s - 1) // s) if same else ((h - f + s) // s, (w - f + s) // s)
    ph, pw = max(((oh - 1) * s + f - h) // 2, 0), max(((ow - 1) * s + f - w) // 2, 0)
    y = np.zeros((n, oh, ow, c), F32)
    idx = np.zeros((n, oh, ow, c), F32)
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                for ch in range(c):
                    best, arg = -np.inf, 0
                    for dy in range(f):
                        for dx in range(f):
                            yy, xx = i * s - ph + dy, j * s - pw + dx
                            if 0 <= yy < h and 0 <= xx < w and x[b, yy, xx, ch] > best:
                                best, arg = x[b, yy, xx, ch], dy * f + dx
                    y[b, i, j, ch], idx[b, i, j, ch] = best, F32(arg) + F32(0.1)
    return y, idx


@settings(max_examples=15, deadline=None)
@given(size=st.integers(3, 9), f=st.integers(1, 3), s=st.integers(1, 3), same=st.booleans(), seed=st.integers(0, 999))
def test_max_pooling_with_argmax(size: int, f: int, s: int, same: bool, seed: int) -> None:
    if not same and size < f:
        return
    x = np.random.default_rng(seed).standard_normal((2, size, size + 1, 3)).astype(F32)
    y_ref, i_ref = _max_pool_argmax_loops(x, f, s, same)
    model = tb.single_op(
        "CUSTOM",
        [{"name": "x", "shape": list(x.shape), "dtype": F32}],
        [{"name": n, "shape": list(y_ref.shape), "dtype": F32} for n in ("y", "argmax")],
        custom="MaxPoolingWithArgmax2D",
        custom_options=tb.pool_params("SAME" if same else "VALID", s, f),
    )
    y, idx = run_native(model, [x])
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(idx, i_ref)
    if f == s:  # XNNPACK implements the op for filter == stride: the pooled values must agree
        xnn = litert_if_resolved(model, [x])
        if xnn is not None:
            np.testing.assert_array_equal(xnn[0], y)


def test_max_unpooling() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 4, 5, 2)).astype(F32)
    k = rng.integers(0, 4, x.shape)
    model = tb.single_op(
        "CUSTOM",
        [{"name": "x", "shape": [1, 4, 5, 2], "dtype": F32}, {"name": "i", "shape": [1, 4, 5, 2], "dtype": F32}],
        [{"name": "y", "shape": [1, 8, 10, 2], "dtype": F32}],
        custom="MaxUnpooling2D",
        custom_options=tb.pool_params("VALID", 2, 2),
    )
    ours = run_native(model, [x, k.astype(F32) + F32(0.1)])[0]
    want = np.zeros((1, 8, 10, 2), F32)
    for i in range(4):
        for j in range(5):
            for c in range(2):
                want[0, 2 * i + k[0, i, j, c] // 2, 2 * j + k[0, i, j, c] % 2, c] = x[0, i, j, c]
    np.testing.assert_array_equal(ours, want)
    # XNNPACK's own kernel, where present: uint32 indices, column-major inside the 2x2 window
    xnn = litert_if_resolved(model, [x, ((k % 2) * 2 + k // 2).astype(np.uint32).view(F32)])
    if xnn is not None:
        np.testing.assert_array_equal(ours, xnn[0])


@pytest.mark.parametrize(("padding", "stride", "k"), [("SAME", 2, 3), ("VALID", 2, 3), ("SAME", 2, 4), ("SAME", 1, 3)])
def test_convolution_2d_transpose_bias(padding: str, stride: int, k: int) -> None:
    rng = np.random.default_rng(stride * 10 + k)
    h, w_in, c, o = 5, 4, 3, 4
    x = rng.standard_normal((2, h, w_in, c)).astype(F32)
    wt = rng.standard_normal((o, k, k, c)).astype(F32)
    bias = rng.standard_normal(o).astype(F32)
    pads = [max(0, k - (d - 1) % stride - 1) if padding == "SAME" else 0 for d in (h, w_in)]
    oh, ow = stride * (h - 1) + k - pads[0], stride * (w_in - 1) + k - pads[1]
    # float64 reference: scatter every input pixel through the kernel, then crop
    full = np.zeros((2, stride * (h - 1) + k, stride * (w_in - 1) + k, o))
    for i in range(h):
        for j in range(w_in):
            full[:, i * stride : i * stride + k, j * stride : j * stride + k, :] += np.einsum(
                "nc,okwc->nkwo", x[:, i, j, :].astype(np.float64), wt.astype(np.float64)
            )
    ref = full[:, pads[0] // 2 : pads[0] // 2 + oh, pads[1] // 2 : pads[1] // 2 + ow, :] + bias
    model = tb.single_op(
        "CUSTOM",
        [
            {"name": "x", "shape": list(x.shape), "dtype": F32},
            {"name": "w", "shape": list(wt.shape), "dtype": F32, "data": wt},
            {"name": "b", "shape": [o], "dtype": F32, "data": bias},
        ],
        [{"name": "y", "shape": [2, oh, ow, o], "dtype": F32}],
        custom="Convolution2DTransposeBias",
        custom_options=np.array([{"SAME": 1, "VALID": 2}[padding], stride, stride], "<i4").tobytes(),
    )
    ours = run_native(model, [x])[0]
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)
    xnn = litert_if_resolved(model, [x])
    if xnn is not None:
        np.testing.assert_allclose(xnn[0], ours, rtol=1e-5, atol=1e-5)


def test_transform_landmarks_versions() -> None:
    from flatbuffers import flexbuffers

    rng = np.random.default_rng(2)
    m = _matrix(rng)
    mm = m[0].astype(np.float64)
    pts = rng.standard_normal((1, 6, 3)).astype(F32)
    model = tb.single_op(
        "CUSTOM",
        [{"name": "p", "shape": [1, 6, 3], "dtype": F32}, {"name": "m", "shape": [1, 4, 4], "dtype": F32}],
        [{"name": "y", "shape": [1, 6, 3], "dtype": F32}],
        custom="TransformLandmarks",
    )
    got = run_native(model, [pts, m])[0]
    np.testing.assert_allclose(got[..., 0], mm[0, 0] * pts[..., 0] + mm[0, 1] * pts[..., 1] + mm[0, 3], atol=1e-6)
    np.testing.assert_allclose(got[..., 1], mm[1, 0] * pts[..., 0] + mm[1, 1] * pts[..., 1] + mm[1, 3], atol=1e-6)
    np.testing.assert_array_equal(got[..., 2], pts[..., 2])
    # version 1: 4-D landmarks, 2 dimensions each, translation scaled by "scale"
    pts4 = rng.standard_normal((1, 1, 3, 4)).astype(F32)
    opts = bytes(flexbuffers.Dumps({"dimensions": 2, "scale": 3.0}))
    model = tb.single_op(
        "CUSTOM",
        [{"name": "p", "shape": [1, 1, 3, 4], "dtype": F32}, {"name": "m", "shape": [1, 1, 4, 4], "dtype": F32}],
        [{"name": "y", "shape": [1, 1, 3, 4], "dtype": F32}],
        custom="TransformLandmarks",
        custom_options=opts,
    )
    got = run_native(model, [pts4, m[None]])[0].reshape(-1, 2)
    p2 = pts4.reshape(-1, 2).astype(np.float64)
    np.testing.assert_allclose(got[:, 0], mm[0, 0] * p2[:, 0] + mm[0, 1] * p2[:, 1] + 3 * mm[0, 3], atol=1e-5)
    np.testing.assert_allclose(got[:, 1], mm[1, 0] * p2[:, 0] + mm[1, 1] * p2[:, 1] + 3 * mm[1, 3], atol=1e-5)


def test_bad_custom_options_are_reported() -> None:
    from edgeai.errors import InferenceError, ModelFormatError

    model = tb.single_op(
        "CUSTOM",
        [{"name": "x", "shape": [1, 4, 4, 1], "dtype": F32}],
        [{"name": n, "shape": [1, 2, 2, 1], "dtype": F32} for n in ("y", "i")],
        custom="MaxPoolingWithArgmax2D",
        custom_options=b"\x01\x00",
    )
    # the executor wraps build-time errors other than UnsupportedOpError in InferenceError
    with pytest.raises((ModelFormatError, InferenceError), match="TfLitePoolParams"):
        run_native(model, [np.zeros((1, 4, 4, 1), F32)])


@settings(max_examples=20, deadline=None)
@given(
    angle=st.floats(-3.0, 3.0), cx=st.floats(-50, 50), cy=st.floats(-50, 50), w=st.floats(5, 80),
    h=st.floats(5, 80), scale=st.floats(0.5, 2.0),
)  # fmt: skip
def test_landmarks_to_transform_matrix_maps_the_crop_onto_the_rotated_box(
    angle: float, cx: float, cy: float, w: float, h: float, scale: float
) -> None:
    """Landmarks on a rectangle rotated by ``angle``: the matrix maps the output crop's centre to the
    rectangle's centre, and its axes to the rectangle's sides (times ``scale``)."""
    from flatbuffers import flexbuffers

    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    corners = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]]) @ rot.T + [cx, cy]
    pts = np.concatenate([corners, np.zeros((4, 1))], axis=1).astype(F32)[None]
    opts = {"subset_idxs": [0, 1, 2, 3], "left_rotation_idx": 0, "right_rotation_idx": 1,
            "target_rotation_radians": 0.0, "output_height": 64, "output_width": 32,
            "scale_x": scale, "scale_y": scale}  # fmt: skip
    model = tb.single_op(
        "CUSTOM",
        [{"name": "p", "shape": [1, 4, 3], "dtype": F32}],
        [{"name": "m", "shape": [1, 4, 4], "dtype": F32}],
        custom="Landmarks2TransformMatrix",
        custom_options=bytes(flexbuffers.Dumps(opts)),
    )
    t = run_native(model, [pts])[0][0].astype(np.float64)
    np.testing.assert_allclose(t @ [16, 32, 0, 1], [cx, cy, 0, 1], atol=1e-3)
    np.testing.assert_allclose(t[:2, :2], rot @ np.diag([scale * w / 32, scale * h / 64]), atol=1e-4)
    np.testing.assert_allclose(t[2:], [[0, 0, 1, 0], [0, 0, 0, 1]])


def test_litert_capability_per_node() -> None:
    from edgeai.backends import get_backend
    from edgeai.graph import Node
    from edgeai.placement.capability import Capability

    graph = import_tflite(tb.landmarks_model_with_custom_op())
    device = get_backend("litert").devices()[0]
    cap = Capability(graph)
    by_type = {n.op_type: n for n in graph.nodes}
    assert cap.supports(by_type["FULLY_CONNECTED"], device)
    refusal = cap.supports(by_type["TransformLandmarks"], device)
    assert not refusal and "TransformLandmarks" in refusal.reason
    assert not cap.supports(Node("r", "Relu", inputs=("x",), outputs=("y",)), device)
    # ai-edge-litert's XNNPACK implements MediaPipe's MaxPoolingWithArgmax2D: LiteRT keeps it there
    data = tb.int8_model_with_custom_op()
    pooled = import_tflite(data)
    custom = next(n for n in pooled.nodes if n.domain == "tflite.custom")
    x = np.zeros((1, 8, 8, 3), F32)
    assert bool(Capability(pooled).supports(custom, device)) == (litert_if_resolved(data, [x]) is not None)


@settings(max_examples=20, deadline=None)
@given(
    sx=st.floats(0.3, 2.0), sy=st.floats(0.3, 2.0), angle=st.floats(-0.5, 0.5), tx=st.floats(-3, 3),
    ty=st.floats(-3, 3),
)  # fmt: skip
def test_transform_tensor_bilinear_is_exact_on_linear_images(sx: float, sy: float, angle: float, tx: float,
                                                             ty: float) -> None:  # fmt: skip
    """Bilinear sampling reproduces a linear image exactly: every in-bounds output pixel is the ramp's
    value at the (half-pixel corrected) matrix image of that pixel; samples outside are 0."""
    h, w, oh, ow = 9, 11, 7, 6
    yy, xx = np.mgrid[0:h, 0:w]
    ramp = np.stack([0.5 * xx + 0.25 * yy + 1, -0.75 * xx + 2 * yy], axis=-1).astype(F32)[None]
    m = np.eye(4, dtype=F32)
    m[:2, :2] = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) @ np.diag([sx, sy])
    m[:2, 3] = [tx, ty]
    model = tb.single_op(
        "CUSTOM",
        [{"name": "x", "shape": [1, h, w, 2], "dtype": F32}, {"name": "m", "shape": [1, 4, 4], "dtype": F32}],
        [{"name": "y", "shape": [1, oh, ow, 2], "dtype": F32}],
        custom="TransformTensorBilinear",
    )
    got = run_native(model, [ramp, m[None]])[0][0].astype(np.float64)
    mm = m.astype(np.float64)
    oy, ox = np.mgrid[0:oh, 0:ow].astype(np.float64)
    px = mm[0, 0] * (ox + 0.5) + mm[0, 1] * (oy + 0.5) + mm[0, 3] - 0.5
    py = mm[1, 0] * (ox + 0.5) + mm[1, 1] * (oy + 0.5) + mm[1, 3] - 0.5
    want = np.stack([0.5 * px + 0.25 * py + 1, -0.75 * px + 2 * py], axis=-1)
    inside = (px >= 1e-4) & (px <= w - 1 - 1e-4) & (py >= 1e-4) & (py <= h - 1 - 1e-4)
    outside = (px < -1e-4) | (px > w - 1 + 1e-4) | (py < -1e-4) | (py > h - 1 + 1e-4)
    np.testing.assert_allclose(got[inside], want[inside], atol=1e-3)
    assert not got[outside].any()


@settings(max_examples=25, deadline=None)
@given(
    angle=st.floats(-1.2, 1.2), cx=st.floats(80, 170), cy=st.floats(80, 170), w=st.floats(20, 90),
    h=st.floats(20, 90), mult=st.floats(0.8, 2.0), in_hw=st.sampled_from([(192, 256), (128, 128)]),
    out_hw=st.sampled_from([(64, 48), (32, 32)]),
)  # fmt: skip
def test_landmarks_to_transform_matrix_v1_maps_the_crop_onto_the_rotated_box(
    angle: float, cx: float, cy: float, w: float, h: float, mult: float, in_hw: tuple[int, int],
    out_hw: tuple[int, int],
) -> None:  # fmt: skip
    """Version 1 (options with ``subset``, landmarks ``[1, 1, 1, 3N]`` in ``[0, landmarks_range]``):
    the output crop's centre maps to the box centre in input pixels, and its axes to the box's sides
    (times ``bbox_size_multiplier``), in float64 geometry independent of the kernel's formula."""
    from flatbuffers import flexbuffers

    rng_ = 256
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    corners = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]]) @ rot.T + [cx, cy]
    pts = np.concatenate([corners, np.full((4, 1), 7.0)], axis=1).astype(F32).reshape(1, 1, 1, 12)
    opts = {"subset": [0, 1, 2, 3], "left_rotation_idx": 0, "right_rotation_idx": 1, "input_hw": list(in_hw),
            "output_hw": list(out_hw), "dimensions": 3, "landmarks_range": rng_, "bbox_size_multiplier": mult}  # fmt: skip
    model = tb.single_op(
        "CUSTOM",
        [{"name": "p", "shape": [1, 1, 1, 12], "dtype": F32}],
        [{"name": "m", "shape": [1, 4, 4], "dtype": F32}],
        custom="Landmarks2TransformMatrix",
        custom_options=bytes(flexbuffers.Dumps(opts)),
    )
    t = run_native(model, [pts])[0][0].astype(np.float64)
    (in_h, in_w), (out_h, out_w) = in_hw, out_hw
    centre = t @ [(out_w - 1) / 2, (out_h - 1) / 2, 0, 1]
    np.testing.assert_allclose(centre[:2], [cx / rng_ * (in_w - 1), cy / rng_ * (in_h - 1)], rtol=1e-4, atol=1e-3)
    axes = np.diag([(in_w - 1) / 2, (in_h - 1) / 2]) @ rot @ np.diag([w * mult / rng_, h * mult / rng_])
    axes = axes @ np.diag([2 / (out_w - 1), 2 / (out_h - 1)])
    np.testing.assert_allclose(t[:2, :2], axes, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(t[:2, 2], [0, 0])
    np.testing.assert_allclose(t[2:], [[0, 0, 1, 0], [0, 0, 0, 1]], atol=1e-6)


def test_landmarks_to_transform_matrix_v1_rejects_bad_options() -> None:
    from flatbuffers import flexbuffers

    opts = {"subset": [0, 1], "left_rotation_idx": 0, "right_rotation_idx": 1, "input_hw": [8, 8],
            "output_hw": [4, 4], "dimensions": 2, "landmarks_range": 8, "bbox_size_multiplier": 1.0}  # fmt: skip
    model = tb.single_op(
        "CUSTOM",
        [{"name": "p", "shape": [1, 1, 1, 6], "dtype": F32}],
        [{"name": "m", "shape": [1, 4, 4], "dtype": F32}],
        custom="Landmarks2TransformMatrix",
        custom_options=bytes(flexbuffers.Dumps(opts)),
    )
    with pytest.raises(edgeai.errors.ModelError, match="dimensions must be 3"):
        run_native(model, [np.zeros((1, 1, 1, 6), F32)])


@settings(max_examples=20, deadline=None)
@given(
    sx=st.floats(0.3, 2.0), sy=st.floats(0.3, 2.0), angle=st.floats(-0.5, 0.5), tx=st.floats(0, 3),
    ty=st.floats(0, 3),
)  # fmt: skip
def test_transform_tensor_v1_samples_without_half_pixel_correction(
    sx: float, sy: float, angle: float, tx: float, ty: float
) -> None:
    """MediaPipe's version 1 (custom op ``TransformTensor``): the output pixel (x, y) samples the input at
    exactly ``M @ (x, y, 0, 1)``; bilinear sampling reproduces a linear image there; outside is 0."""
    h, w, oh, ow = 9, 11, 7, 6
    yy, xx = np.mgrid[0:h, 0:w]
    ramp = np.stack([0.5 * xx + 0.25 * yy + 1, -0.75 * xx + 2 * yy], axis=-1).astype(F32)[None]
    m = np.eye(4, dtype=F32)
    m[:2, :2] = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) @ np.diag([sx, sy])
    m[:2, 3] = [tx, ty]
    model = tb.single_op(
        "CUSTOM",
        [{"name": "x", "shape": [1, h, w, 2], "dtype": F32}, {"name": "m", "shape": [1, 4, 4], "dtype": F32}],
        [{"name": "y", "shape": [1, oh, ow, 2], "dtype": F32}],
        custom="TransformTensor",
    )
    got = run_native(model, [ramp, m[None]])[0][0].astype(np.float64)
    mm = m.astype(np.float64)
    oy, ox = np.mgrid[0:oh, 0:ow].astype(np.float64)
    px = mm[0, 0] * ox + mm[0, 1] * oy + mm[0, 3]
    py = mm[1, 0] * ox + mm[1, 1] * oy + mm[1, 3]
    want = np.stack([0.5 * px + 0.25 * py + 1, -0.75 * px + 2 * py], axis=-1)
    inside = (px >= 1e-4) & (px <= w - 1 - 1e-4) & (py >= 1e-4) & (py <= h - 1 - 1e-4)
    outside = (px < -1e-4) | (px > w - 1 + 1e-4) | (py < -1e-4) | (py > h - 1 + 1e-4)
    assert inside.any()
    np.testing.assert_allclose(got[inside], want[inside], atol=1e-3)
    assert not got[outside].any()


def _int8_io_landmarks_model() -> bytes:
    """int8 x [1, 5, 3] (scale 0.1, zp 3) -> DEQUANTIZE -> TransformLandmarks (v2, with a float matrix)
    -> QUANTIZE -> int8 y [1, 5, 3] (scale 0.05, zp -10): quantized I/O around a custom op."""
    b = tb.TFLiteBuilder()
    x = b.tensor("x", [1, 5, 3], np.int8, scale=0.1, zero_point=3)
    matrix = b.tensor("matrix", [1, 4, 4], F32)
    xf = b.tensor("x_f", [1, 5, 3], F32)
    b.op("DEQUANTIZE", [x], [xf])
    lm = b.tensor("lm", [1, 5, 3], F32)
    b.op("CUSTOM", [xf, matrix], [lm], custom="TransformLandmarks")
    b.model.operatorCodes[b._codes[(b.s.BuiltinOperator.CUSTOM, "TransformLandmarks")]].version = 2
    y = b.tensor("y", [1, 5, 3], np.int8, scale=0.05, zero_point=-10)
    b.op("QUANTIZE", [lm], [y])
    b.io([x, matrix], [y])
    return b.build()


def test_quantize_io_on_a_split_model(tmp_path: Path) -> None:
    """``quantize_io=True`` on a model LiteRT cannot load whole: float feeds are quantized with TFLite's
    formula (round half away from zero), the split model runs in int8, and the int8 output comes back
    as ``scale * (q - zp)``, equal to doing those steps by hand around the integer session."""
    path = tmp_path / "int8_io.tflite"
    path.write_bytes(_int8_io_landmarks_model())
    raw = edgeai.Session(path)
    floats = edgeai.Session(path, quantize_io=True)
    assert [p.backend for p in floats.placement.partitions] == ["litert", "native", "litert"]
    assert floats.inputs[0].dtype == np.float32 and floats.outputs[0].dtype == np.float32
    assert raw.inputs[0].dtype == np.int8
    rng = np.random.default_rng(3)
    for _ in range(10):
        x = rng.uniform(-13, 13, (1, 5, 3)).astype(F32)
        x[0, 0, :2] = [0.05, -0.25]  # halves after the float32 division: TFLite rounds them away from zero
        m = _matrix(rng)
        scaled = (x / np.float32(0.1)).astype(np.float64)  # TFLite divides in float32, then std::round
        q = np.clip(np.sign(scaled) * np.floor(np.abs(scaled) + 0.5) + 3, -128, 127).astype(np.int8)
        want = (raw.run({"x": q, "matrix": m})["y"].astype(np.float64) + 10) * np.float32(0.05)
        got = floats.run({"x": x, "matrix": m})["y"]
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want.astype(F32), rtol=0, atol=0)
