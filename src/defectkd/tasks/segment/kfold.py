"""k-fold cross-validation of a training or distillation recipe (the MCFF-L paper reports mean +- std).

Each fold is an ordinary run (config with `folds`/`fold`, weights, metrics) inside one parent folder
runs/<task>/<name>-kfold<k>/fold<i>/; the parent gets kfold.csv (one row per fold), kfold.json
(mean and sample standard deviation of every metric) and kfold.png.
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
import statistics
from pathlib import Path

from pydantic import BaseModel

from defectkd.core.errors import DefectKDError
from defectkd.core.runs import new_run_dir
from defectkd.data.layouts import discover

log = logging.getLogger("defectkd")
METRICS = ("precision", "recall", "f1", "iou", "ods_f1", "ois_f1", "f1_tol", "miou_2class")


def run_kfold(task, cfg: BaseModel, k: int) -> dict:
    """Train (or distil) once per fold with fold i held out for validation; aggregate the folds. `task` is the
    task plug-in whose runs these are."""
    from defectkd.engine.fit import run

    base = cfg.name or (f"{cfg.model}-{cfg.method}" if hasattr(cfg, "method") else cfg.model)
    configs = [cfg.model_copy(update={"folds": k, "fold": i}) for i in range(k)]
    discover(cfg.data)  # a missing data set is refused before any folder is made
    parent = new_run_dir(cfg.project, cfg.task, f"{base}-kfold{k}")
    rows = []
    for i, fold_cfg in enumerate(configs):
        log.info("fold %d/%d", i + 1, k)
        run_dir = parent / f"fold{i + 1}"
        run_dir.mkdir()
        try:
            summary = run(task, fold_cfg, run_dir=run_dir)
        except DefectKDError:
            if i == 0:  # refused before anything was trained: leave no half-made run behind
                shutil.rmtree(parent)
            raise
        rows.append({"fold": i + 1, "epochs": summary["epochs_run"],
                     **{m: summary["val"].get(m) for m in METRICS if summary["val"].get(m) is not None}})
    stats = aggregate(rows)
    _write(parent, rows, stats)
    return {"run": str(parent), "k": k, "model": cfg.model, "folds": rows, "mean": stats["mean"], "std": stats["std"]}


def aggregate(rows: list[dict]) -> dict:
    """Mean and sample standard deviation (n - 1) of every metric over the folds."""
    keys = [m for m in METRICS if all(m in r for r in rows)]
    mean = {m: statistics.fmean(r[m] for r in rows) for m in keys}
    std = {m: statistics.stdev([r[m] for r in rows]) if len(rows) > 1 else 0.0 for m in keys}
    return {"mean": mean, "std": std}


def _write(parent: Path, rows: list[dict], stats: dict) -> None:
    keys = ["fold", "epochs", *stats["mean"]]
    with open(parent / "kfold.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    (parent / "kfold.json").write_text(json.dumps({"folds": rows, **stats}, indent=1))
    plot_folds(rows, stats, parent / "kfold.png")


def plot_folds(rows: list[dict], stats: dict, out: Path) -> None:
    """Per metric: each fold as a dot, the mean as a bar with +- std whiskers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(stats["mean"])
    fig, ax = plt.subplots(figsize=(1.2 * len(keys) + 2, 3.5))
    ax.bar(range(len(keys)), [stats["mean"][m] for m in keys], yerr=[stats["std"][m] for m in keys],
           color="#9ecae1", capsize=4, label="mean +- std")
    for j, m in enumerate(keys):
        ax.scatter([j] * len(rows), [r[m] for r in rows], color="#08519c", s=12, zorder=3)
    ax.set_xticks(range(len(keys)), keys, rotation=30)
    ax.set_ylim(0, 1)
    ax.set_title(f"{len(rows)}-fold cross-validation (dots: folds)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
