"""Pruning of ONNX models: unstructured magnitude pruning and structured channel pruning.

* :func:`prune_magnitude` zeroes the smallest weights of Conv/Gemm/MatMul
  layers (per layer or globally). Shapes do not change; the report gives the
  sparsity of every layer, and the compressed size shows what the zeros buy.
* :func:`prune_channels` removes whole output channels of Conv and Gemm
  layers (lowest L1 norm first) and fixes every consumer: the input channels
  of the next Conv, the channels of depthwise convolutions and batch norms in
  between, and the columns of a Gemm/MatMul after a Flatten. The model file
  and its MACs really shrink. A layer whose output reaches an op that mixes
  channels with another branch (Add, Concat, Mul, a graph output) is left
  alone, and the report says why.

Example:
    >>> import edgeai
    >>> from edgeai.optimize import prune_channels
    >>> pruned = prune_channels(edgeai.demo.model_path(), ratio=0.5)
    >>> [(layer.channels_before, layer.channels_after) for layer in pruned.layers]
    [(16, 8), (32, 16), (32, 16)]
    >>> round(pruned.macs_after / pruned.macs_before, 3)
    0.261
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from edgeai.optimize._errors import OptimizationError
from edgeai.optimize._model import as_proto, model_size, quantized_ops, save_atomic

__all__ = ["LayerPruning", "PruningReport", "SkippedLayer", "prune_channels", "prune_magnitude"]

_PRUNABLE_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
# Ops that act on each channel separately: a channel removed before them is removed after them.
_CHANNELWISE = {
    "Relu",
    "Clip",
    "LeakyRelu",
    "PRelu",
    "Sigmoid",
    "Tanh",
    "HardSigmoid",
    "HardSwish",
    "Elu",
    "Selu",
    "Softplus",
    "Gelu",
    "Identity",
    "Dropout",
    "MaxPool",
    "AveragePool",
    "LpPool",
    "GlobalAveragePool",
    "GlobalMaxPool",
}


_FOLLOWED = _CHANNELWISE | {
    "ReduceMean",
    "ReduceMax",
    "ReduceSum",
    "BatchNormalization",
    "Conv",
    "Flatten",
    "Reshape",
    "Gemm",
    "MatMul",
}


class LayerPruning(BaseModel):
    """One pruned layer."""

    name: str
    op_type: str
    weight: str
    params: int
    zeros: int
    sparsity: float
    channels_before: int | None = None
    channels_after: int | None = None
    kept_channels: list[int] = Field(default_factory=list)
    consumers_fixed: list[str] = Field(default_factory=list)


class SkippedLayer(BaseModel):
    """A layer that was not pruned, and why."""

    name: str
    op_type: str
    reason: str


class PruningReport(BaseModel):
    """What a pruning pass did. ``model`` is the pruned ``ModelProto``."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    kind: str
    """``"unstructured"`` or ``"structured"``."""
    target: float
    layers: list[LayerPruning] = Field(default_factory=list)
    skipped: list[SkippedLayer] = Field(default_factory=list)
    params_before: int
    params_after: int
    zero_params: int
    size_before: int
    size_after: int
    compressed_size_before: int
    compressed_size_after: int
    """zlib-compressed sizes: what zeros save in a compressed download."""
    macs_before: int
    macs_after: int
    finetuned: bool = False
    path: str | None = None
    _model: Any = PrivateAttr(default=None)

    @property
    def model(self) -> Any:
        """The pruned ``onnx.ModelProto``."""
        return self._model

    @property
    def sparsity(self) -> float:
        """Share of zero weights over all parameters."""
        return self.zero_params / self.params_after if self.params_after else 0.0

    def save(self, path: str | Path) -> Path:
        """Write the pruned model atomically."""
        target = save_atomic(self._model, path)
        self.path = str(target)
        return target

    def summary(self) -> str:
        """One paragraph for people."""
        text = (
            f"{self.kind} pruning ({self.target:.0%}) of {len(self.layers)} layers: params "
            f"{self.params_before:,} -> {self.params_after:,}, sparsity {self.sparsity:.1%}, size "
            f"{self.size_before:,} -> {self.size_after:,} bytes (compressed {self.compressed_size_before:,} "
            f"-> {self.compressed_size_after:,}), MACs {self.macs_before:,} -> {self.macs_after:,}"
        )
        if self.skipped:
            text += "; not pruned: " + ", ".join(f"{s.name} ({s.reason})" for s in self.skipped)
        return text


