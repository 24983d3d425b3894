"""Native-engine commands: ``edgeai ops`` and ``edgeai warmup MODEL``.

``ops`` lists every op and schema version the native engine claims (the
same list as :func:`edgeai.ops.supported`). ``warmup`` builds a native
session and runs it twice on random inputs, so that numba compiles (and
caches) the model's kernels (first run) and its programs (second run: see
``edgeai.graph.program``) before the first real request.

Example:
    >>> from edgeai.cli import main
    >>> main(["ops", "--json"]) == 0  # doctest: +ELLIPSIS
    [...
    True
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("ops", help="list the ops and opsets the native engine implements")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--domain", default=None, help='only this domain ("" or "ai.onnx" is the default one)')
    p.set_defaults(func=cmd_ops)

    p = sub.add_parser("warmup", help="build a native session and run it twice so its kernels compile ahead")
    p.add_argument("model")
    p.add_argument("--batch", type=int, default=1, help="size of symbolic (batch) dimensions")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_warmup)


def cmd_ops(args: argparse.Namespace) -> int:
    from edgeai.ops import supported

    claimed = supported()
    if args.domain is not None:
        want = "" if args.domain in ("", "ai.onnx") else args.domain
        claimed = [c for c in claimed if c.domain == want]
    if args.json:
        rows = [{"domain": c.domain, "op_type": c.op_type, "versions": list(c.versions)} for c in claimed]
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Native engine: {len(claimed)} ops")
    for col in ("domain", "op", "schema versions"):
        table.add_column(col)
    for c in claimed:
        table.add_row(c.domain or "ai.onnx", c.op_type, ", ".join(str(v) for v in c.versions))
    console = Console()
    console.print(table)
    from edgeai.ops import skipped

    for module, reason in sorted(skipped.items()):
        console.print(f"[yellow]not loaded:[/yellow] {module} ({reason})")
    return 0


def cmd_warmup(args: argparse.Namespace) -> int:
    import edgeai
    from edgeai.benchmarking import random_feeds

    start = time.perf_counter()
    with edgeai.Session(args.model, device="native") as sess:
        built = time.perf_counter()
        dims = {str(d): args.batch for s in sess.inputs for d in (s.shape or ()) if isinstance(d, str)}
        try:
            feeds = random_feeds(sess.inputs, dims)
        except ValueError as exc:
            raise edgeai.errors.InputTypeError(
                f"cannot warm up {args.model}: {exc}; warm it up by running it on real inputs"
            ) from exc
        outputs = sess.run(feeds)
        ran = time.perf_counter()
        sess.run(feeds)  # the second run records the kernel calls and compiles the programs
        again = time.perf_counter()
    result = {
        "model": str(args.model),
        "device": sess.device.id,
        "build_s": round(built - start, 4),
        "first_run_s": round(ran - built, 4),
        "second_run_s": round(again - ran, 4),
        "outputs": {k: list(getattr(v, "shape", ())) for k, v in outputs.items()},
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"warmed up {result['model']} on {result['device']}: built in {result['build_s']:.3f} s, "
            f"first run {result['first_run_s']:.3f} s, second run (programs) {result['second_run_s']:.3f} s"
        )
    return 0
