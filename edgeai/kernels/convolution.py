"""INT8 2-D convolution kernels: ``prepare_conv`` packs weights once, the callable runs them.

Direct convolution over a padded NHWC staging of the input (no im2col), on the GEMM tile
drivers of :mod:`edgeai.kernels.tiles`; a 1x1 convolution without padding over uint8 NHWC
input (C a multiple of 4) reads its rows in the input itself. NHWC results are stored straight
into the caller's array, NCHW ones go through one 16x16-block byte transpose
(:mod:`edgeai.kernels.transpose`). Depthwise convolution runs on exact float32 channel vectors
(:mod:`edgeai.kernels.depthwise`; kernels above 258 taps on the int16 loop of
:mod:`edgeai.kernels.conv`). Re-exported by :mod:`edgeai.kernels.api`.

Example:
    >>> import numpy as np
    >>> from edgeai.kernels.api import prepare_conv
    >>> f = prepare_conv(np.ones((1, 1, 1, 1), np.int8), 0, x_dtype=np.uint8)
    >>> f(np.full((1, 1, 2, 2), 3, np.uint8), 1)[0, 0]
    array([[2, 2],
           [2, 2]], dtype=int32)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from edgeai.errors import InputShapeError, InputTypeError
from edgeai.kernels import _record
from edgeai.kernels.api import (
    _INT8,
    KernelArgumentError,
    Requant,
    _bias,
    _bound_entry,
    _check_int8,
    _check_threads,
    _entry,
    _Epilogue,
    _epilogue,
    _Packed,
    _ThreadScope,
    _zero_points,
)
from edgeai.kernels.cpu import kernel_path

__all__ = ["ConvKernel", "prepare_conv"]

_KERNELS: Any = None


def _kernels() -> Any:
    """The numba kernel modules, imported once on first use (this module imports without numba)."""
    global _KERNELS
    if _KERNELS is None:
        from types import SimpleNamespace

        from edgeai.kernels import conv, depthwise, transpose
        from edgeai.kernels.tiles import AMX_CONFIG, ROWS_ENTRIES, row_sums, rows_operands

        _KERNELS = SimpleNamespace(
            conv=conv,
            dw=depthwise,
            pixels_to_planes=transpose.pixels_to_planes,
            drop_virtual_pixels=transpose.drop_virtual_pixels,
            amx_config=AMX_CONFIG,
            row_sums=row_sums,
            rows_entries=ROWS_ENTRIES,
            rows_operands=rows_operands,
        )
    return _KERNELS


def _pair(value: Any, name: str, default: int) -> tuple[int, int]:
    if value is None:
        return default, default
    v = tuple(int(x) for x in value)
    if len(v) != 2:
        raise KernelArgumentError(f"{name} must have 2 values for a 2-D convolution, got {list(v)}")
    return v  # type: ignore[return-value]


class ConvKernel:
    """``f(x, x_zp)``: INT8 2-D convolution, NCHW in and out, NHWC inside (see :func:`prepare_conv`)."""

    def __init__(
        self,
        w: np.ndarray,
        w_zp: Any,
        x_dtype: Any,
        strides: Any,
        pads: Any,
        dilations: Any,
        group: int,
        bias: Any,
        requant: Requant | None,
        threads: int,
        path: str,
        layout: str = "NCHW",
    ) -> None:
        self.m, self.cg, self.kh, self.kw = w.shape
        self.group = int(group)
        if self.group < 1 or self.m % self.group:
            raise KernelArgumentError(f"group={group} must be >= 1 and divide the {self.m} output channels")
        self.c = self.cg * self.group
        self.mg = self.m // self.group
        self.sh, self.sw = _pair(strides, "strides", 1)
        self.dh, self.dw = _pair(dilations, "dilations", 1)
        p = [0, 0, 0, 0] if pads is None else [int(v) for v in pads]
        if len(p) != 4 or min(p) < 0:
            raise KernelArgumentError(f"pads must be 4 non-negative values [top, left, bottom, right], got {p}")
        if min(self.sh, self.sw, self.dh, self.dw) < 1:
            raise KernelArgumentError("strides and dilations must be >= 1")
        self.pt, self.pl, self.pb, self.pr = p
        self.x_dtype = np.dtype(x_dtype)
        self._zp_range = (int(np.iinfo(self.x_dtype).min), int(np.iinfo(self.x_dtype).max))
        self._signed = self.x_dtype == np.int8
        self._shape_cache: dict[tuple[int, ...], tuple[Any, ...]] = {}
        self._scratch: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self._dw_fast: dict[tuple[Any, ...], tuple[Any, ...]] = {}  # see __call__
        self.float_dw = False  # set below for a depthwise convolution of at most MAX_TAPS taps
        self.amx_inplace = False  # set below for a 1x1 convolution that AMX reads in its uint8 NHWC input
        if layout not in ("NCHW", "NHWC"):
            raise KernelArgumentError(f"layout must be 'NCHW' or 'NHWC', not {layout!r}")
        self.nhwc = layout == "NHWC"
        self.threads = threads
        self._k = _kernels()
        # AMX needs rows at one stride: stride-1 convolutions, computed over "virtual" output
        # pixels (every padded input column; those past the output width are dropped)
        self.amx = path == "amx" and self.sh == 1 and self.sw == 1
        self.path = "vnni" if path == "amx" and not self.amx else path
        wz = _zero_points(w_zp, self.m, w.dtype, "w_zp")
        self.bias = _bias(bias, self.m)
        self.ep = _epilogue(requant, self.m)
        self.depthwise = self.cg == 1 and self.mg == 1
        if self.depthwise:
            wq = w[:, 0].astype(np.int64) - wz[:, None, None]  # [M, kH, kW], at most 9 bits
            self.float_dw = self.kh * self.kw <= self._k.dw.MAX_TAPS
            if self.float_dw:
                self._prepare_depthwise(wq)
            else:  # too many taps for exact float32 sums: (x - x_zp) * (w - w_zp) in int16 x int16 -> int32
                self.wdw = np.ascontiguousarray(wq.transpose(1, 2, 0).astype(np.int16))
            return
        self.c4 = -(-self.cg // 4) * 4
        # a 1x1 convolution without padding over NHWC input whose C is a multiple of 4 reads its
        # GEMM rows in the input itself (uint8 input only: int8 needs the flip of the staging)
        self.inplace = self.nhwc and self.kh == self.kw == 1 and self.group == 1 and self.c4 == self.cg and max(p) == 0
        self.amx_inplace = self.amx and self.inplace and self.x_dtype == np.uint8
        self.packs: list[_Packed] = []
        self.eps: list[_Epilogue] = []
        self.biases: list[np.ndarray] = []
        self._group_sources: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for g in range(self.group):
            sl = slice(g * self.mg, (g + 1) * self.mg)
            wg = w[sl].astype(np.int64).transpose(2, 3, 1, 0)  # [kH, kW, Cg, Mg]
            bmat = np.zeros((self.kh, self.kw, self.c4, self.mg), np.int64)
            bmat[:, :, : self.cg] = wg
            real = np.broadcast_to(np.arange(self.c4) < self.cg, (self.kh, self.kw, self.c4))
            if self.amx:  # each K run (one per kernel row, or per tap when dilated) padded to 64 bytes
                runs = self.kh if self.dw == 1 else self.kh * self.kw
                run = bmat.size // self.mg // runs
                self.run64 = -(-run // 64) * 64
                padded = np.zeros((runs, self.run64, self.mg), np.int64)
                padded[:, :run] = bmat.reshape(runs, run, self.mg)
                preal = np.zeros((runs, self.run64), bool)
                preal[:, :run] = real.reshape(runs, run)
                bmat, real = padded, preal
            self._group_sources.append((bmat.reshape(-1, self.mg), real.reshape(-1), wz[sl]))
            self.packs.append(_Packed(*self._group_sources[-1], self.path))
            self.eps.append(self.ep.slice(g * self.mg, (g + 1) * self.mg))
            self.biases.append(self.bias[sl].copy())
        if len({p.kind for p in self.packs}) > 1:
            # groups chose different microkernels (AVX2: 7-bit for some, int16 for others); the call runs
            # one kernel for all groups, so repack them all with the exact int16 kind
            self.packs = [_Packed(*src, self.path, kind="avx2_i16") for src in self._group_sources]
        self._group_sources = []
        self.fn = _entry(self.packs[0].code, threads)
        # the GEMM path (strided, or no AMX) on VNNI row blocks with the store fused (tiles.ROWS_ENTRIES): one
        # thread, AVX-512 kinds, weights without a zero point (no row term); the first convolution of
        # MobileNetV2 (3x3/2, 3 -> 16 at 96x96) 21 -> 13 us, its N = 16 no longer padded to a 32-column panel
        self.rows = not self.amx and threads == 1 and self.packs[0].code in (0, 4)
        self.rows = self.rows and not any(p.has_bz for p in self.packs)
        self._rows_args: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {}
        self._geom: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, int, int]] = {}

    def _prepare_depthwise(self, wq: np.ndarray) -> None:
        """Weights and per-channel parameters for :mod:`edgeai.kernels.depthwise`, in chunks of nine taps."""
        chunk = self._k.dw.CHUNK

        taps = self.kh * self.kw
        self.nchunks = -(-taps // chunk)
        wsc = np.zeros((self.m, self.nchunks * chunk), np.float32)
        wsc[:, :taps] = wq.reshape(self.m, taps)
        self.wsc = wsc  # NCHW: one row of tap weights per channel
        ep = self.ep
        # ONNX requantization with the bias added to the exact float32 sum (mode 3) when that stays exact
        bound = int(np.abs(self.bias).max(initial=0)) + taps * 255 * 255
        self.dw_mode = 3 if ep.mode == 1 and bound < 2**24 else ep.mode
        # (bias, fbias, scale, mult, shift): the ones this output mode does not use are None, so the
        # kernel is compiled for this mode alone (see edgeai.kernels.depthwise)
        used = {0: (1, 0, 0, 0, 0), 1: (1, 0, 1, 0, 0), 2: (1, 0, 0, 1, 1), 3: (0, 1, 1, 0, 0)}[self.dw_mode]
        params = (self.bias.astype(np.int32), self.bias.astype(np.float32), ep.scale, ep.mult, ep.shift)
        self.params = tuple(np.ascontiguousarray(v) if u else None for v, u in zip(params, used, strict=True))
        self.pair = self.kh == 3 and self.kw == 3 and self.sh == self.dh  # NCHW: two output rows per pass
        # NHWC on register-held weights (edgeai.kernels.dwvec): [C / LANES blocks, chunks, 9, LANES]
        lanes = self._k.dw.LANES
        self.cp = -(-self.m // lanes) * lanes
        wv = np.zeros((self.cp, wsc.shape[1]), np.float32)
        wv[: self.m] = wsc
        self.wv = np.ascontiguousarray(wv.reshape(-1, lanes, self.nchunks, chunk).transpose(0, 2, 3, 1)).reshape(-1)
        self._dw_plans: dict[tuple[int, int], tuple[Any, ...]] = {}

    def _depthwise_plan(self, hp: int, wp: int, oh: int, ow: int) -> tuple[Any, ...]:
        """(kernel, its arguments before the output, scratch shapes, [bound entry]) of one padded input size."""
        dwk = self._k.dw
        i, j = np.divmod(np.arange(self.kh * self.kw, dtype=np.int64), self.kw)
        offs = np.zeros(self.wsc.shape[1], np.int64)
        ep, f32 = self.ep, np.dtype(np.float32)
        parallel = self.threads > 1
        if self.nhwc:
            span_h = (self.kh - 1) * self.dh + 1
            lanes = dwk.LANES
            # bands of about 256 KB of float32 (L2)
            rb = max(1, min(oh, (65536 // max(1, wp * self.cp) - span_h) // self.sh + 1))
            if parallel:  # at least two bands per thread
                rb = min(rb, -(-oh // (2 * self.threads)))
            cap = (rb - 1) * self.sh + span_h
            offs[: len(i)] = (i * self.dh * wp + j * self.dw) * lanes
            k3 = self.sw if self.kh == self.kw == 3 and self.dw == 1 and self.sw in (1, 2) else 0
            geo = [self.pt, self.pl, self.sh, self.sw, span_h, rb, wp, cap, oh, ow, k3]
            nb = -(-oh // rb) if parallel else 1
            geo_arr = np.array([*geo, ep.zp, ep.qmin, ep.qmax], np.int64)
            band = ((nb, cap * wp * self.cp), f32)
            if k3 and self.m % lanes == 0 and self.dw_mode in (1, 3):  # the fused 3x3 loop: no acc
                fn = dwk.depthwise_nhwc3_parallel if parallel else dwk.depthwise_nhwc3
                bias, fbias, scale = self.params[:3]
                return fn, (geo_arr, self.wv, bias, fbias, scale), (band,), [None]
            fn = dwk.depthwise_nhwc_parallel if parallel else dwk.depthwise_nhwc
            shapes = (band, ((nb, ow * self.cp), f32))
            return fn, (geo_arr, offs.reshape(self.nchunks, -1), self.wv, *self.params), shapes, [None]
        wq = -(-wp // self.sw)  # NCHW: columns per phase
        phase, col = np.divmod(j * self.dw, self.sw)[::-1]
        offs[: len(i)] = (phase * hp + i * self.dh) * wq + col
        geo = [self.pt, self.pl, self.sh, self.sw, hp, wq, oh, ow, int(self.pair)]
        nb = min(self.m, 4 * self.threads) if parallel else 1
        fn = dwk.depthwise_nchw_parallel if parallel else dwk.depthwise_nchw
        shapes = (((nb, self.sw * hp * wq), f32), ((nb, ow), f32) if self.nchunks > 1 else None)
        geo_arr = np.array([*geo, ep.zp, ep.qmin, ep.qmax], np.int64)
        return fn, (geo_arr, offs.reshape(self.nchunks, -1), self.wsc, *self.params), shapes, [None]

    def _depthwise_scratch(self, shapes: tuple[Any, ...]) -> tuple[Any, ...]:
        # the kernel's band / plane (zeros: their padding is never written) and acc, from (shape, dtype) or
        # None; a row per band or channel chunk when parallel, else the one row itself
        arrs = [None if sd is None else np.zeros(*sd) for sd in shapes]
        if self.threads == 1:
            arrs = [None if a is None else a[0] for a in arrs]
        return tuple(arrs)

    def _run_depthwise(self, x: np.ndarray, xzp: int, hp: int, wp: int, oh: int, ow: int, out: np.ndarray) -> None:
        # x in its own dtype (uint8 or int8) with its own zero point: the staging converts to float32 directly
        key = (hp, wp)
        plan = self._dw_plans.get(key)
        if plan is None:
            plan = self._depthwise_plan(hp, wp, oh, ow)
            if len(self._dw_plans) < 16:
                self._dw_plans[key] = plan
        fn, head, shapes, bound = plan
        scratch = self._take(key) or self._depthwise_scratch(shapes)  # reused by later calls of this size
        flat, per_image = out.reshape(-1), oh * ow * self.m
        for n in range(x.shape[0]):
            args = (x, n, head[0], xzp, *head[1:], flat, n * per_image, *scratch)
            # the compiled entry, bound once: x is a C-contiguous array of the input dtype (checked by
            # __call__), every other argument this plan's own, so the types never change
            call = bound[0]
            if call is None:
                call = bound[0] = _bound_entry(fn, args)
                if call is None:  # _bound_entry ran fn itself (compiling it); bound on the next call
                    continue
            if _record.RECORD is not None:
                _record.RECORD.append((fn, args))
            call(*args)
        self._give(key, scratch)
        if bound[0] is not None and x.shape[0] == 1 and self.threads == 1 and len(self._dw_fast) < 16:
            self._dw_fast[(x.shape, xzp)] = (bound[0], (head[0], xzp, *head[1:]), key, out.shape, fn)

    def _geometry(self, hp: int, wp: int, oh: int, ow: int) -> tuple[np.ndarray, np.ndarray, int, int]:
        key = (hp, wp)
        g = self._geom.get(key)
        if g is None:
            y, x = np.divmod(np.arange(oh * ow, dtype=np.int64), ow)
            rowoffs = (y * self.sh * wp + x * self.sw) * self.c4
            if self.amx:  # virtual pixels: oh * Wp rows at the stride C4
                rowoffs = np.arange(oh * wp, dtype=np.int64) * self.c4
            if self.dw == 1:  # one contiguous run of kW * C4 bytes per kernel row
                segoff = np.arange(self.kh, dtype=np.int64) * self.dh * wp * self.c4
                seglen = self.kw * self.c4 // 4
            else:
                i, j = np.divmod(np.arange(self.kh * self.kw, dtype=np.int64), self.kw)
                segoff = (i * self.dh * wp + j * self.dw) * self.c4
                seglen = self.c4 // 4
            if self.amx:
                seglen = self.run64 // 64
            g = (rowoffs, segoff, len(segoff), seglen)
            if len(self._geom) < 16:
                self._geom[key] = g
        return g

    def _amx_call(
        self,
        g: int,
        a: np.ndarray,
        rowoffs: np.ndarray,
        segoff: np.ndarray,
        nseg: int,
        seglen64: int,
        rows: int,
        rowsum: np.ndarray,
        xzp: int,
        dst: np.ndarray,
        obase: int,
    ) -> None:
        pk, epg = self.packs[g], self.eps[g]
        _record.call(
            self.fn,
            self._k.amx_config, a, rowoffs, self.c4, segoff, nseg, seglen64, seglen64 * 16, rows, pk.packed,
            pk.panel_bytes, self.mg, rows, 32, rowsum, pk.bz, pk.coloff(xzp, self.biases[g]), epg.mode, epg.scale,
            epg.mult, epg.shift, epg.zp, epg.qmin, epg.qmax, dst, obase, self.m, 1,
        )  # fmt: skip

    def _inplace_plan(self, plane: int, xzp: int) -> tuple[Any, ...]:
        """The 1x1 in-place AMX calls' arguments for one image size and zero point, with their scratch."""
        c = self.c4
        rowoffs = np.arange(plane, dtype=np.int64) * c  # the pixels are the rows, C bytes apart
        segoff, nseg, seglen64 = np.zeros(1, np.int64), 1, self.run64 // 64
        # every row is read in whole 64-byte steps (past its C bytes: the next pixels' bytes, times
        # zero weights); the last rows, whose read would pass the end of x, go from a small copy
        safe = max(0, plane - (-(-self.run64 // c)) + 1)
        if safe * c <= 16384:  # a small image: one kernel call over a copy costs less than two calls
            safe = 0
        tail = plane - safe
        rowsum, slack = np.zeros(plane, np.int32), np.zeros(tail * c + self.run64, np.uint8)
        pk, epg = self.packs[0], self.eps[0]

        def args(rows: int, sums: np.ndarray) -> tuple[Any, ...]:  # the driver's arguments from rowoffs to qmax
            return (
                rowoffs, c, segoff, nseg, seglen64, seglen64 * 16, rows, pk.packed, pk.panel_bytes, self.mg, rows, 32,
                sums, pk.bz, pk.coloff(xzp, self.biases[0]), epg.mode, epg.scale, epg.mult, epg.shift, epg.zp,
                epg.qmin, epg.qmax,
            )  # fmt: skip

        return safe, tail, rowsum, slack, args(safe, rowsum), args(tail, rowsum[safe:])

    def _run_amx_inplace(self, xu: np.ndarray, xzp: int, out: np.ndarray) -> None:
        """1x1, stride 1, no padding, uint8 NHWC with C % 4 == 0: the input's pixels are the GEMM rows."""
        plane = out.shape[1] * out.shape[2]
        key = ("inplace", plane, xzp)
        # the arguments hold the scratch (row sums, the tail's copy): taken out of the cache while in use
        plan = self._take(key) or self._inplace_plan(plane, xzp)
        safe, tail, rowsum, slack, safe_args, tail_args = plan
        fn, cfg, c, m = self.fn, self._k.amx_config, self.c4, self.m
        for n in range(xu.shape[0]):
            a = xu[n].reshape(-1)
            if self.packs[0].has_bz:
                _record.call(self._k.row_sums, a, plane, c, c, rowsum)  # the GEMM's row sums: rows of C bytes
            dst = out[n].reshape(-1)
            if safe:
                _record.call(fn, cfg, a, *safe_args, dst, 0, m, 1)
            if tail:
                slack[: tail * c] = a[safe * c :]  # (not a kernel call: a program of it fails its check)
                _record.call(fn, cfg, slack, *tail_args, dst, safe * m, m, 1)
        self._give(key, plan)

    def _run_amx(
        self,
        xu: np.ndarray,
        xzp: int,
        flip: int,
        hp: int,
        wp: int,
        oh: int,
        ow: int,
        rowoffs: np.ndarray,
        segoff: np.ndarray,
        nseg: int,
        seglen64: int,
        out: np.ndarray,
    ) -> None:
        conv, pixels_to_planes = self._k.conv, self._k.pixels_to_planes
        stage = conv.stage_from_nhwc if self.nhwc else conv.stage_from_nchw
        # A K run is read in whole 64-byte steps: past its end lie the next pixels' bytes (times
        # zero weights), and past the image a slack filled by the staging, so every read is in bounds.
        mv = oh * wp
        size = hp * wp * self.c4
        direct = self.nhwc and wp == ow  # no virtual pixels: the store writes the caller's NHWC rows
        key = ("amx", hp, wp)
        flat_buf, rowsum, valid, nhwc = self._take(key) or (
            np.empty(size + self.run64 + wp * self.c4 + 64, np.uint8),
            np.zeros(mv, np.int32),  # the virtual pixels' sums stay zero
            np.zeros(oh * ow, np.int32),
            None if direct else np.empty((mv, self.m), self.ep.out_dtype),
        )
        flat_buf[size:] = xzp
        buf = flat_buf[:size].reshape(hp, wp, self.c4)
        for n in range(out.shape[0]):
            dst = out[n].reshape(-1) if nhwc is None else nhwc.reshape(-1)
            for g in range(self.group):
                _record.call(stage, xu, n, g * self.cg, self.cg, self.pt, self.pl, xzp, flip, buf)
                if self.packs[g].has_bz:
                    _record.call(
                        conv.window_sums, buf, self.cg, self.kh, self.kw, 1, 1, self.dh, self.dw, oh, ow, valid
                    )
                    rowsum.reshape(oh, wp)[:, :ow] = valid.reshape(oh, ow)
                self._amx_call(g, flat_buf, rowoffs, segoff, nseg, seglen64, mv, rowsum, xzp, dst, g * self.mg)
            if nhwc is not None:
                if self.nhwc:
                    _record.call(self._k.drop_virtual_pixels, nhwc.reshape(-1), oh, ow, wp, self.m, out[n].reshape(-1))
                elif out.itemsize == 1:
                    _record.call(pixels_to_planes, nhwc.reshape(-1), oh, ow, wp, self.m, out[n].reshape(-1))
                else:
                    out[n] = nhwc.reshape(oh, wp, self.m)[:, :ow].transpose(2, 0, 1)
        self._give(key, (flat_buf, rowsum, valid, nhwc))

    def _take(self, key: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """Scratch arrays of an earlier call with this key, or None. They leave the cache while in use, so
        that a concurrent call allocates its own; no result handed out lives in them."""
        return self._scratch.pop(key, None)

    def _give(self, key: tuple[Any, ...], arrays: tuple[Any, ...]) -> None:
        if len(self._scratch) < 16:
            self._scratch[key] = arrays

    def _sizes(self, shape: tuple[int, ...]) -> tuple[int, int, int, int, int, int, int, tuple[int, ...]]:
        """(N, H, W, Hp, Wp, oH, oW, output shape) of an input shape, validated (kept for 16 shapes)."""
        got = self._shape_cache.get(shape)
        if got is not None:
            return got
        if len(shape) != 4 or shape[3 if self.nhwc else 1] != self.c:
            want = f"(N, H, W, {self.c})" if self.nhwc else f"(N, {self.c}, H, W)"
            raise InputShapeError(f"convolution input has shape {shape}; expected {want}")
        nb, h, w_in = (shape[0], shape[1], shape[2]) if self.nhwc else (shape[0], shape[2], shape[3])
        hp, wp = h + self.pt + self.pb, w_in + self.pl + self.pr
        oh = (hp - self.dh * (self.kh - 1) - 1) // self.sh + 1
        ow = (wp - self.dw * (self.kw - 1) - 1) // self.sw + 1
        if oh < 1 or ow < 1:
            raise InputShapeError(
                f"convolution input {h}x{w_in} (padded {hp}x{wp}) is smaller than the "
                f"{self.kh}x{self.kw} kernel at dilation {self.dh}x{self.dw}"
            )
        got = (nb, h, w_in, hp, wp, oh, ow, (nb, oh, ow, self.m) if self.nhwc else (nb, self.m, oh, ow))
        if len(self._shape_cache) < 16:
            self._shape_cache[shape] = got
        return got

    def __call__(self, x: np.ndarray, x_zp: int = 0) -> np.ndarray:
        if self._dw_fast and x.__class__ is np.ndarray and x.dtype is self.x_dtype and x_zp.__class__ is int:
            # a depthwise call of an input shape and zero point seen and checked before (one image, one
            # thread, C-contiguous): the bound entry with this plan's own arguments, no re-checks
            fast = self._dw_fast.get((x.shape, x_zp))
            if fast is not None and x.flags.c_contiguous:
                call, mid, key, out_shape, fn = fast
                scratch = self._scratch.pop(key, None)  # None while another thread uses it: the full path
                if scratch is not None:
                    out = np.empty(out_shape, self.ep.out_dtype)
                    if _record.RECORD is not None:
                        _record.RECORD.append((fn, (x, 0, *mid, out.reshape(-1), 0, *scratch)))
                    call(x, 0, *mid, out.reshape(-1), 0, *scratch)
                    self._scratch[key] = scratch
                    return out
        if not isinstance(x, np.ndarray) or x.dtype != self.x_dtype:
            raise InputTypeError(
                f"convolution input must be a {self.x_dtype} array, got {getattr(x, 'dtype', type(x).__name__)}"
            )
        nb, _, w_in, hp, wp, oh, ow, out_shape = self._sizes(x.shape)
        xzp = int(x_zp)
        if not self._zp_range[0] <= xzp <= self._zp_range[1]:
            raise InputTypeError(f"x_zp {xzp} is outside the range of {self.x_dtype}")
        if not x.flags.c_contiguous:
            x = np.ascontiguousarray(x)
        out = np.empty(out_shape, self.ep.out_dtype)
        if self.threads == 1:  # the common cases first: no thread scope
            if self.float_dw:
                self._run_depthwise(x, xzp, hp, wp, oh, ow, out)
                return out
            if self.amx_inplace:
                self._run_amx_inplace(x, xzp, out)
                return out
        flip, xu = 0, x
        if self._signed:  # u8 = s8 ^ 0x80 = s8 + 128
            flip, xzp, xu = 0x80, xzp + 128, x.view(np.uint8)
        conv, pixels_to_planes = self._k.conv, self._k.pixels_to_planes
        stage = conv.stage_from_nhwc if self.nhwc else conv.stage_from_nchw
        flat = out.reshape(-1)
        plane = oh * ow
        ep = self.ep
        scope = _ThreadScope(self.threads) if self.threads > 1 else None
        if scope:
            scope.__enter__()
        try:
            if self.depthwise and self.float_dw:
                self._run_depthwise(x, int(x_zp), hp, wp, oh, ow, out)
                return out
            if self.depthwise:
                # the depthwise loop writes NCHW; an NHWC caller gets it transposed once
                nchw = np.empty((nb, self.m, oh, ow), self.ep.out_dtype) if self.nhwc else out
                flat = nchw.reshape(-1)
                buf = np.empty((hp, wp, self.c), np.int16)
                for n in range(nb):
                    conv.depthwise_stage(xu, n, self.pt, self.pl, xzp, flip, buf, self.nhwc)
                    args = (
                        buf, self.wdw, self.sh, self.sw, self.dh, self.dw, oh, ow, self.bias,
                        ep.mode, ep.scale, ep.mult, ep.shift, ep.zp, ep.qmin, ep.qmax, flat, n * self.m * plane,
                    )  # fmt: skip
                    if self.threads > 1:
                        conv.depthwise_rows_parallel(*args, min(oh, 4 * self.threads))
                    else:
                        conv.depthwise_rows(*args)
                if self.nhwc:
                    out[...] = nchw.transpose(0, 2, 3, 1)
                return out
            if self.amx_inplace:
                self._run_amx_inplace(xu, xzp, out)
                return out
            rowoffs, segoff, nseg, seglen = self._geometry(hp, wp, oh, ow)
            if self.amx:
                self._run_amx(xu, xzp, flip, hp, wp, oh, ow, rowoffs, segoff, nseg, seglen, out)
                return out
            inplace = self.inplace and flip == 0  # 1x1 over uint8 NHWC: the rows are read in x itself
            k_total = self.kh * self.kw * self.c4
            mc = max(8, (131072 // max(k_total, 1)) // 8 * 8)
            # the fused store writes pixel-major [P, M] rows (contiguous, vectorized): straight into an
            # NHWC result, else into one buffer that one transpose per image turns into NCHW
            key = ("gemm", hp, wp, inplace)
            buf, rowsum, nhwc = self._take(key) or (
                None if inplace else np.empty((hp, wp, self.c4), np.uint8),
                np.zeros(plane, np.int32),
                None if self.nhwc else np.empty((plane, self.m), self.ep.out_dtype),
            )
            for n in range(nb):
                dst = out[n].reshape(-1) if nhwc is None else nhwc.reshape(-1)
                for g in range(self.group):
                    pk, epg = self.packs[g], self.eps[g]
                    if buf is None:
                        a = xu[n].reshape(-1)
                        if pk.has_bz:
                            _record.call(conv.pixel_sums, a, self.c4, self.sh, self.sw, w_in, oh, ow, rowsum)
                    else:
                        _record.call(stage, xu, n, g * self.cg, self.cg, self.pt, self.pl, xzp, flip, buf)
                        a = buf.reshape(-1)
                        if pk.has_bz:
                            _record.call(
                                conv.window_sums,
                                *(buf, self.cg, self.kh, self.kw, self.sh, self.sw, self.dh, self.dw, oh, ow, rowsum),
                            )
                    if self.rows:
                        rkey = (g, xzp, hp, wp)
                        consts_geo = self._rows_args.get(rkey)
                        if consts_geo is None:
                            consts_geo = self._k.rows_operands(
                                nseg, seglen, pk.panel_bytes, self.mg, epg, pk.coloff(xzp, self.biases[g]),
                                g * self.mg, self.m, segoff, rowoffs,
                            )  # fmt: skip
                            if len(self._rows_args) < 16:
                                self._rows_args[rkey] = consts_geo
                        # 2-D views: the compiled version the GEMMs use (the entry reads data pointers)
                        rows = self._k.rows_entries[epg.mode]
                        rows_args = (a.reshape(1, -1), pk.packed, *consts_geo, dst.reshape(1, -1))
                        if _record.RECORD is not None:
                            _record.RECORD.append((rows, rows_args))
                        rows(*rows_args)
                        continue
                    _record.call(
                        self.fn,
                        a, rowoffs, segoff, nseg, seglen, pk.packed, pk.panel_bytes, self.mg, plane, mc, rowsum,
                        pk.bz, pk.coloff(xzp, self.biases[g]), epg.mode, epg.scale, epg.mult, epg.shift, epg.zp,
                        epg.qmin, epg.qmax, dst, g * self.mg, self.m, 1,
                    )  # fmt: skip
                if nhwc is not None and out.itemsize == 1:
                    _record.call(pixels_to_planes, nhwc.reshape(-1), oh, ow, ow, self.m, out[n].reshape(-1))
                elif nhwc is not None:
                    out[n].reshape(self.m, plane)[...] = nhwc.T
            self._give(key, (buf, rowsum, nhwc))
            return out
        finally:
            if scope:
                scope.__exit__(None, None, None)


def prepare_conv(
    w: np.ndarray,
    w_zp: Any,
    *,
    x_dtype: Any,
    strides: Any = None,
    pads: Any = None,
    dilations: Any = None,
    group: int = 1,
    bias: np.ndarray | None = None,
    requant: Requant | None = None,
    threads: int = 1,
    layout: str = "NCHW",
) -> Callable[[np.ndarray, int], np.ndarray] | None:
    """Pack constant conv weights once; return ``f(x, x_zp)`` computing the INT8 2-D convolution.

    ``w`` is in ONNX layout [M, C/group, kH, kW]; ``w_zp`` a scalar or per output channel [M];
    ``pads`` in ONNX order [top, left, bottom, right]. ``layout="NHWC"`` makes ``f`` take and
    return channels-last arrays (as TFLite keeps them), skipping two transposes.
    ``f(x, x_zp)`` takes ``x`` NCHW (or NHWC) of
    ``x_dtype`` and returns NCHW int32 accumulators (+ bias) when ``requant`` is None, else the
    requantized output. Regular, 1x1, grouped and depthwise convolutions are covered; returns
    None when no kernel fits (no numba, or not a 2-D convolution).

    Example:
        >>> import numpy as np
        >>> w = np.ones((2, 3, 3, 3), np.int8)
        >>> f = prepare_conv(w, 0, x_dtype=np.uint8, strides=(1, 1), pads=(1, 1, 1, 1),
        ...                  dilations=(1, 1), group=1)
        >>> f(np.full((1, 3, 4, 4), 2, np.uint8), 0)[0, 0]
        array([[24, 36, 36, 24],
               [36, 54, 54, 36],
               [36, 54, 54, 36],
               [24, 36, 36, 24]], dtype=int32)
    """
    w = np.asarray(w)
    _check_int8(w, "w (weights)")
    if w.ndim != 4:
        return None  # 1-D / 3-D convolutions: the caller's reference path
    if np.dtype(x_dtype) not in _INT8:
        raise KernelArgumentError(f"x_dtype must be uint8 or int8, not {np.dtype(x_dtype)}")
    try:
        import numba  # noqa: F401
    except ImportError:
        return None
    return ConvKernel(
        w,
        w_zp,
        x_dtype,
        strides,
        pads,
        dilations,
        group,
        bias,
        requant,
        _check_threads(threads),
        kernel_path(),
        layout,
    )
