"""Cross-source check: crack models on test images as another camera, distance or light would show them.

A model trained on one data set meets other photos in the field: farther away (thinner cracks), darker, brighter,
in shadow, under warm light, in grey. Each shift is applied to every test image (and, for the scale shifts, to its
mask), and each model is scored at its own stored threshold beside the best single threshold for that shift (ODS):
a wide gap between the two means the operating point, not the model, fails on that source; low recall on the
1-2 px bin means thin cracks are lost. The test images are only read, never chosen from: the shifts are fixed.

    python benchmarks/cross_source.py --data ../shared/datasets/deepcrack \
        --weights mcff-edge-n-deepcrack --weights runs/segment/s0-e20-mcff-edge-n --limit 60

Prints one row per model and shift and a mean over the shifts; --json writes every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from defectkd.core.runs import resolve_weights
from defectkd.tasks.segment.dataset import SegmentationDataset, labelled_split
from defectkd.tasks.segment.metrics import SegmentationMetrics
from defectkd.tasks.segment.robustness import weights_labels
from defectkd.tasks.segment.runtime import TorchSegmenter

Shift = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _scaled(factor: float) -> Shift:
    """A camera farther away: image area-resampled by `factor`; a mask pixel stays crack when at least half of it
    was (so a 1-px crack at half scale survives where it covered its new pixel's half)."""
    def shift(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = mask.shape
        size = (max(1, round(w * factor)), max(1, round(h * factor)))
        small = cv2.resize((mask > 0).astype(np.float32), size, interpolation=cv2.INTER_AREA)
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA), (small >= 0.5).astype(np.uint8)
    return shift


def _photometric(fn: Callable[[np.ndarray], np.ndarray]) -> Shift:
    def shift(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.clip(fn(image.astype(np.float32) / 255) * 255 + 0.5, 0, 255).astype(np.uint8), mask
    return shift


def _shadow(x: np.ndarray) -> np.ndarray:
    """Light falling off across the image, 1.0 on the left to 0.35 on the right."""
    return x * np.linspace(1.0, 0.35, x.shape[1], dtype=np.float32)[None, :, None]


SHIFTS: dict[str, Shift] = {
    "half-scale": _scaled(0.5),
    "three-quarter-scale": _scaled(0.75),
    "dark": _photometric(lambda x: x ** 2.0),
    "bright": _photometric(lambda x: x ** 0.5),
    "shadow": _photometric(_shadow),
    "warm-light": _photometric(lambda x: x * np.array([1.2, 1.0, 0.75], np.float32)),
    "grey": _photometric(lambda x: np.repeat((x @ np.array([0.299, 0.587, 0.114], np.float32))[..., None], 3, -1)),
    "low-contrast": _photometric(lambda x: (x - x.mean()) * 0.5 + x.mean()),
}


def evaluate(weights: list[Path], samples: list, shifts: list[str]) -> list[dict]:
    """Per model and shift: F1 at the stored threshold, ODS F1 and threshold, recall by crack width. Each model runs
    as `predict` runs a .pt file (`TorchSegmenter`: its stored threshold, full-size eager inference)."""
    runtimes = [TorchSegmenter(w) for w in weights]
    meters = [{s: SegmentationMetrics(threshold=r.threshold, tolerant=True) for s in shifts} for r in runtimes]
    dataset = SegmentationDataset(samples, transform=None, cache=False)
    for i in range(len(samples)):
        image, mask = dataset.load(i)
        for name in shifts:
            seen, truth = SHIFTS[name](image, mask)
            truth_t = torch.from_numpy((truth > 0).astype(np.float32))
            for runtime, per_shift in zip(runtimes, meters, strict=True):
                per_shift[name].update(torch.from_numpy(runtime.segment(seen)[0]), truth_t)
    rows = []
    for label, runtime, per_shift in zip(weights_labels(weights), runtimes, meters, strict=True):
        for name, meter in per_shift.items():
            m = meter.compute()
            rows.append({"model": label, "shift": name, "threshold": runtime.threshold, "f1": m["f1"],
                         "recall": m["recall"],
                         "ods_f1": m["ods_f1"], "ods_threshold": m["ods_threshold"],
                         "recall_by_width": m.get("recall_by_width", {})})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--weights", action="append", required=True, help="run folder, weights file or zoo name")
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=0, help="first N images of the split (0: all)")
    ap.add_argument("--shifts", default=",".join(SHIFTS), help=f"comma-separated, of {', '.join(SHIFTS)}")
    ap.add_argument("--json", help="write every row to this file")
    args = ap.parse_args(argv)
    shifts = [s.strip() for s in args.shifts.split(",") if s.strip()]
    unknown = [s for s in shifts if s not in SHIFTS]
    if unknown:
        raise SystemExit(f"--shifts: unknown {', '.join(unknown)} (valid: {', '.join(SHIFTS)})")
    samples = labelled_split(args.data, args.split)
    samples = samples[:args.limit] if args.limit else samples
    rows = evaluate([resolve_weights(w) for w in args.weights], samples, shifts)
    print(f"{len(samples)} {args.split} images of {args.data}\n")
    print("| model | shift | F1 at stored threshold | ODS F1 (threshold) | gap | recall | recall 1-2 px |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        thin = r["recall_by_width"].get("1-2px")
        print(f"| {r['model']} | {r['shift']} | {r['f1']:.4f} (at {r['threshold']:g}) | {r['ods_f1']:.4f} "
              f"({r['ods_threshold']:.2f}) | {r['ods_f1'] - r['f1']:+.4f} | {r['recall']:.4f} | "
              f"{'-' if thin is None else f'{thin:.4f}'} |")
    for label in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == label]
        print(f"| {label} | **mean of {len(mine)} shifts** | {np.mean([r['f1'] for r in mine]):.4f} | "
              f"{np.mean([r['ods_f1'] for r in mine]):.4f} | "
              f"{np.mean([r['ods_f1'] - r['f1'] for r in mine]):+.4f} | {np.mean([r['recall'] for r in mine]):.4f} | |")
    if args.json:
        Path(args.json).write_text(json.dumps({"data": str(args.data), "split": args.split, "images": len(samples),
                                               "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
