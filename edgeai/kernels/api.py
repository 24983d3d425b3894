"""The kernel API the native INT8 ops call: prepare once, run many times.

``prepare_gemm`` / ``prepare_conv`` validate and pack constant weights once
(when the session is created) and return a callable that runs the fast kernel
for the CPU's best path (see :mod:`edgeai.kernels.cpu`), or ``None`` when no
kernel fits (the caller then uses its reference implementation).

Zero points, bias and requantization are fused into the store of each output
tile. Results are exact: the same integers as an int64 reference, and, after
requantization, the same bytes as ONNX Runtime (``mode="onnx"``) or TFLite
(``mode="tflite"``).

Example:
    >>> import numpy as np
    >>> from edgeai.kernels.api import prepare_gemm
    >>> b = np.array([[1, -2], [3, 4], [-5, 6]], dtype=np.int8)
    >>> f = prepare_gemm(b, 0, a_dtype=np.uint8)
    >>> a = np.array([[10, 20, 30]], dtype=np.uint8)
    >>> f(a, 10)
    array([[-70, 160]], dtype=int32)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeai.errors import InputShapeError, InputTypeError, KernelError
from edgeai.kernels import _record
from edgeai.kernels.cpu import cpu_features, kernel_path, set_kernel_path

if TYPE_CHECKING:
    from edgeai.kernels.convolution import prepare_conv

__all__ = [
    "KernelArgumentError",
    "Requant",
    "cpu_features",
    "prepare_conv",
    "prepare_gemm",
    "set_kernel_path",
]

_INT8 = (np.dtype(np.uint8), np.dtype(np.int8))
_AMX_CONFIG: np.ndarray | None = None
_ROW_SUMS: Any = None
_ROWS_ENTRIES: Any = None
_PREPARE_ROWS: Any = None
_ROWS_OPERANDS: Any = None
_ALIGNED_EMPTY: Any = None
_AMX_MIN_K = 16  # GEMMs with K up to this run on VNNI tiles in the AMX driver (see GemmKernel._plan)
# VNNI row blocks with the store fused (tiles.ROWS_ENTRIES) up to this many MACs per call, or at any size for
# K <= _AMX_MIN_K or a single row: measured against the AMX / 8x32 VNNI tile drivers here (2304x8x48:
# 26 -> 15 us, 576x48x16: 6.6 -> 4.2 us, 9x160x1280: 12.3 -> 10 us); above it AMX wins (2304x64x48, 7 M
# MACs: 34 against 37 us; 576x96x96: 27 against 34 us)
_ROWS_MAX_MACS = 2_000_000
# tile-driver GEMMs of at least this many MACs write a 64-byte aligned output: zmm stores that straddle two cache
# lines touch both, and the AMX driver streams large int32 outputs only to aligned rows (1024^3, ratio to ONNX
# Runtime in one process: 0.95-1.08 -> 1.19-1.49; 256^3: no change)
_ALIGN_MIN_MACS = 8_000_000


class KernelArgumentError(KernelError):
    """Weights, zero points or requantization parameters that no kernel can take as given."""


@dataclass(frozen=True)
class Requant:
    """Output requantization fused into the kernel's store.

    ``mode="onnx"``: ``q = saturate(rint(float32(acc) * scale) + zero_point)`` in float32 with
    round half to even, exactly as ONNX Runtime's MLAS; ``scale`` is
    ``x_scale * w_scale / y_scale`` (float32, shape ``()`` or ``(N,)``).

    ``mode="tflite"``: gemmlowp fixed point, ``multiplier`` (int32, Q31) and ``shift`` (int32)
    per tensor or per output channel. ``shift`` uses TFLite's sign convention: positive
    shifts left, negative shifts right (``real_scale ~= multiplier * 2**(shift - 31)``).

    ``act_min``/``act_max`` clamp the quantized output (a fused ReLU/ReLU6); they default to
    the range of ``dtype``.

    Example:
        >>> import numpy as np
        >>> r = Requant("onnx", np.float32(0.02), None, None, zero_point=128, dtype=np.dtype(np.uint8))
        >>> r.bounds()
        (0, 255)
    """

    mode: str
    scale: np.ndarray | None
    multiplier: np.ndarray | None
    shift: np.ndarray | None
    zero_point: int
    dtype: np.dtype
    act_min: int | None = None
    act_max: int | None = None

    def bounds(self) -> tuple[int, int]:
        info = np.iinfo(np.dtype(self.dtype))
        lo = info.min if self.act_min is None else max(info.min, int(self.act_min))
        hi = info.max if self.act_max is None else min(info.max, int(self.act_max))
        return lo, hi


def _per_column(value: Any, n: int, dtype: Any, what: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim == 0 or arr.size == 1:
        return np.full(n, arr.reshape(()), dtype)
    if arr.shape != (n,):
        raise KernelArgumentError(f"{what} has shape {arr.shape}; expected a scalar or ({n},)")
    return np.ascontiguousarray(arr, dtype=dtype)


@dataclass
class _Epilogue:
    """Per-column arrays for the fused store, in the order the drivers take them."""

    mode: int
    scale: np.ndarray
    mult: np.ndarray
    shift: np.ndarray
    zp: int
    qmin: int
    qmax: int
    out_dtype: np.dtype

    def slice(self, lo: int, hi: int) -> _Epilogue:
        return _Epilogue(
            self.mode,
            self.scale[lo:hi].copy(),
            self.mult[lo:hi].copy(),
            self.shift[lo:hi].copy(),
            self.zp,
            self.qmin,
            self.qmax,
            self.out_dtype,
        )


def _epilogue(requant: Requant | None, n: int) -> _Epilogue:
    if requant is None:
        z = np.zeros(n, np.int32)
        return _Epilogue(0, np.zeros(n, np.float32), z, z.copy(), 0, 0, 0, np.dtype(np.int32))
    if not isinstance(requant, Requant):
        raise KernelArgumentError(f"requant must be a Requant or None, not {type(requant).__name__}")
    dtype = np.dtype(requant.dtype)
    if dtype not in _INT8:
        raise KernelArgumentError(f"requant.dtype must be uint8 or int8, not {dtype}")
    qmin, qmax = requant.bounds()
    if qmin > qmax:
        raise KernelArgumentError(f"act_min {requant.act_min} > act_max {requant.act_max}")
    zp = int(requant.zero_point)
    if not np.iinfo(dtype).min <= zp <= np.iinfo(dtype).max:
        raise KernelArgumentError(f"output zero point {zp} is outside the range of {dtype}")
    z = np.zeros(n, np.int32)
    if requant.mode == "onnx":
        if requant.scale is None:
            raise KernelArgumentError("Requant(mode='onnx') needs scale (x_scale * w_scale / y_scale)")
        scale = _per_column(requant.scale, n, np.float32, "requant.scale")
        if not np.all(np.isfinite(scale)):
            raise KernelArgumentError("requant.scale has a non-finite value")
        return _Epilogue(1, scale, z, z.copy(), zp, qmin, qmax, dtype)
    if requant.mode == "tflite":
        if requant.multiplier is None or requant.shift is None:
            raise KernelArgumentError("Requant(mode='tflite') needs multiplier and shift (int32)")
        mult = _per_column(requant.multiplier, n, np.int64, "requant.multiplier")
        shift = _per_column(requant.shift, n, np.int64, "requant.shift")
        if mult.min() < 0 or mult.max() > 2**31 - 1 or shift.min() < -31 or shift.max() > 30:
            raise KernelArgumentError(
                "requant.multiplier must be in [0, 2**31) and shift in [-31, 30] (TFLite convention)"
            )
        return _Epilogue(
            2, np.zeros(n, np.float32), mult.astype(np.int32), shift.astype(np.int32), zp, qmin, qmax, dtype
        )
    raise KernelArgumentError(f"requant.mode must be 'onnx' or 'tflite', not {requant.mode!r}")


def _check_int8(arr: np.ndarray, what: str) -> None:
    if arr.dtype not in _INT8:
        raise KernelArgumentError(f"{what} must be uint8 or int8, not {arr.dtype}")


def _zero_points(zp: Any, n: int, dtype: np.dtype, what: str) -> np.ndarray:
    z = _per_column(zp, n, np.int64, what)
    info = np.iinfo(dtype)
    if z.size and (z.min() < info.min or z.max() > info.max):
        raise KernelArgumentError(f"{what} is outside the range of {dtype}")
    return z


def _bias(bias: Any, n: int) -> np.ndarray:
    if bias is None:
        return np.zeros(n, np.int64)
    b = np.asarray(bias)
    if b.dtype != np.int32 or b.shape != (n,):
        raise KernelArgumentError(f"bias must be int32 of shape ({n},), got {b.dtype} {b.shape}")
    return b.astype(np.int64)


def _wrap32(v: np.ndarray) -> np.ndarray:
    """int32 with two's-complement wrap: the kernels' epilogue arithmetic is modulo 2**32."""
    return ((np.asarray(v, np.int64) + 2**31) % 2**32 - 2**31).astype(np.int32)


class _Packed:
    """Weights [K, N] packed for one kernel kind, with what the zero-point correction needs."""

    def __init__(self, bmat: np.ndarray, real: np.ndarray, bz: np.ndarray, path: str, kind: str | None = None) -> None:
        # real[k]: False for K rows that are padding (zero in A's layout); they stay zero after the shift
        from edgeai.kernels.pack import choose_kind, pack_panels
        from edgeai.kernels.tiles import KIND_CODES, KIND_TILE

        self.kind, offset = choose_kind(path, bmat[real])
        if kind is not None and kind != self.kind:
            # one microkernel serves every group of a grouped conv: all groups take the same kind
            # (avx2_i16 is exact for any int8/uint8 weights and needs no offset)
            self.kind, offset = kind, 0
        self.code = KIND_CODES[self.kind]
        self.mr, self.nr = KIND_TILE[self.code]
        shifted = np.where(real[:, None], bmat - offset, 0)
        self.packed, self.panel_bytes = pack_panels(shifted, self.kind)
        self.n = bmat.shape[1]
        self.bz = _wrap32(bz - offset)  # (b - bz) == (shifted - (bz - offset))
        self.colsum = shifted.sum(axis=0)
        self.k_real = int(real.sum())
        self.has_bz = bool(np.any(self.bz != 0))
        self.colsum = self.colsum.astype(np.int64)
        self._coloff: dict[int, np.ndarray] = {}

    def coloff(self, azp: int, bias: np.ndarray) -> np.ndarray:
        """bias - a_zp * colsum(b) + K * a_zp * b_zp, per column (cached per activation zero point)."""
        c = self._coloff.get(azp)
        if c is None:
            c = _wrap32(bias - azp * self.colsum + self.k_real * azp * self.bz.astype(np.int64))
            self._coloff[azp] = c
        return c


def _entry(code: int, threads: int) -> Any:
    from edgeai.kernels.tiles import (
        AMX_CONFIG,
        ENTRY_PARALLEL,
        ENTRY_SERIAL,
        ROWS_ENTRIES,
        aligned_empty,
        row_sums,
        rows_operands,
    )
    from edgeai.kernels.transpose import prepare_rows

    global _AMX_CONFIG, _ROW_SUMS, _ROWS_ENTRIES, _ROWS_OPERANDS, _ALIGNED_EMPTY, _PREPARE_ROWS
    _ALIGNED_EMPTY = aligned_empty
    _PREPARE_ROWS = prepare_rows
    _AMX_CONFIG = AMX_CONFIG  # bound here, once: an import in the per-call path costs microseconds
    _ROW_SUMS = row_sums
    _ROWS_ENTRIES, _ROWS_OPERANDS = ROWS_ENTRIES, rows_operands

    return (ENTRY_PARALLEL if threads > 1 else ENTRY_SERIAL)[code]


def _bound_entry(fn: Any, args: list | tuple) -> Any:
    """The compiled entry of the numba dispatcher ``fn`` for the types of ``args``, or None.

    Calling it skips numba's per-call type dispatch (about 30% of the fixed cost of a small GEMM
    through a ~28-argument driver entry). Only for calls whose argument types never change (the
    kernels' own scratch and packed arrays; ``a`` and ``out`` always 1-D C-contiguous of fixed
    dtypes): the entry unboxes by the bound types and does not check them. A read-only array binds
    the writable version (the drivers only read their inputs), so it adds no compiled variant.
    When ``fn`` has no compiled version for these types yet, it is called once through the
    dispatcher (compiling or loading it from the cache) and None is returned: bind again on the
    next call.
    """
    from numba import types

    sig = [fn.typeof_pyval(v) for v in args]
    readonly = [i for i, t in enumerate(sig) if isinstance(t, types.Array) and not t.mutable]
    for i in readonly:  # a read-only input is only read: bind the writable version, not a new one
        sig[i] = sig[i].copy(readonly=False)
    cres = fn.overloads.get(tuple(sig))
    if cres is None:
        args = list(args)
        for i in readonly:
            args[i] = args[i].copy()
        fn(*args)
        return None
    return cres.entry_point


_THREAD_CALLS: tuple | None = None


def _thread_calls() -> tuple:
    """(get, set, NUMBA_NUM_THREADS): the threading layer's own get/set of this thread's count.

    numba's public ``get_num_threads``/``set_num_threads`` take the threading layer's init locks
    on every call (about 1 and 2.4 us here, 4.8 us per scoped kernel call); once the layer is
    launched, the C functions they end in are called directly (about 0.3 us for both)."""
    global _THREAD_CALLS
    if _THREAD_CALLS is None:
        import numba

        numba.get_num_threads()  # launches the threading layer (once per process)
        try:
            from numba.np.ufunc import parallel

            get, set_ = parallel._get_num_threads, parallel._set_num_threads
            if not (callable(get) and callable(set_)):
                raise AttributeError
        except (ImportError, AttributeError):  # another numba layout: the public functions
            get, set_ = numba.get_num_threads, numba.set_num_threads
        _THREAD_CALLS = (get, set_, numba.config.NUMBA_NUM_THREADS)
    return _THREAD_CALLS


class _ThreadScope:
    """Run numba's parallel region with ``threads`` threads, restoring the previous count."""

    def __init__(self, threads: int) -> None:
        self.get, self.set, limit = _thread_calls()
        self.threads = min(threads, limit)

    def __enter__(self) -> None:
        self.prev = self.get()
        if self.prev != self.threads:
            self.set(self.threads)

    def __exit__(self, *exc: object) -> None:
        if self.prev != self.threads:
            self.set(self.prev)


