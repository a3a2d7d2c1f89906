"""Which INT8 graph? Quantization variants of one trained segmenter: validation F1 and ONNX Runtime speed.

    python benchmarks/int8_variants.py runs/segment/deepcrack-edge-s-kd-offline2 --data ../shared/datasets/deepcrack
    python benchmarks/int8_variants.py --quick          # untrained mcff-edge-n on synthetic cracks, seconds

Exports the weights at --imgsz, quantizes them several ways (QDQ or QOperator, all operators or convolutions
only, depthwise convolutions left in float), scores each on the validation images training held out (same
split rule as training: val_fraction 0.1, split seed 0) and times the bare graph on --threads threads
(--rounds interleaved rounds x 5 calls, median). Variants go to --work. Results: docs/benchmarks.md,
"Export formats and INT8".
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

VARIANTS = {
    "fp32": None,
    "qdq-all": {},
    "qdq-conv": {"op_types": ["Conv"]},
    "qdq-conv-nodw": {"op_types": ["Conv"], "skip_depthwise": True},
    "qdq-all-nodw": {"skip_depthwise": True},
    "qop-all": {"qoperator": True},
    "qop-conv": {"qoperator": True, "op_types": ["Conv"]},
}


def pooled_f1(seg, samples) -> float:
    from defectkd.data.io import read_image, read_mask

    tp = fp = fn = 0
    for s in samples:
        prob, _ = seg.segment(read_image(s.image))
        truth, pred = read_mask(s.mask) > 0, prob >= 0.5
        tp, fp, fn = tp + np.sum(pred & truth), fp + np.sum(pred & ~truth), fn + np.sum(~pred & truth)
    return float(2 * tp / max(1, 2 * tp + fp + fn))


def _quick_inputs(work: Path) -> tuple[Path, Path]:
    import torch

    from defectkd.data.synthetic import write_synthetic_segment
    from defectkd.engine.checkpoint import DEPLOY_FORMAT
    from defectkd.models import build_model

    torch.manual_seed(0)
    weights = work / "edge-n.pt"
    torch.save({"format": DEPLOY_FORMAT, "model_name": "mcff-edge-n", "model_kwargs": {"classes": 2},
                "threshold": 0.5, "state_dict": build_model("mcff-edge-n").state_dict()}, weights)
    return weights, write_synthetic_segment(work / "data", 24, 64, seed=0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", nargs="?", help="run folder or weights file")
    ap.add_argument("--data", default="../shared/datasets/deepcrack")
    ap.add_argument("--imgsz", type=int, default=448)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset")
    ap.add_argument("--work", default="/tmp/q", help="folder for the exported variants")
    ap.add_argument("--quick", action="store_true", help="untrained mcff-edge-n, synthetic data, 64 px, 3 variants")
    args = ap.parse_args(argv)

    from defectkd.api import export
    from defectkd.data.layouts import discover
    from defectkd.deploy.runtime import OnnxSegmenter
    from defectkd.engine.train import split_train_val
    from defectkd.export.quality import pick_calibration
    from defectkd.export.quantize import quantize_int8

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.quick:
        args.weights, args.data = _quick_inputs(work)
        args.imgsz, args.rounds, args.variants = 64, 1, "fp32,qdq-all,qop-conv"
    if args.weights is None:
        ap.error("give a run folder or weights file (or --quick)")
    names = [v for v in args.variants.split(",") if v]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    train, val, _ = split_train_val(discover(args.data), 0.1, 0, None, None)
    tag = Path(args.weights).name.removesuffix(".pt")
    fp32 = work / f"v-{tag}-{args.imgsz}.onnx"
    if not fp32.exists():
        export(args.weights, imgsz=args.imgsz, out=fp32)
    base = OnnxSegmenter(fp32, threads=args.threads)
    calibration = pick_calibration([s.image for s in train], 0.25)
    segs = {}
    for name in names:
        if VARIANTS[name] is None:
            segs[name] = base
            continue
        q = work / f"v-{tag}-{args.imgsz}-{name}.onnx"
        quantize_int8(fp32, q, calibration, base.prepare, **VARIANTS[name])
        segs[name] = OnnxSegmenter(q, threads=args.threads)

    x = np.random.rand(1, 3, args.imgsz, args.imgsz).astype(np.float32)
    for seg in segs.values():  # untimed warm-up
        seg.backend.run(x)
        seg.backend.run(x)
    per_round: dict[str, list[float]] = {k: [] for k in segs}
    for _ in range(args.rounds):
        for k, seg in segs.items():
            calls = []
            for _ in range(5):
                t = time.perf_counter()
                seg.backend.run(x)
                calls.append(time.perf_counter() - t)
            per_round[k].append(statistics.median(calls))
    reference = statistics.median(per_round[names[0]])
    print(f"{tag}: {len(val)} validation images, {args.imgsz} px, {args.threads} threads; speed-up vs {names[0]}")
    print("| variant | val F1 | ms | FPS | speed-up |")
    print("|---|---|---|---|---|")
    rows = []
    for k, seg in segs.items():
        ms = statistics.median(per_round[k]) * 1e3
        row = {"variant": k, "val_f1": round(pooled_f1(seg, val), 4), "ms": round(ms, 2),
               "fps": round(1e3 / ms, 1), "speedup": round(reference * 1e3 / ms, 2)}
        rows.append(row)
        print(f"| {k} | {row['val_f1']:.4f} | {row['ms']} | {row['fps']} | {row['speedup']}x |", flush=True)
    (work / f"int8_variants-{tag}.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
