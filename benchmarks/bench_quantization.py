"""INT8 against float: latency on ONNX Runtime and the native engine, size, calibration time.

Models: the shipped digits demo (float and the shipped INT8 file) and the
MobileNetV2-style test model (width 0.5, 96 x 96, exported by tests/models.py,
quantized here by edgeai with min-max calibration on 100 samples). Every
(model, precision, device) session runs ``--calls`` batch-1 calls per round;
rounds interleave all sessions, so that machine noise hits them alike; the
report gives the median per-call time over rounds and the INT8/float ratio.
Calibration time is measured per calibrator for 100 samples.

    python benchmarks/bench_quantization.py [--rounds 7] [--calls 50] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import edgeai
from edgeai.optimize import quantize

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from models import calibration_data, export_mobilenetv2


def _time_calls(sess: edgeai.Session, feed: dict[str, np.ndarray], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        sess.run(feed)
    return (time.perf_counter() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--devices", default="onnxruntime,native")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="edgeai-bench-q-"))

    mbv2 = export_mobilenetv2(tmp / "mbv2.onnx")
    calib = calibration_data(100)
    calib_rows = []
    for method in ("minmax", "percentile", "entropy"):
        result = quantize(mbv2, calib, method=method, progress=False)
        calib_rows.append((method, result.calibration_seconds))
        if method == "minmax":
            result.save(tmp / "mbv2_int8.onnx")
    images, _ = edgeai.demo.samples()
    demo_calib = [images[i : i + 1] for i in range(len(images))] * 4  # 128 feeds, 100 timed below
    demo_times = []
    for method in ("minmax", "percentile", "entropy"):
        demo_times.append(quantize(edgeai.demo.model_path(), demo_calib[:100], method=method, progress=False))

    models = {
        "digits demo": (edgeai.demo.model_path(), edgeai.demo.model_path("int8"), {"image": images[:1]}),
        "MobileNetV2 0.5x96": (mbv2, tmp / "mbv2_int8.onnx", {"input": calib[0]["input"]}),
    }
    devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    sessions: dict[tuple[str, str, str], tuple[edgeai.Session, dict[str, np.ndarray]]] = {}
    failed: dict[tuple[str, str, str], str] = {}
    for name, (f32, i8, feed) in models.items():
        for device in devices:
            for precision, path in (("float", f32), ("int8", i8)):
                try:
                    sess = edgeai.Session(path, device=device, threads=args.threads)
                    for _ in range(5):  # warm-up (JIT compilation on the native engine)
                        sess.run(feed)
                except edgeai.errors.EdgeAIError as exc:
                    failed[(name, device, precision)] = f"{type(exc).__name__}: {str(exc)[:150]}"
                    continue
                sessions[(name, device, precision)] = (sess, feed)
    times: dict[tuple[str, str, str], list[float]] = {k: [] for k in sessions}
    for _ in range(args.rounds):
        for key, (sess, feed) in sessions.items():
            times[key].append(_time_calls(sess, feed, args.calls))

    import onnxruntime

    print(
        f"onnxruntime {onnxruntime.__version__}, {args.threads} thread(s), batch 1, "
        f"median of {args.rounds} rounds x {args.calls} calls\n"
    )
    print("| model | device | float ms | int8 ms | int8/float |")
    print("|---|---|---|---|---|")
    for name in models:
        for device in devices:
            if (name, device, "float") in failed or (name, device, "int8") in failed:
                print(f"| {name} | {device} | failed | failed | - |")
                continue
            f = statistics.median(times[(name, device, "float")]) * 1e3
            q = statistics.median(times[(name, device, "int8")]) * 1e3
            print(f"| {name} | {device} | {f:.3f} | {q:.3f} | {q / f:.2f} |")
    for key, why in failed.items():
        print(f"\n{' / '.join(key)} did not run: {why}")
    print("\n| model | float bytes | int8 bytes | int8/float |")
    print("|---|---|---|---|")
    for name, (f32, i8, _) in models.items():
        a, b = Path(f32).stat().st_size, Path(i8).stat().st_size
        print(f"| {name} | {a:,} | {b:,} | {b / a:.2f} |")
    print("\n| calibrator | MobileNetV2 s / 100 samples | digits demo s / 100 samples |")
    print("|---|---|---|")
    for (method, seconds), demo in zip(calib_rows, demo_times):
        print(f"| {method} | {seconds:.2f} | {demo.calibration_seconds:.2f} |")


if __name__ == "__main__":
    main()
