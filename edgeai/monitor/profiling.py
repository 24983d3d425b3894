"""Per-op latency from ONNX Runtime's profiler JSON.

Run a session with ``Session(model, profile=True)``; after some runs, its
executable's ``end_profiling()`` returns the JSON path. Each ``"Node"`` event
whose name ends in ``_kernel_time`` is one op execution (duration in µs).

Example:
    >>> import os, numpy as np, edgeai
    >>> from edgeai.monitor.profiling import ort_op_latency
    >>> sess = edgeai.Session(edgeai.demo.model_path(), profile=True, optimization="none")
    >>> _ = sess.run({"image": np.zeros((1, 1, 8, 8), np.float32)})
    >>> path = sess._exec.end_profiling()
    >>> stats = ort_op_latency(path)
    >>> "Conv" in {s.op_type for s in stats.values()}
    True
    >>> os.remove(path)
"""

from __future__ import annotations

import json
import os
from collections import defaultdict

import numpy as np
from pydantic import BaseModel

from edgeai.errors import ModelFormatError
from edgeai.monitor.latency import LatencyStats

__all__ = ["OpLatency", "ort_kernel_events", "ort_op_latency"]


class OpLatency(BaseModel):
    """Latency of one node over the profiled runs."""

    node: str
    op_type: str
    provider: str
    stats: LatencyStats


def ort_kernel_events(path: str | os.PathLike[str]) -> list[tuple[str, str, str, float]]:
    """``(node, op_type, provider, seconds)`` for every op execution in an ONNX Runtime profile."""
    try:
        with open(path, encoding="utf-8") as f:
            events = json.load(f)
    except (OSError, ValueError) as exc:
        raise ModelFormatError(f"cannot read ONNX Runtime profile {os.fspath(path)!r}: {exc}") from exc
    if not isinstance(events, list):
        raise ModelFormatError(f"{os.fspath(path)!r} is not an ONNX Runtime profile (a JSON list of events)")
    out = []
    for ev in events:
        name = str(ev.get("name", "")) if isinstance(ev, dict) else ""
        if not name.endswith("_kernel_time") or ev.get("cat") != "Node":
            continue
        args = ev.get("args", {})
        out.append(
            (
                name[: -len("_kernel_time")],
                str(args.get("op_name", "")),
                str(args.get("provider", "")),
                float(ev.get("dur", 0)) / 1e6,
            )
        )
    return out


def ort_op_latency(path: str | os.PathLike[str]) -> dict[str, OpLatency]:
    """Per-node latency (p50/p90/p99) from an ONNX Runtime profile, keyed by node name."""
    times: dict[str, list[float]] = defaultdict(list)
    info: dict[str, tuple[str, str]] = {}
    for node, op_type, provider, seconds in ort_kernel_events(path):
        times[node].append(seconds * 1e3)
        info[node] = (op_type, provider)
    out = {}
    for node, ms in times.items():
        arr = np.asarray(ms)
        p50, p90, p99 = np.percentile(arr, [50, 90, 99])
        out[node] = OpLatency(
            node=node,
            op_type=info[node][0],
            provider=info[node][1],
            stats=LatencyStats(
                count=arr.size,
                total=arr.size,
                mean_ms=float(arr.mean()),
                p50_ms=float(p50),
                p90_ms=float(p90),
                p99_ms=float(p99),
                max_ms=float(arr.max()),
            ),
        )
    return out
