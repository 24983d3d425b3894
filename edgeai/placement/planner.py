"""The planner: assign every node a device, cut the graph into partitions.

1. **Candidates.** For each node, the devices (in priority order) whose
   runtime says it can run it (:mod:`edgeai.placement.capability`), minus
   forbidden devices; pins override the order.
2. **Greedy assignment.** Each node takes its first candidate.
3. **Partitions.** A topological order is built that keeps running on the
   current device as long as a node of that device is ready (Kahn's algorithm
   with device affinity); partitions are the maximal runs of one device in
   that order. Every partition is an interval of a topological order, so the
   partition graph is acyclic by construction.
4. **Cost check.** A partition is moved to a neighbouring partition's device
   (when that device can run all of its nodes and nothing is pinned) if the
   cost model says the copy of its inputs and outputs plus the per-call
   overhead outweigh what its device gains. Repeat until stable.
5. **Contract.** ``require={"npu": 0.9}``: at least that share of MACs on
   devices of that kind, else :class:`~edgeai.errors.PlacementError` before
   anything runs.

The cost model (:class:`DeviceCost`): a node costs ``macs / gmacs``; a
partition adds its device's fixed ``call_overhead_us``; a tensor crossing
between two devices costs ``bytes / bandwidth`` of the slower side. The
figures for present devices are nominal (below); target profiles carry their
own from the vendors' data sheets.

Example:
    >>> import edgeai
    >>> from edgeai.placement import plan_graph
    >>> from edgeai.graph.onnx_import import import_onnx
    >>> devs = [d for d in edgeai.devices() if d.id == "onnxruntime:cpu"]
    >>> plan = plan_graph(import_onnx(edgeai.demo.model_path()), devs)
    >>> [p.device.id for p in plan.partitions]
    ['onnxruntime:cpu']
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeai.errors import PlacementError
from edgeai.graph import Graph, Node
from edgeai.hardware import Device, DeviceKind, select_device
from edgeai.placement.capability import Capability

__all__ = ["DeviceCost", "Partition", "Plan", "plan_graph"]


@dataclass(frozen=True)
class DeviceCost:
    """What the cost model assumes of one device."""

    gmacs: float
    """Sustained multiply-accumulates per second, in billions."""
    call_overhead_us: float
    """Fixed cost of dispatching one partition to the device."""
    bandwidth_gbps: float
    """Bandwidth of copies into and out of the device's memory (host devices: memcpy)."""
    power_w: float = 0.0


# Nominal figures for devices that are present; documented in docs/placement.md.
_NOMINAL: dict[tuple[str, DeviceKind], DeviceCost] = {
    ("onnxruntime", DeviceKind.CPU): DeviceCost(gmacs=50.0, call_overhead_us=5.0, bandwidth_gbps=1e6),
    ("native", DeviceKind.CPU): DeviceCost(gmacs=15.0, call_overhead_us=10.0, bandwidth_gbps=1e6),
    ("onnxruntime", DeviceKind.GPU): DeviceCost(gmacs=2000.0, call_overhead_us=50.0, bandwidth_gbps=12.0),
    ("onnxruntime", DeviceKind.NPU): DeviceCost(gmacs=2000.0, call_overhead_us=150.0, bandwidth_gbps=10.0),
}


def device_cost(device: Device) -> DeviceCost:
    if "cost" in device.properties:
        return device.properties["cost"]  # type: ignore[no-any-return]
    return _NOMINAL.get(
        (device.backend, device.kind), DeviceCost(gmacs=100.0, call_overhead_us=50.0, bandwidth_gbps=10.0)
    )


@dataclass
class Partition:
    """A run of nodes compiled together for one device."""

    index: int
    device: Device
    nodes: list[Node]
    inputs: list[str] = field(default_factory=list)
    """Values read from outside the partition (graph inputs or other partitions' outputs)."""
    outputs: list[str] = field(default_factory=list)
    """Values produced here that later partitions or the graph outputs need."""
    macs: int = 0
    params: int = 0


