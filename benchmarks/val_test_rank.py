"""Does the validation split rank models the way the test split does? Each run's validation F1 (its results.json,
the split training held out) against its pooled test F1, and the Spearman rank correlation over the runs.

A low correlation means the validation split cannot choose between models of this quality: on DeepCrack's 30
held-out training images it ranked teachers and students unlike the test split (docs/benchmarks.md, tenth session).

    python benchmarks/val_test_rank.py --data ../shared/datasets/deepcrack --runs runs/segment/a runs/segment/b ...

Test rows are scored once per weights file and cached under --cache (seed_gain.py's cache: the same files).
Segmentation runs only (pooled crack F1 from per-image tp, fp, fn).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))  # seed_gain beside this script, however it is run

from seed_gain import _rows  # noqa: E402  (its cache of per-image rows, shared)

from defectkd.core.runs import resolve_weights  # noqa: E402
from defectkd.models.loading import load_checkpoint_model  # noqa: E402
from defectkd.tasks import TASKS  # noqa: E402


def rank_agreement(val: list[float], test: list[float]) -> float:
    """Spearman's rank correlation of the two scores over the runs."""
    return float(spearmanr(val, test).statistic)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--runs", nargs="+", required=True, help="run folders with results.json")
    ap.add_argument("--split", default="test")
    ap.add_argument("--cache", default="runs/seed_gain_cache")
    args = ap.parse_args(argv)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    task = TASKS["segment"]
    weights = [resolve_weights(r) for r in args.runs]
    samples = task.eval_images(load_checkpoint_model(weights[0])[1], args.data, args.split).samples
    table = []
    for run, w in zip(args.runs, weights, strict=True):
        val = json.loads((Path(run) / "results.json").read_text())["val"]["f1"]
        table.append((Path(run).name, float(val), float(task.rows_metric(_rows(task, Path(w), samples, cache)))))
    print(f"| run | val F1 | {args.split} F1 |\n|---|---|---|")
    for name, v, t in table:
        print(f"| {name} | {v:.4f} | {t:.4f} |")
    rho = rank_agreement([v for _, v, _ in table], [t for _, _, t in table])
    print(f"\n{len(table)} runs, Spearman rank correlation of val and {args.split} F1: {rho:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
