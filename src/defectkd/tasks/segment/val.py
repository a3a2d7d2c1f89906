"""`defectkd val` for a segmentation model: P/R/F1/IoU, ODS/OIS, overlays and a PR curve of a labelled split, and
with `calibrate` a copy of the weights that carries the split's best threshold."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from defectkd.core.runs import new_run_dir
from defectkd.tasks.segment.dataset import scored_split
from defectkd.tasks.segment.evaluate import evaluate_model
from defectkd.tasks.segment.metrics import operating_threshold


def val_segment(model, hp: dict, weights, data, split: str = "test", threshold: float | None = None,
                save_dir=None, project="runs", progress=None, tolerant: bool = True,
                calibrate_from: Path | None = None) -> dict:
    """`calibrate_from`: the weights file to copy into the val folder as calibrated.pt (a deploy file) with the
    threshold of best F1 on these images (ODS), kept within [0.01, 0.99]; the file the user gave is never changed."""
    config = hp.get("config", {})
    samples, source = scored_split(data, split, config)
    thr = threshold if threshold is not None else config.get("threshold", 0.5)
    out = Path(save_dir) if save_dir else new_run_dir(project, "segment", "val")
    metrics = evaluate_model(model, samples, threshold=thr, tolerant=tolerant, overlays=out / "overlays",
                             progress=progress, pr_curve=out / "pr_curve.png")
    result = {"weights": str(weights), "model": hp.get("model_name"), "data": str(data), "split": split,
              "scored": source, "threshold": thr, "metrics": metrics, "save_dir": str(out)}
    if calibrate_from is not None:
        result["calibrated"] = _calibrated_copy(calibrate_from, metrics, out)
    (out / "metrics.json").write_text(json.dumps(result, indent=1))
    return result


def _calibrated_copy(weights: Path, metrics: dict, out: Path) -> dict:
    """A deploy file (the model alone, whatever WEIGHTS was) with the best threshold on the scored images."""
    from defectkd.core.checkpoint import DEPLOY_FORMAT, safe_load, save_deploy_file, store_config_values

    best = operating_threshold(metrics)
    copy = out / "calibrated.pt"
    if safe_load(weights, mmap=True).get("format") == DEPLOY_FORMAT:
        shutil.copyfile(weights, copy)
    else:  # a training checkpoint: its optimiser state has no place in a file meant for predict and export
        save_deploy_file(weights, copy)
    store_config_values([copy], {"threshold": best})
    return {"threshold": best, "f1": metrics["ods_f1"], "weights": str(copy)}
