"""How wide are a segmentation set's labelled cracks, split by split? No model: the masks only.

Why: on DeepCrack every model's best threshold is ~0.8 on the images training holds out and ~0.4 on test, and
teachers better on the held-out images were not better on test. This measures whether the splits' labels differ:
per split, the mean share of crack pixels and each image's centre-line width (2d - 1 with d the distance transform on
its ridge: exact for a straight crack of odd width; the median over the ridge pixels), summarised by median and
quartiles over the images.

    python benchmarks/mask_widths.py --data ../shared/datasets/deepcrack

The held-out images are the draw training makes (`--val-fraction`, `--split-seed`, defaults as training's).
"""

from __future__ import annotations

import argparse
import json
import sys

import cv2
import numpy as np

from defectkd.data.io import read_mask
from defectkd.data.layouts import discover
from defectkd.tasks.segment.dataset import eval_samples, training_split


def centre_line_width(mask: np.ndarray) -> float | None:
    """Median of 2d - 1 over the ridge (3x3 local maxima) of the mask's distance transform d; None if empty."""
    b = (mask > 0).astype(np.uint8)
    if not b.any():
        return None
    d = cv2.distanceTransform(b, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    ridge = (d >= cv2.dilate(d, np.ones((3, 3), np.uint8))) & (b > 0)
    return float(np.median(2 * d[ridge] - 1))


def split_row(name: str, samples: list) -> dict:
    shares, widths = [], []
    for s in samples:
        m = read_mask(s.mask)  # {0, 1}, as training reads it
        shares.append(float(m.mean()))
        w = centre_line_width(m)
        if w is not None:
            widths.append(w)
    p25, med, p75 = np.percentile(widths, [25, 50, 75]) if widths else (float("nan"),) * 3
    return {"split": name, "images": len(samples), "crack_share": float(np.mean(shares)) if shares else float("nan"),
            "width_median": float(med), "width_p25": float(p25), "width_p75": float(p75)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print the rows as one JSON line")
    args = ap.parse_args(argv)
    source = discover(args.data)
    train, val, _ = training_split(source, {"val_fraction": args.val_fraction, "split_seed": args.split_seed})
    rows = [split_row("train (trained on)", train), split_row("train (held out)", val)]
    if source.splits.get("test"):
        rows.append(split_row("test", eval_samples(source, "test")))
    if args.json:
        print(json.dumps(rows))
        return 0
    print("| masks | images | crack pixels (mean share) | centre-line width per image, px: median (p25-p75) |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['split']} | {r['images']} | {100 * r['crack_share']:.1f} % | {r['width_median']:.1f} "
              f"({r['width_p25']:.1f}-{r['width_p75']:.1f}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
