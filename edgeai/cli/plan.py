"""``edgeai plan MODEL [--target NAME]``: where a model's nodes would run, without running it."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "plan",
        help="plan where each node would run: on the devices present or on a target profile",
    )
    p.add_argument("model", nargs="?")
    p.add_argument("--target", help="a target profile (see --list-targets) instead of the devices present")
    p.add_argument("--device", default="auto", help="restrict to one present device (without --target)")
    p.add_argument("--pin", action="append", default=[], metavar="OP_OR_NODE=DEVICE")
    p.add_argument("--forbid", action="append", default=[], metavar="DEVICE")
    p.add_argument("--require", action="append", default=[], metavar="KIND=SHARE", help="e.g. npu=0.9")
    p.add_argument("--dim", action="append", default=[], metavar="NAME=SIZE", help="fix a symbolic dimension")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--list-targets", action="store_true", help="list the shipped target profiles and exit")
    p.set_defaults(func=cmd_plan)


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"edgeai plan: {what} {item!r} must look like KEY=VALUE")
        k, v = item.split("=", 1)
        out[k] = v
    return out


def cmd_plan(args: argparse.Namespace) -> int:
    import edgeai

    if args.list_targets:
        from edgeai.hardware.targets import load_target, target_names

        for name in target_names():
            t = load_target(name)
            print(f"{name:26} {t.kind:4} {t.title}")
        return 0
    if not args.model:
        raise SystemExit("edgeai plan: a MODEL is needed (or --list-targets)")
    report = edgeai.plan(
        args.model,
        target=args.target,
        device=args.device,
        pin=_pairs(args.pin, "--pin") or None,
        forbid=args.forbid,
        require={k: float(v) for k, v in _pairs(args.require, "--require").items()} or None,
        dims={k: int(v) for k, v in _pairs(args.dim, "--dim").items()},
    )
    if args.json:
        print(report.model_dump_json(indent=2))
    else:
        print(str(report))
    return 0