def _arrays(proto: Any) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    return {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}


def _params(proto: Any) -> tuple[int, int]:
    total = zeros = 0
    for arr in _arrays(proto).values():
        if arr.dtype.kind == "f":
            total += arr.size
            zeros += int(np.count_nonzero(arr == 0))
    return total, zeros


def _attr(node: Any, name: str, default: Any = None) -> Any:
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _set_int_attr(node: Any, name: str, value: int) -> None:
    for a in node.attribute:
        if a.name == name:
            a.i = int(value)
            return
    import onnx

    node.attribute.append(onnx.helper.make_attribute(name, int(value)))


def _weight_input(node: Any, consts: dict[str, np.ndarray]) -> int | None:
    return 1 if len(node.input) > 1 and node.input[1] in consts else None


def _finish(
    proto: Any,
    original: Any,
    kind: str,
    target: float,
    layers: list[LayerPruning],
    skipped: list[SkippedLayer],
    finetune: Callable[[Any, PruningReport], Any] | None,
) -> PruningReport:
    from edgeai.optimize.macs import total_macs

    p_before, _ = _params(original)
    p_after, zeros = _params(proto)
    report = PruningReport(
        kind=kind,
        target=target,
        layers=layers,
        skipped=skipped,
        params_before=p_before,
        params_after=p_after,
        zero_params=zeros,
        size_before=model_size(original),
        size_after=model_size(proto),
        compressed_size_before=len(zlib.compress(original.SerializeToString(), 6)),
        compressed_size_after=len(zlib.compress(proto.SerializeToString(), 6)),
        macs_before=total_macs(original),
        macs_after=total_macs(proto),
    )
    report._model = proto
    if finetune is not None:
        tuned = finetune(proto, report)
        if tuned is not None:
            report._model = as_proto(tuned)
            report.finetuned = True
    return report


def _copy(proto: Any) -> Any:
    import onnx

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    return model


def _check_input(proto: Any, ratio: float, what: str) -> None:
    if not 0.0 <= ratio < 1.0:
        raise OptimizationError(f"{what} must be in [0, 1), not {ratio}")
    done = quantized_ops(proto)
    if done:
        raise OptimizationError(f"the model is quantized ({done[:3]}...); prune the float model, then quantize it")


def prune_magnitude(
    model: Any,
    sparsity: float = 0.5,
    output: str | Path | None = None,
    *,
    scope: str = "layer",
    op_types: Sequence[str] = _PRUNABLE_OPS,
    exclude_nodes: Sequence[str] = (),
    finetune: Callable[[Any, PruningReport], Any] | None = None,
) -> PruningReport:
    """Unstructured magnitude pruning: zero the ``sparsity`` share of smallest weights.

    Args:
        model: a float ONNX model.
        sparsity: share of weights to zero, in [0, 1).
        output: where to write the pruned model (atomically); optional.
        scope: ``"layer"`` (each layer reaches ``sparsity``) or ``"global"`` (one
            magnitude threshold over all layers).
        op_types: layer types whose constant weights are pruned (biases are kept).
        exclude_nodes: node names to leave alone.
        finetune: optional hook ``finetune(model_proto, report) -> model_proto`` run
            on the pruned model (e.g. a few epochs of training in your framework).

    Example:
        >>> import edgeai
        >>> r = prune_magnitude(edgeai.demo.model_path(), 0.5)
        >>> [round(layer.sparsity, 2) for layer in r.layers]
        [0.5, 0.5, 0.5, 0.5]
    """
    from onnx import numpy_helper

    if scope not in ("layer", "global"):
        raise OptimizationError(f"scope must be 'layer' or 'global', not {scope!r}")
    original = as_proto(model)
    _check_input(original, sparsity, "sparsity")
    proto = _copy(original)
    consts = _arrays(proto)
    targets: list[tuple[Any, str]] = []
    for node in proto.graph.node:
        if node.op_type in op_types and node.name not in exclude_nodes:
            idx = _weight_input(node, consts)
            if idx is not None and consts[node.input[idx]].dtype.kind == "f":
                targets.append((node, node.input[idx]))
    if not targets:
        raise OptimizationError(f"the model has no {list(op_types)} layers with constant weights to prune")
    threshold = None
    if scope == "global":
        mags = np.concatenate([np.abs(consts[w]).ravel() for _, w in targets])
        k = round(sparsity * mags.size)
        threshold = np.partition(mags, k - 1)[k - 1] if k > 0 else -1.0
    layers = []
    pruned: dict[str, np.ndarray] = {}
    for node, w_name in targets:
        w = consts[w_name]
        flat = np.abs(w).ravel()
        mask = np.ones(flat.size, bool)
        if scope == "layer":
            k = round(sparsity * flat.size)
            if k:
                # stable order: equal magnitudes are pruned in index order, so results are reproducible
                order = np.argsort(flat, kind="stable")
                mask[order[:k]] = False
        else:
            mask = flat > threshold
        new = np.where(mask.reshape(w.shape), w, 0).astype(w.dtype)
        pruned[w_name] = new
        zeros = int(np.count_nonzero(new == 0))
        layers.append(
            LayerPruning(
                name=node.name,
                op_type=node.op_type,
                weight=w_name,
                params=int(w.size),
                zeros=zeros,
                sparsity=zeros / w.size,
            )
        )
    for i, init in enumerate(proto.graph.initializer):
        if init.name in pruned:
            proto.graph.initializer[i].CopyFrom(numpy_helper.from_array(pruned[init.name], init.name))
    report = _finish(proto, original, "unstructured", sparsity, layers, [], finetune)
    if output is not None:
        report.save(output)
    return report


