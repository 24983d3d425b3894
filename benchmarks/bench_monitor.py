"""Cost of monitoring: ``Session(..., monitor=True)`` against a plain ``run`` (issue 9, goal < 5%).

    python benchmarks/bench_monitor.py [--rounds 15] [--runs 2000] [--batch 1]

Variants, interleaved in one process on the shipped demo model, each round
running every variant ``--runs`` times in a shuffled order; the report gives the median over rounds
of the mean time per run, and each variant's ratio to its baseline:

* ``plain``: ``Session.run`` with monitoring off (baseline of ``session+monitor``).
* ``session+monitor``: ``Session(..., monitor=True).run`` as ``edgeai/session.py``
  wires it today (feeds validated in Python, then the executable's ``run``).
* ``raw``: the ONNX Runtime executable's fast call alone (baseline of ``raw+measure``).
* ``raw+measure``: the same call inside ``Monitor.measure`` (sampling on, default
  ``sample_interval``, outputs handed over as the runtime's list): the monitor's own
  cost, i.e. what ``monitor=True`` would cost if Session kept its fast path when monitoring.
* ``raw+record_run``: the same call timed by the caller and reported with
  ``Monitor.record_run`` (one method call; the cheapest hook).
* ``record_run alone``: the monitor's cost with no model around it: two clock
  reads and ``record_run`` told the model's measured run time, so runs are
  sampled at the rate they would be. On a busy machine this absolute figure is
  steadier than the difference of two noisy model timings.

Times are CPU time of the calling thread (``time.thread_time``; ONNX Runtime runs
in the caller with one intra-op thread), which other processes on a shared
machine disturb far less than wall time; ``--wall`` uses wall time instead.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from time import perf_counter

import numpy as np

import edgeai
from edgeai.monitor import Monitor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--wall", action="store_true", help="wall time instead of thread CPU time")
    args = parser.parse_args()
    clock = time.perf_counter if args.wall else time.thread_time

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
            rec.outputs = outs
        return outs

    recorder = Monitor("bench-record")

    def raw_record() -> object:
        t0 = perf_counter()
        outs = fast(names, feeds, None)
        recorder.record_run(perf_counter() - t0, feeds, outs)
        return outs

    for _ in range(200):
        raw()
    t0 = clock()
    for _ in range(500):
        cached = raw()
    t_model = (clock() - t0) / 500
    alone = Monitor("bench-alone")

    def record_alone() -> object:
        t = perf_counter()
        alone.record_run(t_model + (perf_counter() - t), feeds, cached)
        return cached

    variants: dict[str, Callable[[], object]] = {
        "plain": lambda: plain.run(feeds),
        "session+monitor": lambda: watched.run(feeds),
        "raw": raw,
        "raw+measure": raw_measure,
        "raw+record_run": raw_record,
        "record_run alone": record_alone,
    }
    np.testing.assert_array_equal(watched.run(feeds)["probabilities"], plain.run(feeds)["probabilities"])
    times: dict[str, list[float]] = {k: [] for k in variants}
    for fn in variants.values():
        for _ in range(200):
            fn()
    order = list(variants)
    rng = random.Random(0)
    for _ in range(args.rounds):
        rng.shuffle(order)  # no variant always runs right after another: removes order bias
        for name in order:
            fn = variants[name]
            t0 = clock()
            for _ in range(args.runs):
                fn()
            times[name].append((clock() - t0) / args.runs)
    med = {k: statistics.median(v) * 1e6 for k, v in times.items()}
    base = {"plain": "plain", "session+monitor": "plain", "raw": "raw", "raw+measure": "raw", "raw+record_run": "raw"}
    kind = "wall" if args.wall else "thread CPU"
    print(f"demo model, batch {args.batch}, {args.rounds} rounds x {args.runs} runs, 1 intra-op thread, {kind} time")
    for name, us in med.items():
        if name == "record_run alone":
            print(f"  {name:<16} {us:9.2f} us/run   = {us / med['raw']:.1%} of raw")
            continue
        ratio = us / med[base[name]]
        print(f"  {name:<16} {us:9.2f} us/run   x{ratio:.3f} vs {base[name]}")
    total = watched.monitor.runs + monitor.runs + recorder.runs + alone.runs
    print(f"monitors recorded {total:,} runs; monitored outputs equal plain outputs")


if __name__ == "__main__":
    main()
