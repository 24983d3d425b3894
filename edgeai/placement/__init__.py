"""Placement: which device runs which node, and the report that says so.

``plan`` answers, without running anything, where a model's nodes would run:
on the devices present, or on a target profile's hardware that is not
(``target="google-edge-tpu"``), with the reason for every node, the
partitions, MAC shares, memory fit and a roofline latency/energy estimate.

Example:
    >>> import edgeai
    >>> report = edgeai.plan(edgeai.demo.model_path(), target="google-edge-tpu")
    >>> report.device_share()["google-edge-tpu:host-cpu"]
    1.0
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from edgeai.hardware import Device, DeviceKind
from edgeai.placement.planner import DeviceCost, Partition, Plan, estimate_roofline, plan_graph
from edgeai.placement.report import NodePlacement, PartitionInfo, PlacementReport, PlanEstimate

__all__ = [
    "NodePlacement",
    "Partition",
    "PartitionInfo",
    "PlacementReport",
    "Plan",
    "plan",
    "plan_graph",
    "report_from_plan",
    "target_devices",
]


def target_devices(name: str, *, emulate: bool = False) -> list[Device]:
    """The emulated accelerator of target ``name`` and its host CPU, in priority order.

    With ``emulate=True`` both run on this machine: the accelerator's
    partitions on ONNX Runtime's CPU provider (under the target's op and
    precision limits, which the planner enforces), the rest on the native engine.
    """
    from edgeai.hardware._cpu import cpu_name
    from edgeai.hardware.targets import load_target

    profile = load_target(name)
    accel = Device(
        id=f"{profile.name}",
        kind=DeviceKind(profile.kind),
        name=profile.title,
        vendor=profile.vendor,
        backend="onnxruntime",
        provider="CPUExecutionProvider",
        properties={
            "target": profile.name,
            "runtime": profile.runtime,
            "cost": DeviceCost(
                gmacs=profile.peak_gmacs * profile.utilization,
                call_overhead_us=profile.call_overhead_us,
                bandwidth_gbps=profile.bandwidth_gbps,
                power_w=profile.power_w,
            ),
        },
        emulated=True,
    )
    host = Device(
        id=f"{profile.name}:host-cpu",
        kind=DeviceKind.CPU,
        name=profile.host_cpu
        if not emulate
        else f"{profile.host_cpu} (emulated by edgeai's native engine on {cpu_name()})",
        vendor=profile.vendor,
        backend="native" if emulate else "onnxruntime",
        provider="edgeai-native" if emulate else "CPUExecutionProvider",
        properties={
            "cost": DeviceCost(
                gmacs=profile.host_cpu_gmacs,
                call_overhead_us=5.0,
                bandwidth_gbps=1e6,
                power_w=profile.host_power_w,
            ),
        },
        emulated=True,
    )
    return [accel, host]


def report_from_plan(plan: Plan, model: str, *, source: str) -> PlacementReport:
    """A :class:`PlacementReport` from the planner's :class:`Plan`."""
    nodes = []
    part_of = {n.name: p.index for p in plan.partitions for n in p.nodes}
    for node in plan.graph.nodes:
        dev = plan.assignment[node.name]
        nodes.append(
            NodePlacement(
                name=node.name,
                op_type=node.op_type,
                domain=node.domain,
                device=dev.id,
                reason=plan.reasons.get(node.name, ""),
                partition=part_of[node.name],
                macs=plan.macs.get(node.name, 0),
            )
        )
    partitions = [
        PartitionInfo(
            index=p.index,
            device=p.device.id,
            device_kind=p.device.kind.value,
            backend=p.device.backend,
            provider=p.device.provider,
            nodes=[n.name for n in p.nodes],
            macs=p.macs,
            params=p.params,
            emulated=p.device.emulated,
        )
        for p in plan.partitions
    ]
    return PlacementReport(model=model, nodes=nodes, partitions=partitions, source=source)


def _peak_activation_bytes(plan: Plan) -> int:
    from edgeai.placement.planner import _value_bytes

    graph = plan.graph
    last_use: dict[str, int] = {}
    order = [n for p in plan.partitions for n in p.nodes]
    for i, n in enumerate(order):
        for v in (*n.inputs, *n.implicit_inputs()):
            if v and v not in graph.initializers:
                last_use[v] = i
    for v in graph.outputs:
        last_use[v] = len(order)
    live: dict[str, int] = {v: _value_bytes(graph, v) for v in graph.inputs}
    peak = sum(live.values())
    for i, n in enumerate(order):
        for o in n.outputs:
            if o:
                live[o] = _value_bytes(graph, o)
        peak = max(peak, sum(live.values()))
        for v in [v for v in live if last_use.get(v, -1) <= i]:
            live.pop(v)
    return peak


