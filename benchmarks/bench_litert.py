"""edgeai.Session over a .tflite model against LiteRT's raw interpreter, interleaved.

The model is the small int8 CNN of the tests (written as a flatbuffer by
tests/tflite_builder.py), batch 1, one thread, XNNPACK as LiteRT applies it
by default. Reports the median per-call time of each and the ratio.

    python benchmarks/bench_litert.py [--rounds 21] [--calls 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

import edgeai

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from tflite_builder import int8_cnn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    path = Path(tempfile.mkdtemp()) / "int8_cnn.tflite"
    path.write_bytes(int8_cnn(batch_signature=False))
    x = np.random.default_rng(0).integers(-128, 128, (1, 8, 8, 1)).astype(np.int8)
    raw = Interpreter(model_path=str(path), num_threads=1)
    raw.allocate_tensors()
    i_idx = raw.get_input_details()[0]["index"]
    o_idx = raw.get_output_details()[0]["index"]

    def raw_call() -> np.ndarray:
        raw.set_tensor(i_idx, x)
        raw.invoke()
        return raw.get_tensor(o_idx)

    sess = edgeai.Session(path, threads=1)
    feeds = {"image": x}
    np.testing.assert_array_equal(raw_call(), sess.run(feeds)["probs"])

    def edge_call() -> object:
        return sess.run(feeds)

    a: list[float] = []
    b: list[float] = []
    for r in range(args.rounds):
        for fn in (raw_call, edge_call) if r % 2 == 0 else (edge_call, raw_call):
            t0 = time.perf_counter()
            for _ in range(args.calls):
                fn()
            (a if fn is raw_call else b).append((time.perf_counter() - t0) / args.calls)
    ra, rb = statistics.median(a), statistics.median(b)
    print(
        f"raw LiteRT interpreter: {ra * 1e6:.2f} us; edgeai.Session: {rb * 1e6:.2f} us; "
        f"ratio {rb / ra:.3f}; overhead {(rb - ra) * 1e6:.2f} us/call"
    )


if __name__ == "__main__":
    main()
