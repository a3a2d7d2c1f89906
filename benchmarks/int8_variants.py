"""Which INT8 graph? Quantization variants of one trained model (segmenter, classifier or detector): its task
metric on the validation split and ONNX Runtime speed.

    python benchmarks/int8_variants.py runs/segment/deepcrack-edge-s-kd-offline2 --data ../shared/datasets/deepcrack
    python benchmarks/int8_variants.py runs/classify/neu-cmi-fp32 --data ../shared/datasets/neu_det \
        --variants fp32,qdq-all,qdq-percentile,qdq-entropy,qdq-float-head,qdq-per-tensor
    python benchmarks/int8_variants.py --quick          # untrained mcff-edge-n on synthetic cracks, seconds

Exports the weights (segmentation at --imgsz; a classifier or detector at its training size), quantizes them
several ways (QDQ or QOperator, all operators or convolutions only, depthwise convolutions left in float, other
calibration methods, the classifier's head left in float, per-tensor weights), scores each on the validation
images training held out (same split rule as training: the run's val_fraction and split seed; F1 / accuracy /
mAP50 as `export --max-drop` does) and times the bare graph on --threads threads (--rounds interleaved rounds x 5
calls, median). Calibration: --fraction of the training images, as `export --int8`. Variants go to --work.
Results: docs/benchmarks.md, "Export formats and INT8" and the NEU-DET classification section.
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
    "qdq-percentile": {"method": "percentile"},
    "qdq-entropy": {"method": "entropy"},
    "qdq-float-head": {"skip_head": True},
    "qdq-per-tensor": {"per_channel": False},
}


def _quick_inputs(work: Path) -> tuple[Path, Path]:
    import torch

    from defectkd.core.checkpoint import DEPLOY_FORMAT
    from defectkd.models import build_model
    from defectkd.tasks.segment.synthetic import write_synthetic_segment

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
    ap.add_argument("--fraction", type=float, default=0.25, help="share of the training images to calibrate on")
    ap.add_argument("--work", default="/tmp/q", help="folder for the exported variants")
    ap.add_argument("--quick", action="store_true", help="untrained mcff-edge-n, synthetic data, 64 px, 3 variants")
    args = ap.parse_args(argv)

    from defectkd.api import export
    from defectkd.core.runs import resolve_weights
    from defectkd.deploy.backends import open_runtime
    from defectkd.export.quality import eval_images, metric_name, pick_calibration, score
    from defectkd.export.quantize import quantize_int8
    from defectkd.models.loading import load_checkpoint_model

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
    _, hp = load_checkpoint_model(resolve_weights(args.weights))
    images = eval_images(hp, args.data, "val")
    segment = images.task == "segment"
    tag = Path(args.weights).name.removesuffix(".pt")
    fp32 = work / f"v-{tag}-{args.imgsz if segment else 'own'}.onnx"
    if not fp32.exists():
        export(args.weights, imgsz=args.imgsz if segment else None, out=fp32)
    base = open_runtime(fp32, args.threads)
    calibration = pick_calibration(images.calibration, args.fraction)
    segs = {}
    for name in names:
        if VARIANTS[name] is None:
            segs[name] = base
            continue
        q = work / f"{fp32.stem}-{name}.onnx"
        quantize_int8(fp32, q, calibration, base.prepare, **VARIANTS[name])
        segs[name] = open_runtime(q, args.threads)

    side = args.imgsz if segment else int(hp.get("config", {}).get("imgsz", args.imgsz))
    x = base.prepare((np.random.default_rng(0).random((side, side, 3)) * 255).astype(np.uint8))
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
    metric = metric_name(images.task)
    print(f"{tag}: {len(images.samples)} validation images, {x.shape[-1]} px, {args.threads} threads, "
          f"{len(calibration)} calibration images; speed-up vs {names[0]}")
    print(f"| variant | val {metric} | ms | FPS | speed-up |")
    print("|---|---|---|---|---|")
    rows = []
    for k, seg in segs.items():
        ms = statistics.median(per_round[k]) * 1e3
        row = {"variant": k, "metric": metric, "val": round(score(seg, images), 4), "ms": round(ms, 2),
               "fps": round(1e3 / ms, 1), "speedup": round(reference * 1e3 / ms, 2)}
        rows.append(row)
        print(f"| {k} | {row['val']:.4f} | {row['ms']} | {row['fps']} | {row['speedup']}x |", flush=True)
    (work / f"int8_variants-{tag}.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
