"""Reductions, ArgMax/ArgMin, TopK, CumSum and CumProd in numpy.

The Reduce* ops take ``axes`` as an attribute up to opset 12 (ReduceSum) or
17 (the others) and as an optional input afterwards, where an empty or
omitted ``axes`` reduces everything unless ``noop_with_empty_axes=1``.
Reductions keep the input dtype (numpy would widen int32 sums to int64) and
give the identity of the reduction over empty axes (0 for sums, -inf for
ReduceMax and ReduceLogSum...).

Example:
    >>> import numpy as np
    >>> from edgeai.ops._base import OpContext, lookup
    >>> ReduceSum = lookup("ReduceSum", "", 13)
    >>> ReduceSum(OpContext(node_name="r", op_type="ReduceSum", opset=13, attrs={"keepdims": 0})).run(
    ...     np.array([[1, 2], [3, 4]], np.int32), np.array([1]))[0]
    array([3, 7], dtype=int32)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np

from edgeai.errors import InferenceError
from edgeai.kernels import _record
from edgeai.ops._base import Op, OpContext, nhwc_base
from edgeai.ops.elementwise import as_dtype, is_float, register_versions, unsupported

__all__: list[str] = []


def _is_float(dtype: np.dtype) -> bool:
    return is_float(dtype)


class _Reduce(Op):
    """Common axes/keepdims handling; subclasses implement :meth:`reduce` on a compute-dtype array."""

    axes_input_from: ClassVar[int] = 18

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self._keepdims = bool(ctx.attr("keepdims", 1))
        self._noop = bool(ctx.attr("noop_with_empty_axes", 0))
        self._axes_attr = ctx.attr("axes")

    def reduce(self, x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
        raise NotImplementedError

    def run(self, x: np.ndarray, axes: np.ndarray | None = None) -> tuple[np.ndarray]:
        x = np.asarray(x)
        if self.ctx.opset < self.axes_input_from:
            axes_v = self._axes_attr
        else:
            axes_v = None if axes is None else np.asarray(axes).reshape(-1).tolist()
        if not axes_v:
            if self._noop and self.ctx.opset >= self.axes_input_from:
                return (x.copy(),)
            norm: tuple[int, ...] = tuple(range(x.ndim))
        else:
            norm = tuple(sorted({self._axis(int(a), x.ndim) for a in axes_v}))
        work = x.astype(np.float32) if _is_float(x.dtype) and x.dtype.itemsize < 4 else x
        with np.errstate(all="ignore"):
            out = self.reduce(work, norm)
        if self._keepdims:
            out = np.reshape(out, [1 if i in norm else d for i, d in enumerate(x.shape)])
        else:
            out = np.reshape(out, [d for i, d in enumerate(x.shape) if i not in norm])
        return (as_dtype(out, x.dtype),)

    def _axis(self, a: int, rank: int) -> int:
        if not -rank <= a < max(rank, 1):
            raise InferenceError(
                f"{self.ctx.op_type} node {self.ctx.node_name!r}: axis {a} is out of range for rank {rank}"
            )
        return a + rank if a < 0 else a


def _lowest(dtype: np.dtype) -> float | int:
    return -np.inf if _is_float(dtype) else (False if dtype == np.bool_ else np.iinfo(dtype).min)


def _highest(dtype: np.dtype) -> float | int:
    return np.inf if _is_float(dtype) else (True if dtype == np.bool_ else np.iinfo(dtype).max)


@register_versions("ReduceSum", (1, 11, 13))
class ReduceSum(_Reduce):
    axes_input_from = 13

    def reduce(self, x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
        return np.sum(x, axis=axes, dtype=x.dtype)


@register_versions("ReduceMean", (1, 11, 13, 18))
class ReduceMean(_Reduce):
    """ONNX ReduceMean. A float32 mean over trailing axes (global pooling: axes 2, 3 of NCHW) runs
    in one numba loop that adds in ONNX Runtime's order (:mod:`edgeai.ops._mean_kernels`), also over an
    NCHW view of an NHWC array (what an INT8 convolution hands on), so the result is ORT's bytes."""

    accepts_nhwc_views = True  # the float32 trailing-axes loop reads them; other cases copy (c_order)
    program_safe = True  # the bound step's work is one recorded kernel call (edgeai.graph.program)

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self._first_axis: dict[int, int | None] = {}
        self._plans: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {}  # (leads, program) per layout
        # ORT sums a graph input in the caller's buffer, at its address; any other tensor in a buffer of
        # its own, 16-byte aligned (where edgeai may hold a view at an offset: Split, Slice)
        self._callers_buffer = bool(ctx.graph_inputs and ctx.graph_inputs[0])
        const_axes = ctx.input_consts[1] if len(ctx.input_consts) > 1 else None
        if ctx.opset < self.axes_input_from:
            self._static_axes: list[int] | None = list(self._axes_attr) if self._axes_attr else None
        elif const_axes is not None:
            self._static_axes = np.asarray(const_axes).reshape(-1).tolist() or None
        else:
            self._static_axes = None

    def run(self, x: np.ndarray, axes: np.ndarray | None = None) -> tuple[np.ndarray]:
        if type(x) is np.ndarray and x.dtype == _F32 and self._static_axes is not None and x.size:
            first = self._first_axis.get(x.ndim, -1)
            if first == -1:
                first = self._first_axis[x.ndim] = self._trailing_from(x.ndim)
            if first is not None:
                return (self._mean_trailing(x, first),)
        if type(x) is np.ndarray and not x.flags.c_contiguous:
            x = np.ascontiguousarray(x)
        return super().run(x, axes)

    @property
    def nhwc_raw_inputs(self) -> tuple[int, ...]:
        """``(0,)`` when the static axes are H and W of a rank-4 input: the bound step then takes ``x``
        as an NHWC array (see :mod:`edgeai.graph.executor`)."""
        return (0,) if self._static_axes is not None and self._trailing_from(4) == 2 else ()

    def bind_static(
        self, nhwc_in: frozenset[int] = frozenset(), nhwc_out: bool = False
    ) -> tuple[Callable[[np.ndarray], tuple[np.ndarray]], tuple[int, ...]] | None:
        """With ``0 in nhwc_in``: ``(step(x), (0,))`` averaging an NHWC float32 array over H and W in
        ONNX Runtime's order; None otherwise (:meth:`run` is called)."""
        if 0 not in nhwc_in or not self.nhwc_raw_inputs:
            return None
        from edgeai.ops import _mean_kernels as mk  # numba: only where an INT8 op hands NHWC arrays on

        run, consts, ndarray, mean = self.run, self.ctx.input_consts[1:2], np.ndarray, self._mean_nhwc
        plans, run_program, empty, keepdims = self._plans, mk.run_mean_program, np.empty, self._keepdims

        def step(x: np.ndarray) -> tuple[np.ndarray]:
            if type(x) is ndarray and x.dtype == _F32 and x.flags.c_contiguous and x.size:
                nb, h, w, c = x.shape
                key = (nb, h * w, c)
                plan = plans.get(key)
                if plan is None:
                    return (mean(x),)  # makes the plan of this shape
                out = empty((nb, c, 1, 1) if keepdims else (nb, c), _F32)
                args = (x.reshape(key), plan[0], plan[1], out.reshape(nb, c))
                if _record.RECORD is not None:
                    _record.RECORD.append((run_program, args))
                run_program(*args)
                return (out,)
            return run(x.transpose(0, 3, 1, 2), *consts)

        return step, (0,)

    def _trailing_from(self, rank: int) -> int | None:
        """``k`` when the static axes are exactly ``k..rank-1`` (``k >= 0``), else None."""
        assert self._static_axes is not None
        try:
            norm = sorted({self._axis(int(a), rank) for a in self._static_axes})
        except InferenceError:
            return None  # reported by the generic path
        if not norm or norm != list(range(norm[0], rank)):
            return None
        return norm[0]

    def _mean_trailing(self, x: np.ndarray, first: int) -> np.ndarray:
        from edgeai.ops import _mean_kernels as mk  # numba is imported here, at the first use

        base = nhwc_base(x) if first == 2 else None
        if base is not None:
            return self._mean_nhwc(base)
        kept = x.shape[:first]
        out = np.empty(kept + (1,) * (x.ndim - first) if self._keepdims else kept, _F32)
        # rows of a C-contiguous array (a strided one is copied first: ORT's order is the copy's)
        x = np.ascontiguousarray(x)
        k = 1
        for d in kept:
            k *= d
        r = x.size // k
        address = x.ctypes.data if self._callers_buffer else 0
        key = (k, r, address & 15 if address & 3 == 0 else -1)
        plan = self._plans.get(key)
        if plan is None:
            leads = mk.leads_rows(address, k, r)
            plan = self._plans[key] = (leads, mk.mean_program(r, tuple(np.unique(leads).tolist())))
        columns = np.ascontiguousarray(x.reshape(k, r).T).reshape(1, r, k)
        mk.run_mean_program(columns, plan[0], plan[1], out.reshape(1, k))
        return out

    def _mean_nhwc(self, base: np.ndarray) -> np.ndarray:
        """The mean over H and W of the C-contiguous NHWC float32 ``base`` (an NCHW value), its
        additions in the order ORT sums its NCHW copy."""
        from edgeai.ops import _mean_kernels as mk

        nb, h, w, c = base.shape
        out = np.empty((nb, c, 1, 1) if self._keepdims else (nb, c), _F32)
        key: tuple[int, ...] = (nb, h * w, c)
        plan = self._plans.get(key)
        if plan is None:
            leads = mk.leads_nhwc(nb, h * w, c)
            plan = self._plans[key] = (leads, mk.mean_program(h * w, tuple(np.unique(leads).tolist())))
        mk.run_mean_program(base.reshape(nb, h * w, c), plan[0], plan[1], out.reshape(nb, c))
        return out

    def reduce(self, x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
        if _is_float(x.dtype):
            n = 1
            for a in axes:
                n *= x.shape[a]
            return np.add.reduce(x, axis=axes, dtype=x.dtype) / x.dtype.type(n)
        n = int(np.prod([x.shape[a] for a in axes]))
        s = np.sum(x, axis=axes, dtype=np.int64 if x.dtype.kind == "i" else np.uint64)
        return _int_div(s, n) if n else s


_F32 = np.dtype(np.float32)


def _int_div(s: np.ndarray, n: int) -> np.ndarray:
    q = np.abs(s) // n  # integer mean truncates toward zero, as ONNX Runtime does
    return np.where(s < 0, -q, q)


@register_versions("ReduceMax", (1, 11, 12, 13, 18, 20))
class ReduceMax(_Reduce):
    def reduce(self, x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
        return np.max(x, axis=axes, initial=_lowest(x.dtype))


@register_versions("ReduceMin", (1, 11, 12, 13, 18, 20))
class ReduceMin(_Reduce):
    def reduce(self, x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
        return np.min(x, axis=axes, initial=_highest(x.dtype))


@register_versions("ReduceProd", (1, 11, 13, 18))
class ReduceProd(_Reduce):
    def reduce(self, x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
        return np.prod(x, axis=axes, dtype=x.dtype)


@register_versions("ReduceL1", (1, 11, 13, 18))
class ReduceL1(_Reduce):
    def reduce(self, x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
        return np.sum(np.abs(x), axis=axes, dtype=x.dtype)


@register_versions("ReduceL2", (1, 11, 13, 18))
class ReduceL2(_Reduce):
    def reduce(self, x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
        if not _is_float(x.dtype):
            return np.sqrt(np.sum(np.square(x.astype(np.float64)), axis=axes))
        return np.sqrt(np.sum(np.square(x), axis=axes, dtype=x.dtype))


@register_versions("ReduceSumSquare", (1, 11, 13, 18))
class ReduceSumSquare(_Reduce):
    def reduce(self, x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
        return np.sum(np.square(x), axis=axes, dtype=x.dtype)


@register_versions("ReduceLogSum", (1, 11, 13, 18, 28))  # 28 drops the integer types
class ReduceLogSum(_Reduce):
    def reduce(self, x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
        if not _is_float(x.dtype):
            return np.log(np.sum(x.astype(np.float64), axis=axes))
        return np.log(np.sum(x, axis=axes, dtype=x.dtype))


@register_versions("ReduceLogSumExp", (1, 11, 13, 18, 28))
class ReduceLogSumExp(_Reduce):
    def reduce(self, x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
        if not _is_float(x.dtype):
            x = x.astype(np.float64)
        # shift by the max so exp never overflows; an all -inf (or empty) slice stays -inf
        m = np.max(x, axis=axes, keepdims=True, initial=-np.inf)
        m = np.where(np.isfinite(m), m, x.dtype.type(0))
        s = np.sum(np.exp(x - m), axis=axes, keepdims=True, dtype=x.dtype)
        return np.squeeze(np.log(s) + m, axis=axes)


# --------------------------------------------------------------------------- ArgMax / ArgMin


class _ArgExtreme(Op):
    pick: ClassVar = staticmethod(np.argmax)

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self._axis = int(ctx.attr("axis", 0))
        self._keepdims = bool(ctx.attr("keepdims", 1))
        self._last = bool(ctx.attr("select_last_index", 0))

    def run(self, x: np.ndarray) -> tuple[np.ndarray]:
        x = np.asarray(x)
        if not -x.ndim <= self._axis < x.ndim:
            raise InferenceError(
                f"{self.ctx.op_type} node {self.ctx.node_name!r}: axis {self._axis} is out of range for rank {x.ndim}"
            )
        axis = self._axis % x.ndim
        if x.dtype.itemsize < 4 and _is_float(x.dtype):
            x = x.astype(np.float32)
        if self._last:
            n = x.shape[axis]
            idx = n - 1 - type(self).pick(np.flip(x, axis=axis), axis=axis)
        else:
            idx = type(self).pick(x, axis=axis)
        if self._keepdims:
            idx = np.expand_dims(idx, axis)
        return (as_dtype(idx, np.dtype(np.int64)),)


@register_versions("ArgMax", (1, 11, 12, 13))
class ArgMax(_ArgExtreme):
    pick = staticmethod(np.argmax)


@register_versions("ArgMin", (1, 11, 12, 13))
class ArgMin(_ArgExtreme):
    pick = staticmethod(np.argmin)


# --------------------------------------------------------------------------- TopK, CumSum


@register_versions("TopK", (1, 10, 11, 24))
class TopK(Op):
    """TopK: values and int64 indices; among equal values the lower index comes first."""

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self._axis = int(ctx.attr("axis", -1))
        self._largest = bool(ctx.attr("largest", 1))
        self._k_attr = ctx.attr("k")
        if ctx.opset < 10 and self._k_attr is None:
            raise unsupported(ctx, "opset < 10 TopK needs the 'k' attribute")

    def run(self, x: np.ndarray, k: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x)
        kk = int(self._k_attr) if self.ctx.opset < 10 else int(np.asarray(k).reshape(-1)[0])
        if not -x.ndim <= self._axis < x.ndim:
            raise InferenceError(f"TopK node {self.ctx.node_name!r}: axis {self._axis} out of range")
        axis = self._axis % x.ndim
        n = x.shape[axis]
        if not 0 <= kk <= n:
            raise InferenceError(
                f"TopK node {self.ctx.node_name!r}: k={kk} must be within [0, {n}] (the size of axis {axis})"
            )
        work = x.astype(np.float32) if x.dtype.itemsize < 4 and _is_float(x.dtype) else x
        if self._largest:
            # stable ascending sort of the reversed axis, read backwards: descending, ties by lower index
            order = np.argsort(np.flip(work, axis=axis), axis=axis, kind="stable")
            order = n - 1 - np.flip(order, axis=axis)
        else:
            order = np.argsort(work, axis=axis, kind="stable")
        idx = np.take(order, np.arange(kk), axis=axis)
        return (np.take_along_axis(x, idx, axis=axis), as_dtype(idx, np.dtype(np.int64)))


class _Cumulative(Op):
    """CumSum / CumProd along an axis given as a scalar input, ``exclusive`` and ``reverse`` attributes."""

    identity = 0

    def __init__(self, ctx: OpContext) -> None:
        super().__init__(ctx)
        self._exclusive = bool(ctx.attr("exclusive", 0))
        self._reverse = bool(ctx.attr("reverse", 0))

    def accumulate(self, x: np.ndarray, axis: int, dtype: np.dtype) -> np.ndarray:
        raise NotImplementedError

    def run(self, x: np.ndarray, axis: np.ndarray) -> tuple[np.ndarray]:
        x = np.asarray(x)
        a = int(np.asarray(axis).reshape(-1)[0])
        if not -x.ndim <= a < x.ndim:
            raise InferenceError(
                f"{self.ctx.op_type} node {self.ctx.node_name!r}: axis {a} out of range for rank {x.ndim}"
            )
        a %= x.ndim
        work = np.flip(x, axis=a) if self._reverse else x
        acc_dtype = np.dtype(np.float32) if x.dtype.itemsize < 4 and _is_float(x.dtype) else x.dtype
        out = self.accumulate(work, a, acc_dtype)
        if self._exclusive:
            first = np.full_like(np.take(out, [0], axis=a), self.identity)
            out = np.concatenate([first, np.take(out, np.arange(x.shape[a] - 1), axis=a)], axis=a)
        if self._reverse:
            out = np.flip(out, axis=a)
        return (as_dtype(out, x.dtype),)


@register_versions("CumSum", (11, 14))
class CumSum(_Cumulative):
    identity = 0

    def accumulate(self, x: np.ndarray, axis: int, dtype: np.dtype) -> np.ndarray:
        return np.cumsum(x, axis=axis, dtype=dtype)


@register_versions("CumProd", (26,))
class CumProd(_Cumulative):
    identity = 1

    def accumulate(self, x: np.ndarray, axis: int, dtype: np.dtype) -> np.ndarray:
        return np.cumprod(x, axis=axis, dtype=dtype)
