"""The detection side of the verbs `val` and `data check` that api.py dispatches to (the checkpoint's task decides)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from defectkd.core.errors import DataError


def detect_split_size(data: str | Path, split: str) -> int:
    from defectkd.tasks.detect.data import discover_detect, eval_split

    return len(eval_split(discover_detect(data), split))


def val_detect(model, hp: dict, weights: str | Path, data: str | Path, split: str = "test",
               threshold: float | None = None, save_dir: str | Path | None = None, project: str | Path = "runs",
               progress: Callable[[], None] | None = None, batch: int = 4) -> dict:
    """COCO mAP (0.5:0.95, 0.5, 0.75, small/medium/large, per class) of a detector on a split; writes metrics.json,
    pr_curve.png and examples/ (the first 8 images, true boxes green, predictions at `threshold`, default the run's
    0.25) to a new runs/detect/val*/ (or `save_dir`). The data is read with the model's class names: an object of
    another class is refused in one line."""
    from defectkd.core.runs import new_run_dir
    from defectkd.tasks.detect.data import eval_split, load_detect
    from defectkd.tasks.detect.evaluate import evaluate_detector, model_class_names

    names = model_class_names(hp)
    source, _ = load_detect(data, names)
    samples = eval_split(source, split)
    if not samples:
        raise DataError(f"{data}: split {split!r} has no images")
    bad = [s for s in samples if str(s.image) in source.bad]
    if bad:
        files = {str(bad[0].image), str(bad[0].annotation)}
        problem = next((p for p in source.blocking if str(p.file) in files), f"{bad[0].image}: unusable")
        more = f" (and {len(bad) - 1} more images)" if len(bad) > 1 else ""
        raise DataError(f"{problem}{more}; see `defectkd data check {data} --task detect`")
    thr = threshold if threshold is not None else float(hp.get("config", {}).get("threshold", 0.25))
    out = Path(save_dir) if save_dir else new_run_dir(project, "detect", "val")
    out.mkdir(parents=True, exist_ok=True)
    metrics = evaluate_detector(model, samples, names, batch, progress=progress, pr_png=out / "pr_curve.png",
                                examples=out / "examples", draw_threshold=thr, title=f"{hp.get('model_name')}, {split}")
    result = {"weights": str(weights), "task": "detect", "model": hp.get("model_name"), "data": str(data),
              "split": split, "threshold": thr, "class_names": names, "metrics": metrics, "save_dir": str(out)}
    (out / "metrics.json").write_text(json.dumps(result, indent=1))
    return result
