"""Optimization commands: ``quantize``, ``prune``, ``evaluate``.

Data files are ``.npy`` (one array for a one-input model, samples on the first
axis) or ``.npz`` (one array per input name, samples on the first axis; an
array called ``labels`` holds class labels for ``evaluate``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from edgeai.errors import InputNameError


def register(sub: Any) -> None:
    p = sub.add_parser("quantize", help="quantize an ONNX model to INT8 (static with calibration, or dynamic)")
    p.add_argument("model")
    p.add_argument("-o", "--output", required=True, help="where to write the quantized model")
    p.add_argument("--calibration", "-c", help="calibration samples (.npy or .npz); not for --dynamic")
    p.add_argument("--limit", type=int, default=None, help="use at most this many calibration samples")
    p.add_argument("--dynamic", action="store_true", help="dynamic quantization (no calibration)")
    p.add_argument("--method", default="minmax", choices=["minmax", "percentile", "entropy"])
    p.add_argument("--percentile", type=float, default=99.999)
    p.add_argument("--per-tensor", action="store_true", help="one weight scale per tensor, not per channel")
    p.add_argument("--activation-type", default="uint8", choices=["uint8", "int8"])
    p.add_argument("--weight-type", default="int8", choices=["int8", "uint8"])
    p.add_argument("--reduce-range", action="store_true", help="7-bit weights, for CPUs without VNNI")
    p.add_argument("--format", default="qdq", choices=["qdq", "qoperator"])
    p.add_argument("--exclude-node", action="append", default=[], metavar="NAME", help="keep in float")
    p.add_argument("--exclude-op", action="append", default=[], metavar="OP_TYPE", help="keep in float")
    p.add_argument(
        "--max-accuracy-drop",
        type=float,
        default=None,
        metavar="DROP",
        help="keep the most sensitive layers in float until top-1 drops by at most DROP (0.01 = 1 point)",
    )
    p.add_argument("--eval-data", help="held-out samples with 'labels' (.npz) for --max-accuracy-drop")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("prune", help="prune an ONNX model: structured channels or unstructured magnitude")
    p.add_argument("model")
    p.add_argument("-o", "--output", required=True)
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--channels", type=float, metavar="RATIO", help="remove this share of channels")
    group.add_argument("--sparsity", type=float, help="zero this share of the smallest weights")
    p.add_argument("--scope", default="layer", choices=["layer", "global"], help="for --sparsity")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_prune)

    p = sub.add_parser("evaluate", help="accuracy, agreement and SQNR of a model against labels / its float model")
    p.add_argument("model")
    p.add_argument("--data", "-d", required=True, help="evaluation samples (.npy or .npz)")
    p.add_argument("--labels", help="labels (.npy); default: the 'labels' array of a .npz --data")
    p.add_argument("--reference", "-r", help="the float model to compare with")
    p.add_argument("--device", default="cpu")
    p.add_argument("--plot", help="save a per-layer SQNR chart (PNG; needs matplotlib)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate)


def _input_names(model: str) -> list[str]:
    from edgeai.formats.onnx_format import io_specs
    from edgeai.optimize._model import as_proto

    inputs, _ = io_specs(as_proto(model))
    return [s.name for s in inputs]


def load_arrays(path: str, names: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Batched input arrays (and labels, when a .npz has them) from a data file."""
    if path.endswith(".npy"):
        if len(names) != 1:
            raise InputNameError(f"a .npy file feeds one input but the model has inputs {names}; use .npz")
        return {names[0]: np.load(path, allow_pickle=False)}, None
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    labels = arrays.pop("labels", None)
    if len(names) == 1 and len(arrays) == 1 and names[0] not in arrays:
        arrays = {names[0]: next(iter(arrays.values()))}
    missing = [n for n in names if n not in arrays]
    if missing:
        raise InputNameError(f"{path} lacks arrays for input(s) {missing}; it has {sorted(arrays)}")
    return {n: arrays[n] for n in names}, labels


def _per_sample(arrays: dict[str, np.ndarray], limit: int | None) -> list[dict[str, np.ndarray]]:
    n = min(len(v) for v in arrays.values())
    if limit is not None:
        n = min(n, limit)
    return [{k: v[i : i + 1] for k, v in arrays.items()} for i in range(n)]


def _print(text: Any) -> None:
    from rich.console import Console

    Console().print(text)


def cmd_quantize(args: argparse.Namespace) -> int:
    from edgeai.optimize import OptimizationError, quantize, quantize_dynamic

    if args.dynamic:
        if args.calibration:
            raise OptimizationError("--dynamic needs no --calibration data; drop one of the two")
        result = quantize_dynamic(
            args.model,
            args.output,
            per_channel=not args.per_tensor,
            reduce_range=args.reduce_range,
            weight_type=args.weight_type,
            exclude_nodes=args.exclude_node,
        )
    else:
        if not args.calibration:
            raise OptimizationError("static quantization needs --calibration samples (.npy/.npz), or --dynamic")
        names = _input_names(args.model)
        arrays, _ = load_arrays(args.calibration, names)
        eval_fn = _top1_eval(args.eval_data, names) if args.max_accuracy_drop is not None else None
        result = quantize(
            args.model,
            _per_sample(arrays, args.limit),
            args.output,
            method=args.method,
            percentile=args.percentile,
            per_channel=not args.per_tensor,
            activation_type=args.activation_type,
            weight_type=args.weight_type,
            reduce_range=args.reduce_range,
            format=args.format,
            exclude_nodes=args.exclude_node,
            exclude_op_types=args.exclude_op,
            max_accuracy_drop=args.max_accuracy_drop,
            eval_fn=eval_fn,
            progress=not args.json,
        )
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        _print(result.summary())
        _print(f"wrote {result.path}")
    return 0


def _top1_eval(path: str | None, names: list[str]) -> Any:
    """``eval_fn(model) -> top-1`` on a labelled data file, for the accuracy budget."""
    from edgeai.optimize import OptimizationError

    if not path:
        raise OptimizationError("--max-accuracy-drop needs --eval-data: held-out samples with 'labels' (.npz)")
    arrays, labels = load_arrays(path, names)
    if labels is None:
        raise OptimizationError(f"{path} has no 'labels' array; --eval-data needs labels to measure accuracy")

    def top1(model: Any) -> float:
        from edgeai.optimize import evaluate

        report = evaluate(model, arrays, labels)
        return float(report.top1 or 0.0)

    return top1


def cmd_prune(args: argparse.Namespace) -> int:
    from edgeai.optimize import prune_channels, prune_magnitude

    if args.channels is not None:
        report = prune_channels(args.model, args.channels, args.output)
    else:
        report = prune_magnitude(args.model, args.sparsity, args.output, scope=args.scope)
    if args.json:
        print(report.model_dump_json(indent=2))
    else:
        _print(report.summary())
        _print(f"wrote {report.path}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from edgeai.optimize import evaluate

    arrays, labels = load_arrays(args.data, _input_names(args.model))
    if args.labels:
        labels = np.load(args.labels, allow_pickle=False)
    report = evaluate(args.model, arrays, labels, reference=args.reference, device=args.device)
    if args.plot:
        report.plot_layer_sqnr(Path(args.plot))
    if args.json:
        print(report.model_dump_json(indent=2))
        return 0
    _print(report.summary())
    if report.layers:
        _print(report.layer_table())
    return 0
