"""Calibration data: check feeds against the model and hand them to the calibrator.

Calibration takes any iterable of feeds (a dict of input name to array, a list
of arrays in input order, or one array for a one-input model). Every feed is
checked against the model's input specs before calibration starts, so a bad
sample fails fast with the sample's index and what was expected.

Example:
    >>> import numpy as np, edgeai
    >>> from edgeai.optimize.calibrate import CalibrationSet
    >>> images, _ = edgeai.demo.samples()
    >>> calib = CalibrationSet.from_feeds(edgeai.demo.model_path(), [img[None] for img in images])
    >>> len(calib), calib.input_names
    (32, ['image'])
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeai.errors import InputError, InputNameError
from edgeai.optimize._errors import CalibrationError

__all__ = [
    "CALIBRATION_METHODS",
    "CalibrationSet",
    "collect_ranges",
    "entropy_threshold",
    "progress_bar",
    "quiet_ort_quantization_logs",
]

CALIBRATION_METHODS = ("minmax", "percentile", "entropy")


@dataclass
class CalibrationSet:
    """Checked calibration feeds for one model (a list of ``{input name: array}``)."""

    feeds: list[dict[str, np.ndarray]]
    input_names: list[str]

    def __len__(self) -> int:
        return len(self.feeds)

    @classmethod
    def from_feeds(cls, model: Any, data: Iterable[Any]) -> CalibrationSet:
        """Check every feed of ``data`` against ``model``'s inputs (raises on the first bad one)."""
        from edgeai.formats.onnx_format import io_specs
        from edgeai.optimize._model import as_proto

        if data is None:
            raise CalibrationError(
                "static quantization needs calibration data: pass an iterable of feeds "
                "(dicts of input name to array) drawn from the training set"
            )
        if isinstance(data, (np.ndarray, Mapping)):
            raise CalibrationError(
                "calibration data must be an iterable of feeds (one dict or array per sample), "
                f"not a single {type(data).__name__}; wrap a batch as [batch] or split it per sample"
            )
        proto = as_proto(model)
        inputs, _ = io_specs(proto)
        names = [s.name for s in inputs]
        checker = _FeedChecker(inputs)
        feeds: list[dict[str, np.ndarray]] = []
        for index, item in enumerate(data):
            try:
                feeds.append(checker.check(item))
            except InputError as exc:
                raise type(exc)(f"calibration sample {index} does not match the model: {exc}") from exc
        if not feeds:
            raise CalibrationError(
                "the calibration data is empty: pass at least one feed (ideally 100 or more "
                "samples from the training set) so that activation ranges can be measured"
            )
        return cls(feeds, names)

    def head(self, n: int) -> list[dict[str, np.ndarray]]:
        return self.feeds[:n]


class _FeedChecker:
    """The same checks ``edgeai.Session.validate`` makes, without building a runtime session."""

    def __init__(self, specs: list[Any]) -> None:
        self.specs = specs
        self.names = [s.name for s in specs]

    def check(self, item: Any) -> dict[str, np.ndarray]:
        from edgeai.errors import InputShapeError, InputTypeError

        if isinstance(item, Mapping):
            feed = dict(item)
        elif isinstance(item, (list, tuple)) and len(self.names) > 1:
            if len(item) != len(self.names):
                raise InputNameError(f"got {len(item)} arrays but the model has inputs {self.names}")
            feed = dict(zip(self.names, item))
        elif len(self.names) == 1:
            feed = {self.names[0]: item}
        else:
            raise InputNameError(f"a single array was given but the model has inputs {self.names}; pass a dict")
        unknown = sorted(set(feed) - set(self.names))
        missing = [n for n in self.names if n not in feed]
        if unknown or missing:
            raise InputNameError(
                f"unknown input(s) {unknown} / missing input(s) {missing}; "
                f"the model's inputs are: {'; '.join(map(str, self.specs))}"
            )
        out: dict[str, np.ndarray] = {}
        for spec in self.specs:
            value = feed[spec.name]
            if not isinstance(value, np.ndarray):
                try:
                    value = np.asarray(value, dtype=spec.dtype)
                except (TypeError, ValueError) as exc:
                    raise InputTypeError(f"input {spec.name!r} cannot be converted to {spec}: {exc}") from exc
            if value.dtype != spec.dtype:
                raise InputTypeError(
                    f"input {spec.name!r} expects dtype {spec.dtype} ({spec}), got {value.dtype}; "
                    f"convert it with .astype(np.{spec.dtype})"
                )
            if spec.shape is not None and (value.ndim != len(spec.shape) or not spec.matches_shape(value.shape)):
                raise InputShapeError(f"input {spec.name!r} expects {spec}, got shape {value.shape}")
            out[spec.name] = value
        return out


