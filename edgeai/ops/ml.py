"""Classic-ML ops of the ``ai.onnx.ml`` domain: LabelEncoder, TreeEnsemble, ArrayFeatureExtractor, Binarizer.

- ``LabelEncoder`` (versions 2 and 4) maps each element through the parallel
  ``keys_*``/``values_*`` lists (or, from version 4, ``keys_tensor``/``values_tensor``);
  a missing key gives the default of the values' type (``-1``, ``-0.0``, ``"_Unused"``
  unless set). From version 4 a float ``NaN`` key matches any ``NaN`` input (in
  version 2 nothing equals ``NaN``, as in ONNX Runtime); a repeated key's last
  value wins (the specification's rule; ONNX Runtime keeps the first).
- ``TreeEnsemble-5`` walks every tree for every row at once (vectorized over the
  batch, one step per tree level), compares in float64 (exact for float32 and
  float16 inputs), aggregates leaf weights per target (``SUM``, ``AVERAGE``,
  ``MIN``, ``MAX``; a target no leaf reached stays 0, as ONNX Runtime does) and
  applies ``post_transform`` (``SOFTMAX``, ``LOGISTIC``, ``SOFTMAX_ZERO``,
  ``PROBIT``) across targets. ``BRANCH_MEMBER`` nodes read their sets from
  ``membership_values``, NaN-delimited, in node order. A NaN feature follows
  ``nodes_missing_value_tracks_true`` where the comparison itself is false.
- ``ArrayFeatureExtractor-1`` gathers ``indices`` (flattened) along the last
  axis; a 1-D input gives ``[1, len(indices)]`` (as ONNX Runtime does).
- ``Binarizer-1``: ``x > threshold`` as 1 or 0 in ``x``'s dtype.

Example:
    >>> import numpy as np
    >>> from edgeai.ops._base import OpContext, lookup
    >>> LE = lookup("LabelEncoder", "ai.onnx.ml", 4)
    >>> ctx = OpContext(node_name="le", op_type="LabelEncoder", domain="ai.onnx.ml", opset=4,
    ...                 attrs={"keys_strings": ["a", "b"], "values_int64s": [5, 6]})
    >>> LE(ctx).run(np.array(["b", "z", "a"], dtype=object))[0]
    array([ 6, -1,  5])
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgeai.errors import InferenceError
from edgeai.ops._base import Op, OpContext, register

__all__ = ["post_transform"]

ML = "ai.onnx.ml"


def _fail(ctx: OpContext, message: str) -> InferenceError:
    return InferenceError(f"{ctx.op_type} node {ctx.node_name!r} (opset {ctx.opset}): {message}")


# --------------------------------------------------------------------------- LabelEncoder


def _plain(values: Any) -> list[Any]:
    return [v.decode("utf-8") if isinstance(v, bytes) else v for v in values]


class _LabelEncoderBase(Op):
    tensors_allowed = False
    nan_keys_match = False

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        key_attrs = ["keys_strings", "keys_int64s", "keys_floats"] + (["keys_tensor"] if self.tensors_allowed else [])
        val_attrs = ["values_strings", "values_int64s", "values_floats"] + (
            ["values_tensor"] if self.tensors_allowed else []
        )
        keys_set = [a for a in key_attrs if ctx.attr(a) is not None]
        vals_set = [a for a in val_attrs if ctx.attr(a) is not None]
        if len(keys_set) != 1 or len(vals_set) != 1:
            raise _fail(
                ctx, f"exactly one of {key_attrs} and one of {val_attrs} must be set, got {keys_set} and {vals_set}"
            )
        key_attr, val_attr = keys_set[0], vals_set[0]
        keys, values = ctx.attr(key_attr), ctx.attr(val_attr)
        if key_attr == "keys_tensor":
            keys_arr = np.asarray(keys)
            self._key_kind = "U" if keys_arr.dtype == object else keys_arr.dtype.kind
            keys = _plain(keys_arr.reshape(-1).tolist())
        else:
            self._key_kind = {"keys_strings": "U", "keys_int64s": "i", "keys_floats": "f"}[key_attr]
            keys = _plain(keys)
        if val_attr == "values_tensor":
            arr = np.asarray(values)
            self._out_dtype = np.dtype(object) if arr.dtype.kind in "OSU" else arr.dtype
            values = _plain(arr.reshape(-1).tolist())
        else:
            self._out_dtype = np.dtype(
                {"values_strings": object, "values_int64s": np.int64, "values_floats": np.float32}[val_attr]
            )
            values = _plain(values)
        if len(keys) != len(values):
            raise _fail(ctx, f"{key_attr} has {len(keys)} entries but {val_attr} has {len(values)}")
        self._default = self._default_value(ctx, val_attr)
        self._nan_value: Any = None
        self._table: dict[Any, Any] = {}
        for k, v in zip(keys, values):
            if isinstance(k, float) and math.isnan(k) and self.nan_keys_match:
                self._nan_value = v
            else:
                self._table[k] = v

    def _default_value(self, ctx: OpContext, val_attr: str) -> Any:
        kind = self._out_dtype.kind
        if val_attr == "values_tensor" and ctx.attr("default_tensor") is not None:
            return _plain(np.asarray(ctx.attr("default_tensor")).reshape(-1).tolist())[0]
        if kind == "O":
            d = ctx.attr("default_string", "_Unused")
            return d.decode("utf-8") if isinstance(d, bytes) else str(d)
        if kind in "iu":
            return int(ctx.attr("default_int64", -1))
        return float(ctx.attr("default_float", -0.0))

    def run(self, x: Any) -> tuple[np.ndarray]:
        arr = np.asarray(x)
        kind = "U" if arr.dtype.kind in "OUT" else ("i" if arr.dtype.kind in "iu" else arr.dtype.kind)
        if kind != self._key_kind:
            raise _fail(self.ctx, f"input of {arr.dtype} does not match the keys' type; feed the keys' type")
        table, default, nan_value = self._table, self._default, self._nan_value
        flat = arr.reshape(-1).tolist()
        if kind == "f":
            found = [
                (nan_value if nan_value is not None else default) if v != v else table.get(v, default) for v in flat
            ]
        else:
            found = [table.get(v, default) for v in flat]
        out = np.empty(len(found), dtype=self._out_dtype)
        out[:] = found
        return (out.reshape(arr.shape),)


@register("LabelEncoder", domain=ML, since=2)
class LabelEncoder2(_LabelEncoderBase):
    """LabelEncoder-2: string, int64 and float keys and values as lists."""


@register("LabelEncoder", domain=ML, since=4)
class LabelEncoder4(_LabelEncoderBase):
    """LabelEncoder-4: adds ``keys_tensor``/``values_tensor``/``default_tensor`` (int16/32, double too)."""

    tensors_allowed = True
    nan_keys_match = True


# --------------------------------------------------------------------------- TreeEnsemble

_AGGREGATES = ("AVERAGE", "SUM", "MIN", "MAX")
_COMPARE = (np.less_equal, np.less, np.greater_equal, np.greater, np.equal, np.not_equal)
_TRANSFORMS = ("NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO", "PROBIT")


def _erfinv_scalar(y: float) -> float:
    if not -1.0 < y < 1.0:
        return math.copysign(math.inf, y) if abs(y) == 1.0 else math.nan
    # Winitzki's approximation, then Newton steps on math.erf to float64 precision
    a = 0.147
    log = math.log((1.0 - y) * (1.0 + y))
    t = 2.0 / (math.pi * a) + 0.5 * log
    x = math.copysign(math.sqrt(math.sqrt(t * t - log / a) - t), y)
    for _ in range(3):
        x -= (math.erf(x) - y) / (2.0 / math.sqrt(math.pi) * math.exp(-x * x))
    return x


_erfinv = np.vectorize(_erfinv_scalar, otypes=[np.float64])


def post_transform(scores: np.ndarray, kind: str) -> np.ndarray:
    """Apply an ``ai.onnx.ml`` post transform to ``[N, targets]`` float64 scores.

    >>> post_transform(np.array([[0.0, 0.0]]), "SOFTMAX").tolist()
    [[0.5, 0.5]]
    """
    if kind == "NONE":
        return scores
    if kind == "LOGISTIC":
        return 1.0 / (1.0 + np.exp(-scores))
    if kind == "SOFTMAX":
        e = np.exp(scores - scores.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    if kind == "SOFTMAX_ZERO":
        # exact zeros stay out of the softmax (they mean "no score"), as ONNX Runtime does
        nonzero = scores != 0
        shifted = np.where(nonzero, scores, -np.inf)
        top = np.where(nonzero.any(axis=1, keepdims=True), shifted.max(axis=1, keepdims=True), 0.0)
        e = np.where(nonzero, np.exp(scores - top), 0.0)
        total = e.sum(axis=1, keepdims=True)
        return np.divide(e, total, out=np.zeros_like(e), where=total > 0)
    if kind == "PROBIT":
        return math.sqrt(2.0) * _erfinv(2.0 * scores - 1.0)
    raise ValueError(f"unknown post_transform {kind!r}")


def _enum(ctx: OpContext, name: str, names: tuple[str, ...], default: int) -> str:
    value = ctx.attr(name, default)
    if isinstance(value, (bytes, str)):
        value = value.decode() if isinstance(value, bytes) else value
        if value not in names:
            raise _fail(ctx, f"{name}={value!r} is not one of {names}")
        return value
    if not 0 <= int(value) < len(names):
        raise _fail(ctx, f"{name}={value} is not one of 0..{len(names) - 1} ({', '.join(names)})")
    return names[int(value)]


def _ints(ctx: OpContext, name: str, n: int | None = None, default: int | None = None) -> np.ndarray:
    value = ctx.attr(name)
    if value is None:
        if default is None or n is None:
            raise _fail(ctx, f"the {name!r} attribute is required")
        return np.full(n, default, np.int64)
    arr = np.asarray(value).reshape(-1).astype(np.int64)
    if n is not None and arr.size != n:
        raise _fail(ctx, f"{name} has {arr.size} entries, expected {n} (one per node)")
    return arr


@register("TreeEnsemble", domain=ML, since=5)
class TreeEnsemble(Op):
    """TreeEnsemble-5: regression/classification scores of a forest, ``[N, n_targets]``."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self._feature = _ints(ctx, "nodes_featureids")
        n = self._feature.size
        self._mode = _ints(ctx, "nodes_modes", n)
        if n and (self._mode.min() < 0 or self._mode.max() > 6):
            raise _fail(ctx, "nodes_modes must be in 0..6 (LEQ, LT, GTE, GT, EQ, NEQ, MEMBER)")
        splits = ctx.attr("nodes_splits")
        self._split = np.zeros(n) if splits is None else np.asarray(splits, np.float64).reshape(-1)
        if self._split.size != n:
            raise _fail(ctx, f"nodes_splits has {self._split.size} entries, expected {n}")
        self._true = _ints(ctx, "nodes_truenodeids", n)
        self._false = _ints(ctx, "nodes_falsenodeids", n)
        self._true_leaf = _ints(ctx, "nodes_trueleafs", n).astype(bool)
        self._false_leaf = _ints(ctx, "nodes_falseleafs", n).astype(bool)
        self._track = _ints(ctx, "nodes_missing_value_tracks_true", n, 0).astype(bool)
        self._roots = _ints(ctx, "tree_roots")
        self._leaf_target = _ints(ctx, "leaf_targetids")
        weights = ctx.attr("leaf_weights")
        if weights is None:
            raise _fail(ctx, "the 'leaf_weights' attribute is required")
        self._leaf_weight = np.asarray(weights, np.float64).reshape(-1)
        if self._leaf_weight.size != self._leaf_target.size:
            raise _fail(ctx, "leaf_weights and leaf_targetids must have the same length")
        self._n_targets = int(ctx.attr("n_targets", 1))
        if self._leaf_target.size and not (self._leaf_target.min() >= 0 and self._leaf_target.max() < self._n_targets):
            raise _fail(ctx, f"leaf_targetids must be in [0, n_targets={self._n_targets})")
        n_leaves = self._leaf_weight.size
        for ids, leaf in ((self._true, self._true_leaf), (self._false, self._false_leaf)):
            bound = np.where(leaf, n_leaves, n)
            if np.any((ids < 0) | (ids >= bound)):
                raise _fail(ctx, "a node's true/false id points past the nodes_* or leaf_* lists")
        if self._roots.size == 0 or np.any((self._roots < 0) | (self._roots >= n)):
            raise _fail(ctx, f"tree_roots must be non-empty indices into the {n} nodes")
        self._members: dict[int, np.ndarray] = {}
        member_nodes = np.flatnonzero(self._mode == 6)
        if member_nodes.size:
            values = ctx.attr("membership_values")
            if values is None:
                raise _fail(ctx, "BRANCH_MEMBER nodes need the 'membership_values' attribute")
            flat = np.asarray(values, np.float64).reshape(-1)
            cuts = np.flatnonzero(np.isnan(flat))
            sets = np.split(flat, cuts)
            sets = [s[~np.isnan(s)] for s in sets][: len(cuts)]
            if len(sets) != member_nodes.size:
                raise _fail(
                    ctx,
                    f"membership_values holds {len(sets)} NaN-terminated sets for {member_nodes.size} "
                    "BRANCH_MEMBER nodes",
                )
            self._members = dict(zip(member_nodes.tolist(), sets))
        modes = np.unique(self._mode)
        self._single_mode = int(modes[0]) if modes.size == 1 else None
        self._any_track = bool(self._track.any())
        self._aggregate = _enum(ctx, "aggregate_function", _AGGREGATES, 1)
        self._transform = _enum(ctx, "post_transform", _TRANSFORMS, 0)

    def _goes_true(self, value: np.ndarray, node: np.ndarray) -> np.ndarray:
        split = self._split[node]
        with np.errstate(invalid="ignore"):
            if self._single_mode is not None and self._single_mode != 6:
                cond = _COMPARE[self._single_mode](value, split)
            else:
                mode = self._mode[node]
                cond = np.select(
                    [mode == m for m in range(6)], [_COMPARE[m](value, split) for m in range(6)], default=False
                )
                for m in np.unique(node[mode == 6]).tolist():
                    sel = node == m
                    cond[sel] = np.isin(value[sel], self._members[m])
        if self._any_track:
            cond |= self._track[node] & np.isnan(value)
        return cond

    def run(self, x: Any) -> tuple[np.ndarray]:
        arr = np.asarray(x)
        if arr.dtype.kind != "f" or arr.ndim != 2:
            raise _fail(self.ctx, f"X must be a 2-D float tensor [N, F], got {arr.dtype} of shape {arr.shape}")
        if self._feature.size and self._feature.max() >= arr.shape[1]:
            raise _fail(self.ctx, f"a node reads feature {self._feature.max()} but X has {arr.shape[1]} features")
        xs = arr.astype(np.float64)
        n_rows, n_trees = xs.shape[0], self._roots.size
        # walk every (row, tree) pair at once, one tree level per step
        row = np.repeat(np.arange(n_rows), n_trees)
        node = np.tile(self._roots, n_rows)
        leaf = np.full(row.size, -1, np.int64)
        active = np.arange(row.size)
        for _ in range(self._feature.size + 1):
            if not active.size:
                break
            cur = node[active]
            go = self._goes_true(xs[row[active], self._feature[cur]], cur)
            nxt = np.where(go, self._true[cur], self._false[cur])
            is_leaf = np.where(go, self._true_leaf[cur], self._false_leaf[cur])
            leaf[active[is_leaf]] = nxt[is_leaf]
            node[active] = nxt
            active = active[~is_leaf]
        if active.size:
            raise _fail(self.ctx, "a tree has a cycle: following true/false ids never reaches a leaf")
        agg = self._aggregate
        target = self._leaf_target[leaf]
        weight = self._leaf_weight[leaf]
        cell = row * self._n_targets + target
        size = n_rows * self._n_targets
        reached = (np.bincount(cell, minlength=size) > 0).reshape(n_rows, self._n_targets)
        if agg in ("SUM", "AVERAGE"):
            scores = np.bincount(cell, weights=weight, minlength=size).reshape(n_rows, self._n_targets)
        else:
            scores = np.full((n_rows, self._n_targets), np.inf if agg == "MIN" else -np.inf)
            (np.minimum if agg == "MIN" else np.maximum).at(scores, (row, target), weight)
        if agg == "AVERAGE":
            scores /= n_trees
        scores[~reached] = 0.0
        return (post_transform(scores, self._transform).astype(arr.dtype),)