@dataclass
class Plan:
    """The planner's answer: partitions in execution order, and why each node went where."""

    graph: Graph
    partitions: list[Partition]
    assignment: dict[str, Device]
    reasons: dict[str, str]
    macs: dict[str, int]
    devices: list[Device]

    def mac_share(self) -> dict[str, float]:
        """Share of MACs per device kind (node share when the model has no MACs)."""
        total = sum(self.macs.values())
        share: dict[str, float] = {}
        for node in self.graph.nodes:
            kind = self.assignment[node.name].kind.value.lower()
            weight = self.macs.get(node.name, 0) if total else 1
            share[kind] = share.get(kind, 0.0) + weight
        denom = total if total else max(len(self.graph.nodes), 1)
        return {k: v / denom for k, v in share.items()}


def _node_macs(graph: Graph) -> dict[str, int]:
    """MACs per node from the IR's inferred shapes (Conv, ConvInteger, QLinearConv, Gemm, MatMul family)."""
    out: dict[str, int] = {}

    def numel(name: str) -> int | None:
        shape = graph.value(name).shape
        if shape is None:
            return None
        n = 1
        for d in shape:
            n *= d if isinstance(d, int) else 1
        return n

    for node in graph.nodes:
        macs = 0
        op = node.op_type
        if op in ("Conv", "ConvInteger", "QLinearConv", "ConvTranspose"):
            w_name = node.inputs[3] if op == "QLinearConv" else node.inputs[1]
            w = graph.initializers.get(w_name)
            w_shape = tuple(w.shape) if w is not None else graph.value(w_name).shape
            o = numel(node.outputs[0])
            if w_shape and o and all(isinstance(d, int) for d in w_shape):
                per_out = int(np.prod(w_shape[1:]))
                macs = (
                    o * per_out if op != "ConvTranspose" else (numel(node.inputs[0]) or 0) * int(np.prod(w_shape[1:]))
                )
        elif op in ("Gemm", "MatMul", "MatMulInteger", "QLinearMatMul", "QGemm", "MatMulIntegerToFloat"):
            a_name = node.inputs[0]
            a_shape = graph.value(a_name).shape
            o = numel(node.outputs[0])
            if a_shape and o:
                k = a_shape[0] if op == "Gemm" and node.attrs.get("transA", 0) else a_shape[-1]
                macs = o * (k if isinstance(k, int) else 1)
        out[node.name] = int(macs)
    return out


def _params(graph: Graph, nodes: Iterable[Node]) -> int:
    seen: set[str] = set()
    total = 0
    for n in nodes:
        for i in n.inputs:
            if i in graph.initializers and i not in seen:
                seen.add(i)
                total += int(np.asarray(graph.initializers[i]).size)
    return total


def _value_bytes(graph: Graph, name: str) -> int:
    v = graph.value(name)
    if v.shape is None or v.dtype is None or v.dtype == np.dtype(object):
        return 4096  # unknown: a small tensor
    n = 1
    for d in v.shape:
        n *= d if isinstance(d, int) else 1
    return n * v.dtype.itemsize


def _matches(node: Node, key: str) -> bool:
    return key in (node.name, node.op_type, f"{node.domain}:{node.op_type}")


