"""Graph-level ops: control flow (If, Loop, Scan), Constant, Identity, sequences, optionals.

Subgraphs run through ``OpContext.run_subgraph``; the values a subgraph reads
from the enclosing graph arrive after the node's declared inputs (names in
``OpContext.outer_names``). Sequences are Python lists of arrays; an empty
optional is ``None``, like an omitted optional input.

Example:
    >>> import numpy as np
    >>> from edgeai.ops._base import OpContext, lookup
    >>> Const = lookup("Constant", "", 13)
    >>> Const(OpContext("c", "Constant", opset=13, attrs={"value_ints": [1, 2]})).run()[0]
    array([1, 2])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeai.errors import InferenceError, ModelFormatError
from edgeai.ops._base import Op, OpContext, register

_CONSTANT_ATTRS = (
    "value",
    "value_float",
    "value_floats",
    "value_int",
    "value_ints",
    "value_string",
    "value_strings",
    "sparse_value",
)


@register("Constant", since=1)
class Constant(Op):
    """A tensor given as an attribute (any of the ``value*`` forms)."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        given = [k for k in _CONSTANT_ATTRS if k in ctx.attrs]
        if len(given) != 1:
            raise ModelFormatError(
                f"Constant node {ctx.node_name!r} must set exactly one of {', '.join(_CONSTANT_ATTRS)}; "
                f"it sets {given or 'none'}"
            )
        key = given[0]
        raw = ctx.attrs[key]
        if key in ("value", "sparse_value"):
            value = np.asarray(raw)
        elif key in ("value_float", "value_floats"):
            value = np.asarray(raw, dtype=np.float32)
        elif key in ("value_int", "value_ints"):
            value = np.asarray(raw, dtype=np.int64)
        else:
            value = np.asarray(raw, dtype=object)
        value.flags.writeable = False
        self.value = value

    def run(self) -> tuple[Any, ...]:
        return (self.value,)


@register("Identity", since=1)
class Identity(Op):
    """Its input, unchanged (tensors, sequences and optionals alike)."""

    def run(self, x: Any) -> tuple[Any, ...]:
        return (x,)


def _outer(ctx: OpContext, values: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(ctx.outer_names, values))


def _scalar_bool(value: Any) -> bool:
    arr = np.asarray(value)
    if arr.size != 1:
        raise InferenceError(f"a condition must hold one element, got shape {arr.shape}")
    return bool(arr.reshape(-1)[0])