# --------------------------------------------------------------------------- ArrayFeatureExtractor, Binarizer


@register("ArrayFeatureExtractor", domain=ML, since=1)
class ArrayFeatureExtractor(Op):
    """ArrayFeatureExtractor-1: ``X[..., indices]``; a 1-D ``X`` gives one row."""

    def run(self, x: Any, indices: Any) -> tuple[np.ndarray]:
        arr = np.asarray(x)
        idx = np.asarray(indices)
        if idx.dtype.kind not in "iu":
            raise _fail(self.ctx, f"Y (the indices) must be int64, got {idx.dtype}")
        idx = idx.reshape(-1).astype(np.int64)
        if arr.ndim == 0:
            raise _fail(self.ctx, "X must have at least one dimension")
        width = arr.shape[-1]
        if idx.size and (idx.min() < 0 or idx.max() >= width):
            raise _fail(self.ctx, f"indices must be in [0, {width}) (X's last dimension), got {idx.tolist()}")
        out = arr[..., idx]
        return (out.reshape(1, -1) if arr.ndim == 1 else out,)


@register("Binarizer", domain=ML, since=1)
class Binarizer(Op):
    """Binarizer-1: 1 where ``x > threshold``, else 0, in ``x``'s dtype."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self._threshold = float(ctx.attr("threshold", 0.0))

    def run(self, x: Any) -> tuple[np.ndarray]:
        arr = np.asarray(x)
        if arr.dtype.kind not in "fiu":
            raise _fail(self.ctx, f"X must be a numeric tensor, got {arr.dtype}")
        return ((arr > self._threshold).astype(arr.dtype),)
