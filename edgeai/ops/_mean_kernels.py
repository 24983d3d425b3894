"""Float32 means over trailing axes in ONNX Runtime's order, for ReduceMean (:mod:`edgeai.ops.reductions`).

ONNX Runtime's ReduceMean over trailing axes sums each row with Eigen's vectorized ``sum()``
(SSE, 4 floats a packet, as its x86-64 build): the elements before the first 16-byte aligned
address are left for later, then packets are added in two accumulators over blocks of 8,
one more packet, the packet's lanes as ``(l0 + l2) + (l1 + l3)``, then the leading elements,
then the tail, one by one; a row of fewer than 4 elements past its alignment is summed in order.
The mean is ``sum / float32(R)``. How many elements lead (0-3, or 4 for a float pointer not
4-byte aligned: all in order) follows from the row's address: ORT sums the buffer it is given,
and for an NHWC array the NCHW copy ORT would make (16-byte aligned).

The rows to reduce are the columns of an ``[images, R, K]`` array (the NHWC bytes as they are;
rows of an NCHW array are transposed first), so each step of the order is one loop over ``K``
that vectorizes. Rows with the same lead share one order of additions: :func:`mean_program`
writes it as a short list of steps, which :func:`run_mean_program` runs for every column at
once, keeping each column's result from its own lead's pass. One small numba loop with the
order as data compiles in a fraction of a second (an unrolled loop per order took seconds).

Example:
    >>> import numpy as np
    >>> x = np.arange(9, dtype=np.float32).reshape(1, 9, 1)  # one row of 9 values, lead 0
    >>> out = np.empty((1, 1), np.float32)
    >>> run_mean_program(x, np.zeros((1, 1), np.int64), mean_program(9, (0,)), out)
    >>> float(out[0, 0])
    4.0
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import numpy as np
from numba import njit

__all__ = ["leads_nhwc", "leads_rows", "mean_program", "run_mean_program"]

SET, ADD, ADD_ACC, KEEP = 0, 1, 2, 3
"""Program steps ``(op, dst, src)``: ``acc[dst] = x[src]``, ``acc[dst] += x[src]``,
``acc[dst] += acc[src]``, and ``out = acc[0]`` where a column's lead is ``src``."""


@functools.cache
def mean_program(r: int, leads: Iterable[int]) -> np.ndarray:
    """The ``[steps, 3]`` int64 program summing rows of ``r`` values for each lead in ``leads``."""
    steps: list[tuple[int, int, int]] = []
    for lead in sorted(set(leads)):
        first = r if lead == 4 else min(lead, r)
        aligned = ((r - first) // 4) * 4
        aligned2 = ((r - first) // 8) * 8
        if aligned == 0:
            steps.append((SET, 0, 0))
            steps += [(ADD, 0, i) for i in range(1, r)]
        else:
            steps += [(SET, t, first + t) for t in range(4)]
            if aligned > 4:
                steps += [(SET, 4 + t, first + 4 + t) for t in range(4)]
                for i in range(first + 8, first + aligned2, 8):
                    steps += [(ADD, t, i + t) for t in range(8)]
                steps += [(ADD_ACC, t, 4 + t) for t in range(4)]
                if aligned > aligned2:
                    steps += [(ADD, t, first + aligned2 + t) for t in range(4)]
            steps += [(ADD_ACC, 0, 2), (ADD_ACC, 1, 3), (ADD_ACC, 0, 1)]  # the packet's lanes
            steps += [(ADD, 0, i) for i in range(first)]
            steps += [(ADD, 0, i) for i in range(first + aligned, r)]
        steps.append((KEEP, 0, lead))
    program = np.array(steps, np.int64).reshape(-1, 3)
    program.flags.writeable = False
    return program


def leads_nhwc(images: int, r: int, c: int) -> np.ndarray:
    """``[images, c]`` leads of the rows of the 16-byte aligned NCHW copy of an NHWC array."""
    row = np.arange(images * c, dtype=np.int64).reshape(images, c)
    return (4 - ((row * r) & 3)) & 3


def leads_rows(address: int, k: int, r: int) -> np.ndarray:
    """``[1, k]`` leads of the ``k`` rows of ``r`` float32 of a C-contiguous array at ``address``."""
    if address & 3:
        return np.full((1, k), 4, np.int64)
    return ((4 - ((address // 4 + np.arange(k, dtype=np.int64) * r) & 3)) & 3).reshape(1, k)


@njit(cache=True, nogil=True)
def run_mean_program(x: np.ndarray, leads: np.ndarray, program: np.ndarray, out: np.ndarray) -> None:
    """``out[b, k]``: the mean of column ``k`` of ``x[b]`` (``[images, R, K]``, C-contiguous), its
    additions in the order ``program`` gives for the column's lead ``leads[b, k]``."""
    nb, r, k = x.shape
    n = np.float32(r)
    acc = np.empty((8, k), np.float32)
    for b in range(nb):
        xb, ob, lb = x[b], out[b], leads[b]
        for s in range(program.shape[0]):
            op, dst, src = program[s, 0], program[s, 1], program[s, 2]
            if op == 0:
                for j in range(k):
                    acc[dst, j] = xb[src, j]
            elif op == 1:
                for j in range(k):
                    acc[dst, j] += xb[src, j]
            elif op == 2:
                for j in range(k):
                    acc[dst, j] += acc[src, j]
            else:
                for j in range(k):
                    if lb[j] == src:
                        ob[j] = acc[0, j]
        for j in range(k):
            ob[j] = ob[j] / n
