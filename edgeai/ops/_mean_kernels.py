"""Float32 means over trailing axes in ONNX Runtime's order, for ReduceMean (:mod:`edgeai.ops.reductions`).

:func:`mean_rows` and :func:`mean_nhwc`: float32 means of each row of a C-contiguous ``[K, R]`` array, and per
(image, channel) of a C-contiguous NHWC array (a module of its own so that a float model that never
reaches them does not import numba).

ONNX Runtime's ReduceMean over trailing axes sums each row with Eigen's vectorized ``sum()``
(SSE, 4 floats a packet, as its x86-64 build): the elements before the first 16-byte aligned
address are left for later, then packets are added in two accumulators over blocks of 8,
one more packet, the packet's lanes as ``(l0 + l2) + (l1 + l3)``, then the leading elements,
then the tail, one by one; a row of fewer than 4 elements past its alignment is summed in order.
The mean is ``sum / float32(R)``. The alignment is taken from the row's address (ORT sums the
buffer it is given), and for an NHWC array from the NCHW copy ORT would make (16-byte aligned).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["mean_nhwc", "mean_rows"]


@njit(cache=True, nogil=True)
def _add(acc: np.ndarray, v: np.ndarray) -> None:
    for j in range(acc.size):  # two arrays: LLVM checks their overlap once and vectorizes
        acc[j] += v[j]


@njit(cache=True, nogil=True)
def _set(acc: np.ndarray, v: np.ndarray) -> None:
    for j in range(acc.size):  # numba's acc[:] = v is a generic, unvectorized loop
        acc[j] = v[j]


@njit(cache=True, nogil=True)
def _columns(x: np.ndarray, leads: np.ndarray, out: np.ndarray, acc: np.ndarray) -> None:
    """``out[k] = eigen_sum(x[:, k]) / R`` for a C-contiguous ``[R, K]`` ``x``; column ``k``'s
    leading unaligned count is ``leads[k]``. Each distinct lead is one order of additions,
    computed for every column at once (each step a vectorized loop over ``k``) and kept where
    it applies (lead 4: a misaligned buffer, added in order). ``acc``: scratch of ``[8, K]``."""
    r, k = x.shape
    n = np.float32(r)
    p0, p1, p2, p3, q0, q1, q2, q3 = acc[0], acc[1], acc[2], acc[3], acc[4], acc[5], acc[6], acc[7]
    seen = np.zeros(5, np.bool_)
    for j in range(k):
        seen[leads[j]] = True
    for lead in range(5):
        if not seen[lead]:
            continue
        first = r if lead == 4 else min(lead, r)
        aligned = ((r - first) // 4) * 4
        aligned2 = ((r - first) // 8) * 8
        if aligned == 0:
            _set(p0, x[0])
            for i in range(1, r):
                _add(p0, x[i])
        else:
            _set(p0, x[first])
            _set(p1, x[first + 1])
            _set(p2, x[first + 2])
            _set(p3, x[first + 3])
            if aligned > 4:
                _set(q0, x[first + 4])
                _set(q1, x[first + 5])
                _set(q2, x[first + 6])
                _set(q3, x[first + 7])
                for i in range(first + 8, first + aligned2, 8):
                    _add(p0, x[i])
                    _add(p1, x[i + 1])
                    _add(p2, x[i + 2])
                    _add(p3, x[i + 3])
                    _add(q0, x[i + 4])
                    _add(q1, x[i + 5])
                    _add(q2, x[i + 6])
                    _add(q3, x[i + 7])
                _add(p0, q0)
                _add(p1, q1)
                _add(p2, q2)
                _add(p3, q3)
                if aligned > aligned2:
                    i = first + aligned2
                    _add(p0, x[i])
                    _add(p1, x[i + 1])
                    _add(p2, x[i + 2])
                    _add(p3, x[i + 3])
            _add(p0, p2)  # the packet's lanes: (l0 + l2) + (l1 + l3)
            _add(p1, p3)
            _add(p0, p1)
            for i in range(first):
                _add(p0, x[i])
            for i in range(first + aligned, r):
                _add(p0, x[i])
        for j in range(k):
            if leads[j] == lead:
                out[j] = p0[j] / n


@njit(cache=True, nogil=True)
def mean_rows(x: np.ndarray, out: np.ndarray) -> None:
    k, r = x.shape
    address = x.ctypes.data
    leads = np.empty(k, np.int64)
    for row in range(k):
        # a float pointer not 4-byte aligned never reaches alignment: Eigen adds in order
        leads[row] = 4 if address & 3 else (4 - ((address // 4 + row * r) & 3)) & 3
    _columns(np.ascontiguousarray(x.T), leads, out, np.empty((8, k), np.float32))


@njit(cache=True, nogil=True)
def mean_nhwc(x: np.ndarray, out: np.ndarray) -> None:
    nb, h, w, c = x.shape
    r = h * w
    leads = np.empty(c, np.int64)
    acc = np.empty((8, c), np.float32)
    for b in range(nb):
        for ch in range(c):
            leads[ch] = (4 - (((b * c + ch) * r) & 3)) & 3
        _columns(x[b].reshape(r, c), leads, out[b], acc)
