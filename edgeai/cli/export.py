"""``edgeai export``: a torch model to ONNX, ``.pte``, Core ML or ``.tflite``, checked.

The model is named as ``path/to/file.py:NAME`` or ``package.module:NAME``
(``NAME`` is an ``nn.Module`` or a function returning one), or as a
``torch.export`` archive (``.pt2``). Example inputs are random normal tensors
of the shapes given with ``--input-shape`` (seeded), or the example inputs a
``.pt2`` archive carries.

Example:
    edgeai export mymodels.py:make_cnn --input-shape 1,3,224,224 --format pte --quantize int8
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from edgeai.errors import ModelFormatError, ModelNotFoundError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="export a torch model to onnx / pte / coreml / tflite and check it against torch",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="file.py:NAME, package.module:NAME, or a torch.export .pt2 archive")
    p.add_argument("--format", "-f", default="onnx", help="onnx, pte, coreml or tflite (default onnx)")
    p.add_argument("--output", "-o", default=None, help="output path (default: model.<suffix>)")
    p.add_argument(
        "--input-shape",
        action="append",
        default=[],
        metavar="D0,D1,...",
        help="shape of one example input (repeat for several inputs); float32 random normal",
    )
    p.add_argument("--quantize", choices=["int8"], default=None, help="int8 (pte, coreml)")
    p.add_argument("--precision", choices=["float16", "float32"], default="float16", help="Core ML precision")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset")
    p.add_argument("--tolerance", type=float, default=None, help="largest relative error accepted")
    p.add_argument("--no-check", action="store_true", help="skip loading and comparing the result")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_export)


def load_torch_model(spec: str) -> tuple[Any, tuple[Any, ...] | None]:
    """The ``nn.Module`` named by ``spec``, and example inputs when the source carries them."""
    import torch

    if spec.endswith(".pt2"):
        path = Path(spec)
        if not path.exists():
            raise ModelNotFoundError(f"{spec!r} does not exist")
        program = torch.export.load(str(path))
        example = program.example_inputs[0] if program.example_inputs else None
        return _ProgramModule(program.module()), tuple(example) if example else None
    target, sep, name = spec.rpartition(":")
    if not sep or not target or not name:
        raise ModelFormatError(
            f"cannot tell which model {spec!r} means: use file.py:NAME, package.module:NAME or a .pt2 archive"
        )
    if target.endswith(".py"):
        path = Path(target)
        if not path.exists():
            raise ModelNotFoundError(f"{target!r} does not exist")
        module_spec = importlib.util.spec_from_file_location(path.stem, path)
        if module_spec is None or module_spec.loader is None:
            raise ModelFormatError(f"cannot import {target!r}")
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    if not hasattr(module, name):
        raise ModelFormatError(f"{target} has no attribute {name!r}")
    obj = getattr(module, name)
    model = obj if isinstance(obj, torch.nn.Module) else obj()
    if not isinstance(model, torch.nn.Module):
        raise ModelFormatError(f"{spec} gave a {type(model).__name__}, not a torch.nn.Module")
    return model, None


def _program_module_class() -> Any:
    import torch

    class ProgramModule(torch.nn.Module):
        """A ``torch.export`` module behind a plain ``nn.Module``.

        The unlifted module of an ``ExportedProgram`` refuses ``train()``/``eval()``,
        which the TorchScript ONNX exporter calls; kept out of ``_modules`` so they
        do not reach it.
        """

        def __init__(self, program_module: Any) -> None:
            super().__init__()
            for param in program_module.parameters():  # traced as constants: no grad
                param.requires_grad_(False)
            object.__setattr__(self, "_program_module", program_module)

        def forward(self, *args: Any) -> Any:
            return self._program_module(*args)

    return ProgramModule


def _ProgramModule(program_module: Any) -> Any:
    return _program_module_class()(program_module)


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in text.replace("x", ",").split(",") if d.strip())
    except ValueError as exc:
        raise ValueError(f"--input-shape {text!r} must be integers separated by commas") from exc
    if not dims or any(d <= 0 for d in dims):
        raise ValueError(f"--input-shape {text!r} must be positive integers separated by commas")
    return dims


def cmd_export(args: argparse.Namespace) -> int:
    import torch

    from edgeai.export import export

    model, example = load_torch_model(args.model)
    try:
        if args.input_shape:
            gen = torch.Generator().manual_seed(args.seed)
            example = tuple(torch.randn(_parse_shape(s), generator=gen) for s in args.input_shape)
        if not example:
            raise ValueError("give the example input shapes with --input-shape (e.g. 1,3,224,224)")
        result = export(
            model,
            example,
            args.format,
            args.output,
            quantize=args.quantize,
            precision=args.precision,
            opset=args.opset,
            tolerance=args.tolerance,
            check=not args.no_check,
        )
    except (ValueError, TypeError) as exc:  # bad arguments; EdgeAIErrors are reported by edgeai.cli.main
        print(f"edgeai: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.model_dump(mode="json"), indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Exported {result.path}", show_header=False)
    for key, value in result.model_dump().items():
        if isinstance(value, float):
            value = f"{value:.3g}"
        table.add_row(key, str(value))
    Console().print(table)
    return 0