@dataclass
class _Edit:
    """A slice to apply to a constant along an axis, given the kept channel indices."""

    tensor: str
    axis: int
    expand: int = 1
    """Columns per channel (a Flatten over H x W spreads each channel over H*W columns)."""


@dataclass
class _Plan:
    edits: list[_Edit] = field(default_factory=list)
    groups: list[Any] = field(default_factory=list)  # depthwise convs whose group follows the kept count
    consumers: list[str] = field(default_factory=list)


class _Graph:
    def __init__(self, proto: Any) -> None:
        from edgeai.optimize.macs import _fixed_shapes

        self.proto = proto
        self.consts = _arrays(proto)
        self.consumers: dict[str, list[Any]] = {}
        self.uses: dict[str, int] = {}
        for node in proto.graph.node:
            for i in node.input:
                self.consumers.setdefault(i, []).append(node)
                self.uses[i] = self.uses.get(i, 0) + 1
        self.outputs = {o.name for o in proto.graph.output}
        self.shapes = _fixed_shapes(proto, {})

    def private_const(self, name: str) -> bool:
        return name in self.consts and self.uses.get(name, 0) == 1


class _Refusal(Exception):
    pass


def _follow(g: _Graph, tensor: str, plan: _Plan, channels: int) -> None:
    """Collect the edits that remove channels of ``tensor`` from everything that reads it."""
    if tensor in g.outputs:
        raise _Refusal("its channels reach a graph output")
    for c in g.consumers.get(tensor, []):
        label = c.name or c.op_type
        if c.op_type not in _FOLLOWED:
            raise _Refusal(
                f"it feeds {c.op_type} {label!r}, which is not channel-wise (channels cannot be removed through it)"
            )
        if c.input[0] != tensor:
            raise _Refusal(f"{c.op_type} {label!r} reads it as a non-data input")
        if c.op_type in _CHANNELWISE:
            if c.op_type == "PRelu" and c.input[1] in g.consts and g.consts[c.input[1]].size > 1:
                plan.edits.append(_Edit(c.input[1], 0))
            plan.consumers.append(label)
            _follow(g, c.output[0], plan, channels)
        elif c.op_type in ("ReduceMean", "ReduceMax", "ReduceSum") and 1 not in _reduce_axes(c, g):
            plan.consumers.append(label)
            _follow(g, c.output[0], plan, channels)
        elif c.op_type == "BatchNormalization":
            for name in c.input[1:5]:
                if not g.private_const(name):
                    raise _Refusal(f"BatchNormalization {label!r} has shared or non-constant parameters")
                plan.edits.append(_Edit(name, 0))
            plan.consumers.append(label)
            _follow(g, c.output[0], plan, channels)
        elif c.op_type == "Conv":
            w_name = c.input[1]
            if not g.private_const(w_name):
                raise _Refusal(f"Conv {label!r} has shared or non-constant weights")
            w = g.consts[w_name]
            group = int(_attr(c, "group", 1))
            if group == 1:
                plan.edits.append(_Edit(w_name, 1))
                plan.consumers.append(label)
            elif group == channels and w.shape[0] == channels and w.shape[1] == 1:
                plan.edits.append(_Edit(w_name, 0))
                if len(c.input) > 2 and c.input[2]:
                    plan.edits.append(_Edit(c.input[2], 0))
                plan.groups.append(c)
                plan.consumers.append(label)
                _follow(g, c.output[0], plan, channels)
            else:
                raise _Refusal(f"Conv {label!r} is grouped (group={group})")
        elif c.op_type in ("Flatten", "Reshape"):
            shape = g.shapes.get(tensor)
            if shape is None or len(shape) < 2:
                raise _Refusal(f"{c.op_type} {label!r}: the shape of its input is unknown")
            out_shape = g.shapes.get(c.output[0])
            if out_shape is None or len(out_shape) != 2 or out_shape[0] != shape[0]:
                raise _Refusal(f"{c.op_type} {label!r} does not flatten to (batch, features)")
            if c.op_type == "Flatten" and int(_attr(c, "axis", 1)) != 1:
                raise _Refusal(f"Flatten {label!r} is not over axis 1")
            spatial = int(np.prod(shape[2:])) if len(shape) > 2 else 1
            plan.consumers.append(label)
            _matrix_consumers(g, c.output[0], plan, spatial)
        elif c.op_type in ("Gemm", "MatMul"):
            _matrix_consumers(g, tensor, plan, 1)
        else:
            raise _Refusal(f"{c.op_type} {label!r} cannot follow a channel change")


