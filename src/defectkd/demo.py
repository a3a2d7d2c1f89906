"""The quick-start job: the setting distillation is meant for, on built-in synthetic cracks, on 2 CPU cores.

The setting is the one distillation is for: labels are expensive, so only a quarter of the training images have
masks. A larger teacher (mcff-edge-m, 2.1 M parameters) is trained on a fully labelled set; it labels the student's
images once (float16 soft labels, the MCFF-L recipe's "distillation data set"); an edge student (mcff-edge-n,
0.35 M) learns from its own few masks plus the teacher's labels on every image: its task loss scores each
unlabelled image against the teacher's mask (`pseudo_labels`), and a KD term follows the teacher's probabilities.
The same student is trained alone on the same masks, for the same number of optimiser steps and with the same
seed, and the two are compared on held-out test images with a paired bootstrap 95 % interval, whatever it says
(docs/benchmarks.md, "The demo"). Both models are exported to ONNX and timed in ONNX Runtime.

Stages: synth -> teacher -> soft labels -> distilled student -> student alone -> test split (gain and interval)
-> ONNX export of teacher and student, timed -> ONNX Runtime prediction with the student.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

STAGES = 8
# The demo's recipe (docs/benchmarks.md, "The demo"): T 1 (a 2-class head has no dark knowledge for a high T to
# reveal); unlabelled images scored by the task loss against the teacher's mask (pseudo labels: +3.6 F1 points over
# KD alone on seed 0, whose soft KL has none of the task loss's crack weight and Dice); a KD term at a quarter of the
# task loss on top. 36 epochs: at 12 the student is limited by its steps, not its labels (all 96 true masks: +1.7)
KD_SHARE = 0.25


def _link_tree(src: Path, dst: Path, keep_mask: Callable[[str], bool] = lambda _: True) -> None:
    """dst gets src's images and the masks `keep_mask` accepts, as hard links (no second copy on disk)."""
    for sub in ("images", "masks"):
        (dst / sub).mkdir(parents=True, exist_ok=True)
        for f in sorted((src / sub).iterdir()):
            if sub == "masks" and not keep_mask(f.stem):
                continue
            try:
                os.link(f, dst / sub / f.name)
            except OSError:  # another file system: a copy
                shutil.copy2(f, dst / sub / f.name)


def _ort_fps(onnx_file: str | Path, size: int, threads: int = 2, repeats: int = 20) -> float:
    """Frames per second of an ONNX model on one size x size image in ONNX Runtime (median of `repeats`)."""
    from defectkd.models.info import onnx_file_latency

    return round(1.0 / statistics.median(onnx_file_latency(onnx_file, size, repeats, 1, threads)), 1)


def _keep_deploy_only(run: dict) -> None:
    """The teacher's training checkpoints (weights and optimiser state, ~3x the model) are dropped once its
    student-free deploy file exists: the demo never resumes, and the weights stay in deploy.pt."""
    for name in ("best.pt", "last.pt"):
        (Path(run["run"]) / "weights" / name).unlink(missing_ok=True)


