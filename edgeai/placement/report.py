"""PlacementReport: where every node of a model ran, and why.

One report format for every backend. Data first (pydantic, ``to_dict()``),
text second (``print(report)`` renders a rich table), and an HTML view for
Jupyter.

Example:
    >>> from edgeai.placement.report import NodePlacement, PlacementReport
    >>> r = PlacementReport(model="m.onnx", nodes=[
    ...     NodePlacement(name="conv0", op_type="Conv", device="onnxruntime:cpu", reason="x")])
    >>> r.device_share()
    {'onnxruntime:cpu': 1.0}
"""

from __future__ import annotations

import html
from collections import Counter
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["NodePlacement", "PartitionInfo", "PlacementReport", "PlanEstimate"]


class NodePlacement(BaseModel):
    """One node: where it ran and why."""

    model_config = ConfigDict(frozen=True)

    name: str
    op_type: str
    domain: str = ""
    device: str
    """Device id, e.g. ``"onnxruntime:cpu"``."""
    reason: str = ""
    partition: int = 0
    macs: int | None = None


class PartitionInfo(BaseModel):
    """A run of consecutive nodes compiled together for one device."""

    index: int
    device: str
    device_kind: str
    backend: str
    provider: str = ""
    nodes: list[str] = Field(default_factory=list)
    macs: int | None = None
    params: int | None = None
    emulated: bool = False
    time_ms: float | None = None
    """Mean measured time per run, after ``profile=True`` runs."""


class PlanEstimate(BaseModel):
    """A roofline estimate for a target that is not present (``edgeai plan --target``)."""

    target: str
    latency_ms: float
    energy_mj: float
    energy_source: str = "estimate from the target profile's typical power"
    weights_bytes: int
    peak_activation_bytes: int
    memory_bytes: int
    fits_in_memory: bool
    assumptions: list[str] = Field(default_factory=list)
    partitions: list[dict[str, Any]] = Field(default_factory=list)


class PlacementReport(BaseModel):
    """Where a model runs: per node, per partition, and shares per device."""

    model: str
    nodes: list[NodePlacement] = Field(default_factory=list)
    partitions: list[PartitionInfo] = Field(default_factory=list)
    source: str = ""
    """Where the placement came from, e.g. ONNX Runtime's graph-assignment record."""
    notes: list[str] = Field(default_factory=list)
    estimate: PlanEstimate | None = None

    def device_share(self, by: str = "nodes") -> dict[str, float]:
        """Share of nodes (``by="nodes"``) or of MACs (``by="macs"``) per device."""
        if by == "macs":
            weights: Counter[str] = Counter()
            for n in self.nodes:
                weights[n.device] += n.macs or 0
            total = sum(weights.values())
            return {d: w / total for d, w in weights.items()} if total else {}
        counts = Counter(n.device for n in self.nodes)
        total = sum(counts.values())
        return {d: c / total for d, c in counts.items()} if total else {}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return self.model_dump(mode="json")

    def summary(self) -> str:
        """One line per device: node count and share."""
        counts = Counter(n.device for n in self.nodes)
        total = sum(counts.values()) or 1
        parts = [f"{d}: {c} nodes ({100 * c / total:.0f}%)" for d, c in counts.most_common()]
        return "; ".join(parts) if parts else "no nodes"

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(title=f"Placement of {self.model}", caption=self.source or None)
        for col in ("#", "node", "op", "device", "reason"):
            table.add_column(col, overflow="fold")
        for i, n in enumerate(self.nodes):
            op = f"{n.domain}:{n.op_type}" if n.domain else n.op_type
            table.add_row(str(i), n.name, op, n.device, n.reason)
        return table

    def __rich__(self) -> Any:
        return self._table()

    def __str__(self) -> str:
        from rich.console import Console

        console = Console(width=120, record=True, file=_NullIO(), color_system=None)
        console.print(self._table())
        console.print(f"Share by nodes: {self.summary()}")
        macs = self.device_share("macs")
        if macs:
            console.print("Share by MACs: " + "; ".join(f"{d}: {100 * v:.1f}%" for d, v in macs.items()))
        for p in self.partitions:
            timing = f", {p.time_ms:.3f} ms/run" if p.time_ms is not None else ""
            tag = " (emulated)" if p.emulated else ""
            console.print(
                f"partition {p.index}: {p.device}{tag}, {len(p.nodes)} nodes, "
                f"{p.macs or 0:,} MACs, {p.params or 0:,} params{timing}"
            )
        for note in self.notes:
            console.print(f"note: {note}")
        if self.estimate is not None:
            e = self.estimate
            console.print(
                f"estimate on {e.target}: {e.latency_ms:.3f} ms, {e.energy_mj:.3f} mJ per inference "
                f"({e.energy_source}); memory {e.memory_bytes:,} bytes "
                f"({'fits' if e.fits_in_memory else 'does NOT fit'})"
            )
            for a in e.assumptions:
                console.print(f"  assumption: {a}")
        return console.export_text()

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{i}</td><td>{html.escape(n.name)}</td><td>{html.escape(n.op_type)}</td>"
            f"<td>{html.escape(n.device)}</td><td>{html.escape(n.reason)}</td></tr>"
            for i, n in enumerate(self.nodes)
        )
        return (
            f"<b>Placement of {html.escape(self.model)}</b> &mdash; {html.escape(self.summary())}"
            "<table><tr><th>#</th><th>node</th><th>op</th><th>device</th><th>reason</th></tr>"
            f"{rows}</table>"
        )


class _NullIO:
    def write(self, s: str) -> int:
        return len(s)

    def flush(self) -> None:
        pass
