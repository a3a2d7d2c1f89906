"""`defectkd benchmark`: export one model to every format, then measure each the same way.

Rows: PyTorch (eager, the reference) and each format of export/formats.py. A format this machine
cannot produce is listed as unavailable with the reason; one that fails says why in one line; the
others get size, the task metric on a labelled split (F1 / accuracy / mAP50, export/quality.py) and
speed. Speed is the end-to-end time of one call of the runtime (pre-process, inference, post-process)
on the split's first image resized to imgsz x imgsz (a detector's NMS work depends on what it sees: on a
random-noise image two equal NEU-DET students timed 47 and 106 FPS), interleaved across formats round by
round so a noisy machine slows all of them alike; the figure is the median over rounds of each round's
median. Each format's turn starts with two untimed calls: ONNX Runtime's and PyTorch's worker threads
spin for a while after a run, and on two cores the previous runtime's spinning threads would otherwise
slow the next one's first calls (measured: the INT8 graph timed right after the FP32 one looked 1.3x
slower than FP32; alone it is 1.3x faster).
"""

from __future__ import annotations

import csv
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from defectkd.core.errors import DefectKDError
from defectkd.export.formats import FORMATS, resolve_format

COLUMNS = ["format", "status", "size_mb", "metric", "ms_per_image", "fps"]


def _torch_runtime(weights: Path, task: str, imgsz: int):
    from defectkd.tasks import TASKS

    return TASKS[task].torch_runtime(weights, imgsz if TASKS[task].export_imgsz else None)


def _call(runtime, task: str) -> Callable[[np.ndarray], object]:
    return getattr(runtime, task)  # every runtime's method is named after its task: segment, classify, detect


def _timing_image(path: Path, imgsz: int) -> np.ndarray:
    """A real image of the split at imgsz x imgsz (resized as classifiers see theirs): what the timed runtimes see
    in use."""
    from defectkd.data.io import read_image
    from defectkd.deploy.classify import resize_square

    return np.ascontiguousarray(resize_square(read_image(path), imgsz))


def _weights_size(weights: Path) -> float:
    """Size of what PyTorch deploys: the run's student-only deploy.pt when it is there (best.pt also holds
    the optimizer state), else the file itself."""
    deploy = weights.with_name("deploy.pt")
    return round((deploy if deploy.is_file() else weights).stat().st_size / 2**20, 2)


def benchmark(weights: str | Path, data: str | Path | None = None, split: str = "test", imgsz: int = 448,
              formats: list[str] | None = None, threads: int | None = 2, rounds: int = 5, reps: int = 5,
              limit: int | None = None, fraction: float | None = None, out: str | Path | None = None,
              project: str | Path = "runs", name: str = "benchmark",
              progress: Callable[[str], None] | None = None) -> dict:
    """Rows of COLUMNS (see the module docstring); writes benchmark.csv, benchmark.md, benchmark.json and the
    exported files to a new runs/benchmark/<name>/ (or OUT)."""
    import torch

    from defectkd.core.runs import new_run_dir, resolve_weights
    from defectkd.export.exporter import export_model
    from defectkd.export.quality import eval_images, metric_name, score
    from defectkd.models.loading import load_checkpoint_model
    from defectkd.tasks import TASKS, task_of

    weights = resolve_weights(weights)
    _, hp = load_checkpoint_model(weights)
    task = task_of(hp).name
    images = eval_images(hp, data, split)
    if limit:
        images.samples = images.samples[:limit]
    wanted = [resolve_format(f) for f in formats] if formats else list(FORMATS.values())
    out_dir = Path(out) if out else new_run_dir(project, "benchmark", name)
    out_dir.mkdir(parents=True, exist_ok=True)
    if threads:
        torch.set_num_threads(threads)
    say = progress or (lambda _: None)

    rows: list[dict] = []
    runtimes: dict[str, object] = {}
    say("pytorch")
    runtimes["pytorch"] = _torch_runtime(weights, task, imgsz)
    rows.append({"format": "pytorch", "status": "ok", "size_mb": _weights_size(weights)})
    fp32 = None  # the onnx row's export, which the other formats convert from
    for fmt in wanted:
        row = {"format": fmt.name}
        rows.append(row)
        reason = fmt.missing()
        if reason:
            row["status"] = f"unavailable: {reason}"
            continue
        say(f"export {fmt.name}")
        try:
            from defectkd.deploy.backends import open_runtime

            r = export_model(weights, fmt.name, imgsz=imgsz if TASKS[task].export_imgsz else None, data=data if
                             fmt.name == "onnx-int8" else None, fraction=fraction if fmt.name == "onnx-int8" else None,
                             out=out_dir / ("model" + fmt.suffix), threads=threads, fp32=fp32)
            runtimes[fmt.name] = open_runtime(r["file"], threads)
            if fmt.name == "onnx":
                fp32 = r
            row.update(status="ok", size_mb=r["size_mb"])
        except DefectKDError as exc:
            row["status"] = f"error: {exc}"
        except Exception as exc:  # a converter's own failure: reported in the table, the others still run
            row["status"] = f"error: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:160]}"

    by_name = {row["format"]: row for row in rows}
    metric = metric_name(task)
    for key, runtime in runtimes.items():
        say(f"{metric} {key} ({len(images.samples)} images)")
        by_name[key]["metric"] = round(score(runtime, images), 4)

    rgb = _timing_image(images.samples[0].image, imgsz)
    calls = {key: _call(rt, task) for key, rt in runtimes.items()}
    for call in calls.values():  # warm-up: first-run allocations and kernel selection
        call(rgb), call(rgb)
    medians: dict[str, list[float]] = {key: [] for key in calls}
    for i in range(rounds):
        say(f"timing round {i + 1}/{rounds}")
        for key, call in calls.items():
            time.sleep(0.05)  # let the previous runtime's spinning worker threads go idle
            call(rgb), call(rgb)  # untimed: caches and thread pools back to this runtime
            times = []
            for _ in range(reps):
                t = time.perf_counter()
                call(rgb)
                times.append(time.perf_counter() - t)
            medians[key].append(statistics.median(times))
    for key, values in medians.items():
        ms = statistics.median(values) * 1e3
        by_name[key].update(ms_per_image=round(ms, 2), fps=round(1e3 / ms, 2))

    result = {"weights": str(weights), "model": hp.get("model_name"), "task": task, "metric": metric,
              "split": split, "images": len(images.samples), "imgsz": imgsz, "threads": threads, "rounds": rounds,
              "reps": reps, "rows": rows, "save_dir": str(out_dir)}
    _write(out_dir, result)
    return result


def _write(out_dir: Path, result: dict) -> None:
    header = ["Format", "Status", "Size (MB)", result["metric"], "ms/image", "FPS"]
    with open(out_dir / "benchmark.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in result["rows"]:
            writer.writerow([row.get(c, "") for c in COLUMNS])
    lines = [f"{result['model']} ({result['task']}), {result['images']} {result['split']} images, "
             f"{result['imgsz']} px, {result['threads']} threads", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(row.get(c, "-")) for c in COLUMNS) + " |" for row in result["rows"]]
    (out_dir / "benchmark.md").write_text("\n".join(lines) + "\n")
    (out_dir / "benchmark.json").write_text(json.dumps(result, indent=1))