@register("If", since=1)
class If(Op):
    """Run ``then_branch`` or ``else_branch`` on a boolean condition."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self.then_branch = ctx.attrs["then_branch"]
        self.else_branch = ctx.attrs["else_branch"]
        self.n_declared = 1

    def run(self, cond: Any, *outer: Any) -> tuple[Any, ...]:
        assert self.ctx.run_subgraph is not None
        branch = self.then_branch if _scalar_bool(cond) else self.else_branch
        return tuple(self.ctx.run_subgraph(branch, {}, _outer(self.ctx, outer)))


@register("Loop", since=1)
class Loop(Op):
    """A loop with a trip count and/or a condition, loop-carried values and scan outputs.

    Scan outputs are stacked along a new first axis (as ONNX Runtime does).
    """

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self.body = ctx.attrs["body"]
        self.n_carried = len(self.body.inputs) - 2
        self.n_scan = len(self.body.outputs) - 1 - self.n_carried
        if self.n_carried < 0 or self.n_scan < 0:
            raise ModelFormatError(
                f"Loop node {ctx.node_name!r}: its body needs 2 + N inputs and 1 + N + K outputs, "
                f"it has {len(self.body.inputs)} inputs and {len(self.body.outputs)} outputs"
            )
        self.n_declared = 2 + self.n_carried

    def run(self, trip_count: Any, cond: Any, *rest: Any) -> tuple[Any, ...]:
        assert self.ctx.run_subgraph is not None
        carried = list(rest[: self.n_carried])
        outer = _outer(self.ctx, rest[self.n_carried :])
        body = self.body
        max_trips = None if trip_count is None else int(np.asarray(trip_count).reshape(-1)[0])
        keep_going = True if cond is None else _scalar_bool(cond)
        if max_trips is None and cond is None:
            raise InferenceError(
                f"Loop node {self.ctx.node_name!r} has neither a trip count nor a condition: it would never end"
            )
        scans: list[list[Any]] = [[] for _ in range(self.n_scan)]
        cond_value = np.array(keep_going)
        i = 0
        while keep_going and (max_trips is None or i < max_trips):
            feeds = {body.inputs[0]: np.array(i, dtype=np.int64), body.inputs[1]: cond_value}
            feeds.update(zip(body.inputs[2:], carried))
            outs = self.ctx.run_subgraph(body, feeds, outer)
            cond_value = outs[0]
            keep_going = _scalar_bool(cond_value)
            carried = list(outs[1 : 1 + self.n_carried])
            for k in range(self.n_scan):
                scans[k].append(outs[1 + self.n_carried + k])
            i += 1
        stacked = []
        for k, values in enumerate(scans):
            if values:
                stacked.append(np.stack([np.asarray(v) for v in values]))
            else:
                stacked.append(self._empty_scan(k))
        return (*carried, *stacked)

    def _empty_scan(self, k: int) -> np.ndarray:
        """A scan output of zero iterations: (0, *per-iteration shape) when the body states it."""
        value = self.body.value(self.body.outputs[1 + self.n_carried + k])
        dtype = value.dtype if value.dtype is not None else np.float32
        shape = value.shape
        if shape is not None and all(isinstance(d, int) for d in shape):
            return np.empty((0, *shape), dtype=dtype)
        return np.empty((0,), dtype=dtype)


@register("Scan", since=8, until=8)
class ScanBatched(Op):
    """Scan-8: a leading batch axis on states and scan inputs, scan axis 1, optional lengths."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self.body = ctx.attrs["body"]
        self.m = int(ctx.attrs["num_scan_inputs"])
        self.n = len(self.body.inputs) - self.m
        self.k = len(self.body.outputs) - self.n
        self.in_dirs = list(ctx.attrs.get("directions", [0] * self.m))

    def run(self, seq_lens: Any, *args: Any) -> tuple[Any, ...]:
        assert self.ctx.run_subgraph is not None
        states = [np.asarray(a) for a in args[: self.n]]
        scans = [np.asarray(a) for a in args[self.n : self.n + self.m]]
        outer = _outer(self.ctx, args[self.n + self.m :])
        body = self.body
        batch = (states or scans)[0].shape[0]
        max_len = scans[0].shape[1] if scans else 0
        lens = [max_len] * batch if seq_lens is None else [int(v) for v in np.asarray(seq_lens)]
        final_states: list[list[Any]] = [[] for _ in range(self.n)]
        outputs: list[list[Any]] = [[] for _ in range(self.k)]
        for b in range(batch):
            st = [s[b] for s in states]
            per_step: list[list[Any]] = [[] for _ in range(self.k)]
            for t in range(lens[b]):
                feeds = dict(zip(body.inputs[: self.n], st))
                for j, x in enumerate(scans):
                    index = lens[b] - 1 - t if self.in_dirs[j] else t
                    feeds[body.inputs[self.n + j]] = x[b, index]
                outs = self.ctx.run_subgraph(body, feeds, outer)
                st = list(outs[: self.n])
                for j in range(self.k):
                    per_step[j].append(np.asarray(outs[self.n + j]))
            for j in range(self.n):
                final_states[j].append(np.asarray(st[j]))
            for j in range(self.k):
                outputs[j].append(np.stack(per_step[j]))
        return (*(np.stack(v) for v in final_states), *(np.stack(v) for v in outputs))


@register("Scan", since=9)
class Scan(Op):
    """Iterate a body over slices of scan inputs, with state carried between iterations."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self.body = ctx.attrs["body"]
        self.m = int(ctx.attrs["num_scan_inputs"])
        self.n = len(self.body.inputs) - self.m
        self.k = len(self.body.outputs) - self.n
        if self.n < 0 or self.k < 0:
            raise ModelFormatError(f"Scan node {ctx.node_name!r}: body inputs/outputs do not match")
        self.in_axes = list(ctx.attrs.get("scan_input_axes", [0] * self.m))
        self.in_dirs = list(ctx.attrs.get("scan_input_directions", [0] * self.m))
        self.out_axes = list(ctx.attrs.get("scan_output_axes", [0] * self.k))
        self.out_dirs = list(ctx.attrs.get("scan_output_directions", [0] * self.k))
        self.n_declared = self.n + self.m

    def run(self, *args: Any) -> tuple[Any, ...]:
        assert self.ctx.run_subgraph is not None
        states = list(args[: self.n])
        scan_inputs = [np.asarray(a) for a in args[self.n : self.n + self.m]]
        outer = _outer(self.ctx, args[self.n + self.m :])
        body = self.body
        axes = [ax % x.ndim for ax, x in zip(self.in_axes, scan_inputs)]
        lengths = {x.shape[ax] for ax, x in zip(axes, scan_inputs)}
        if len(lengths) > 1:
            raise InferenceError(
                f"Scan node {self.ctx.node_name!r}: scan inputs differ in length along their scan axes "
                f"({sorted(lengths)})"
            )
        length = lengths.pop() if lengths else 0
        collected: list[list[Any]] = [[] for _ in range(self.k)]
        for t in range(length):
            feeds = dict(zip(body.inputs[: self.n], states))
            for j, (x, ax) in enumerate(zip(scan_inputs, axes)):
                index = length - 1 - t if self.in_dirs[j] else t
                feeds[body.inputs[self.n + j]] = np.take(x, index, axis=ax)
            outs = self.ctx.run_subgraph(body, feeds, outer)
            states = list(outs[: self.n])
            for j in range(self.k):
                collected[j].append(np.asarray(outs[self.n + j]))
        results = []
        for j, values in enumerate(collected):
            if self.out_dirs[j]:
                values = values[::-1]
            if not values:
                results.append(np.empty((0,), dtype=np.float32))
                continue
            rank = values[0].ndim + 1
            results.append(np.stack(values, axis=self.out_axes[j] % rank))
        return (*states, *results)


# -- sequences -------------------------------------------------------------------


@register("SequenceMap", since=17)
class SequenceMap(Op):
    """Run ``body`` on each element of the input sequence (extra inputs: sequences
    walked in step, tensors passed whole); each body output becomes a sequence."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self.body = ctx.attrs["body"]
        self.n_declared = len(self.body.inputs)

    def run(self, seq: list[Any], *rest: Any) -> tuple[Any, ...]:
        assert self.ctx.run_subgraph is not None
        extra = rest[: self.n_declared - 1]
        outer = _outer(self.ctx, rest[self.n_declared - 1 :])
        body = self.body
        results: list[list[Any]] = [[] for _ in body.outputs]
        for i in range(len(seq)):
            feeds = {body.inputs[0]: seq[i]}
            for name, value in zip(body.inputs[1:], extra):
                feeds[name] = value[i] if isinstance(value, list) else value
            for j, out in enumerate(self.ctx.run_subgraph(body, feeds, outer)):
                results[j].append(out)
        return tuple(results)