@contextlib.contextmanager
def progress_bar(total: int, description: str, enabled: bool = True) -> Iterator[Any]:
    """A rich progress bar (``advance()`` per step), or a no-op when disabled."""
    if not enabled:
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
        console=Console(stderr=True),
    ) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n=1: progress.advance(task, n)


class _OrtQuantizationLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        path = record.pathname.replace("\\", "/")
        return record.levelno >= logging.ERROR or "onnxruntime/quantization" not in path


@contextlib.contextmanager
def quiet_ort_quantization_logs() -> Iterator[None]:
    """Drop onnxruntime.quantization's advisory warnings and prints.

    It logs to the root logger and prints calibration chatter to stdout, which
    would corrupt a command's JSON output; edgeai reports what matters itself.
    """
    root = logging.getLogger()
    flt = _OrtQuantizationLogFilter()
    root.addFilter(flt)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.removeFilter(flt)


HISTOGRAM_BINS = 2048
"""Bins of the activation histograms of the percentile and entropy calibrators (as TensorRT)."""
QUANTIZED_BINS = 128
"""Levels the entropy calibrator compares against: 8-bit magnitudes (7 bits plus sign)."""


def calibration_tensors(proto: Any) -> list[str]:
    """Float activations to calibrate: float graph inputs and every float tensor a node produces."""
    from edgeai.optimize._model import float_tensor_types

    types = float_tensor_types(proto)
    inits = {i.name for i in proto.graph.initializer}
    names = [i.name for i in proto.graph.input if i.name not in inits]
    for node in proto.graph.node:
        if node.op_type == "Constant":
            continue
        names.extend(o for o in node.output if o)
    seen: set[str] = set()
    out = []
    for name in names:
        if name not in seen and types.get(name) in (1, 10):  # float32, float16
            seen.add(name)
            out.append(name)
    return out


def collect_ranges(
    proto: Any,
    feeds: list[dict[str, np.ndarray]],
    method: str,
    *,
    percentile: float = 99.999,
    advance: Any = None,
) -> dict[str, tuple[float, float]]:
    """Activation ranges ``{tensor: (low, high)}`` measured on ``feeds`` with one calibrator.

    * ``minmax``: the smallest and largest value seen.
    * ``percentile``: the ``100 - p`` and ``p`` percentiles of the values (from a
      2048-bin histogram over the min-max range), so rare outliers are clipped.
    * ``entropy``: the clipping threshold ``t`` on ``|x|`` that minimises the KL
      divergence between the histogram clipped at ``t`` and its 128-level
      quantization (Migacz, "8-bit inference with TensorRT", 2017).

    Every range includes 0, so that zero is exactly representable. Min-max needs
    one pass over the feeds; the histogram calibrators two.
    """
    from edgeai.optimize._model import IntermediateRunner

    tensors = calibration_tensors(proto)
    runner = IntermediateRunner(proto, tensors)
    step = advance or (lambda n=1: None)
    lo = {t: np.inf for t in tensors}
    hi = {t: -np.inf for t in tensors}
    for feed in feeds:
        outs = runner.run(feed)
        for t in tensors:
            v = outs[t]
            if v.size:
                lo[t] = min(lo[t], float(np.min(v)))
                hi[t] = max(hi[t], float(np.max(v)))
        step(1)
    for t in tensors:
        if not np.isfinite(lo[t]) or not np.isfinite(hi[t]):
            lo[t] = hi[t] = 0.0
    if method == "minmax":
        return {t: (min(lo[t], 0.0), max(hi[t], 0.0)) for t in tensors}
    hists = {t: np.zeros(HISTOGRAM_BINS, np.float64) for t in tensors}
    for feed in feeds:
        outs = runner.run(feed)
        for t in tensors:
            v = outs[t].ravel()  # histogram in the tensor's own dtype: no float64 copy
            if method == "percentile":
                if hi[t] > lo[t]:
                    hists[t] += np.histogram(v, HISTOGRAM_BINS, range=(lo[t], hi[t]))[0]
            else:
                amax = max(abs(lo[t]), abs(hi[t]))
                if amax > 0:
                    hists[t] += np.histogram(np.abs(v), HISTOGRAM_BINS, range=(0.0, amax))[0]
        step(1)
    ranges: dict[str, tuple[float, float]] = {}
    for t in tensors:
        if method == "percentile":
            low, high = _percentile_range(hists[t], lo[t], hi[t], percentile)
        else:
            amax = max(abs(lo[t]), abs(hi[t]))
            threshold = entropy_threshold(hists[t], amax)
            low, high = max(lo[t], -threshold), min(hi[t], threshold)
        ranges[t] = (min(low, 0.0), max(high, 0.0))
    return ranges