def plan_graph(
    graph: Graph,
    devices: Sequence[Device],
    *,
    capability: Capability | None = None,
    pin: Mapping[str, str | Device] | None = None,
    forbid: Iterable[str | Device] = (),
    require: Mapping[str, float] | None = None,
    cost_check: bool = True,
) -> Plan:
    """Plan ``graph`` over ``devices`` (given in priority order). See the module docstring."""
    capability = capability or Capability(graph)
    forbidden: set[str] = set()
    for f in forbid:
        try:
            forbidden.add(select_device(f, list(devices)).id)
        except Exception:
            forbidden.update(d.id for d in devices if str(f).lower() in (d.kind.value.lower(), d.backend))
    usable = [d for d in devices if d.id not in forbidden]
    if not usable:
        raise PlacementError(f"every device is forbidden ({sorted(forbidden)}); nothing can run the model")
    assignment: dict[str, Device] = {}
    reasons: dict[str, str] = {}
    pinned: set[str] = set()
    pins = dict(pin or {})
    for node in graph.nodes:
        key = next((k for k in pins if _matches(node, k)), None)
        if key is not None:
            want = select_device(pins[key], list(devices))
            if want.id in forbidden:
                raise PlacementError(f"node {node.name!r} is pinned to {want.id}, which is forbidden")
            ok = capability.supports(node, want)
            if not ok:
                raise PlacementError(
                    f"node {node.name!r} ({node.op_type}) is pinned to {want.id}, which cannot run it: {ok.reason}"
                )
            assignment[node.name] = want
            reasons[node.name] = f"pinned by {key!r}; {ok.reason}"
            pinned.add(node.name)
            continue
        refusals = []
        for dev in usable:
            ok = capability.supports(node, dev)
            if ok:
                assignment[node.name] = dev
                reasons[node.name] = ok.reason if not refusals else "; ".join(refusals) + f"; so {dev.id}: {ok.reason}"
                break
            refusals.append(ok.reason)
        else:
            op = f"{node.domain + ':' if node.domain else ''}{node.op_type}"
            raise PlacementError(f"no available device can run node {node.name!r} ({op}): " + "; ".join(refusals))
    _keep_qdq_groups(graph, assignment, reasons, pinned, capability)
    macs = _node_macs(graph)
    partitions = _partition(graph, assignment, macs)
    if cost_check:
        for _ in range(8):
            if not _merge_islands(graph, partitions, assignment, reasons, pinned, capability, macs):
                break
            partitions = _partition(graph, assignment, macs)
    plan = Plan(graph, partitions, assignment, reasons, macs, list(devices))
    if require:
        _check_contract(plan, require, capability)
    return plan


def _keep_qdq_groups(
    graph: Graph,
    assignment: dict[str, Device],
    reasons: dict[str, str],
    pinned: set[str],
    capability: Capability,
) -> None:
    """Keep each DequantizeLinear -> op -> QuantizeLinear group on one device.

    Runtimes run a QDQ group as one integer op (ONNX Runtime fuses DQ->Conv->Q
    into QLinearConv); a partition boundary inside a group would make the
    runtime on either side compute it in float, changing the result.
    """
    producers = {o: n for n in graph.nodes for o in n.outputs if o}
    consumers = graph.consumers()
    for node in graph.nodes:
        if node.op_type in ("DequantizeLinear", "QuantizeLinear"):
            continue
        dev = assignment[node.name]
        members = []
        for i in node.inputs:
            p = producers.get(i)
            if p is not None and p.op_type == "DequantizeLinear" and len(consumers.get(i, [])) == 1:
                members.append(p)
        for o in node.outputs:
            users = consumers.get(o, [])
            if len(users) == 1 and users[0].op_type == "QuantizeLinear":
                members.append(users[0])
        for m in members:
            if m.name in pinned or assignment[m.name].id == dev.id:
                continue
            if capability.supports(m, dev):
                assignment[m.name] = dev
                reasons[m.name] = f"kept with {node.name!r} ({node.op_type}) as one QDQ group on {dev.id}"


def _deps(graph: Graph) -> dict[str, set[str]]:
    producer = {o: n.name for n in graph.nodes for o in n.outputs if o}
    deps: dict[str, set[str]] = {}
    for n in graph.nodes:
        deps[n.name] = {producer[i] for i in (*n.inputs, *n.implicit_inputs()) if i in producer}
    return deps


