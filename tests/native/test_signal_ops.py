"""Native audio front-end ops and losses against independent float64 references.

DFT and STFT are checked against numpy's FFT in complex128 (frames cut by a
plain loop for STFT), the windows against ``np.hanning``/``np.blackman`` and
the Hann-Hamming identity, MelWeightMatrix against ``onnx.reference`` (the
spec's algorithm), and the losses against a float64 loop over the elements
and against torch. A log-mel spectrogram graph runs end to end through
``edgeai.Session(device="native")`` and is compared with ONNX Runtime.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import edgeai.ops.losses
import edgeai.ops.signal  # noqa: F401  (registers the ops)
from edgeai.errors import InferenceError
from edgeai.ops._base import OpContext, lookup

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def native(
    op_type: str, inputs: list[Any], *, attrs: dict[str, Any] | None = None, opset: int = 20, n_outputs: int = 1
) -> tuple[np.ndarray, ...]:
    cls = lookup(op_type, "", opset)
    assert cls is not None, f"{op_type} is not registered at opset {opset}"
    ctx = OpContext(node_name="n", op_type=op_type, opset=opset, attrs=dict(attrs or {}), num_outputs=n_outputs)
    return cls(ctx).run(*inputs)


def reference_node(
    op_type: str, inputs: list[np.ndarray | None], *, attrs: dict[str, Any], opset: int, n_outputs: int = 1
) -> list[np.ndarray]:
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    names = ["" if v is None else f"in{i}" for i, v in enumerate(inputs)]
    outs = [f"out{i}" for i in range(n_outputs)]
    feeds = {n: v for n, v in zip(names, inputs) if v is not None}
    graph = helper.make_graph(
        [helper.make_node(op_type, names, outs, **attrs)],
        "single",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape) for n, v in feeds.items()],
        [helper.make_tensor_value_info(o, 0, None) for o in outs],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return list(ReferenceEvaluator(model).run(None, feeds))


def to_complex128(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return x[..., 0] + 0j if x.shape[-1] == 1 else x[..., 0] + 1j * x[..., 1]


def assert_close_to(got: np.ndarray, want: np.ndarray, dtype: np.dtype) -> None:
    """float32 FFTs carry about eps * log2(n) * |x| of error: compare relative to the largest value."""
    assert got.dtype == dtype, (got.dtype, dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    scale = float(np.max(np.abs(want), initial=1.0))
    tol = 1e-12 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=0, atol=tol * scale * 8)


# --------------------------------------------------------------------------- DFT


@st.composite
def dft_cases(draw: st.DrawFn) -> dict[str, Any]:
    signal_shape = draw(st.lists(st.integers(1, 9), min_size=1, max_size=3))
    inverse = draw(st.booleans())
    onesided = draw(st.booleans())
    parts = 2 if inverse and onesided else 1 if onesided else draw(st.sampled_from([1, 2]))
    rank = len(signal_shape) + 1
    axis = draw(st.integers(0, rank - 2))
    n = signal_shape[axis]
    length = draw(st.one_of(st.none(), st.integers(1, 2 * n + 3)))
    if inverse and onesided and length is None and n < 2:
        length = draw(st.integers(1, 6))  # the default 2 * (n - 1) would be 0
    neg = draw(st.booleans())
    dtype = np.dtype(draw(st.sampled_from([np.float32, np.float64])))
    seed = draw(st.integers(0, 2**31 - 1))
    x = np.random.default_rng(seed).standard_normal((*signal_shape, parts)).astype(dtype)
    return {
        "x": x,
        "axis": axis - rank if neg else axis,
        "length": length,
        "inverse": inverse,
        "onesided": onesided,
        "opset": draw(st.sampled_from([17, 20])),
    }


def _numpy_dft(x: np.ndarray, axis: int, length: int | None, inverse: bool, onesided: bool) -> np.ndarray:
    signal = to_complex128(x)
    axis %= x.ndim
    n = signal.shape[axis]
    if inverse and onesided:
        real = np.fft.irfft(signal, n=length if length is not None else 2 * (n - 1), axis=axis)
        return real[..., None]
    if inverse:
        out = np.fft.ifft(signal, n=length, axis=axis)
    elif onesided:
        out = np.fft.rfft(signal.real, n=length, axis=axis)
    else:
        out = np.fft.fft(signal, n=length, axis=axis)
    return np.stack([out.real, out.imag], axis=-1)


@SETTINGS
@given(dft_cases())
def test_dft_matches_numpy_float64(case: dict[str, Any]) -> None:
    x, axis, length = case["x"], case["axis"], case["length"]
    attrs: dict[str, Any] = {"inverse": int(case["inverse"]), "onesided": int(case["onesided"])}
    dft_length = None if length is None else np.array(length, np.int64)
    if case["opset"] == 17:
        attrs["axis"] = axis
        (got,) = native("DFT", [x, dft_length], attrs=attrs, opset=17)
    else:
        (got,) = native("DFT", [x, dft_length, np.array(axis, np.int64)], attrs=attrs, opset=20)
    want = _numpy_dft(x, axis, length, case["inverse"], case["onesided"])
    assert_close_to(got, want, x.dtype)


def test_dft_default_axis_per_opset() -> None:
    """Opset 17's axis defaults to 1, opset 20's to -2: different axes of a rank-4 input."""
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 1)).astype(np.float32)
    (got17,) = native("DFT", [x], opset=17)
    (got20,) = native("DFT", [x], opset=20)
    assert_close_to(got17, _numpy_dft(x, 1, None, False, False), x.dtype)
    assert_close_to(got20, _numpy_dft(x, 2, None, False, False), x.dtype)


@SETTINGS
@given(st.integers(2, 40), st.integers(0, 2**31 - 1))
def test_rfft_then_irfft_is_identity(n: int, seed: int) -> None:
    x = np.random.default_rng(seed).standard_normal((3, n, 1))
    (spec,) = native("DFT", [x, None, np.array(1, np.int64)], attrs={"onesided": 1})
    (back,) = native("DFT", [spec, np.array(n, np.int64), np.array(1, np.int64)], attrs={"onesided": 1, "inverse": 1})
    np.testing.assert_allclose(back, x, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float16, "bfloat16"])
def test_dft_half_precision_stays_half(dtype: Any) -> None:
    import ml_dtypes

    dt = np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.dtype(dtype)
    x = np.random.default_rng(1).standard_normal((1, 8, 2)).astype(dt)
    (got,) = native("DFT", [x])
    assert got.dtype == dt
    want = _numpy_dft(x.astype(np.float64)[None], 2, None, False, False)[0]
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=0, atol=0.05 * np.abs(want).max())


def test_dft_matches_onnx_reference() -> None:
    x = np.random.default_rng(2).standard_normal((2, 6, 4, 2)).astype(np.float32)
    for attrs in ({}, {"inverse": 1}):
        (want,) = reference_node("DFT", [x, np.array(5, np.int64), np.array(2, np.int64)], attrs=attrs, opset=20)
        (got,) = native("DFT", [x, np.array(5, np.int64), np.array(2, np.int64)], attrs=attrs)
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("inputs", "attrs", "match"),
    [
        ([np.zeros((2, 4, 1), np.float32), None, np.array(2, np.int64)], {}, "signal axis"),
        ([np.zeros((2, 4, 1), np.float32), None, np.array(-1, np.int64)], {}, "signal axis"),
        ([np.zeros((2, 4, 3), np.float32)], {}, "1 \\(real\\) or 2"),
        ([np.zeros((2, 4, 2), np.float32)], {"onesided": 1}, "needs a real input"),
        ([np.zeros((2, 4, 1), np.float32)], {"onesided": 1, "inverse": 1}, "needs a complex input"),
        ([np.zeros((2, 4, 1), np.float32), np.array(0, np.int64)], {}, "dft_length"),
        ([np.zeros((2, 4, 1), np.int32)], {}, "float tensor"),
    ],
)
def test_dft_bad_input_names_the_problem(inputs: list[Any], attrs: dict[str, Any], match: str) -> None:
    with pytest.raises(InferenceError, match=match):
        native("DFT", inputs, attrs=attrs)


# --------------------------------------------------------------------------- STFT


@st.composite
def stft_cases(draw: st.DrawFn) -> dict[str, Any]:
    length = draw(st.integers(1, 64))
    frame_length = draw(st.integers(1, length))
    onesided = draw(st.booleans())
    parts = 1 if onesided else draw(st.sampled_from([1, 2]))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    dtype = np.dtype(draw(st.sampled_from([np.float32, np.float64])))
    x = rng.standard_normal((draw(st.integers(1, 3)), length, parts)).astype(dtype)
    win = rng.uniform(0, 1, frame_length).astype(dtype) if draw(st.booleans()) else None
    give_length = (win is None and frame_length != length) or draw(st.booleans())
    return {
        "x": x,
        "step": draw(st.integers(1, 9)),
        "window": win,
        "frame_length": frame_length if give_length else None,
        "L": frame_length,
        "onesided": onesided,
    }


@SETTINGS
@given(stft_cases())
def test_stft_matches_framewise_numpy(case: dict[str, Any]) -> None:
    x, step, win, L = case["x"], case["step"], case["window"], case["L"]
    flen = None if case["frame_length"] is None else np.array(case["frame_length"], np.int64)
    (got,) = native(
        "STFT", [x, np.array(step, np.int64), win, flen], attrs={"onesided": int(case["onesided"])}, opset=17
    )
    signal = to_complex128(x)
    w = np.ones(L) if win is None else win.astype(np.float64)
    frames = []
    start = 0
    while start + L <= x.shape[1]:
        frame = signal[:, start : start + L] * w
        spec = np.fft.rfft(frame.real, axis=-1) if case["onesided"] else np.fft.fft(frame, axis=-1)
        frames.append(np.stack([spec.real, spec.imag], axis=-1))
        start += step
    want = np.stack(frames, axis=1)
    assert_close_to(got, want, x.dtype)


def test_stft_matches_onnx_reference() -> None:
    x = np.random.default_rng(3).standard_normal((2, 100, 1)).astype(np.float32)
    win = np.hanning(20).astype(np.float32)
    (want,) = reference_node("STFT", [x, np.array(7, np.int64), win], attrs={}, opset=17)
    (got,) = native("STFT", [x, np.array(7, np.int64), win], opset=17)
    assert got.dtype == want.dtype and got.shape == want.shape == (2, 12, 11, 2)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(
    ("inputs", "attrs", "match"),
    [
        ([np.zeros((1, 8, 1), np.float32), np.array(2), np.ones(4, np.float32), np.array(3)], {}, "window has 4"),
        ([np.zeros((1, 8, 1), np.float32), np.array(2), None, np.array(9)], {}, "frame_length 9"),
        ([np.zeros((1, 8, 1), np.float32), np.array(0), None, np.array(4)], {}, "frame_step"),
        ([np.zeros((1, 8, 2), np.float32), np.array(2), None, np.array(4)], {}, "onesided=1 needs a real"),
        ([np.zeros((8, 1), np.float32), np.array(2)], {}, "batch, length"),
    ],
)
def test_stft_bad_input_names_the_problem(inputs: list[Any], attrs: dict[str, Any], match: str) -> None:
    with pytest.raises(InferenceError, match=match):
        native("STFT", inputs, attrs=attrs, opset=17)


# --------------------------------------------------------------------------- windows


def _numpy_window(op_type: str, size: int, periodic: bool) -> np.ndarray:
    """numpy's symmetric windows; a periodic window of N is the symmetric one of N + 1 without its end."""
    m = size + 1 if periodic else size
    hann = np.hanning(m)  # np.hanning(1) is [1.], the symmetric one-sample window
    if op_type == "HannWindow":
        w = hann
    elif op_type == "BlackmanWindow":
        w = np.blackman(m)
    else:  # ONNX's Hamming: 25/46 - 21/46 cos = (2a - 1) + 2 (1 - a) * Hann
        a = 25.0 / 46.0
        w = (2 * a - 1) + 2 * (1 - a) * hann
    return w[:size]