def plan(
    model: Any,
    *,
    target: str | None = None,
    device: str = "auto",
    pin: Mapping[str, str] | None = None,
    forbid: Iterable[str] = (),
    require: Mapping[str, float] | None = None,
    dims: Mapping[str, int] | None = None,
) -> PlacementReport:
    """Plan where ``model``'s nodes would run, without running it.

    With ``target=NAME`` (see ``edgeai.hardware.targets.target_names()``) the
    plan is for that hardware, which need not be present: the report says
    which ops fall back to its host CPU and why, whether weights and
    activations fit in its memory, and a roofline estimate of latency and
    energy per inference with its assumptions. Without a target it plans over
    the devices present (``device`` narrows them as in ``Session``).
    ``dims`` fixes symbolic dimensions (default 1) for the estimate.
    """
    import numpy as np

    from edgeai.graph.onnx_import import import_onnx
    from edgeai.hardware import devices_for_format
    from edgeai.hardware.targets import load_target
    from edgeai.placement.capability import Capability

    graph = _fix_dims(import_onnx(model), dims or {})
    label = str(getattr(model, "name", None) or model) if not isinstance(model, (bytes, bytearray)) else "<bytes>"
    if target is not None:
        profile = load_target(target)
        devs: Sequence[Device] = target_devices(target)
        cap = Capability(graph, {profile.name: profile})
        # the host CPU of a target runs ONNX Runtime's CPU kernels: probe them here
        the_plan = plan_graph(graph, devs, capability=cap, pin=pin, forbid=forbid, require=require)
        report = report_from_plan(the_plan, label, source=f"edgeai planner, target profile {profile.name}")
        est = estimate_roofline(the_plan)
        weights = int(sum(np.asarray(a).nbytes for a in graph.initializers.values()))
        peak = _peak_activation_bytes(the_plan)
        memory = weights + peak
        on_accel = [n for n in report.nodes if n.device == profile.name]
        if not on_accel:
            report.notes.append(
                f"nothing runs on {profile.title}: " + _why_nothing(report, profile.quantized_only, profile.title)
            )
        report.estimate = PlanEstimate(
            target=profile.name,
            latency_ms=est["latency_ms"],
            energy_mj=est["energy_mj"],
            weights_bytes=weights,
            peak_activation_bytes=peak,
            memory_bytes=memory,
            fits_in_memory=memory <= profile.memory_mb * 2**20,
            partitions=est["partitions"],
            assumptions=[
                f"{profile.title}: {profile.tops} peak int8 TOPS at "
                f"{int(profile.utilization * 100)}% utilization "
                f"= {profile.peak_gmacs * profile.utilization:,.0f} GMAC/s; {profile.bandwidth_gbps} GB/s; "
                f"{profile.call_overhead_us} us per dispatch; {profile.power_w} W typical",
                f"host CPU ({profile.host_cpu}): {profile.host_cpu_gmacs} GMAC/s, {profile.host_power_w} W",
                "each partition takes max(compute, memory traffic) plus its dispatch cost (roofline)",
                "symbolic dimensions set to " + (", ".join(f"{k}={v}" for k, v in (dims or {}).items()) or "1"),
                "weights counted at their stored size; peak activations from a liveness walk of the plan order",
                f"sources: {'; '.join(profile.sources)}",
            ],
        )
        return report
    candidates = devices_for_format("onnx")
    if device != "auto":
        from edgeai.hardware import select_device

        chosen = select_device(device, candidates)
        candidates = [chosen, *[d for d in candidates if d.id != chosen.id and d.backend == "native"]]
    the_plan = plan_graph(graph, candidates, capability=Capability(graph), pin=pin, forbid=forbid, require=require)
    return report_from_plan(the_plan, label, source="edgeai planner over the devices present")


def _why_nothing(report: PlacementReport, quantized_only: bool, title: str) -> str:
    reasons = {n.reason for n in report.nodes}
    if quantized_only and any("runs only quantized" in r for r in reasons):
        return (
            f"{title} executes only integer-quantized ops and this model computes in float; "
            "quantize it to int8 first (edgeai quantize), then plan again"
        )
    return "; ".join(sorted(reasons)[:5])


def _fix_dims(graph: Any, dims: Mapping[str, int]) -> Any:
    """Replace symbolic dimensions by ``dims`` (default 1) so sizes and MACs are concrete."""
    from edgeai.graph import Value

    values = {}
    for name, v in graph.values.items():
        if v.shape is not None and any(not isinstance(d, int) for d in v.shape):
            shape = tuple(d if isinstance(d, int) else int(dims.get(str(d), 1)) for d in v.shape)
            values[name] = Value(v.name, v.dtype, shape, v.quant, v.kind)
        else:
            values[name] = v
    return graph.replace(values=values)
