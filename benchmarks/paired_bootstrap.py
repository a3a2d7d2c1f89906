"""Is model A better than model B on the same test images? The difference of their task metric with a paired
bootstrap 95 % interval over images (the images are resampled together for both models).

    python benchmarks/paired_bootstrap.py --data ../shared/datasets/deepcrack \
        runs/bench-dc/segment/e20-rfkd-mcff-edge-n runs/bench-dc/segment/s0-e20-mcff-edge-n
    python benchmarks/paired_bootstrap.py --data ../shared/datasets/neu_det \
        runs/classify/neu-cmi-kd-r50e30 runs/classify/neu-cmi-fp32

Segmentation: crack F1 pooled over the resampled images' pixels (each model at its own threshold), as `val` reports
it. Classification: top-1 accuracy. Detection is not supported (COCO mAP does not split into per-image terms).
An interval that contains 0 is printed as "within noise".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from defectkd.core.runs import resolve_weights
from defectkd.data.io import read_image, read_mask
from defectkd.tasks import task_of_weights


def per_image(weights: Path, data: str, split: str) -> tuple[str, np.ndarray]:
    """(task, one row per test image): segmentation (tp, fp, fn) pixels, classification (correct,)."""
    task = task_of_weights(weights)
    if task.name == "segment":
        from defectkd.data.layouts import discover
        from defectkd.tasks.segment.dataset import eval_samples

        runtime = task.torch_runtime(weights)
        rows = []
        for s in eval_samples(discover(data), split):
            prob, _ = runtime.segment(read_image(s.image))
            pred, truth = prob >= runtime.threshold, read_mask(s.mask) > 0
            rows.append((np.sum(pred & truth), np.sum(pred & ~truth), np.sum(~pred & truth)))
        return task.name, np.asarray(rows, dtype=np.float64)
    if task.name == "classify":
        from defectkd.models.loading import load_checkpoint_model

        _, hp = load_checkpoint_model(weights)
        images = task.eval_images(hp, data, split)
        runtime = task.torch_runtime(weights)
        return task.name, np.asarray([[float(np.argmax(runtime.classify(read_image(s.image))[0]) == s.label)]
                                      for s in images.samples])
    raise SystemExit(f"paired_bootstrap: task {task.name!r} is not supported (segment, classify)")


def metric(task: str, rows: np.ndarray) -> np.ndarray:
    """The metric of rows (..., images, k): pooled F1 for segmentation, mean correctness for classification."""
    if task == "segment":
        tp, fp, fn = rows[..., 0].sum(-1), rows[..., 1].sum(-1), rows[..., 2].sum(-1)
        return 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    return rows[..., 0].mean(-1)


def paired_bootstrap(task: str, a: np.ndarray, b: np.ndarray, n: int = 5000, seed: int = 0) -> dict:
    """A - B with the 2.5th and 97.5th percentiles of the difference over `n` paired resamples of the images."""
    if len(a) != len(b):
        raise ValueError(f"the two models were scored on {len(a)} and {len(b)} images")
    idx = np.random.default_rng(seed).integers(0, len(a), (n, len(a)))
    diff = metric(task, a[idx]) - metric(task, b[idx])
    low, high = np.percentile(diff, [2.5, 97.5])
    return {"images": len(a), "a": float(metric(task, a)), "b": float(metric(task, b)),
            "gain": float(metric(task, a) - metric(task, b)), "low": float(low), "high": float(high),
            "verdict": "within noise" if low <= 0 <= high else ("A better" if low > 0 else "B better")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", help="weights or run folder of model A (e.g. the distilled student)")
    ap.add_argument("b", help="weights or run folder of model B (e.g. the same student alone)")
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--resamples", type=int, default=5000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    (task, a), (task_b, b) = (per_image(resolve_weights(w), args.data, args.split) for w in (args.a, args.b))
    if task != task_b:
        raise SystemExit(f"paired_bootstrap: {args.a} is a {task} model, {args.b} a {task_b} model")
    r = {"task": task, "split": args.split, **paired_bootstrap(task, a, b, args.resamples)}
    if args.json:
        print(json.dumps(r))
    else:
        name = "F1" if task == "segment" else "accuracy"
        print(f"{r['images']} {args.split} images, {name}: A {r['a']:.4f}  B {r['b']:.4f}  A - B {r['gain']:+.4f}  "
              f"95 % [{r['low']:+.4f}, {r['high']:+.4f}]  {r['verdict']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