@pytest.mark.parametrize("op_type", ["HannWindow", "HammingWindow", "BlackmanWindow"])
@pytest.mark.parametrize("periodic", [0, 1])
@pytest.mark.parametrize("out_dtype", [np.float32, np.float64, np.float16, np.int32, np.uint8])
def test_windows_match_numpy(op_type: str, periodic: int, out_dtype: Any) -> None:
    from onnx import helper

    code = helper.np_dtype_to_tensor_dtype(np.dtype(out_dtype))
    for size in (0, 1, 2, 5, 16, 257):
        (got,) = native(
            op_type, [np.array(size, np.int64)], attrs={"periodic": periodic, "output_datatype": code}, opset=17
        )
        assert got.dtype == out_dtype and got.shape == (size,)
        want = _numpy_window(op_type, size, bool(periodic))
        if np.dtype(out_dtype).kind in "iu":
            # Cast truncates: only an exact 1.0 survives (allow a peak that rounds to 1 - eps)
            assert np.all((got == 0) | (got == 1))
            assert np.array_equal(got[np.abs(want - 1) > 1e-9], np.zeros(np.sum(np.abs(want - 1) > 1e-9), out_dtype))
        else:
            tol = 1e-3 if out_dtype == np.float16 else 1e-7 if out_dtype == np.float32 else 1e-14
            np.testing.assert_allclose(got.astype(np.float64), want, rtol=0, atol=tol)


