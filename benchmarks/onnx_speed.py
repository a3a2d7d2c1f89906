"""ONNX Runtime against PyTorch eager for an exported student: parity and FPS, interleaved in one run.

    python benchmarks/onnx_speed.py --weights runs/segment/<run>/weights/deploy.pt --imgsz 448 --threads 2
    python benchmarks/onnx_speed.py --model mcff-l --imgsz 448      # seeded random weights

Both runtimes get the same thread count and the same batch-1 image; rounds alternate between them
so machine noise hits both alike. Reports the median latency, FPS and the ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from defectkd.core.checkpoint import DEPLOY_FORMAT
from defectkd.deploy.runtime import OnnxSegmenter
from defectkd.export import export_onnx
from defectkd.models import build_model
from defectkd.models.loading import load_checkpoint_model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, help="checkpoint or deploy file (default: random --model)")
    ap.add_argument("--model", default="mcff-l")
    ap.add_argument("--imgsz", type=int, default=448)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.imgsz, args.rounds = 64, 2
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights
        if weights is None:
            torch.manual_seed(0)
            weights = Path(tmp) / f"{args.model}.pt"
            torch.save({"format": DEPLOY_FORMAT, "model_name": args.model, "model_kwargs": {},
                        "threshold": 0.5, "state_dict": build_model(args.model).state_dict()}, weights)
        exported = export_onnx(weights, imgsz=args.imgsz, out=Path(tmp) / "model.onnx")
        model, hp = load_checkpoint_model(weights)
        backend = OnnxSegmenter(exported["file"], threads=args.threads).backend
        x = torch.rand(1, 3, args.imgsz, args.imgsz)
        xn = x.numpy()
        timings: dict[str, list[float]] = {"pytorch eager fp32": [], "onnxruntime fp32": []}

        def torch_run():
            with torch.no_grad():
                return model(x)

        def ort_run():
            return backend.run(xn)[0]

        runs = {"pytorch eager fp32": torch_run, "onnxruntime fp32": ort_run}
        for fn in runs.values():  # warm-up
            fn(), fn()
        for _ in range(args.rounds):
            for name, fn in runs.items():
                t0 = time.perf_counter()
                fn()
                timings[name].append(time.perf_counter() - t0)
        diff = float(np.abs(ort_run() - torch_run().numpy()).max())
    med = {k: statistics.median(v) for k, v in timings.items()}
    ratio = med["pytorch eager fp32"] / med["onnxruntime fp32"]
    print(f"{hp['model_name']} at {args.imgsz}x{args.imgsz}, batch 1, {args.threads} threads, "
          f"median of {args.rounds} interleaved rounds; parity (max abs logits diff) {diff:.2e} "
          f"on export check {exported['max_abs_diff']:.2e}")
    print("| runtime | ms | FPS | speed-up |")
    print("|---|---|---|---|")
    for name, m in med.items():
        print(f"| {name} | {m * 1e3:.1f} | {1 / m:.2f} | {med['pytorch eager fp32'] / m:.2f}x |")
    if args.json:
        args.json.write_text(json.dumps({"model": hp["model_name"], "imgsz": args.imgsz, "threads": args.threads,
                                         "median_s": med, "ort_speedup": ratio, "max_abs_diff": diff}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
