"""Evaluate a model (typically a quantized or pruned one) against labels and its float reference.

:func:`evaluate` runs the model through :class:`edgeai.Session` (any device)
and reports top-1/top-5 accuracy against labels; against a reference model
(the float original) it reports the agreement of predictions, cosine
similarity and SQNR per output, the SQNR of every intermediate activation the
two graphs share, and size and MACs of both.

Example:
    >>> import edgeai
    >>> from edgeai.optimize import evaluate, quantize
    >>> images, labels = edgeai.demo.samples()
    >>> q = quantize(edgeai.demo.model_path(), [x[None] for x in images], progress=False)
    >>> report = evaluate(q.model, images, labels, reference=edgeai.demo.model_path())
    >>> report.samples, report.agreement is not None, len(report.layers) > 0
    (32, True, True)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from edgeai.optimize._errors import OptimizationError

__all__ = ["EvaluationReport", "LayerSQNR", "OutputComparison", "evaluate", "topk_accuracy"]


class OutputComparison(BaseModel):
    """One output of the model against the same output of the reference."""

    name: str
    cosine_similarity: float
    sqnr_db: float
    max_abs_error: float


class LayerSQNR(BaseModel):
    """SQNR of one intermediate activation (float tensor of the reference vs the model's)."""

    tensor: str
    node: str
    op_type: str
    sqnr_db: float


class EvaluationReport(BaseModel):
    """What :func:`evaluate` measured. Accuracies are fractions in [0, 1]."""

    model: str
    reference: str | None = None
    device: str
    samples: int
    top1: float | None = None
    top5: float | None = None
    reference_top1: float | None = None
    reference_top5: float | None = None
    accuracy_drop: float | None = None
    """``reference_top1 - top1``: positive when the model lost accuracy."""
    agreement: float | None = None
    """Share of samples where the model's top-1 equals the reference's."""
    outputs: list[OutputComparison] = Field(default_factory=list)
    layers: list[LayerSQNR] = Field(default_factory=list)
    size_bytes: int
    reference_size_bytes: int | None = None
    macs: int
    reference_macs: int | None = None

    def summary(self) -> str:
        """A few lines for people."""
        lines = [f"{self.model} on {self.device}, {self.samples} samples"]
        if self.top1 is not None:
            line = f"top-1 {self.top1:.4f}"
            if self.top5 is not None:
                line += f", top-5 {self.top5:.4f}"
            if self.reference_top1 is not None:
                line += f" (reference top-1 {self.reference_top1:.4f}, drop {self.accuracy_drop:+.4f})"
            lines.append(line)
        if self.agreement is not None:
            lines.append(f"top-1 agreement with the reference: {self.agreement:.4f}")
        for o in self.outputs:
            lines.append(
                f"output {o.name}: cosine {o.cosine_similarity:.6f}, SQNR {o.sqnr_db:.1f} dB, "
                f"max |error| {o.max_abs_error:.3g}"
            )
        size = f"size {self.size_bytes:,} bytes"
        if self.reference_size_bytes:
            share = self.size_bytes / self.reference_size_bytes
            size += f" (reference {self.reference_size_bytes:,}, {share:.1%})"
        macs = f"MACs {self.macs:,}"
        if self.reference_macs:
            macs += f" (reference {self.reference_macs:,}, {self.macs / self.reference_macs:.1%})"
        lines += [size, macs]
        return "\n".join(lines)

    def layer_table(self) -> Any:
        """A ``rich.table.Table`` of per-layer SQNR."""
        from rich.table import Table

        table = Table(title="per-layer SQNR (reference vs model)")
        for col in ("tensor", "op", "SQNR dB"):
            table.add_column(col, justify="right" if col == "SQNR dB" else "left")
        for layer in self.layers:
            table.add_row(layer.tensor, layer.op_type, f"{layer.sqnr_db:.1f}")
        return table

    def plot_layer_sqnr(self, path: str | Path) -> Path:
        """Save a bar chart of per-layer SQNR (needs matplotlib: ``pip install matplotlib``)."""
        from edgeai._optional import import_optional

        if not self.layers:
            raise OptimizationError("no per-layer SQNR to plot: evaluate with reference=<float model>")
        matplotlib = import_optional("matplotlib", purpose="plotting per-layer SQNR")
        matplotlib.use("Agg")
        plt = import_optional("matplotlib.pyplot")
        values = [x.sqnr_db if math.isfinite(x.sqnr_db) else 100.0 for x in self.layers]
        fig, ax = plt.subplots(figsize=(max(6.0, 0.3 * len(values)), 4.0))
        ax.bar(range(len(values)), values)
        ax.set_xticks(range(len(values)), [x.node or x.tensor for x in self.layers], rotation=90, fontsize=6)
        ax.set_ylabel("SQNR (dB)")
        ax.set_title(f"per-layer SQNR: {Path(self.model).name}")
        fig.tight_layout()
        target = Path(path)
        tmp = target.with_name(f".{target.name}.tmp{target.suffix}")
        fig.savefig(tmp)
        plt.close(fig)
        tmp.replace(target)
        return target


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Share of rows whose label is among the ``k`` highest scores.

    >>> topk_accuracy(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([1, 1]), 1)
    0.5
    """
    scores = np.asarray(scores).reshape(len(scores), -1)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == np.asarray(labels).reshape(-1, 1), axis=1)))


def _batches(data: Any, names: list[str], batch_size: int) -> list[dict[str, np.ndarray]]:
    """Feeds from a batched array / dict of batched arrays, or an iterable of feeds."""
    if isinstance(data, np.ndarray):
        if len(names) != 1:
            raise OptimizationError(f"one array was given but the model has inputs {names}; pass a dict")
        data = {names[0]: data}
    if isinstance(data, Mapping):
        arrays = {k: np.asarray(v) for k, v in data.items()}
        sizes = {len(v) for v in arrays.values()}
        if len(sizes) != 1:
            raise OptimizationError(f"the evaluation arrays have different lengths: {sorted(sizes)}")
        n = sizes.pop()
        return [{k: v[i : i + batch_size] for k, v in arrays.items()} for i in range(0, n, batch_size)]
    feeds = []
    for item in data:
        if isinstance(item, Mapping):
            feeds.append(dict(item))
        elif len(names) == 1:
            feeds.append({names[0]: item})
        else:
            feeds.append(dict(zip(names, item)))
    return feeds


def _label(model: Any) -> str:
    return str(model) if isinstance(model, (str, Path)) else "<model in memory>"


def evaluate(
    model: Any,
    data: Iterable[Any] | np.ndarray | Mapping[str, np.ndarray],
    labels: np.ndarray | None = None,
    reference: Any = None,
    *,
    device: str = "cpu",
    batch_size: int = 64,
    layer_samples: int = 64,
    output: str | None = None,
) -> EvaluationReport:
    """Measure ``model`` on ``data``: accuracy, agreement and SQNR against a reference, size, MACs.

    Args:
        model: the model to evaluate (path, bytes or ``onnx.ModelProto``).
        data: a batched array (one-input model), a dict of batched arrays, or an
            iterable of feeds.
        labels: integer class labels, one per sample (top-1 / top-5 from the scores
            of ``output``).
        reference: the float model to compare against.
        device: where to run (``edgeai.Session``'s ``device``); per-layer SQNR always
            runs on ONNX Runtime.
        batch_size: batch size when ``data`` is a batched array.
        layer_samples: samples (from the start of ``data``) used for per-layer SQNR.
        output: the output holding class scores (default: the first).
    """
    import edgeai
    from edgeai.optimize._model import as_proto, model_size
    from edgeai.optimize.macs import total_macs

    proto = as_proto(model)
    sess = edgeai.Session(proto, device=device)
    names = [s.name for s in sess.inputs]
    feeds = _batches(data, names, batch_size)
    if not feeds:
        raise OptimizationError("the evaluation data is empty: pass at least one sample")
    out_names = [s.name for s in sess.outputs]
    score_name = output or out_names[0]
    if score_name not in out_names:
        raise OptimizationError(f"output {score_name!r} is not one of the model's outputs {out_names}")
    got = _run_all(sess, feeds)
    samples = len(got[score_name])
    report = EvaluationReport(
        model=_label(model),
        device=sess.device.id,
        samples=samples,
        size_bytes=model_size(proto),
        macs=total_macs(proto),
    )
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        if len(labels) != samples:
            raise OptimizationError(f"got {len(labels)} labels for {samples} samples; they must match")
        report.top1 = topk_accuracy(got[score_name], labels, 1)
        if got[score_name].reshape(samples, -1).shape[1] >= 5:
            report.top5 = topk_accuracy(got[score_name], labels, 5)
    if reference is not None:
        ref_proto = as_proto(reference)
        ref_sess = edgeai.Session(ref_proto, device="cpu")
        ref_names = [s.name for s in ref_sess.outputs]
        if ref_names != out_names:
            raise OptimizationError(
                f"the model's outputs {out_names} differ from the reference's {ref_names}; "
                "compare a model with the float model it came from"
            )
        ref = _run_all(ref_sess, feeds)
        report.reference = _label(reference)
        report.reference_size_bytes = model_size(ref_proto)
        report.reference_macs = total_macs(ref_proto)
        a = got[score_name].reshape(samples, -1).argmax(1)
        b = ref[score_name].reshape(samples, -1).argmax(1)
        report.agreement = float(np.mean(a == b))
        if labels is not None:
            report.reference_top1 = topk_accuracy(ref[score_name], labels, 1)
            if report.top5 is not None:
                report.reference_top5 = topk_accuracy(ref[score_name], labels, 5)
            report.accuracy_drop = report.reference_top1 - (report.top1 or 0.0)
        report.outputs = [_compare(n, ref[n], got[n]) for n in out_names]
        report.layers = _layer_sqnr(ref_proto, proto, feeds, layer_samples)
    return report


def _run_all(sess: Any, feeds: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    outs: dict[str, list[np.ndarray]] = {}
    for feed in feeds:
        for k, v in sess.run(feed).items():
            outs.setdefault(k, []).append(v)
    return {k: np.concatenate(v, axis=0) for k, v in outs.items()}


def _compare(name: str, ref: np.ndarray, got: np.ndarray) -> OutputComparison:
    from edgeai.optimize.quantization import sqnr_db

    r = np.asarray(ref, np.float64).ravel()
    g = np.asarray(got, np.float64).ravel()
    denom = float(np.linalg.norm(r) * np.linalg.norm(g))
    cos = float(np.dot(r, g) / denom) if denom else (1.0 if np.array_equal(r, g) else 0.0)
    return OutputComparison(
        name=name,
        cosine_similarity=cos,
        sqnr_db=sqnr_db(r, g),
        max_abs_error=float(np.max(np.abs(r - g))) if r.size else 0.0,
    )


def _layer_sqnr(ref_proto: Any, proto: Any, feeds: list[dict[str, np.ndarray]], layer_samples: int) -> list[LayerSQNR]:
    """SQNR of every float activation the reference and the model both have (same name and shape).

    In a QDQ model the match is the dequantized activation (``<name>_DequantizeLinear_Output``);
    in a QOperator model the integer tensor ``<name>_quantized``, dequantized here with its
    ``<name>_scale`` and ``<name>_zero_point``.
    """
    from onnx import numpy_helper

    from edgeai.optimize._model import (
        effective_output,
        produced_tensors,
        quantized_counterpart,
        run_with_intermediates,
    )
    from edgeai.optimize.quantization import sqnr_db

    produced = produced_tensors(proto)
    inits = {i.name: i for i in proto.graph.initializer}
    graph_outputs = {o.name for o in ref_proto.graph.output}
    pairs: list[tuple[str, str, Any, tuple[np.ndarray, np.ndarray] | None]] = []
    types: dict[str, int] = {}
    for node in ref_proto.graph.node:
        if node.op_type == "Constant":
            continue
        for out in node.output:
            if not out or out in graph_outputs:
                continue
            match = quantized_counterpart(out, produced)
            if match is not None:
                pairs.append((out, match, node, None))
                continue
            q, scale, zp = f"{out}_quantized", inits.get(f"{out}_scale"), inits.get(f"{out}_zero_point")
            if q in produced and scale is not None and zp is not None:
                types[q] = zp.data_type
                params = (numpy_helper.to_array(scale), numpy_helper.to_array(zp))
                # a Relu/Clip after the op is fused into its output range: compare with its output
                after = effective_output(ref_proto, node)
                ref_name = after if f"{after}_quantized" not in produced else out
                pairs.append((ref_name, q, node, params))
    if not pairs:
        return []
    subset: list[dict[str, np.ndarray]] = []
    count = 0
    for feed in feeds:
        if count >= layer_samples:
            break
        subset.append(feed)
        count += len(next(iter(feed.values())))
    try:
        ref = run_with_intermediates(ref_proto, subset, [p[0] for p in pairs])
        got = run_with_intermediates(proto, subset, [p[1] for p in pairs], types)
    except Exception:  # a tensor type shape inference could not settle: report outputs only
        return []
    layers = []
    for ref_name, got_name, node, params in pairs:
        r = [x[ref_name] for x in ref]
        g = [x[got_name] for x in got]
        if params is not None and all(p.size == 1 for p in params):
            scale, zp = params
            g = [(b.astype(np.float64) - float(zp)) * float(scale) for b in g]
        elif params is not None:
            continue
        if any(a.shape != b.shape or a.dtype.kind != "f" or b.dtype.kind != "f" for a, b in zip(r, g)):
            continue
        value = sqnr_db(np.concatenate([a.ravel() for a in r]), np.concatenate([b.ravel() for b in g]))
        layers.append(LayerSQNR(tensor=ref_name, node=node.name, op_type=node.op_type, sqnr_db=value))
    return layers