def _reduce_axes(node: Any, g: _Graph) -> set[int]:
    axes = _attr(node, "axes")
    if axes is None and len(node.input) > 1 and node.input[1] in g.consts:
        axes = g.consts[node.input[1]].tolist()
    if axes is None:
        return {1}  # reduces everything: channels included
    rank = len(g.shapes.get(node.input[0], ())) or 4
    return {int(a) % rank for a in axes}


def _matrix_consumers(g: _Graph, tensor: str, plan: _Plan, spatial: int) -> None:
    if tensor in g.outputs:
        raise _Refusal("its features reach a graph output")
    for c in g.consumers.get(tensor, []):
        label = c.name or c.op_type
        if c.input[0] != tensor or not g.private_const(c.input[1]):
            raise _Refusal(f"{c.op_type} {label!r} has no private constant weight on its second input")
        if c.op_type == "Gemm":
            if _attr(c, "transA", 0):
                raise _Refusal(f"Gemm {label!r} transposes its input")
            axis = 1 if _attr(c, "transB", 0) else 0
        elif c.op_type == "MatMul":
            if g.consts[c.input[1]].ndim != 2:
                raise _Refusal(f"MatMul {label!r} has a batched weight")
            axis = 0
        else:
            raise _Refusal(f"its flattened features feed {c.op_type} {label!r}")
        plan.edits.append(_Edit(c.input[1], axis, spatial))
        plan.consumers.append(label)


def _expand(keep: np.ndarray, spatial: int) -> np.ndarray:
    if spatial == 1:
        return keep
    return (keep[:, None] * spatial + np.arange(spatial)[None, :]).ravel()


