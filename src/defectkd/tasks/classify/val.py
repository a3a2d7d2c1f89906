"""The classification side of the verbs `val` and `data check` that api.py dispatches to (the checkpoint's
task decides; `defectkd.api` keeps one function per verb for both tasks)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from defectkd.core.errors import ConfigError, DataError


def classify_split_size(data: str | Path, split: str) -> int:
    from defectkd.tasks.classify.data import discover_classify, eval_split

    return len(eval_split(discover_classify(data), split))


def val_classify(model, hp: dict, weights: str | Path, data: str | Path, split: str = "test",
                 threshold: float | None = None, save_dir: str | Path | None = None, project: str | Path = "runs",
                 progress: Callable[[], None] | None = None, batch: int = 32) -> dict:
    """Accuracy, macro and per-class precision/recall/F1 and the confusion matrix of a classifier on a split;
    writes metrics.json and confusion.png to a new runs/classify/val*/ (or `save_dir`)."""
    from defectkd.core.runs import new_run_dir
    from defectkd.tasks.classify.data import discover_classify, eval_split, validate_classify
    from defectkd.tasks.classify.evaluate import evaluate_classifier, model_class_names, samples_for_model

    if threshold is not None:
        raise ConfigError("--threshold applies to segmentation; a classifier reports its top class")
    source = discover_classify(data)
    samples = eval_split(source, split)
    if not samples:
        raise DataError(f"{data}: split {split!r} has no labelled images")
    validate_classify(source)
    wanted = {str(s.image) for s in samples}
    bad = [p for p in source.blocking if str(p.file) in wanted]
    if bad:
        more = f" (and {len(bad) - 1} more problems)" if len(bad) > 1 else ""
        raise DataError(f"{bad[0]}{more}; see `defectkd data check {data} --task classify`")
    names = model_class_names(hp, source.classes)
    samples = samples_for_model(source, samples, names)
    imgsz = int(hp.get("config", {}).get("imgsz", 224))
    out = Path(save_dir) if save_dir else new_run_dir(project, "classify", "val")
    out.mkdir(parents=True, exist_ok=True)
    metrics = evaluate_classifier(model, samples, names, imgsz, batch, progress=progress,
                                  confusion_png=out / "confusion.png", title=f"{hp.get('model_name')}, {split}")
    result = {"weights": str(weights), "task": "classify", "model": hp.get("model_name"), "data": str(data),
              "split": split, "imgsz": imgsz, "class_names": names, "metrics": metrics, "save_dir": str(out)}
    (out / "metrics.json").write_text(json.dumps(result, indent=1))
    return result