def test_windows_match_onnx_reference() -> None:
    for op_type in ("HannWindow", "HammingWindow", "BlackmanWindow"):
        for periodic in (0, 1):
            size = np.array(31, np.int32)
            (want,) = reference_node(op_type, [size], attrs={"periodic": periodic}, opset=17)
            (got,) = native(op_type, [size], attrs={"periodic": periodic}, opset=17)
            assert got.dtype == want.dtype == np.float32
            np.testing.assert_allclose(got, want, rtol=0, atol=2e-7)


def test_window_bad_input() -> None:
    with pytest.raises(InferenceError, match="not be negative"):
        native("HannWindow", [np.array(-1, np.int64)], opset=17)
    with pytest.raises(InferenceError, match="output_datatype"):
        native("HannWindow", [np.array(4, np.int64)], attrs={"output_datatype": 8}, opset=17)  # string


# --------------------------------------------------------------------------- MelWeightMatrix


@st.composite
def mel_cases(draw: st.DrawFn) -> tuple[int, int, int, float, float]:
    rate = draw(st.sampled_from([8000, 16000, 22050, 44100]))
    dft_length = draw(st.integers(8, 1024))
    mels = draw(st.integers(1, 64))
    high = draw(st.floats(100.0, rate / 2))
    low = draw(st.floats(0.0, high * 0.9))
    return mels, dft_length, rate, low, high