def run_demo(api: ModuleType, project: str | Path = "runs", n_train: int = 96, n_test: int = 48, size: int = 128,
             epochs: int = 36, teacher: str = "mcff-edge-m", teacher_epochs: int = 36, student: str = "mcff-edge-n",
             labelled: float = 0.25, T: float = 1.0, seed: int = 0,
             say: Callable[[str], None] = lambda _: None) -> dict:
    """Run every stage into a new runs/demo[N]/ through the verbs of `api` (defectkd.api hands itself in, so this
    module sits under the API without importing it); returns the rows, the gain with its interval, and paths."""
    from defectkd.core.runs import new_run_dir
    from defectkd.engine.compare import describe_gain, student_gain
    from defectkd.tasks import TASKS
    from defectkd.tasks.segment.synthetic import write_synthetic_segment

    task = TASKS["segment"]
    root = new_run_dir(project, "", "demo")
    full, part = root / "data" / "full", root / "data" / "student"
    n_val, n_masks = max(4, n_train // 6), max(2, round(n_train * labelled))
    say(f"[1/{STAGES}] synthetic cracks ({size}x{size}): {n_train} training images, {n_val} validation and {n_test} "
        f"test pairs; the student's copy has masks for {n_masks} of the {n_train} training images -> {root / 'data'}")
    write_synthetic_segment(full / "train", n_train, size, seed)
    write_synthetic_segment(full / "val", n_val, size, seed + 1)
    write_synthetic_segment(full / "test", n_test, size, seed + 2)
    masked = {p.stem for p in sorted((full / "train" / "masks").iterdir())[:n_masks]}
    _link_tree(full / "train", part / "train", lambda stem: stem in masked)
    for split in ("val", "test"):
        _link_tree(full / split, part / split)
    common = {"imgsz": size, "batch": 8, "project": str(root), "seed": seed, "workers": 0}

    say(f"[2/{STAGES}] teacher {teacher} on the fully labelled set: {teacher_epochs} epochs")
    t_run = api.train("segment", model=teacher, data=str(full), epochs=teacher_epochs, name="teacher", **common)
    _keep_deploy_only(t_run)
    say(f"[3/{STAGES}] the teacher labels the student's {n_train} images once: soft labels at T={T:g} (float16)")
    soft_dir = root / "soft_labels"
    api.soft_labels(t_run["deploy"], part, soft_dir, T=T, unlabelled=True)
    say(f"[4/{STAGES}] student {student} from its {n_masks} masks + the teacher's labels on all {n_train} images: "
        f"{epochs} epochs (task loss against the teacher's mask where there is none; KD at T {T:g}, balanced to "
        f"{KD_SHARE:g} of the task loss on the first batches)")
    kd_run = api.distill("segment", model=student, data=str(part), soft_labels=str(soft_dir), T=T, unlabelled=True,
                         skip_bad=True, epochs=epochs, name=f"{student}-distilled", balance="loss",
                         losses=[{"method": "kd", "on": "logits", "share": KD_SHARE}], pseudo_labels=True,
                         teacher_check=teacher_epochs >= 5, **common)  # a 1-epoch teacher: a smoke run, no claim
    alone_epochs = round(epochs * n_train / n_masks)  # as many optimiser steps as the distilled student took
    say(f"[5/{STAGES}] the same student alone on the same {n_masks} masks: {alone_epochs} epochs (the same number of "
        "steps), same seed")
    alone_run = api.train("segment", model=student, data=str(part), skip_bad=True, epochs=alone_epochs,
                          name=f"{student}-alone", **common)

    say(f"[6/{STAGES}] test split ({n_test} images): all three, and the gain with a paired bootstrap interval")
    rows = []
    runs = (("teacher", f"teacher {teacher}", t_run, t_run["deploy"]),
            ("alone", f"{student} alone", alone_run, alone_run["best"]),
            ("distilled", f"{student} distilled", kd_run, kd_run["best"]))
    for name, label, run, weights in runs:
        test = api.val(weights, full, split="test", save_dir=root / "val" / name)["metrics"]
        rows.append({"model": label, "parameters": run["parameters"], "f1": test["f1"], "iou": test["iou"]})
    samples = task.eval_images({"config": {}}, full, "test").samples  # the same files as the student's test split
    gain = student_gain(task, kd_run["best"], alone_run["best"], samples, "test")

    say(f"[7/{STAGES}] ONNX export of the teacher and the distilled student, timed in ONNX Runtime (2 threads)")
    onnx = api.export(kd_run["deploy"], imgsz=size, out=root / "student.onnx")
    with tempfile.TemporaryDirectory() as tmp:  # the teacher's graph is only timed, not kept (8 MB)
        rows[0]["onnx_fps"] = _ort_fps(api.export(t_run["deploy"], imgsz=size, out=Path(tmp) / "teacher.onnx")["file"],
                                       size)
    rows[2]["onnx_fps"] = _ort_fps(onnx["file"], size)
    rows[1]["onnx_fps"] = rows[2]["onnx_fps"]  # the same architecture: the same speed
    say(f"[8/{STAGES}] ONNX Runtime prediction with the student on the test images")
    pred = api.predict(onnx["file"], part / "test" / "images", save=True, save_dir=root / "predict")
    return {"root": str(root), "rows": rows, "onnx": onnx, "predict_dir": pred["save_dir"],
            "runs": {"teacher": t_run["run"], "distilled": kd_run["run"], "alone": alone_run["run"]},
            "gain": {**gain, "sentence": describe_gain(gain)}, "labelled": n_masks, "train_images": n_train,
            "speedup": round(rows[2]["onnx_fps"] / rows[0]["onnx_fps"], 1)}
