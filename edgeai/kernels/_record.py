"""The kernel-call recorder behind the native engine's compiled segments (:mod:`edgeai.graph.program`).

While :data:`RECORD` is a list, every call site on the kernels' fast paths appends ``(dispatcher, args)``
before it calls the kernel: the numba dispatcher of the compiled function it runs (also where it calls a
bound entry of it) and the exact arguments. :mod:`edgeai.graph.program` records one run of a graph this
way and writes the calls out as one compiled function. ``None`` (the default) costs a call site one global
lookup and compare.
"""

from __future__ import annotations

import threading
from typing import Any

RECORD: list[tuple[Any, tuple[Any, ...]]] | None = None
"""The calls of the run being recorded, or None when nothing is recorded."""


class Recorder(list):  # type: ignore[type-arg]
    """The list :data:`RECORD` is set to: it keeps only the calls made by the thread that created it
    (another thread running a graph meanwhile is not part of the recording)."""

    def __init__(self) -> None:
        super().__init__()
        self.owner = threading.get_ident()

    def append(self, item: Any) -> None:
        if threading.get_ident() == self.owner:
            super().append(item)

    def take(self) -> list[Any]:
        """The calls recorded since the last take."""
        got = list(self)
        self.clear()
        return got


def call(fn: Any, *args: Any) -> Any:
    """``fn(*args)``, recorded (for call sites off the hottest paths, where one more Python call is noise)."""
    if RECORD is not None:
        RECORD.append((fn, args))
    return fn(*args)