@SETTINGS
@given(mel_cases())
def test_mel_weight_matrix_matches_onnx_reference(case: tuple[int, int, int, float, float]) -> None:
    mels, length, rate, low, high = case
    inputs = [np.array(v, np.int64) for v in (mels, length, rate)] + [np.array(v, np.float32) for v in (low, high)]
    (want,) = reference_node("MelWeightMatrix", inputs, attrs={}, opset=17)
    (got,) = native("MelWeightMatrix", inputs, opset=17)
    assert got.dtype == want.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-7)
    # every filter is a triangle peaking at exactly 1
    np.testing.assert_array_equal(got.max(axis=0), np.ones(mels, np.float32))
    assert got.min() >= 0


def test_mel_weight_matrix_output_dtype_and_errors() -> None:
    inputs = [np.array(v, np.int32) for v in (8, 256, 16000)] + [np.array(v, np.float32) for v in (20.0, 8000.0)]
    (got64,) = native("MelWeightMatrix", inputs, attrs={"output_datatype": 11}, opset=17)
    (got32,) = native("MelWeightMatrix", inputs, opset=17)
    assert got64.dtype == np.float64 and got32.dtype == np.float32
    np.testing.assert_array_equal(got64.astype(np.float32), got32)
    too_high = [*inputs[:4], np.array(16000.0, np.float32)]
    with pytest.raises(InferenceError, match="sample_rate / 2"):
        native("MelWeightMatrix", too_high, opset=17)
    with pytest.raises(InferenceError, match="lower_edge_hertz < upper_edge_hertz"):
        native("MelWeightMatrix", [*inputs[:3], inputs[4], inputs[3]], opset=17)


