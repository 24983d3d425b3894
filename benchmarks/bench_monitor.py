"""Cost of monitoring: ``Session(..., monitor=True)`` against a plain ``run`` (issue 9, goal < 5%).

    python benchmarks/bench_monitor.py [--rounds 15] [--runs 2000] [--batch 1]

Variants, interleaved in one process on the shipped demo model, each round
running every variant ``--runs`` times; the report gives the median over rounds
of the mean time per run, and each variant's ratio to its baseline:

* ``plain``: ``Session.run`` with monitoring off (baseline of ``session+monitor``).
* ``session+monitor``: ``Session(..., monitor=True).run`` as ``edgeai/session.py``
  wires it today (feeds validated in Python, then the executable's ``run``).
* ``raw``: the ONNX Runtime executable's fast call alone (baseline of ``raw+measure``).
* ``raw+measure``: the same call inside ``Monitor.measure`` (sampling on, default
  ``sample_every``): the monitor's own cost, i.e. what ``monitor=True`` would
  cost if Session used its fast path when monitoring.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

import edgeai
from edgeai.monitor import Monitor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()

    images, _ = edgeai.demo.samples()
    x = np.ascontiguousarray(np.resize(images, (args.batch, 1, 8, 8)))
    feeds = {"image": x}
    plain = edgeai.Session(edgeai.demo.model_path(), threads=1)
    watched = edgeai.Session(edgeai.demo.model_path(), threads=1, monitor=True)
    raw_sess = edgeai.Session(edgeai.demo.model_path(), threads=1)
    exe = raw_sess._exec
    names = list(raw_sess._output_names)
    fast = exe.run_fast  # type: ignore[attr-defined]
    monitor = Monitor("bench")

    def raw() -> object:
        return fast(names, feeds, None)

    def raw_measure() -> object:
        with monitor.measure(feeds) as rec:
            outs = fast(names, feeds, None)
            rec.outputs = dict(zip(names, outs))
        return outs

    variants: dict[str, Callable[[], object]] = {
        "plain": lambda: plain.run(feeds),
        "session+monitor": lambda: watched.run(feeds),
        "raw": raw,
        "raw+measure": raw_measure,
    }
    np.testing.assert_array_equal(watched.run(feeds)["probabilities"], plain.run(feeds)["probabilities"])
    times: dict[str, list[float]] = {k: [] for k in variants}
    for fn in variants.values():
        for _ in range(200):
            fn()
    for _ in range(args.rounds):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            for _ in range(args.runs):
                fn()
            times[name].append((time.perf_counter() - t0) / args.runs)
    med = {k: statistics.median(v) * 1e6 for k, v in times.items()}
    base = {"plain": "plain", "session+monitor": "plain", "raw": "raw", "raw+measure": "raw"}
    print(f"demo model, batch {args.batch}, {args.rounds} rounds x {args.runs} runs, 1 intra-op thread")
    for name, us in med.items():
        ratio = us / med[base[name]]
        print(f"  {name:<16} {us:9.2f} us/run   x{ratio:.3f} vs {base[name]}")
    print(f"monitor records: {watched.monitor.runs + monitor.runs:,} runs, 0 results changed")


if __name__ == "__main__":
    main()
