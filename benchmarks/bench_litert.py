"""edgeai.Session over .tflite models against LiteRT's raw interpreter, interleaved.

Two int8 CNNs written as flatbuffers by tests/tflite_builder.py, batch 1, one
thread, XNNPACK as LiteRT applies it by default:

* ``mobile``: ``int8_mobile_cnn`` (MobileNet-like, 64x64x3 input), the same
  CNN ``bench_tflite_native.py`` runs on the native engine;
* ``toy``: ``int8_cnn`` (one conv on an 8x8x1 input, ~7 us a call), where
  Session's fixed per-call cost is as visible as it can be.

The raw call is what LiteRT's documentation shows: ``set_tensor``, ``invoke``,
``get_tensor`` on ``ai_edge_litert.interpreter.Interpreter``. Session's call is
``session.run({"image": x})`` returning a dict. Rounds rotate the order in one
process; the report gives the median per-call time, the ratio and the fixed
overhead in microseconds.

    python benchmarks/bench_litert.py [--rounds 21] [--calls 2000] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

import edgeai
from edgeai.benchmarking import interleaved

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from tflite_builder import int8_cnn, int8_mobile_cnn


def _compare(path: Path, x: np.ndarray, rounds: int, calls: int) -> dict[str, float]:
    raw = Interpreter(model_path=str(path), num_threads=1)
    raw.allocate_tensors()
    i_idx = raw.get_input_details()[0]["index"]
    o_idx = raw.get_output_details()[0]["index"]
    in_name = raw.get_input_details()[0]["name"]
    out_name = raw.get_output_details()[0]["name"]

    def raw_call() -> np.ndarray:
        raw.set_tensor(i_idx, x)
        raw.invoke()
        return raw.get_tensor(o_idx)

    sess = edgeai.Session(path, threads=1)
    feeds = {in_name: x}
    np.testing.assert_array_equal(raw_call(), sess.run(feeds)[out_name])
    fns: dict[str, Callable[[], object]] = {"raw": raw_call, "session": lambda: sess.run(feeds)}
    t = interleaved(fns, rounds, calls)
    return {
        "raw_us": t["raw"] * 1e6,
        "session_us": t["session"] * 1e6,
        "ratio": t["session"] / t["raw"],
        "overhead_us": (t["session"] - t["raw"]) * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--calls", type=int, default=2000, help="calls per round for the toy model (mobile: 1/10)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(0)
    models = {
        "mobile": (int8_mobile_cnn(size=64), rng.integers(-128, 128, (1, 64, 64, 3)).astype(np.int8), 10),
        "toy": (int8_cnn(batch_signature=False), rng.integers(-128, 128, (1, 8, 8, 1)).astype(np.int8), 1),
    }
    results = {}
    for name, (model, x, div) in models.items():
        path = folder / f"{name}.tflite"
        path.write_bytes(model)
        results[name] = _compare(path, x, args.rounds, max(1, args.calls // div))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name, r in results.items():
        print(
            f"{name:7s} raw LiteRT {r['raw_us']:9.2f} us  edgeai.Session {r['session_us']:9.2f} us  "
            f"ratio {r['ratio']:.3f}  overhead {r['overhead_us']:+.2f} us/call"
        )


if __name__ == "__main__":
    main()