# --------------------------------------------------------------------------- losses


@st.composite
def loss_cases(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 4))
    c = draw(st.integers(1, 5))
    extra = draw(st.lists(st.integers(1, 3), max_size=3))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    dtype = np.dtype(draw(st.sampled_from([np.float32, np.float64])))
    x = rng.standard_normal((n, c, *extra)).astype(dtype)
    ignore = draw(st.one_of(st.none(), st.integers(-2, c)))
    target = rng.integers(0, c, (n, *extra))
    if ignore is not None:
        target = np.where(rng.uniform(size=target.shape) < 0.3, ignore, target)
    weight = rng.uniform(0.1, 2, c).astype(dtype) if draw(st.booleans()) else None
    return {
        "x": x,
        "target": target.astype(draw(st.sampled_from([np.int32, np.int64]))),
        "weight": weight,
        "ignore": ignore,
        "reduction": draw(st.sampled_from(["none", "sum", "mean"])),
    }


def _loop_nll(logp: np.ndarray, target: np.ndarray, weight: np.ndarray | None, ignore: int | None, red: str) -> Any:
    """Element by element in float64, as the ONNX spec writes it."""
    logp = logp.astype(np.float64)
    loss = np.zeros(target.shape)
    wsum = 0.0
    for idx in np.ndindex(*target.shape):
        t = int(target[idx])
        if ignore is not None and t == ignore:
            continue
        w = 1.0 if weight is None else float(weight[t])
        loss[idx] = -logp[(idx[0], t, *idx[1:])] * w
        wsum += w
    if red == "none":
        return loss
    if red == "sum":
        return loss.sum()
    return loss.sum() / wsum if wsum else np.nan


def _attrs(case: dict[str, Any]) -> dict[str, Any]:
    attrs: dict[str, Any] = {"reduction": case["reduction"]}
    if case["ignore"] is not None:
        attrs["ignore_index"] = case["ignore"]
    return attrs


@SETTINGS
@given(loss_cases(), st.sampled_from([12, 13, 22]))
def test_nll_loss_matches_float64_loop(case: dict[str, Any], opset: int) -> None:
    x = case["x"]
    (got,) = native("NegativeLogLikelihoodLoss", [x, case["target"], case["weight"]], attrs=_attrs(case), opset=opset)
    want = _loop_nll(x, case["target"], case["weight"], case["ignore"], case["reduction"])
    assert got.dtype == x.dtype and got.shape == np.shape(want)
    tol = 1e-5 if x.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@SETTINGS