def _percentile_range(hist: np.ndarray, lo: float, hi: float, percentile: float) -> tuple[float, float]:
    total = hist.sum()
    if total == 0 or hi <= lo:
        return lo, hi
    edges = np.linspace(lo, hi, len(hist) + 1)
    cdf = np.cumsum(hist) / total
    tail = (100.0 - percentile) / 100.0
    low_idx = int(np.searchsorted(cdf, tail, side="right"))
    high_idx = int(np.searchsorted(cdf, 1.0 - tail, side="left"))
    return float(edges[min(low_idx, len(hist) - 1)]), float(edges[min(high_idx + 1, len(hist))])


def _kl_at(hist: np.ndarray, i: int, levels: int) -> float:
    """KL(P || Q) for the histogram cut at ``i`` bins (see :func:`entropy_threshold`)."""
    p = hist[:i].copy()
    p[-1] += hist[i:].sum()
    nonzero = hist[:i] > 0
    # group the first i bins into `levels` groups of (nearly) equal width
    group = (np.arange(i) * levels) // i
    sums = np.bincount(group, weights=hist[:i], minlength=levels)
    counts = np.bincount(group, weights=nonzero.astype(np.float64), minlength=levels)
    q = np.where(nonzero, sums[group] / np.maximum(counts[group], 1), 0.0)
    mask = p > 0
    if np.any(mask & (q == 0)):
        # P has mass where Q has none (the clipped tail): smooth Q so KL stays finite
        q = np.where(q == 0, 1e-4 * q[q > 0].min() if np.any(q > 0) else 1e-12, q)
    p_n = p[mask] / p.sum()
    q_n = q[mask] / q.sum()
    return float(np.sum(p_n * np.log(p_n / q_n)))


def entropy_threshold(hist: np.ndarray, amax: float, levels: int = QUANTIZED_BINS, stride: int = 16) -> float:
    """The ``|x|`` clipping threshold minimising KL(P || Q) over a histogram of ``|x|`` on [0, amax].

    P is the histogram cut at ``i`` bins with the clipped mass added to its last
    bin; Q spreads each of ``levels`` groups of P's bins evenly over the group's
    non-empty bins. Candidates run from ``levels`` bins to all bins: every
    ``stride``-th first, then every bin around the best of those.

    >>> rng = np.random.default_rng(0)
    >>> x = np.abs(np.concatenate([rng.normal(0, 1, 100_000), [60.0]]))  # one outlier
    >>> h, _ = np.histogram(x, 2048, range=(0, x.max()))
    >>> entropy_threshold(h, x.max()) < 10  # clips the outlier, keeps the bulk
    True
    """
    hist = np.asarray(hist, np.float64)
    n = len(hist)
    if amax <= 0 or hist.sum() == 0 or n <= levels:
        return float(amax)
    coarse = sorted({*range(levels, n + 1, max(1, stride)), n})
    best_i = min(coarse, key=lambda i: _kl_at(hist, i, levels))
    if stride > 1:
        fine = range(max(levels, best_i - stride + 1), min(n, best_i + stride - 1) + 1)
        best_i = min(fine, key=lambda i: _kl_at(hist, i, levels))
    return float(best_i * (amax / n))


def ranges_to_ort(ranges: dict[str, tuple[float, float]], method: str) -> Any:
    """Ranges as onnxruntime.quantization ``TensorsData`` (its quantizer only reads the range)."""
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData

    ort_method = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }[method]
    return TensorsData(
        ort_method,
        {t: TensorData(lowest=np.float32(lo), highest=np.float32(hi)) for t, (lo, hi) in ranges.items()},
    )