def _check_threads(threads: int) -> int:
    if not isinstance(threads, (int, np.integer)) or threads < 1:
        raise KernelArgumentError(f"threads must be a positive integer, not {threads!r}")
    return int(threads)


class _GemmPlan:
    """One driver call of a GEMM shape (M, a_zp): the entry, its argument list, where ``a``, the output
    and the row sums go in it (``rs_index`` -1: no row sums), and the entry bound by :func:`_bound_entry`."""

    __slots__ = (
        "a_index", "align", "args", "call", "flat", "fn", "mid", "out_index", "pre", "rowsum", "rs_index", "tail",
    )  # fmt: skip

    def __init__(
        self, fn: Any, args: list, a_index: int, out_index: int, rs_index: int, rowsum: Any, flat: bool = True,
        align: bool = False,
    ) -> None:  # fmt: skip
        self.fn, self.args, self.call, self.flat = fn, args, None, flat  # flat: a and out as 1-D arrays
        self.align = align  # a 64-byte aligned output (see _ALIGN_MIN_MACS)
        self.a_index, self.out_index, self.rs_index, self.rowsum = a_index, out_index, rs_index, rowsum
        if rs_index >= 0:
            args[rs_index] = rowsum  # the constant row sums of weights without a zero point (zeros)
        # the arguments around a and out, for GemmKernel.__call__'s direct call
        self.pre, self.mid, self.tail = (
            tuple(args[:a_index]),
            tuple(args[a_index + 1 : out_index]),
            tuple(args[out_index + 1 :]),
        )


