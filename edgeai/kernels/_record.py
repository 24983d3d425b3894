"""The kernel-call recorder behind the native engine's compiled segments (:mod:`edgeai.graph.program`).

While :data:`RECORD` is a list, every call site on the kernels' fast paths appends ``(dispatcher, args)``
before it calls the kernel: the numba dispatcher of the compiled function it runs (also where it calls a
bound entry of it) and the exact arguments. :mod:`edgeai.graph.program` records one run of a graph this
way and writes the calls out as one compiled function. ``None`` (the default) costs a call site one global
lookup and compare.
"""

from __future__ import annotations

from typing import Any

RECORD: list[tuple[Any, tuple[Any, ...]]] | None = None
"""The calls of the run being recorded, or None when nothing is recorded."""