def prune_channels(
    model: Any,
    ratio: float = 0.5,
    output: str | Path | None = None,
    *,
    nodes: Sequence[str] | None = None,
    min_channels: int = 1,
    finetune: Callable[[Any, PruningReport], Any] | None = None,
) -> PruningReport:
    """Structured pruning: remove ``ratio`` of the output channels of Conv and Gemm layers.

    Channels with the smallest L1 norm of their weights go first. Layers are pruned
    in graph order, so a layer's norms count only the input channels its producer
    kept (greedy, as in Li et al. 2017, "Pruning Filters for Efficient ConvNets").
    Consumers are fixed so the model stays valid; the file and the MACs shrink.

    Args:
        model: a float ONNX model.
        ratio: share of channels to remove from each pruned layer, in [0, 1).
        output: where to write the pruned model (atomically); optional.
        nodes: names of the layers to prune (default: every layer that can be).
        min_channels: never keep fewer channels than this.
        finetune: optional hook ``finetune(model_proto, report) -> model_proto``.

    Layers that cannot be pruned without changing what the model computes
    elsewhere are listed in ``report.skipped`` with the reason.
    """
    from onnx import numpy_helper

    original = as_proto(model)
    _check_input(original, ratio, "ratio")
    proto = _copy(original)
    g = _Graph(proto)
    names = {n.name for n in proto.graph.node}
    if nodes is not None:
        unknown = [n for n in nodes if n not in names]
        if unknown:
            raise OptimizationError(f"nodes names layers the model does not have: {unknown}")
    layers: list[LayerPruning] = []
    skipped: list[SkippedLayer] = []
    for node in list(proto.graph.node):
        if node.op_type not in ("Conv", "Gemm") or (nodes is not None and node.name not in nodes):
            continue
        label = node.name or node.op_type
        w_name = node.input[1] if len(node.input) > 1 else ""
        if not g.private_const(w_name):
            skipped.append(SkippedLayer(name=label, op_type=node.op_type, reason="weights are not private"))
            continue
        w = g.consts[w_name]
        if node.op_type == "Conv":
            if int(_attr(node, "group", 1)) != 1:
                continue  # depthwise/grouped convs follow their producer
            out_axis = 0
        else:
            if _attr(node, "transA", 0):
                skipped.append(SkippedLayer(name=label, op_type="Gemm", reason="transA=1"))
                continue
            out_axis = 0 if _attr(node, "transB", 0) else 1
        channels = int(w.shape[out_axis])
        keep_n = max(min_channels, round(channels * (1.0 - ratio)))
        if keep_n >= channels:
            continue
        plan = _Plan(edits=[_Edit(w_name, out_axis)])
        if len(node.input) > 2 and node.input[2]:
            if not g.private_const(node.input[2]):
                skipped.append(SkippedLayer(name=label, op_type=node.op_type, reason="bias is not private"))
                continue
            if g.consts[node.input[2]].ndim == 1 and g.consts[node.input[2]].size == channels:
                plan.edits.append(_Edit(node.input[2], 0))
            elif node.op_type == "Gemm":
                skipped.append(SkippedLayer(name=label, op_type="Gemm", reason="bias is not per-channel"))
                continue
        try:
            _follow(g, node.output[0], plan, channels)
        except _Refusal as why:
            skipped.append(SkippedLayer(name=label, op_type=node.op_type, reason=str(why)))
            continue
        norms = np.abs(np.moveaxis(w, out_axis, 0)).reshape(channels, -1).sum(axis=1)
        keep = np.sort(np.argsort(-norms, kind="stable")[:keep_n])
        for edit in plan.edits:
            arr = g.consts[edit.tensor]
            g.consts[edit.tensor] = np.take(arr, _expand(keep, edit.expand), axis=edit.axis)
        for conv in plan.groups:
            _set_int_attr(conv, "group", keep_n)
        layers.append(
            LayerPruning(
                name=label,
                op_type=node.op_type,
                weight=w_name,
                params=int(g.consts[w_name].size),
                zeros=int(np.count_nonzero(g.consts[w_name] == 0)),
                sparsity=0.0,
                channels_before=channels,
                channels_after=keep_n,
                kept_channels=[int(k) for k in keep],
                consumers_fixed=plan.consumers,
            )
        )
    if not layers and not skipped:
        raise OptimizationError("the model has no Conv or Gemm layers with constant weights to prune")
    changed = {e for e in g.consts}
    for i, init in enumerate(proto.graph.initializer):
        if init.name in changed:
            proto.graph.initializer[i].CopyFrom(numpy_helper.from_array(g.consts[init.name], init.name))
    # channel counts of intermediate tensors changed: drop the stale shape annotations
    del proto.graph.value_info[:]
    report = _finish(proto, original, "structured", ratio, layers, skipped, finetune)
    if output is not None:
        report.save(output)
    return report
