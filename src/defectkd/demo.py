"""The quick-start job: the whole distillation recipe on built-in synthetic cracks, in minutes.

synth -> teacher -> soft labels (float16, T) -> distilled student, and the same student trained
alone with the same epochs and seed -> test-split metrics of all three -> ONNX export of the
distilled student (parity-checked) -> ONNX Runtime prediction on the test images.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from types import ModuleType


def _fps(weights: str, size: int) -> float:
    from defectkd.models.info import measure_latency
    from defectkd.models.loading import load_checkpoint_model

    model, _ = load_checkpoint_model(weights)
    return round(1.0 / statistics.median(measure_latency(model, size, repeats=10)), 1)


def run_demo(api: ModuleType, project: str | Path = "runs", n_train: int = 96, n_test: int = 32, size: int = 128,
             epochs: int = 12, teacher: str = "unet-r50", teacher_epochs: int = 15, student: str = "mcff-l",
             T: float = 4.0, alpha: float = 0.5, seed: int = 0, say: Callable[[str], None] = lambda _: None) -> dict:
    """Run every stage into a new runs/demo/<name>/ through the verbs of `api` (defectkd.api hands itself in, so
    this module sits under the API without importing it); returns the comparison rows and where things are."""
    from defectkd.core.runs import new_run_dir
    from defectkd.tasks.segment.synthetic import write_synthetic_segment

    root = new_run_dir(project, "demo", "demo")
    data = root / "data"
    say(f"[1/7] synthetic cracks: {n_train} training and {n_test} test images of {size}x{size} -> {data}")
    write_synthetic_segment(data / "train", n_train, size, seed)
    write_synthetic_segment(data / "test", n_test, size, seed + 1)
    common = {"data": str(data), "imgsz": size, "batch": 8, "project": str(root), "seed": seed, "workers": 1}
    say(f"[2/7] teacher {teacher}: {teacher_epochs} epochs")
    t_run = api.train("segment", model=teacher, epochs=teacher_epochs, name="teacher", **common)
    say(f"[3/7] soft labels of the teacher at T={T:g} (float16)")
    soft_dir = root / "soft_labels"
    api.soft_labels(t_run["best"], data, soft_dir, T=T)
    say(f"[4/7] student {student} distilled from the soft labels: {epochs} epochs, alpha {alpha:g}")
    kd_run = api.distill("segment", model=student, soft_labels=str(soft_dir), T=T, alpha=alpha, epochs=epochs,
                         name=f"{student}-kd", **common)
    say(f"[5/7] the same student trained alone: {epochs} epochs, same seed")
    alone_run = api.train("segment", model=student, epochs=epochs, name=f"{student}-alone", **common)
    say("[6/7] test split: all three models")
    rows = []
    models = (("teacher", f"teacher {teacher}", t_run), ("alone", f"{student} alone", alone_run),
              ("distilled", f"{student} distilled", kd_run))
    for name, label, run in models:
        test = api.val(run["best"], data, split="test", save_dir=root / "val" / name)["metrics"]
        rows.append({"model": label, "runtime": "pytorch", "parameters": run["parameters"], "f1": test["f1"],
                     "iou": test["iou"], "fps": _fps(run["best"], size)})
    say("[7/7] ONNX export of the distilled student, then ONNX Runtime prediction on the test images")
    onnx = api.export(kd_run["deploy"], imgsz=size, out=root / "student.onnx")
    pred = api.predict(onnx["file"], data / "test" / "images", save=True, save_dir=root / "predict")
    latency = statistics.median(r["times_ms"]["inference_ms"] for r in pred["results"])
    rows.append({**rows[-1], "model": f"{student} distilled", "runtime": "onnxruntime",
                 "fps": round(1000.0 / latency, 1)})
    return {"root": str(root), "rows": rows, "onnx": onnx, "predict_dir": pred["save_dir"],
            "runs": {"teacher": t_run["run"], "distilled": kd_run["run"], "alone": alone_run["run"]},
            "kd_gain_f1": rows[2]["f1"] - rows[1]["f1"]}
