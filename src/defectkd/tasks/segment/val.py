"""`defectkd val` for a segmentation model: P/R/F1/IoU, ODS/OIS, overlays and a PR curve of a labelled split."""

from __future__ import annotations

import json
from pathlib import Path

from defectkd.core.runs import new_run_dir
from defectkd.tasks.segment.dataset import labelled_split
from defectkd.tasks.segment.evaluate import evaluate_model


def val_segment(model, hp: dict, weights, data, split: str = "test", threshold: float | None = None,
                save_dir=None, project="runs", progress=None, tolerant: bool = True) -> dict:
    samples = labelled_split(data, split)
    thr = threshold if threshold is not None else hp.get("config", {}).get("threshold", 0.5)
    out = Path(save_dir) if save_dir else new_run_dir(project, "segment", "val")
    metrics = evaluate_model(model, samples, threshold=thr, tolerant=tolerant, overlays=out / "overlays",
                             progress=progress, pr_curve=out / "pr_curve.png")
    result = {"weights": str(weights), "model": hp.get("model_name"), "data": str(data), "split": split,
              "threshold": thr, "metrics": metrics, "save_dir": str(out)}
    (out / "metrics.json").write_text(json.dumps(result, indent=1))
    return result