@given(loss_cases(), st.booleans(), st.sampled_from([12, 13]))
def test_softmax_cross_entropy_matches_torch(case: dict[str, Any], with_log_prob: bool, opset: int) -> None:
    torch = pytest.importorskip("torch")
    x = case["x"]
    n_out = 2 if with_log_prob else 1
    got = native(
        "SoftmaxCrossEntropyLoss", [x, case["target"], case["weight"]], attrs=_attrs(case), opset=opset, n_outputs=n_out
    )
    assert len(got) == n_out
    xt = torch.from_numpy(x.astype(np.float64))
    log_prob = torch.log_softmax(xt, dim=1)
    target = torch.from_numpy(case["target"].astype(np.int64))
    ignore = case["ignore"]
    # torch reads every target that is not ignore_index; send the ignored ones to class 0 with weight 0 instead
    keep = target != (ignore if ignore is not None else -(10**9))
    w = (
        torch.ones(x.shape[1], dtype=torch.float64)
        if case["weight"] is None
        else torch.from_numpy(case["weight"]).double()
    )
    per = torch.nn.functional.nll_loss(log_prob, torch.where(keep, target, 0), weight=w, reduction="none") * keep
    if case["reduction"] == "none":
        want = per.numpy()
    elif case["reduction"] == "sum":
        want = per.sum().numpy()
    else:
        want = (per.sum() / (w[torch.where(keep, target, 0)] * keep).sum()).numpy()
    tol = 1e-5 if x.dtype == np.float32 else 1e-12
    assert got[0].dtype == x.dtype
    np.testing.assert_allclose(got[0], want, rtol=tol, atol=tol)
    np.testing.assert_allclose(
        got[0],
        _loop_nll(log_prob.numpy(), case["target"], case["weight"], ignore, case["reduction"]),
        rtol=tol,
        atol=tol,
    )
    if with_log_prob:
        assert got[1].dtype == x.dtype
        np.testing.assert_allclose(got[1], log_prob.numpy(), rtol=tol, atol=tol)