def _position(pos: Any, length: int, *, inserting: bool = False) -> int:
    p = int(np.asarray(pos).reshape(-1)[0])
    limit = length + 1 if inserting else length
    if not -length <= p < limit:
        raise InferenceError(f"sequence position {p} is out of range for a sequence of {length}")
    return p + length if p < 0 else p


@register("SequenceEmpty", since=11)
class SequenceEmpty(Op):
    def run(self) -> tuple[Any, ...]:
        return ([],)


@register("SequenceConstruct", since=11)
class SequenceConstruct(Op):
    def run(self, *tensors: Any) -> tuple[Any, ...]:
        return (list(tensors),)


@register("SequenceAt", since=11)
class SequenceAt(Op):
    def run(self, seq: list[Any], pos: Any) -> tuple[Any, ...]:
        return (seq[_position(pos, len(seq))],)


@register("SequenceInsert", since=11)
class SequenceInsert(Op):
    def run(self, seq: list[Any], tensor: Any, pos: Any = None) -> tuple[Any, ...]:
        out = list(seq)
        where = len(out) if pos is None else _position(pos, len(out), inserting=True)
        out.insert(where, tensor)
        return (out,)


@register("SequenceErase", since=11)
class SequenceErase(Op):
    def run(self, seq: list[Any], pos: Any = None) -> tuple[Any, ...]:
        out = list(seq)
        del out[len(out) - 1 if pos is None else _position(pos, len(out))]
        return (out,)


@register("SequenceLength", since=11)
class SequenceLength(Op):
    def run(self, seq: list[Any]) -> tuple[Any, ...]:
        return (np.array(len(seq), dtype=np.int64),)


@register("ConcatFromSequence", since=11)
class ConcatFromSequence(Op):
    def run(self, seq: list[Any]) -> tuple[Any, ...]:
        axis = int(self.ctx.attrs["axis"])
        if int(self.ctx.attrs.get("new_axis", 0)):
            rank = np.asarray(seq[0]).ndim + 1
            return (np.stack(seq, axis=axis % rank),)
        return (np.concatenate(seq, axis=axis),)


@register("SplitToSequence", since=11)
class SplitToSequence(Op):
    def run(self, x: np.ndarray, split: Any = None) -> tuple[Any, ...]:
        axis = int(self.ctx.attrs.get("axis", 0)) % x.ndim
        size = x.shape[axis]
        if split is None:
            parts = np.split(x, size, axis=axis)
            if not int(self.ctx.attrs.get("keepdims", 1)):
                parts = [np.squeeze(p, axis=axis) for p in parts]
            return (parts,)
        split = np.asarray(split)
        if split.ndim == 0:
            step = int(split)
            bounds = list(range(step, size, step))
        else:
            bounds = list(np.cumsum(split.astype(np.int64))[:-1])
        return (np.split(x, bounds, axis=axis),)


# -- optionals --------------------------------------------------------------------


@register("Optional", since=15, until=15)
class Optional(Op):
    def run(self, x: Any = None) -> tuple[Any, ...]:
        return (x,)


@register("OptionalHasElement", since=15, until=18)
class OptionalHasElement(Op):
    def run(self, x: Any = None) -> tuple[Any, ...]:
        return (np.array(x is not None),)


@register("OptionalGetElement", since=15, until=18)
class OptionalGetElement(Op):
    def run(self, x: Any) -> tuple[Any, ...]:
        if x is None:
            raise InferenceError(
                f"OptionalGetElement node {self.ctx.node_name!r} got an empty optional; "
                "check it with OptionalHasElement first"
            )
        return (x,)
