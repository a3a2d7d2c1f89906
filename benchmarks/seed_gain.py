"""Distilled minus alone, averaged over seeds, with one paired bootstrap over the test images: every resample draws
the same images for every seed and both arms, so the interval is that of the seed-averaged gain (the rule of
docs/methods.md "Which one to start with": a gain counts when this interval excludes 0).

Detection pools too: its rows are match sets, and COCO mAP50 is recomputed from them on every resample.

    python benchmarks/seed_gain.py --data ../shared/datasets/deepcrack \
        --pair runs/segment/b-rfkd-s0,runs/segment/s0-e20-mcff-edge-n \
        --pair runs/segment/b-rfkd-s1,runs/segment/s1-e20-mcff-edge-n

Per-image rows are cached under --cache (one .npy per weights file), so an alone run shared by several methods is
scored once. Prints the per-seed gains, their mean and the interval; --json prints one line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from defectkd.core.runs import resolve_weights
from defectkd.models.loading import load_checkpoint_model
from defectkd.tasks import task_of_weights


def _rows(task, weights: Path, samples: list, cache: Path) -> np.ndarray:
    """A weights file's per-image rows; plain arrays (segmentation, classification) are kept on disk too. Detection
    rows carry their match sets (tasks/detect/compare.py) and stay in memory."""
    key = hashlib.sha256(f"{weights.resolve()}:{weights.stat().st_mtime_ns}:{len(samples)}".encode()).hexdigest()[:16]
    file = cache / f"{key}.npy"
    if file.is_file():
        rows = np.load(file)
    else:
        rows = task.image_rows(weights, samples)
        rows = rows if isinstance(rows, np.ndarray) else np.asarray(rows)
        if type(rows) is np.ndarray:
            np.save(file, rows)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--pair", action="append", required=True, help="DISTILLED,ALONE (weights or run folders), "
                    "one per seed")
    ap.add_argument("--split", default="test")
    ap.add_argument("--resamples", type=int, default=2000)
    ap.add_argument("--cache", default="runs/seed_gain_cache")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    pairs = [tuple(resolve_weights(p) for p in pair.split(",")) for pair in args.pair]
    task = task_of_weights(pairs[0][0])
    samples = task.eval_images(load_checkpoint_model(pairs[0][0])[1], args.data, args.split).samples
    scored = {w: _rows(task, w, samples, cache) for w in dict.fromkeys(w for pair in pairs for w in pair)}  # once each
    rows = [(scored[a], scored[b]) for a, b in pairs]
    idx = np.random.default_rng(0).integers(0, len(samples), (args.resamples, len(samples)))
    per_seed = [float(task.rows_metric(a) - task.rows_metric(b)) for a, b in rows]
    diffs = np.mean([task.rows_metric(a[idx]) - task.rows_metric(b[idx]) for a, b in rows], axis=0)
    low, high = (float(v) for v in np.percentile(diffs, [2.5, 97.5]))
    mean = float(np.mean(per_seed))
    verdict = "within noise" if low <= 0 <= high else ("better" if low > 0 else "worse")
    result = {"metric": task.metric_name, "images": len(samples), "per_seed": per_seed, "mean": mean, "low": low,
              "high": high, "verdict": verdict}
    if args.json:
        print(json.dumps(result))
    else:
        seeds = ", ".join(f"{g:+.4f}" for g in per_seed)
        print(f"{len(samples)} {args.split} images, {task.metric_name} gain per seed {seeds}; mean {mean:+.4f} "
              f"95 % [{low:+.4f}, {high:+.4f}] {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