def constant_nodes(graph: Graph) -> set[str]:
    """Nodes computed from initializers alone (weight DequantizeLinear, Constant, shape arithmetic).

    They are scheduled with their first consumer and re-computed by every
    partition that reads them, never handed between partitions: a runtime must
    see ``DequantizeLinear(weights) -> Conv`` together to fuse it.
    """
    producer = {o: n for n in graph.nodes for o in n.outputs if o}
    const: set[str] = set()
    for n in graph.nodes:  # topological order: producers come first
        if n.subgraphs() and n.implicit_inputs():
            continue
        if all(not i or i in graph.initializers or (i in producer and producer[i].name in const) for i in n.inputs):
            const.add(n.name)
    return const


def _partition(graph: Graph, assignment: Mapping[str, Device], macs: Mapping[str, int]) -> list[Partition]:
    deps = _deps(graph)
    const = constant_nodes(graph)
    users: dict[str, list[str]] = {n.name: [] for n in graph.nodes}
    for name, ds in deps.items():
        for d in ds:
            users[d].append(name)
    indeg = {name: len([d for d in ds if d not in const]) for name, ds in deps.items()}
    position = {n.name: i for i, n in enumerate(graph.nodes)}
    by_name = {n.name: n for n in graph.nodes}
    ready = sorted((n for n, k in indeg.items() if k == 0 and n not in const), key=position.__getitem__)
    order: list[str] = []
    emitted: set[str] = set()

    def emit_constants(name: str) -> None:
        for d in sorted(deps[name], key=position.__getitem__):
            if d in const and d not in emitted:
                emit_constants(d)
                emitted.add(d)
                order.append(d)

    current: str | None = None
    while ready:
        pick = next((n for n in ready if assignment[n].id == current), ready[0])
        ready.remove(pick)
        current = assignment[pick].id
        emit_constants(pick)
        order.append(pick)
        emitted.add(pick)
        newly = []
        for u in users[pick]:
            if u in const:
                continue
            indeg[u] -= 1
            if indeg[u] == 0:
                newly.append(u)
        if newly:
            ready = sorted([*ready, *newly], key=position.__getitem__)
    # constants nobody reads (dead, or read only by graph outputs)
    order.extend(n.name for n in graph.nodes if n.name in const and n.name not in emitted)
    partitions: list[Partition] = []
    for name in order:
        dev = assignment[name] if name not in const or not partitions else partitions[-1].device
        if not partitions or partitions[-1].device.id != dev.id:
            partitions.append(Partition(len(partitions), dev, []))
        partitions[-1].nodes.append(by_name[name])
    _wire(graph, partitions, macs, const)
    return partitions


def _wire(graph: Graph, partitions: list[Partition], macs: Mapping[str, int], const: set[str] = frozenset()) -> None:
    produced_in: dict[str, int] = {}
    for p in partitions:
        for n in p.nodes:
            for o in n.outputs:
                if o:
                    produced_in[o] = p.index
    needed_later: dict[int, set[str]] = {p.index: set() for p in partitions}
    # values of constant nodes are recomputed where they are read (see constant_nodes)
    const_values = {o for n in graph.nodes if n.name in const for o in n.outputs}
    for p in partitions:
        reads: dict[str, None] = {}
        for n in p.nodes:
            for i in (*n.inputs, *n.implicit_inputs()):
                if i and i not in graph.initializers and i not in const_values and produced_in.get(i) != p.index:
                    reads.setdefault(i, None)
        p.inputs = list(reads)
        for i in reads:
            if i in produced_in:
                needed_later[produced_in[i]].add(i)
        p.macs = sum(macs.get(n.name, 0) for n in p.nodes)
        p.params = _params(graph, p.nodes)
    for name in graph.outputs:
        if name in produced_in:
            needed_later[produced_in[name]].add(name)
    for p in partitions:
        order = [o for n in p.nodes for o in n.outputs if o in needed_later[p.index]]
        p.outputs = list(dict.fromkeys(order))


