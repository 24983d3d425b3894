"""Weight packing: once, when a kernel is prepared.

A packed weight matrix is a list of ``NR``-column panels; inside a panel the
K values come in groups of 4, laid out as the microkernel loads them
(see :mod:`edgeai.kernels.x86`). Columns past ``N`` and K values past ``K``
are zero, so they add nothing to the accumulators.

Before packing, weights are shifted by a constant ``offset`` into the range the
kernel multiplies exactly (``b - offset``; the zero point is shifted the same
way, so ``(b - b_zp)`` is unchanged):

* VNNI: signed 8-bit, [-128, 127] (uint8 weights above 127 are shifted by 128).
* AVX2 ``vpmaddubsw``: [-64, 63], possible when ``max(b) - min(b) <= 127`` (7-bit
  weights, as ``reduce_range`` quantization produces); otherwise the exact
  int16 kind is used.
* portable and exact int16: no shift needed.

Example:
    >>> import numpy as np
    >>> b = np.arange(12, dtype=np.int64).reshape(4, 3)
    >>> packed, panel_bytes = pack_panels(b, "vnni")
    >>> packed.shape, panel_bytes
    ((128,), 128)
"""

from __future__ import annotations

import numpy as np

from edgeai.kernels.tiles import KIND_CODES, KIND_TILE

__all__ = ["aligned_copy", "choose_kind", "pack_panels"]


def choose_kind(path: str, b: np.ndarray) -> tuple[str, int]:
    """The microkernel kind for ``path`` and these weights, and the offset to subtract from them."""
    lo, hi = (int(b.min()), int(b.max())) if b.size else (0, 0)
    if path == "portable":
        return "portable", 0
    if path == "avx2":
        if lo >= -64 and hi <= 63:
            return "avx2_7bit", 0
        if hi - lo <= 127:
            return "avx2_7bit", hi - 63
        return "avx2_i16", 0
    # vnni and amx: the signed 8-bit operand must hold b - offset
    kind = "amx" if path == "amx" else "vnni"
    if lo >= -128 and hi <= 127:
        return kind, 0
    return kind, 128


def pack_panels(b: np.ndarray, kind: str) -> tuple[np.ndarray, int]:
    """Pack ``b`` ([K, N] integers, K a multiple of 4, already shifted) for ``kind``.

    ``"amx"`` uses the VNNI layout (32-column panels, groups of 4 K values): an AMX
    B tile is 16 groups x 64 bytes of it, loaded with a row stride of 128 bytes.

    Returns the flat packed array and the size of one panel in bytes.
    """
    k, n = b.shape
    if k % 4:
        raise ValueError(f"K={k} must be padded to a multiple of 4 before packing")
    code = KIND_CODES[kind]
    nr = KIND_TILE[code][1]
    npanels = max(1, -(-n // nr))
    full = np.zeros((k, npanels * nr), np.int64)
    full[:, :n] = b
    panels = full.reshape(k, npanels, nr).transpose(1, 0, 2)  # [P, K, NR]
    if kind in ("vnni", "amx", "avx2_7bit"):
        packed = panels.reshape(npanels, k // 4, 4, nr).transpose(0, 1, 3, 2).astype(np.int8)
    elif kind == "avx2_i16":
        packed = panels.reshape(npanels, k // 4, 2, 2, nr).transpose(0, 1, 2, 4, 3).astype(np.int16)
    else:
        packed = panels.astype(np.int16)
    flat = aligned_copy(np.ascontiguousarray(packed).reshape(-1))
    return flat, flat.nbytes // npanels


def aligned_copy(arr: np.ndarray, align: int = 64) -> np.ndarray:
    """A C-contiguous copy of ``arr`` whose data starts on an ``align``-byte boundary.

    AMX tile loads and zmm loads of a row that straddles two cache lines touch both: B tiles
    read from a panel 16 or 32 bytes off a line boundary measured 10-20% slower here.

    >>> aligned_copy(np.arange(5, dtype=np.int8)).ctypes.data % 64
    0
    """
    arr = np.ascontiguousarray(arr)
    buf = np.empty(arr.nbytes + align, np.uint8)
    start = (-buf.ctypes.data) % align
    out = buf[start : start + arr.nbytes].view(arr.dtype).reshape(arr.shape)
    out[...] = arr
    return out
