"""The ``edgeai`` command line.

Each command group lives in its own module with a ``register(subparsers)``
function; ``_COMMAND_MODULES`` lists them. Modules that are not part of this
build are skipped, so a command group is added by adding its module.

Example:
    >>> from edgeai.cli import main
    >>> main(["devices", "--json"]) == 0  # doctest: +ELLIPSIS
    [...
    True
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from edgeai._version import __version__
from edgeai.errors import EdgeAIError

__all__ = ["main"]

_COMMAND_MODULES = (
    "edgeai.cli.core",  # devices, inspect, run, bench, demo
    "edgeai.cli.native",  # warmup, ops
    "edgeai.cli.plan",  # plan
    "edgeai.cli.optimize",  # quantize, prune, evaluate
    "edgeai.cli.lifecycle",  # bundle, store
    "edgeai.cli.export",  # export
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeai", description="Run and inspect ML models on edge devices.")
    parser.add_argument("--version", action="version", version=f"edgeai {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``edgeai`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except EdgeAIError as exc:
        print(f"edgeai: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
