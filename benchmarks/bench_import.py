"""Cost of ``import edgeai`` beyond numpy, in fresh interpreters.

    python benchmarks/bench_import.py [--repeats 15]

Each repeat starts two interpreters: one that imports numpy only, one that
imports numpy and then edgeai; the report gives the median wall time of each
and their difference, and lists any heavy runtime that ``import edgeai`` pulled in.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

HEAVY = ("onnxruntime", "onnx", "numba", "torch", "tensorflow", "coremltools", "executorch", "pydantic")


def _run(code: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    base, full = [], []
    for _ in range(args.repeats):
        base.append(_run("import numpy"))
        full.append(_run("import numpy, edgeai"))
    loaded = subprocess.run(
        [sys.executable, "-c", f"import sys, edgeai; print([m for m in {HEAVY!r} if m in sys.modules])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    b, f = statistics.median(base), statistics.median(full)
    print(f"import numpy:          {b * 1e3:7.1f} ms (median of {args.repeats})")
    print(f"import numpy, edgeai:  {f * 1e3:7.1f} ms")
    print(f"edgeai beyond numpy:   {(f - b) * 1e3:7.1f} ms")
    print(f"heavy modules loaded by import edgeai: {loaded}")


if __name__ == "__main__":
    main()