def test_losses_keep_float16() -> None:
    x = np.random.default_rng(4).standard_normal((3, 4, 2)).astype(np.float16)
    t = np.array([[0, 1], [2, 3], [1, 1]], np.int64)
    for op in ("NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss"):
        (got,) = native(op, [x, t], opset=13)
        assert got.dtype == np.float16
    (got,) = native("SoftmaxCrossEntropyLoss", [x, t], opset=13)
    logp = x.astype(np.float64) - np.log(np.exp(x.astype(np.float64)).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(float(got), _loop_nll(logp, t, None, None, "mean"), rtol=2e-3)


@pytest.mark.parametrize(
    ("op", "inputs", "attrs", "match"),
    [
        (
            "NegativeLogLikelihoodLoss",
            [np.zeros((2, 3), np.float32), np.array([0, 3])],
            {},
            r"target value 3 is outside \[0, 3\)",
        ),
        (
            "NegativeLogLikelihoodLoss",
            [np.zeros((2, 3), np.float32), np.array([0, -1])],
            {"ignore_index": 5},
            "not ignore_index=5",
        ),
        ("NegativeLogLikelihoodLoss", [np.zeros((2, 3), np.float32), np.array([0, 1, 2])], {}, "target has shape"),
        (
            "SoftmaxCrossEntropyLoss",
            [np.zeros((2, 3), np.float32), np.array([0, 1]), np.ones(2, np.float32)],
            {},
            "weight has shape",
        ),
        ("SoftmaxCrossEntropyLoss", [np.zeros((2,), np.float32), np.array([0, 1])], {}, r"\[N, C, \.\.\.\]"),
        ("SoftmaxCrossEntropyLoss", [np.zeros((2, 3), np.float32), np.array([0.0, 1.0])], {}, "integer"),
    ],
)
def test_loss_bad_input_names_the_problem(op: str, inputs: list[Any], attrs: dict[str, Any], match: str) -> None:
    with pytest.raises(InferenceError, match=match):
        native(op, inputs, attrs=attrs, opset=13)


def test_loss_bad_reduction_is_refused_at_build() -> None:
    with pytest.raises(InferenceError, match="reduction='avg'"):
        native("NegativeLogLikelihoodLoss", [], attrs={"reduction": "avg"}, opset=13)


# --------------------------------------------------------------------------- end to end


def _log_mel_model(n_fft: int, hop: int, mels: int, rate: int) -> Any:
    """waveform [1, samples, 1] -> log(power STFT @ mel filters + 1e-6): [1, frames, mels]."""
    from onnx import TensorProto, helper, numpy_helper

    consts = {
        "n_fft": np.array(n_fft, np.int64),
        "hop": np.array(hop, np.int64),
        "mels": np.array(mels, np.int64),
        "rate": np.array(rate, np.int64),
        "lo": np.array(0.0, np.float32),
        "hi": np.array(rate / 2, np.float32),
        "last": np.array([-1], np.int64),
        "eps": np.array(1e-6, np.float32),
    }
    nodes = [
        helper.make_node("HannWindow", ["n_fft"], ["win"]),
        helper.make_node("STFT", ["wave", "hop", "win"], ["spec"]),
        helper.make_node("ReduceSumSquare", ["spec", "last"], ["power"], keepdims=0),
        helper.make_node("MelWeightMatrix", ["mels", "n_fft", "rate", "lo", "hi"], ["fbank"]),
        helper.make_node("MatMul", ["power", "fbank"], ["mel"]),
        helper.make_node("Add", ["mel", "eps"], ["mel_eps"]),
        helper.make_node("Log", ["mel_eps"], ["logmel"]),
    ]
    graph = helper.make_graph(
        nodes,
        "logmel",
        [helper.make_tensor_value_info("wave", TensorProto.FLOAT, [1, None, 1])],
        [helper.make_tensor_value_info("logmel", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in consts.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return model


def test_log_mel_spectrogram_end_to_end_matches_onnxruntime_and_numpy() -> None:
    import onnxruntime as ort

    import edgeai

    n_fft, hop, mels, rate = 64, 16, 10, 8000
    model = _log_mel_model(n_fft, hop, mels, rate)
    t = np.arange(1024) / rate
    wave = (np.sin(2 * np.pi * 440 * t) + 0.1 * np.random.default_rng(5).standard_normal(t.size)).astype(np.float32)
    feeds = {"wave": wave.reshape(1, -1, 1)}
    with edgeai.Session(model, device="native") as sess:
        (got,) = sess.run(None, feeds)
    (want_ort,) = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    assert got.dtype == np.float32 and got.shape == want_ort.shape == (1, (1024 - n_fft) // hop + 1, mels)
    np.testing.assert_allclose(got, want_ort, rtol=1e-4, atol=1e-4)
    # and an all-numpy float64 pipeline: periodic Hann, framewise rfft, the ONNX filter bank
    win = np.hanning(n_fft + 1)[:-1]
    frames = np.stack([wave[s : s + n_fft] * win for s in range(0, wave.size - n_fft + 1, hop)])
    power = np.abs(np.fft.rfft(frames.astype(np.float64), axis=-1)) ** 2
    mel_inputs = [np.array(v, np.int64) for v in (mels, n_fft, rate)] + [np.array(v, np.float32) for v in (0, rate / 2)]
    fbank = reference_node("MelWeightMatrix", mel_inputs, attrs={"output_datatype": 11}, opset=17)[0]
    want = np.log(power @ fbank + 1e-6)
    np.testing.assert_allclose(got[0], want, rtol=1e-4, atol=1e-3)


def test_bad_target_through_session_names_the_node() -> None:
    from onnx import TensorProto, helper

    import edgeai

    node = helper.make_node("NegativeLogLikelihoodLoss", ["x", "t"], ["y"], name="nll0")
    graph = helper.make_graph(
        [node],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
            helper.make_tensor_value_info("t", TensorProto.INT64, [2]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    logp = np.log(np.full((2, 3), 1 / 3, np.float32))
    with edgeai.Session(model, device="native") as sess:
        (loss,) = sess.run(None, {"x": logp, "t": np.array([0, 2])})
        np.testing.assert_allclose(loss, np.log(3), rtol=1e-6)
        with pytest.raises(InferenceError, match=r"'nll0'.*target value 7 is outside \[0, 3\)"):
            sess.run(None, {"x": logp, "t": np.array([0, 7])})
