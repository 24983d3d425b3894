"""Core commands: ``devices``, ``inspect``, ``run``, ``bench``, ``demo``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edgeai.errors import InputNameError


def register(sub: Any) -> None:
    p = sub.add_parser("devices", help="list the devices the installed runtimes expose")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_devices)

    p = sub.add_parser("inspect", help="describe a model: inputs, outputs, ops, parameters")
    p.add_argument("model")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("run", help="run a model on .npy inputs, write outputs as .npy")
    p.add_argument("model")
    p.add_argument(
        "--input",
        "-i",
        action="append",
        default=[],
        metavar="NAME=FILE.npy",
        help="an input (repeat for several); a one-input model takes just FILE.npy",
    )
    p.add_argument("--output-dir", "-o", default=".", help="where to write <output>.npy")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("bench", help="measure latency: warm-up, N runs, p50/p90/p99")
    p.add_argument("model", nargs="?")
    p.add_argument(
        "--compare",
        nargs="+",
        metavar="MODEL[@DEVICE]",
        help="time several models or runtimes interleaved on the same inputs, e.g. "
        "m.onnx@onnxruntime m.pte@executorch m.onnx@native",
    )
    p.add_argument("--rounds", type=int, default=15, help="interleaved rounds for --compare")
    p.add_argument("--device", default="auto")
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--batch", type=int, default=1, help="size of symbolic (batch) dimensions")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("demo", help="run the shipped digits model on held-out samples")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_demo)


def _console() -> Any:
    from rich.console import Console

    return Console()


def cmd_devices(args: argparse.Namespace) -> int:
    import edgeai

    found = edgeai.devices()
    if args.json:
        print(json.dumps([_device_dict(d) for d in found], indent=2))
        return 0
    from rich.table import Table

    table = Table(title="Devices")
    for col in ("id", "kind", "name", "vendor", "runtime", "provider"):
        table.add_column(col)
    for d in found:
        table.add_row(d.id, d.kind.value, d.name, d.vendor, d.backend, d.provider)
    _console().print(table)
    return 0


def _device_dict(d: Any) -> dict[str, Any]:
    return {
        "id": d.id,
        "kind": d.kind.value,
        "name": d.name,
        "vendor": d.vendor,
        "backend": d.backend,
        "provider": d.provider,
        "emulated": d.emulated,
        "properties": {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in d.properties.items()},
    }


def cmd_inspect(args: argparse.Namespace) -> int:
    from edgeai.model_info import inspect_model

    info = inspect_model(args.model)
    if args.json:
        print(info.model_dump_json(indent=2))
        return 0
    from rich.table import Table

    con = _console()
    con.print(f"[bold]{info.path}[/bold]  ({info.format}, {info.size_bytes:,} bytes)")
    con.print(f"producer: {info.producer or '-'}   opsets: {info.opsets}")
    con.print(f"parameters: {info.parameters:,}   nodes: {info.nodes}   quantization: {info.quantization}")
    for label, specs in (("inputs", info.inputs), ("outputs", info.outputs)):
        con.print(f"{label}:")
        for s in specs:
            con.print(f"  {s}")
    table = Table(title="ops")
    table.add_column("op")
    table.add_column("count", justify="right")
    for op, n in info.op_counts.items():
        table.add_row(op, str(n))
    con.print(table)
    return 0


def _parse_inputs(items: list[str], names: list[str]) -> dict[str, np.ndarray]:
    feeds: dict[str, np.ndarray] = {}
    for item in items:
        if "=" in item:
            name, file = item.split("=", 1)
        elif len(names) == 1:
            name, file = names[0], item
        else:
            raise InputNameError(f"--input {item!r} needs a name: the model has inputs {names}; use NAME=FILE.npy")
        feeds[name] = np.load(file, allow_pickle=False)
    return feeds


def cmd_run(args: argparse.Namespace) -> int:
    import edgeai

    with edgeai.Session(args.model, device=args.device) as sess:
        feeds = _parse_inputs(args.input, [s.name for s in sess.inputs])
        outputs = sess.run(feeds)
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, value in outputs.items():
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        target = out_dir / f"{safe}.npy"
        tmp = target.with_suffix(".npy.tmp")
        with tmp.open("wb") as f:  # atomic: never leave a half-written output
            np.save(f, value)
        tmp.replace(target)
        print(f"{name}: {value.dtype}{list(value.shape)} -> {target}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Interleaved timing of several models on one set of inputs (mapped by position)."""
    import edgeai
    from edgeai.benchmarking import interleaved, random_feeds

    sessions = []
    for spec in args.compare:
        path, _, device = spec.rpartition("@") if "@" in spec else (spec, "", "auto")
        sessions.append((spec, edgeai.Session(path, device=device or "auto", threads=args.threads)))
    first = sessions[0][1]
    dims = {str(d): args.batch for s in first.inputs for d in (s.shape or ()) if isinstance(d, str)}
    arrays = list(random_feeds(first.inputs, dims).values())
    fns = {}
    for label, sess in sessions:
        if len(sess.inputs) != len(arrays):
            raise InputNameError(f"{label} has {len(sess.inputs)} inputs, the first model {len(arrays)}")
        feeds = {spec.name: arr for spec, arr in zip(sess.inputs, arrays)}
        sess.run(feeds)
        fns[label] = lambda sess=sess, feeds=feeds: sess.run(feeds)
    calls = max(1, args.runs // args.rounds)
    medians = interleaved(fns, rounds=args.rounds, calls=calls)
    base = medians[sessions[0][0]]
    if args.json:
        rows = [
            {
                "model": label,
                "device": sess.device.id,
                "median_ms": medians[label] * 1e3,
                "ratio": medians[label] / base,
            }
            for label, sess in sessions
        ]
        print(json.dumps(rows, indent=2))
        return 0
    from rich.table import Table

    table = Table(title=f"interleaved, median of {args.rounds} rounds x {calls} calls, batch {args.batch}")
    for col in ("model", "device", "median ms", "vs first"):
        table.add_column(col, justify="right" if col != "model" else "left")
    for label, sess in sessions:
        table.add_row(label, sess.device.id, f"{medians[label] * 1e3:.3f}", f"{medians[label] / base:.2f}x")
    _console().print(table)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import edgeai
    from edgeai.benchmarking import benchmark, random_feeds

    if args.compare:
        return cmd_compare(args)
    if not args.model:
        raise InputNameError("edgeai bench needs a MODEL, or --compare MODEL[@DEVICE] ...")

    sess = edgeai.Session(args.model, device=args.device, threads=args.threads)
    dims = {str(d): args.batch for s in sess.inputs for d in (s.shape or ()) if isinstance(d, str)}
    feeds = random_feeds(sess.inputs, dims)
    if args.json:
        result = benchmark(sess, feeds, warmup=args.warmup, runs=args.runs)
        print(result.model_dump_json(indent=2))
        return 0
    from rich.progress import Progress

    with Progress(transient=True) as progress:
        task = progress.add_task(f"benchmarking on {sess.device.id}", total=args.runs)
        result = benchmark(
            sess,
            feeds,
            warmup=args.warmup,
            runs=args.runs,
            progress=lambda i: progress.update(task, completed=i),
        )
    con = _console()
    con.print(
        f"[bold]{result.model}[/bold] on {result.device}, batch {result.batch}, "
        f"{result.runs} runs after {result.warmup} warm-up"
    )
    con.print(
        f"latency ms: p50 {result.p50_ms:.3f}  p90 {result.p90_ms:.3f}  "
        f"p99 {result.p99_ms:.3f}  mean {result.mean_ms:.3f}  min {result.min_ms:.3f}"
    )
    con.print(f"throughput: {result.throughput_per_s:,.1f} items/s")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import edgeai
    from edgeai.benchmarking import benchmark

    images, labels = edgeai.demo.samples()
    con = _console()
    from rich.table import Table

    variants = ["float"]
    try:
        edgeai.demo.model_path("int8")
        variants.append("int8")
    except FileNotFoundError:
        pass
    for variant in variants:
        path = edgeai.demo.model_path(variant)
        with edgeai.Session(path, device=args.device) as sess:
            probs = sess.run({sess.inputs[0].name: images})[sess.outputs[0].name]
            pred = probs.argmax(axis=1)
            acc = float((pred == labels).mean())
            bench = benchmark(sess, {sess.inputs[0].name: images[:1]}, warmup=20, runs=200)
            con.print(
                f"\n[bold]edgeai demo[/bold] - {variant} model {path.name} "
                f"({path.stat().st_size:,} bytes): handwritten digits, 8x8 pixels"
            )
            con.print(f"ran on: {sess.device}")
            con.print(f"placement: {sess.placement.summary()}")
            table = Table(title="held-out samples")
            for col in ("#", "label", "predicted", "confidence", ""):
                table.add_column(col, justify="right")
            for i, (y, p, row) in enumerate(zip(labels, pred, probs)):
                table.add_row(str(i), str(y), str(p), f"{row[p]:.3f}", "ok" if y == p else "MISS")
            con.print(table)
            con.print(
                f"accuracy on {len(labels)} shipped held-out samples: "
                f"{acc * 100:.1f}% ({int((pred == labels).sum())}/{len(labels)})"
            )
            con.print(f"latency, batch 1: p50 {bench.p50_ms * 1e3:.1f} us, p99 {bench.p99_ms * 1e3:.1f} us")
    sys.stdout.flush()
    return 0