def _partition_time_us(graph: Graph, p: Partition, dev: Device, crossing: Iterable[str], other: Device | None) -> float:
    cost = device_cost(dev)
    t = cost.call_overhead_us + p.macs / (cost.gmacs * 1e3)
    if other is not None:
        bw = min(cost.bandwidth_gbps, device_cost(other).bandwidth_gbps)
        t += sum(_value_bytes(graph, v) for v in crossing) / (bw * 1e3)
    return t


def _merge_islands(
    graph: Graph,
    partitions: list[Partition],
    assignment: dict[str, Device],
    reasons: dict[str, str],
    pinned: set[str],
    capability: Capability,
    macs: Mapping[str, int],
) -> bool:
    """Move one partition whose transfers cost more than it gains; True when something moved."""
    for i, p in enumerate(partitions):
        if any(n.name in pinned for n in p.nodes):
            continue
        neighbours = []
        if i > 0:
            neighbours.append(partitions[i - 1].device)
        if i + 1 < len(partitions):
            neighbours.append(partitions[i + 1].device)
        for other in neighbours:
            if other.id == p.device.id or not all(capability.supports(n, other) for n in p.nodes):
                continue
            crossing = [*p.inputs, *p.outputs]
            here = _partition_time_us(graph, p, p.device, crossing, other)
            there = p.macs / (device_cost(other).gmacs * 1e3)
            if there < here:
                for n in p.nodes:
                    assignment[n.name] = other
                    reasons[n.name] = (
                        f"moved from {p.device.id} to {other.id} by the cost check: "
                        f"{here:.1f} us there with copies vs {there:.1f} us here"
                    )
                return True
    return False


def _check_contract(plan: Plan, require: Mapping[str, float], capability: Capability) -> None:
    share = plan.mac_share()
    for kind, minimum in require.items():
        k = kind.lower()
        if k not in {d.value.lower() for d in DeviceKind}:
            raise PlacementError(f"unknown device kind {kind!r} in require=; use npu, gpu, dsp or cpu")
        got = share.get(k, 0.0)
        if got + 1e-9 < minimum:
            blockers = []
            for node in plan.graph.nodes:
                dev = plan.assignment[node.name]
                if dev.kind.value.lower() != k and plan.macs.get(node.name, 0) > 0:
                    blockers.append(f"{node.name} ({node.op_type}, {plan.macs[node.name]:,} MACs) on {dev.id}")
            why = "; ".join(blockers[:8]) or "no device of that kind is available"
            raise PlacementError(
                f"placement contract not met: {100 * got:.1f}% of MACs on {k.upper()}, "
                f"{100 * minimum:.0f}% required. Off {k.upper()}: {why}"
            )


def _finite(x: float) -> float:
    return x if math.isfinite(x) else 0.0


def estimate_roofline(plan: Plan, bytes_per_weight: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Latency and energy per inference from each device's figures (used by target plans)."""
    total_us = 0.0
    energy_mj = 0.0
    parts = []
    for p in plan.partitions:
        cost = device_cost(p.device)
        compute = p.macs / (cost.gmacs * 1e3)
        moved = sum(_value_bytes(plan.graph, v) for v in (*p.inputs, *p.outputs))
        weights = sum(
            np.asarray(plan.graph.initializers[i]).nbytes
            for n in p.nodes
            for i in n.inputs
            if i in plan.graph.initializers
        )
        memory = (moved + weights) / (cost.bandwidth_gbps * 1e3)
        t = cost.call_overhead_us + max(compute, memory)
        total_us += t
        energy_mj += t * cost.power_w * 1e-3
        parts.append(
            {
                "partition": p.index,
                "device": p.device.id,
                "compute_us": _finite(compute),
                "memory_us": _finite(memory),
                "time_us": _finite(t),
            }
        )
    return {"latency_ms": total_us / 1e3, "energy_mj": energy_mj, "partitions": parts}