class GemmKernel:
    """``f(a, a_zp)``: INT8 GEMM against weights packed at construction (see :func:`prepare_gemm`)."""

    def __init__(
        self,
        b: np.ndarray,
        b_zp: Any,
        a_dtype: Any,
        bias: Any,
        requant: Requant | None,
        threads: int,
        path: str,
    ) -> None:
        self.k, self.n = b.shape
        self.a_dtype = np.dtype(a_dtype)
        self._zp_range = (int(np.iinfo(self.a_dtype).min), int(np.iinfo(self.a_dtype).max))
        self._signed = self.a_dtype == np.int8
        self.amx = path == "amx"
        # positions of a and rowsum in the entry's arguments (AMX entries take the tile configuration first)
        self._a_index, self._rs_index = (1, 14) if self.amx else (0, 10)
        align = 64 if self.amx else 4  # AMX steps K by 64 bytes; the other kernels by 4
        self.k4 = -(-self.k // align) * align
        # bytes per row of a padded copy of A: K in whole 64-byte steps for AMX tiles, in groups of 4
        # for the vector kernels (and for AMX GEMMs of K <= _AMX_MIN_K, which run on VNNI tiles only)
        self._arow = self.k4 if self.amx and self.k > _AMX_MIN_K else -(-self.k // 4) * 4
        bmat = np.zeros((self.k4, self.n), np.int64)
        bmat[: self.k] = b
        real = np.arange(self.k4) < self.k
        self.pk = _Packed(bmat, real, _zero_points(b_zp, self.n, b.dtype, "b_zp"), path)
        self._has_bz = self.pk.has_bz
        # A's row stride as the driver reads it. AMX with K % 4 == 0: no copy, AMX reads whole
        # 64-byte K steps, so the bytes past K of a row are the next row's (times zero weights);
        # the block holding the last row goes to the VNNI kernel. Otherwise a copy padded to _arow.
        self._lda = self.k if self.amx and self.k % 4 == 0 else self._arow
        self.path = path
        self.bias = _bias(bias, self.n)
        self.ep = _epilogue(requant, self.n)
        self._out_dtype = self.ep.out_dtype
        self.threads = threads
        self.fn = _entry(self.pk.code, threads)
        self._row_sums: Any = None  # tiles.row_sums bound on first use (weights with a zero point)
        self._segoff = np.zeros(1, np.int64)
        self._plans: dict[tuple[int, int], _GemmPlan] = {}
        self._hot: tuple[Any, Any, Any] = (None, None, None)  # (a.shape, a_zp, plan) of the direct call: see __call__
        self._prep = self._signed or self._lda != self.k
        # VNNI row blocks, store fused (tiles.ROWS_ENTRIES): AVX-512 kinds, one thread, no weight zero point (row term)
        from edgeai.kernels.tiles import KIND_CODES

        self._rows = self.pk.code in (KIND_CODES["vnni"], KIND_CODES["amx"]) and not self._has_bz and threads == 1

    def _plan(self, m: int, lda: int, azp: int) -> _GemmPlan:
        """The driver call for (M, a_zp), built once (kept for 16 keys): every argument but ``a``, the row
        sums and ``out``."""
        pk, ep = self.pk, self.ep
        rowoffs = np.arange(m, dtype=np.int64) * lda
        if self._rows and (m == 1 or self.k <= _AMX_MIN_K or m * self.k * self.n <= _ROWS_MAX_MACS):
            # (one row, a classifier's: the weights stream past once either way, 1x1280x1000 34 -> 23 us)
            consts, geo = _ROWS_OPERANDS(
                1, -(-self.k // 4), pk.panel_bytes, self.n, ep, pk.coloff(azp, self.bias), 0, self.n, self._segoff,
                rowoffs,
            )  # fmt: skip
            fn = _ROWS_ENTRIES[ep.mode]
            return _GemmPlan(fn, [None, pk.packed, consts, geo, None], 0, 4, -1, None, flat=False)
        tail = [pk.packed, pk.panel_bytes, self.n, m]
        post = [pk.bz, pk.coloff(azp, self.bias), ep.mode, ep.scale, ep.mult, ep.shift, ep.zp, ep.qmin, ep.qmax]
        if self.amx:
            # row blocks of 32: the A block stays in L1 while the weight panels stream past it
            # row r reads [r * lda, r * lda + k4): only rows whose read ends inside A go to AMX, the
            # last ceil(k4 / lda) - 1 rows to the VNNI tiles (with lda < 64 that is more than one row)
            amx_end = m if lda % 64 == 0 else max(0, m - (-(-self.k4 // lda)) + 1)
            if self.k <= _AMX_MIN_K:
                # every row on the driver's VNNI tiles: a 64-byte AMX step padded from K <= 16 wastes
                # most of the tile, and the tiles' latency left the AMX loop slower than VNNI there
                # (2304 x 8 x 48: 36 -> 24 us); the same compiled driver, no second entry point
                amx_end = 0
            mid = [rowoffs, lda, self._segoff, 1, self.k4 // 64, -(-self.k // 4), amx_end, *tail, 32]
            args = [_AMX_CONFIG, None, *mid, None, *post, None, 0, self.n, 1]
        else:
            mc = max(pk.mr, (131072 // max(self.k4, 4)) // pk.mr * pk.mr)
            mid = [rowoffs, self._segoff, 1, self.k4 // 4, *tail, mc]
            args = [None, *mid, None, *post, None, 0, self.n, 1]
        align = m * self.k * self.n >= _ALIGN_MIN_MACS
        return _GemmPlan(
            self.fn, args, self._a_index, len(args) - 4, self._rs_index, np.zeros(m, np.int32), align=align
        )

    def __call__(self, a: np.ndarray, a_zp: int = 0) -> np.ndarray:
        # the per-call path of every GEMM of a model: a base ndarray of the input dtype whose (shape, a_zp) has a
        # bound plan goes straight to the entry (about 0.5 us here before the kernel; the shape in the key
        # stands for the checks the plan was built after)
        if a.__class__ is np.ndarray and a.dtype is self.a_dtype:
            shape, (hot_shape, hot_zp, plan) = a.shape, self._hot
            if shape == hot_shape and a_zp == hot_zp:
                if self._prep:
                    a = self._prepared(a, shape[0])
                if plan.align:
                    out = _ALIGNED_EMPTY(shape[0], self.n, self._out_dtype)
                else:
                    out = np.empty((shape[0], self.n), self._out_dtype)
                if plan.flat:  # the tile drivers take flat arrays (ravel: a view, or a C copy)
                    args = (*plan.pre, a.ravel(), *plan.mid, out.ravel(), *plan.tail)
                else:  # tiles.ROWS_ENTRIES take the 2-D arrays as they are
                    args = (a if a.flags.c_contiguous else np.ascontiguousarray(a), *plan.mid, out)
                if _record.RECORD is not None:
                    _record.RECORD.append((plan.fn, args))
                plan.call(*args)
                return out
        else:
            a = self._coerce(a)
        shape = a.shape
        if len(shape) != 2 or shape[1] != self.k:
            raise InputShapeError(f"GEMM input has shape {shape}; expected (M, {self.k})")
        return self._call_planned(a, a_zp)

    def _prepared(self, a: np.ndarray, m: int) -> np.ndarray:
        """``a`` as the kernels read it: int8 as uint8 (u8 = s8 + 128: the same differences with a_zp + 128,
        in the plan), rows padded to the kernel's stride."""
        out = np.empty((m, self.k), np.uint8) if self._lda == self.k else np.zeros((m, self._lda), np.uint8)
        _record.call(_PREPARE_ROWS, a.view(np.uint8), 0x80 if self._signed else 0, out)
        return out

    def _coerce(self, a: Any) -> np.ndarray:
        """``a`` as a base ndarray of the input dtype, or the error that says why it is not one."""
        if not isinstance(a, np.ndarray) or a.dtype != self.a_dtype:
            raise InputTypeError(
                f"GEMM input must be a {self.a_dtype} array, got {getattr(a, 'dtype', type(a).__name__)}"
            )
        return np.asarray(a)  # a subclass (np.matrix reshapes to 2-D): the entry takes base arrays

    def _call_planned(self, a: np.ndarray, a_zp: Any) -> np.ndarray:
        """The first call of an (M, a_zp) (checks a_zp, builds the plan, binds the entry), every call with a
        weight zero point (fresh row sums) or with threads (a thread scope), and empty products."""
        azp = key_zp = a_zp if a_zp.__class__ is int else int(a_zp)
        lo, hi = self._zp_range
        if not lo <= azp <= hi:
            raise InputTypeError(f"a_zp {azp} is outside the range of {self.a_dtype}")
        m = a.shape[0]
        a = self._prepared(a, m)
        if self._signed:
            azp += 128
        lda = self._lda
        out = np.empty((m, self.n), self._out_dtype)
        if m == 0 or self.n == 0:
            return out
        plan = self._plans.get((m, key_zp))
        if plan is None:
            plan = self._plan(m, lda, azp)
            if len(self._plans) < 16:
                self._plans[(m, key_zp)] = plan
        if plan.align:  # as in __call__'s direct call (weights with a zero point always come here)
            out = _ALIGNED_EMPTY(m, self.n, self._out_dtype)
        args = plan.args.copy()
        a1 = a.ravel()
        args[plan.a_index] = a1 if plan.flat else np.ascontiguousarray(a)
        args[plan.out_index] = out.ravel() if plan.flat else out
        if plan.rs_index >= 0:
            rowsum = plan.rowsum
            if self._has_bz:
                rowsum = np.empty(m, np.int32)
                rs_args = (a1, m, self.k, lda, rowsum)  # |sum| < 2**31 for K < 2**23
                if _record.RECORD is not None:
                    _record.RECORD.append((_ROW_SUMS, rs_args))
                if self._row_sums is not None:
                    self._row_sums(*rs_args)
                else:  # bind it (or, the first time ever, run it through numba's dispatcher)
                    self._row_sums = _bound_entry(_ROW_SUMS, rs_args)
                    if self._row_sums is not None:
                        self._row_sums(*rs_args)
            args[plan.rs_index] = rowsum
        call = plan.call
        if call is None:
            if self.threads > 1:  # the first run (through numba's dispatcher) keeps the thread count too
                with _ThreadScope(self.threads):
                    call = plan.call = _bound_entry(plan.fn, args)
            else:
                call = plan.call = _bound_entry(plan.fn, args)
            if call is None:  # just compiled (or loaded) and run by the dispatcher
                return out
            # later calls of this shape and zero point go straight to the entry unless they need row sums or a
            # thread scope (one such shape: a model calls each GEMM with one)
            if self.threads == 1 and not (plan.rs_index >= 0 and self._has_bz):
                self._hot = ((m, self.k), key_zp, plan)
        if _record.RECORD is not None:
            _record.RECORD.append((plan.fn, tuple(args)))
        if self.threads > 1:
            with _ThreadScope(self.threads):
                call(*args)
        else:
            call(*args)
        return out


def prepare_gemm(
    b: np.ndarray,
    b_zp: Any,
    *,
    a_dtype: Any,
    bias: np.ndarray | None = None,
    requant: Requant | None = None,
    threads: int = 1,
) -> Callable[[np.ndarray, int], np.ndarray] | None:
    """Pack constant weights ``b`` [K, N] once; return ``f(a, a_zp)`` computing the INT8 GEMM.

    ``f(a, a_zp)`` takes ``a`` [M, K] of ``a_dtype`` and returns ``(a - a_zp) @ (b - b_zp) + bias``
    as int32 [M, N] when ``requant`` is None, else that result requantized to ``requant.dtype``.
    ``b_zp`` is a scalar or per column [N]. Returns None when no kernel fits (no numba).

    Example:
        >>> import numpy as np
        >>> b = np.full((64, 8), 3, np.int8)
        >>> f = prepare_gemm(b, 1, a_dtype=np.int8, requant=Requant(
        ...     "onnx", np.float32(0.25), None, None, zero_point=0, dtype=np.dtype(np.int8)))
        >>> f(np.ones((2, 64), np.int8), 0)[0, :3]   # 64 * 1 * 2 * 0.25 = 32
        array([32, 32, 32], dtype=int8)
    """
    b = np.asarray(b)
    _check_int8(b, "b (weights)")
    if b.ndim != 2:
        raise KernelArgumentError(f"b must be a 2-D [K, N] matrix, got shape {b.shape}")
    if np.dtype(a_dtype) not in _INT8:
        raise KernelArgumentError(f"a_dtype must be uint8 or int8, not {np.dtype(a_dtype)}")
    try:
        import numba  # noqa: F401
    except ImportError:
        return None
    return GemmKernel(b, b_zp, a_dtype, bias, requant, _check_threads(threads), kernel_path())


def __getattr__(name: str) -> Any:
    # the convolution kernels live in edgeai.kernels.convolution (imported on first use)
    if name in ("ConvKernel", "prepare_conv"):
        from edgeai.kernels import convolution

        return getattr(convolution, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
