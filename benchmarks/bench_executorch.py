"""ExecuTorch through edgeai: Session overhead, and one model on three engines.

1. ``edgeai.Session.run`` over a ``.pte`` against the raw ExecuTorch runtime
   (``Runtime.get().load_program(...).load_method("forward").execute``), rounds
   interleaved (ABAB...) in one process; the report gives the median per-call
   time of each and their ratio. Target: overhead within 3%.
2. The same model exported by ``edgeai.export`` as ``.onnx`` and ``.pte``, run on
   ONNX Runtime, on ExecuTorch (XNNPACK) and on edgeai's native engine (the
   ``.onnx``), interleaved, one table with times relative to ONNX Runtime.

Every engine runs single-threaded so that the numbers compare kernels, not
thread pools. The model is the test suite's MobileNetV2 (width 0.5, 96x96,
seeded random weights; tests/models.py) or, with ``--model cnn``, a tiny CNN.

    python benchmarks/bench_executorch.py [--model mbv2|cnn] [--rounds 15] [--calls 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

import edgeai
from edgeai.benchmarking import interleaved
from edgeai.export import export

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _model(kind: str) -> tuple[Any, Any]:
    import torch

    if kind == "mbv2":
        from models import build_mobilenetv2

        model = build_mobilenetv2(width=0.5, num_classes=100, seed=0).eval()
        return model, torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(32 * 16 * 16, 10),
    ).eval()
    return model, torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["mbv2", "cnn"], default="mbv2")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import torch
    from executorch.extension.pybindings import portable_lib
    from executorch.runtime import Runtime

    portable_lib._unsafe_reset_threadpool(1)
    torch.set_num_threads(1)
    model, x = _model(args.model)
    x_np = x.numpy()
    work = Path(tempfile.mkdtemp(prefix="bench_et_"))
    pte = export(model, x, "pte", work / "model.pte").path
    onnx_path = export(model, x, "onnx", work / "model.onnx").path

    # -- 1. Session over .pte vs the raw runtime --------------------------------
    method = Runtime.get().load_program(pte).load_method("forward")
    sess = edgeai.Session(pte, device="executorch")
    want = method.execute([torch.from_numpy(x_np)])[0].numpy()
    np.testing.assert_array_equal(sess.run({"input": x_np})["output"], want)

    def raw() -> Any:
        return method.execute([torch.from_numpy(x_np)])[0].numpy()

    def edge() -> Any:
        return sess.run({"input": x_np})

    med = interleaved({"raw": raw, "edgeai": edge}, args.rounds, args.calls)
    overhead = {
        "model": args.model,
        "raw_executorch_ms": med["raw"] * 1e3,
        "edgeai_session_ms": med["edgeai"] * 1e3,
        "ratio": med["edgeai"] / med["raw"],
        "overhead_us": (med["edgeai"] - med["raw"]) * 1e6,
    }

    # -- 2. one model, three engines ---------------------------------------------
    ort_sess = edgeai.Session(onnx_path, device="onnxruntime", threads=1)
    native = edgeai.Session(onnx_path, device="native", threads=1)
    feeds = {"input": x_np}
    for s in (ort_sess, native):
        np.testing.assert_allclose(s.run(feeds)["output"], want, rtol=1e-3, atol=1e-4)
    engines = {
        "onnxruntime (.onnx)": lambda: ort_sess.run(feeds),
        "executorch xnnpack (.pte)": lambda: sess.run(feeds),
        "edgeai native (.onnx)": lambda: native.run(feeds),
    }
    med2 = interleaved(engines, args.rounds, max(1, args.calls // 2))
    base = med2["onnxruntime (.onnx)"]
    table = [{"engine": k, "ms": v * 1e3, "vs_onnxruntime": v / base} for k, v in med2.items()]

    if args.json:
        print(json.dumps({"overhead": overhead, "engines": table}, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t1 = Table(title=f"edgeai.Session over .pte vs raw ExecuTorch ({args.model}, 1 thread)")
    for col in ("raw ms", "edgeai ms", "ratio", "overhead µs"):
        t1.add_column(col, justify="right")
    t1.add_row(
        f"{overhead['raw_executorch_ms']:.3f}",
        f"{overhead['edgeai_session_ms']:.3f}",
        f"{overhead['ratio']:.3f}",
        f"{overhead['overhead_us']:.1f}",
    )
    console.print(t1)
    t2 = Table(title=f"One model, three engines ({args.model}, 1 thread, median per run)")
    for col in ("engine", "ms", "vs ONNX Runtime"):
        t2.add_column(col, justify="right" if col != "engine" else "left")
    for row in table:
        t2.add_row(row["engine"], f"{row['ms']:.3f}", f"{row['vs_onnxruntime']:.2f}x")
    console.print(t2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
