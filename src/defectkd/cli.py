"""The `defectkd` command line: parses, calls defectkd.api, prints tables; holds no logic of its own.

Known errors (DefectKDError) become one line on stderr and exit status 2, without a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from defectkd import __version__
from defectkd.cli_options import CONFIG, DISTILL, OVERRIDES, RESUME, RUN, SCALE, TASK, options
from defectkd.cli_print import CHECK, VAL, err, out, print_baseline, print_recognised, print_summary, table
from defectkd.core.errors import ConfigError, DefectKDError, Interrupted

app = typer.Typer(help="defectkd: distil defect-inspection models into fast edge students.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
data_app = typer.Typer(help="Create and check data sets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def _version(value: bool) -> None:
    if value:
        print(f"defectkd {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    """defectkd: distil defect-inspection models into fast edge students."""
    from defectkd.core.log import setup_logging

    setup_logging()


def _progress(total: int | None, what: str):
    from rich.progress import Progress

    progress = Progress(console=err, transient=True)
    task = progress.add_task(what, total=total)
    return progress, lambda: progress.advance(task)


@app.command("models")
def models_cmd(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List registered models (name, task, role, parameters, GMACs at 448x448, output form) and the trained weights
    that ship with defectkd (usable as --weights NAME)."""
    from defectkd.api import models, zoo

    rows = models()
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    shown = [{**r, "GMACs@448": f"{r['gmacs_448']:.2f}"} for r in rows]
    out.print(table("defectkd models", shown, ["name", "task", "role", "parameters", "GMACs@448", "output"]))
    trained = [{**z, "test": ", ".join(f"{k} {v:.4f}" for k, v in z["metrics"].items() if isinstance(v, float))}
               for z in zoo()]
    out.print(table("trained weights shipped with defectkd (--weights NAME; cards: docs/zoo.md)", trained,
                    ["name", "task", "model", "summary", "test"]))


@data_app.command("synth")
def synth_cmd(
    task: Annotated[str, typer.Argument(help="segment, classify or detect")],
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder (segment: images/ + masks/; classify: "
                                          "<class>/ folders; detect: images/ + annotations/ (VOC) + splits/).")],
    n: Annotated[int, typer.Option("--n", help="Number of images.")] = 64,
    size: Annotated[int, typer.Option("--size", help="Image side in pixels.")] = 256,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Write synthetic crack images with masks (segment), defect classes (classify) or defects with boxes
    (detect), deterministic by seed."""
    from defectkd.api import synth
    from defectkd.tasks import TASKS

    path = synth(out_dir, n=n, size=size, seed=seed, task=task)
    out.print(TASKS[task].synth_message(path, n, size), highlight=False)


@data_app.command("check")
def check_cmd(
    path: Annotated[Path, typer.Argument(help="Data set folder (or a path,label CSV).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    task: Annotated[str, typer.Option("--task", help="auto, segment, classify or detect (auto: recognised from "
                                      "what the folder holds; docs/data.md).")] = "auto",
    classes: Annotated[str | None, typer.Option("--classes", help="detect: the expected classes, comma-separated "
                                                "(an object of another class is a problem).")] = None,
) -> None:
    """Recognise the layout and its task (saying why), validate every pair (image), print counts, sizes, crack
    fraction (classes; boxes) and problems. Exit status 1 when a problem blocks training, else 0."""
    from defectkd.api import check

    report = check(path, task=task, classes=classes)
    if as_json:
        print(json.dumps(report, indent=1))
    else:
        print_recognised(report)
        CHECK[report.get("task", "segment")](report)
    if any(p.get("blocking", True) for p in report.get("problems", [])):
        raise typer.Exit(1)


@app.command("train")
@options(RUN, SCALE)
def train_cmd(
    task: TASK,
    overrides: OVERRIDES = None,
    model: Annotated[str | None, typer.Option("--model", help="Model name (see `defectkd models`).")] = None,
    config: CONFIG = None,
    pretrained: Annotated[str | None, typer.Option("--pretrained", help="Local weights (or a zoo name) to start "
                                                   "from.")] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Drop bad pairs instead of refusing.")] = False,
    resume: RESUME = None,
    options: dict | None = None,
) -> None:
    """Train a model; writes runs/<task>/<name>/ (config, weights/best.pt + last.pt, metrics.csv, curves)."""
    from defectkd.api import train

    summary = train(task, config=config, overrides=overrides, resume=resume, model=model, pretrained=pretrained,
                    skip_bad=skip_bad or None, **options)
    print_summary(summary, "validation (best.pt, crack class)")


@app.command("distill")
@options(RUN, SCALE, DISTILL)
def distill_cmd(
    task: TASK,
    overrides: OVERRIDES = None,
    student: Annotated[str | None, typer.Option("--student", help="Student model name.")] = None,
    feat: Annotated[list[str] | None, typer.Option("--feat", help="Feature pair student.path:teacher.path "
                                                   "(repeatable; see `defectkd layers`).")] = None,
    T: Annotated[float | None, typer.Option("--T", help="Temperature.")] = None,
    alpha: Annotated[float | None, typer.Option("--alpha", help="KD term weight (1-alpha: hard labels).")] = None,
    config: CONFIG = None,
    resume: RESUME = None,
    baseline: Annotated[bool, typer.Option("--baseline", help="Also train the student alone (same data, seed and "
                                           "budget) and report the gain with a paired bootstrap 95 % interval.")
                        ] = False,
    options: dict | None = None,
) -> None:
    """Distil a teacher into a student: online (--teacher) or from cached soft labels (--soft-labels)."""
    from defectkd.api import distill

    summary = distill(task, config=config, overrides=overrides, resume=resume, model=student, feat=feat or None, T=T,
                      alpha=alpha, baseline=baseline, **options)
    print_summary(summary, "validation (best.pt, crack class)")
    if "baseline" in summary:
        print_baseline(summary["baseline"])


@app.command("layers")
def layers_cmd(
    model: Annotated[str, typer.Option("--model", help="Model name, weights file or run folder.")],
    contains: Annotated[str | None, typer.Option("--contains", help="Only paths containing this text.")] = None,
    imgsz: Annotated[int, typer.Option("--imgsz", help="Probe image size.")] = 64,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List a model's module paths and output shapes (for --feat student.path:teacher.path)."""
    from defectkd.api import layers

    rows = layers(model, imgsz=imgsz, contains=contains)
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    for row in rows:
        row["default"] = "default" if row["default"] else ""
    out.print(table(f"{model}: module outputs for a 1x3x{imgsz}x{imgsz} input", rows,
                     ["path", "type", "shape", "parameters", "default"]))


@app.command("methods")
def methods_cmd(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Distillation methods (recipes) and their default terms and weights."""
    from defectkd.api import methods

    rows = methods()
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    out.print(table("distillation methods (--method)", rows, ["method", "terms", "T", "alpha", "noisy_fraction",
                                                                "description"]))
    out.print("The weights above apply with balance=none (or when you give losses, hard_weight or alpha). By default "
              "each term is weighed from its measured size on the first batches: 0.5 (logits) or 0.25 (features) of "
              "the task loss. Without --method: segment rfkd (kd from soft labels), classify kd, detect mgd.",
              highlight=False)


@app.command("kfold")
@options(RUN, DISTILL)
def kfold_cmd(
    task: Annotated[str, typer.Argument(help="segment")],
    overrides: OVERRIDES = None,
    k: Annotated[int, typer.Option("--k", help="Number of folds.")] = 5,
    model: Annotated[str | None, typer.Option("--model", "--student", help="Model (student) name.")] = None,
    config: CONFIG = None,
    options: dict | None = None,
) -> None:
    """k-fold cross-validation of train (or distill, with --teacher/--soft-labels): mean +- std of every metric.
    Runs go to runs/<task>/<name>-kfold<k>/."""
    from defectkd.api import kfold

    report = kfold(k, task, config=config, overrides=overrides, model=model, **options)
    rows = [{**r, "fold": str(r["fold"])} for r in report["folds"]]
    rows.append({"fold": "mean", **report["mean"]})
    rows.append({"fold": "std", **report["std"]})
    out.print(table(f"{report['k']}-fold cross-validation of {report['model']} (validation fold, crack class)",
                     rows, ["fold", "epochs", *report["mean"]]))
    out.print(f"folds, kfold.csv, kfold.json and kfold.png saved to {report['run']}", highlight=False)


@app.command("soft-labels")
def soft_labels_cmd(
    teacher: Annotated[str, typer.Option("--teacher", help="Teacher run folder or weights.")],
    data: Annotated[Path, typer.Option("--data", help="Data set folder (its training images are used).")],
    out_dir: Annotated[Path, typer.Option("--out", help="New cache folder.")],
    T: Annotated[float, typer.Option("--T", help="Temperature.")] = 10.0,
    unlabelled: Annotated[bool, typer.Option("--unlabelled", help="Include images without masks.")] = False,
) -> None:
    """Run the teacher once over the training images; store every head's softened output (float16)."""
    from defectkd.api import soft_labels
    from defectkd.data.layouts import discover

    source = discover(data)
    total = sum(len(v) for k, v in source.splits.items() if k in ("train", "val", "all"))
    progress, tick = _progress(total, "soft labels")
    with progress:
        manifest = soft_labels(teacher, data, out_dir, T=T, unlabelled=unlabelled, progress=tick)
    out.print(f"wrote soft labels of {len(manifest['images'])} images (heads: {', '.join(manifest['heads'])}, "
              f"T={manifest['T']:g}, float16) to {out_dir}", highlight=False)


@app.command("val")
def val_cmd(
    weights: Annotated[Path, typer.Option("--weights", help="Checkpoint, run folder or zoo name to evaluate; several "
                                          "joined by commas: their ensemble, as a teacher.")],
    data: Annotated[Path, typer.Option("--data", help="Data set folder.")],
    split: Annotated[str | None, typer.Option("--split", help="Split to evaluate (default: test; val with "
                                              "--calibrate). val of a set without one: the images training held "
                                              "out.")] = None,
    threshold: Annotated[float | None, typer.Option("--threshold", help="Crack-probability threshold (segmentation) "
                                                    "or score threshold of the drawn boxes (detection); default: "
                                                    "the one stored with the weights.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print metrics as JSON.")] = False,
    calibrate: Annotated[bool, typer.Option("--calibrate", help="Segmentation: also write calibrated.pt, the "
                                            "weights with the threshold of best F1 on this split (never test).")
                         ] = False,
) -> None:
    """Evaluate weights on a labelled split: metrics JSON and overlay images (classifier: confusion matrix)."""
    from defectkd.api import val, val_split
    from defectkd.core.checkpoint import weights_config
    from defectkd.core.runs import resolve_weights
    from defectkd.tasks import task_of_weights

    split = val_split(split, calibrate)
    first = resolve_weights(str(weights).split(",")[0])  # the bar counts the pairs val will score with these weights
    total = task_of_weights(first).split_size(data, split, weights_config(first))
    progress, tick = _progress(total, f"val {split}")
    with progress:
        result = val(weights, data, split=split, threshold=threshold, progress=tick, calibrate=calibrate)
    if as_json:
        print(json.dumps(result, indent=1))
        return
    VAL[result.get("task", "segment")](result, data, split)


@app.command("export")
def export_cmd(
    weights: Annotated[Path | None, typer.Option("--weights", help="Checkpoint, deploy file or run folder.")] = None,
    format: Annotated[str, typer.Option("--format", help="onnx, onnx-int8, openvino or engine (alias trt); "
                                                         "--list shows them.")] = "onnx",
    imgsz: Annotated[int | None, typer.Option(
        "--imgsz", help="Input size of a static export (default: the training images' size, 448 if they are gone; "
        "a classifier's training size).")] = None,
    dynamic: Annotated[bool, typer.Option("--dynamic", help="Any batch, height and width.")] = False,
    half: Annotated[bool, typer.Option("--half", help="FP16 weights (openvino, engine).")] = False,
    int8: Annotated[bool, typer.Option("--int8", help="Static INT8 quantization calibrated on training images.")
                    ] = False,
    data: Annotated[Path | None, typer.Option("--data", help="INT8: images to calibrate and check on "
                                                             "(default: the run's data).")] = None,
    fraction: Annotated[float | None, typer.Option("--fraction", help="INT8: share of the training images used to "
                                                                      "calibrate (default 0.25, at least 16).")] = None,
    max_drop: Annotated[float | None, typer.Option("--max-drop", help="INT8: refuse a model that loses more than "
                                                                      "this much F1/accuracy/mAP50 on val (0.01 = "
                                                                      "1 point); it is kept aside.")] = None,
    opset: Annotated[int, typer.Option("--opset")] = 17,
    out_file: Annotated[Path | None, typer.Option("--out", help="Output file (default: next to the weights).")] = None,
    image: Annotated[Path | None, typer.Option("--image", help="Image for the parity check.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file.")] = False,
    threads: Annotated[int | None, typer.Option("--threads", help="CPU threads of the checks.")] = None,
    list_formats: Annotated[bool, typer.Option("--list", help="Show the export formats and exit.")] = False,
) -> None:
    """Export the student (deploy head only), run the written file once and report its deviation."""
    from defectkd.api import export, export_formats

    if list_formats:
        out.print(table("export formats", export_formats(),
                         ["format", "aliases", "suffix", "devices", "options", "status"]))
        return
    if weights is None:
        raise ConfigError("export: --weights is required (a checkpoint, deploy file or run folder)")
    progress, tick = _progress(None, "export")
    with progress:
        r = export(weights, format=format, imgsz=imgsz, dynamic=dynamic, opset=opset, out=out_file, image=image,
                   overwrite=overwrite, half=half, int8=int8, data=data, fraction=fraction, max_drop=max_drop,
                   threads=threads, progress=tick)
    shape = "dynamic N, H, W" if r["dynamic"] else f"1x3x{r['imgsz']}x{r['imgsz']}"
    out.print(f"exported {r['model']} to {r['file']} ({r['format']}, {r.get('precision', 'fp32')}, "
              f"{r['size_mb']} MB, opset {r['opset']}, {shape}); onnx.checker passed", highlight=False, soft_wrap=True)
    out.print(f"ONNX Runtime vs PyTorch on {r['parity_image']}: max abs difference of logits "
              f"{r['max_abs_diff']:.2e} (limit {r['tolerance']:g})", highlight=False, soft_wrap=True)
    if "boxes" in r:  # a detector: its boxes checked too
        out.print(f"boxes (numpy post-processing vs torchvision, score >= {r['threshold']:g}): {r['boxes']} boxes, "
                  f"max abs difference {r['box_max_abs_diff']:.2e} px (limit {r['box_tolerance']:g})",
                  highlight=False, soft_wrap=True)
    if "deviation" in r:
        out.print(f"{r['check']}: {r['deviation_of']} {r['deviation']:.2e}", highlight=False, soft_wrap=True)
    if "quantization" in r:
        out.print(f"{r['quantization']}; {r['metric']} on {r['images']} validation images: FP32 {r['metric_fp32']:.4f}"
                  f" -> INT8 {r['metric_int8']:.4f} (drop {r['drop']:+.4f}"
                  + (f", limit {r['max_drop']:g})" if r["max_drop"] is not None else ")"),
                  highlight=False, soft_wrap=True)


@app.command("benchmark")
def benchmark_cmd(
    weights: Annotated[Path, typer.Option("--weights", help="Checkpoint, deploy file or run folder.")],
    data: Annotated[Path | None, typer.Option("--data", help="Labelled data for the metric (default: the run's).")
                    ] = None,
    split: Annotated[str, typer.Option("--split")] = "test",
    imgsz: Annotated[int, typer.Option("--imgsz", help="Input size (segmentation).")] = 448,
    formats: Annotated[str | None, typer.Option("--formats", help="Comma-separated subset (default: all).")] = None,
    threads: Annotated[int, typer.Option("--threads", help="CPU threads for every format.")] = 2,
    rounds: Annotated[int, typer.Option("--rounds", help="Interleaved timing rounds (median).")] = 5,
    limit: Annotated[int | None, typer.Option("--limit", help="Score on the first N images only.")] = None,
    name: Annotated[str, typer.Option("--name", help="Run name (runs/benchmark/<name>).")] = "benchmark",
) -> None:
    """Export to every available format and print Format | Status | Size | metric | ms/image | FPS."""
    from rich.status import Status

    from defectkd.api import benchmark

    with Status("benchmark", console=err) as status:
        r = benchmark(weights, data=data, split=split, imgsz=imgsz, threads=threads, rounds=rounds, limit=limit,
                      formats=[f for f in formats.split(",") if f.strip()] if formats else None, name=name,
                      progress=lambda what: status.update(f"benchmark: {what}"))
    title = (f"{r['model']}: {r['metric']} on {r['images']} {r['split']} images, {r['imgsz']} px, "
             f"{r['threads']} threads")
    out.print(table(title, r["rows"], ["format", "status", "size_mb", "metric", "ms_per_image", "fps"]))
    out.print(f"saved {r['save_dir']}/benchmark.csv, benchmark.md, benchmark.json", highlight=False)


@app.command("report")
def report_cmd(
    runs: Annotated[list[Path], typer.Argument(help="Run folders (train, val, robustness, kfold, benchmark).")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="Output folder (new or empty).")] = None,
    name: Annotated[str, typer.Option("--name", help="Run name (runs/report/<name>).")] = "report",
    title: Annotated[str, typer.Option("--title")] = "defectkd report",
) -> None:
    """Turn runs into one Markdown and HTML report with tables and plots (report.md, report.html, PNGs)."""
    from defectkd.api import report

    r = report(runs, out=out_dir, name=name, title=title)
    out.print(f"report of {len(r['runs'])} runs: {r['save_dir']}/report.md and report.html", highlight=False)


@app.command("predict")
def predict_cmd(
    weights: Annotated[Path, typer.Option("--weights", help=".pt (PyTorch) or .onnx (ONNX Runtime) file.")],
    source: Annotated[str, typer.Option("--source", help="Image, folder, glob, video file, camera index (0) or "
                                                         "stream URL (rtsp://, http://).")],
    save: Annotated[bool, typer.Option("--save", help="Write masks and overlays (images) or an overlay video "
                                                      "(video, camera, stream), and predictions.jsonl.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line per image or frame.")] = False,
    threshold: Annotated[float | None, typer.Option("--threshold", help="Crack-probability threshold (segmentation) "
                                                    "or box score threshold (detection); default: the one stored "
                                                    "with the weights.")] = None,
    threads: Annotated[int | None, typer.Option("--threads", help="CPU threads.")] = None,
    name: Annotated[str, typer.Option("--name", help="Run name (runs/predict/<name>).")] = "predict",
    vid_stride: Annotated[int, typer.Option("--vid-stride", help="Every N-th frame of a video or stream.")] = 1,
    max_frames: Annotated[int | None, typer.Option("--max-frames", help="Stop after N frames.")] = None,
    sink: Annotated[str | None, typer.Option("--sink", help="Send each result to a receiver: zmq://HOST:PORT.")] = None,
    device_id: Annotated[str | None, typer.Option("--device-id", help="Sender name (default: host name).")] = None,
    send_frame: Annotated[bool, typer.Option("--send-frame", help="Send the JPEG frame with each result.")] = False,
    curve_keys: Annotated[Path | None, typer.Option("--curve-keys", help="Sender key folder (CURVE): own "
                                                    "NAME.key_secret + the receiver's server.key.")] = None,
    spool: Annotated[Path | None, typer.Option("--spool", help="File that keeps unacknowledged results across "
                                               "restarts of this device (default: memory only).")] = None,
) -> None:
    """Segment, classify or detect in images, videos, cameras or streams; report crack-pixel ratio, area, longest
    crack length (or class and score; or boxes, labels and scores), per-stage times and FPS; optionally stream each
    result to `receive`."""
    from defectkd.api import predict

    seen = {"n": 0, "ratio_sum": 0.0, "ratio_max": 0.0, "infer_ms": 0.0, "fps": 0.0}

    def line(r: dict) -> None:
        seen["n"] += 1
        seen["ratio_sum"] += r.get("crack_ratio", 0.0)
        seen["ratio_max"] = max(seen["ratio_max"], r.get("crack_ratio", 0.0))
        seen["infer_ms"] += r["times_ms"].get("inference_ms", 0.0)
        seen["fps"] = r.get("fps", 0.0)
        if as_json:
            print(json.dumps(r), flush=True)

    result = predict(weights, source, save=save, threshold=threshold, threads=threads, name=name, on_result=line,
                     vid_stride=vid_stride, max_frames=max_frames, sink=sink, device_id=device_id,
                     send_frame=send_frame, curve_keys=curve_keys, spool=spool)
    _print_stream_stats(result)
    if as_json:
        return
    if result["source"]["kind"] != "images":
        n = max(seen["n"], 1)
        row = {"source": source, "frames": seen["n"], "mean crack_ratio": seen["ratio_sum"] / n,
               "max crack_ratio": seen["ratio_max"], "mean inference_ms": round(seen["infer_ms"] / n, 2),
               "FPS (last 30)": seen["fps"]}
        out.print(table(f"predict ({result['runtime']}, {result['source']['kind']})", [row], list(row)))
        if result["save_dir"]:
            out.print(f"overlay video {result['video']} and predictions.jsonl saved to {result['save_dir']}",
                      highlight=False, soft_wrap=True)
        return
    if result["results"] and "label_indices" in result["results"][0]:  # a detector
        rows = [{"image": Path(r["image"]).name, "boxes": r["count"],
                 "found": ", ".join(f"{n} {s:.2f}" for n, s in list(zip(r["labels"], r["scores"], strict=True))[:4])
                 + (" ..." if r["count"] > 4 else ""),
                 "inference_ms": r["times_ms"]["inference_ms"], "total_ms": r["times_ms"]["total_ms"]}
                for r in result["results"]]
        out.print(table(f"predict ({result['runtime']}, score >= {result['results'][0]['threshold']:g})", rows,
                         list(rows[0])))
        if result["save_dir"]:
            out.print(f"overlays and predictions.jsonl saved to {result['save_dir']}", highlight=False)
        return
    if result["results"] and "class" in result["results"][0]:  # a classifier
        rows = [{"image": Path(r["image"]).name, "class": r["class"], "score": r["score"],
                 "inference_ms": r["times_ms"]["inference_ms"], "total_ms": r["times_ms"]["total_ms"]}
                for r in result["results"]]
        out.print(table(f"predict ({result['runtime']})", rows, list(rows[0])))
        if result["save_dir"]:
            out.print(f"predictions.jsonl saved to {result['save_dir']}", highlight=False)
        return
    rows = [{"image": Path(r["image"]).name, "crack_ratio": r["crack_ratio"], "area_px": r["area_px"],
             "cracks": r["cracks"], "longest_crack_px": r["longest_crack_px"],
             "inference_ms": r["times_ms"]["inference_ms"], "total_ms": r["times_ms"]["total_ms"]}
             for r in result["results"]]
    out.print(table(f"predict ({result['runtime']})", rows, list(rows[0])))
    if result["save_dir"]:
        out.print(f"masks, overlays and predictions.jsonl saved to {result['save_dir']}", highlight=False)


def _print_stream_stats(result: dict) -> None:
    """Sink and reconnection counters on stderr (so --json output stays clean)."""
    src, sink = result["source"], result["sink"]
    if src.get("reconnects") or src.get("gave_up"):
        err.print(f"source: {src['reconnects']} reconnects" + (", gave up" if src["gave_up"] else ""),
                  highlight=False)
    if sink is not None:
        from defectkd.deploy.sink import sink_summary

        err.print(sink_summary(sink), highlight=False)


@app.command("receive")
def receive_cmd(
    bind: Annotated[str, typer.Option("--bind", help="Where senders connect: tcp://HOST:PORT (loopback unless "
                                                     "told otherwise).")] = "tcp://127.0.0.1:5555",
    store: Annotated[Path, typer.Option("--store", help="Folder for results.sqlite and mask/frame files.")] = Path(
        "results"),
    http: Annotated[str | None, typer.Option("--http", help="Serve the web view at PORT or HOST:PORT "
                                                            "(127.0.0.1 unless told otherwise).")] = None,
    max_bytes: Annotated[int, typer.Option("--max-bytes", help="Refuse larger messages (each part and the whole) "
                                                               "before decoding.")] = 16 << 20,
    max_pixels: Annotated[int, typer.Option("--max-pixels", help="Refuse masks and frames with more pixels (read "
                                                                 "from their headers).")] = 40_000_000,
    curve_keys: Annotated[Path | None, typer.Option("--curve-keys", help="Key folder: server.key_secret + the "
                                                    "allowed senders' NAME.key (CURVE on).")] = None,
    http_token: Annotated[str | None, typer.Option("--http-token", envvar="DEFECTKD_HTTP_TOKEN",
                                                   help="Token the web view requires (open it at /?token=...).")
                          ] = None,
    duration: Annotated[float | None, typer.Option("--duration", help="Stop after S seconds (default: Ctrl-C or "
                                                                      "SIGTERM).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the final counters as JSON.")] = False,
) -> None:
    """Receive results from `predict --sink` senders, store them (SQLite + files) and serve a live web view."""
    from defectkd.api import receive

    def started(rx) -> None:
        web = f", web view at {rx.http_url}" if rx.http_url else ""
        err.print(f"receiving on {rx.endpoint} ({'CURVE' if rx.curve_keys else 'no encryption'}), storing in "
                  f"{rx.store_dir}{web}; Ctrl-C or SIGTERM stops", highlight=False, soft_wrap=True)
        for warning in rx.warnings():
            err.print(f"warning: {warning}", highlight=False, soft_wrap=True)

    stats = receive(bind, store, http=http, max_bytes=max_bytes, curve_keys=curve_keys, duration=duration,
                    on_start=started, max_pixels=max_pixels, http_token=http_token)
    if as_json:
        print(json.dumps(stats, indent=1))
        return
    keys = ["received", "stored", "duplicates", "acknowledged", "malformed", "dropped_oversize", "refused_curve"]
    out.print(table(f"receive {stats['endpoint']}", [{k: stats[k] for k in keys}], keys))
    rows = [{"device": d, **v} for d, v in stats["devices"].items()]
    if rows:
        out.print(table("devices", rows, ["device", "stored", "last_frame", "sender_dropped"]))
    if stats["rejected"]:
        out.print(table("refused messages", [{"reason": k, "count": v} for k, v in stats["rejected"].items()],
                        ["reason", "count"]))


@app.command("keys")
def keys_cmd(
    out_dir: Annotated[Path, typer.Option("--out", help="Key folder.")],
    name: Annotated[str, typer.Option("--name", help="'server' for the receiver, a device id for a sender.")],
    devices: Annotated[str | None, typer.Option("--devices", help="Comma-separated device ids this sender key may "
                                                                  "speak for (default: NAME).")] = None,
) -> None:
    """Make a CURVE key pair: OUT/NAME.key (public, share it) and OUT/NAME.key_secret (keep it)."""
    from defectkd.api import keys

    r = keys(out_dir, name, [d.strip() for d in devices.split(",") if d.strip()] if devices else None)
    out.print(f"public key {r['public']}, secret key {r['secret']} (mode 600: keep it on this machine)",
              highlight=False, soft_wrap=True)


@app.command("info")
def info_cmd(
    model: Annotated[str, typer.Option("--model", help="Model name.")],
    imgsz: Annotated[int, typer.Option("--imgsz")] = 448,
    repeats: Annotated[int, typer.Option("--repeats", help="Timed runs (median reported).")] = 10,
    threads: Annotated[int | None, typer.Option("--threads", help="CPU threads (default: torch's).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Parameters, GMACs, CPU latency and FPS of a model in PyTorch eager and ONNX Runtime (FP32)."""
    from defectkd.api import info

    result = info(model, imgsz, repeats=repeats, threads=threads)
    if as_json:
        print(json.dumps(result, indent=1))
        return
    columns = ["model", "role", "parameters", "gmacs", "gflops", "latency_ms_median", "fps", "ort_latency_ms_median",
               "ort_fps", "threads"]
    out.print(table(f"{model} at {imgsz}x{imgsz}", [result], columns))


@app.command("demo")
def demo_cmd(
    epochs: Annotated[int, typer.Option("--epochs", help="Epochs of the distilled student.")] = 36,
    teacher_epochs: Annotated[int, typer.Option("--teacher-epochs")] = 36,
    teacher: Annotated[str, typer.Option("--teacher", help="Teacher model.")] = "mcff-edge-m",
    student: Annotated[str, typer.Option("--student", help="Student model.")] = "mcff-edge-n",
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """On built-in synthetic cracks: a teacher labels the images of an edge student that has masks for a quarter of
    them; distilled vs alone with a 95 % interval, ONNX speed of both (minutes, 2 cores)."""
    from defectkd.api import demo

    result = demo(epochs=epochs, teacher_epochs=teacher_epochs, teacher=teacher, student=student, seed=seed,
                  say=lambda text: err.print(text, highlight=False))
    out.print(table(f"demo: held-out synthetic test split (crack class); the students had masks for "
                    f"{result['labelled']} of {result['train_images']} images", result["rows"],
                    ["model", "parameters", "f1", "iou", "onnx_fps"]))
    out.print(f"distilled vs alone: {result['gain']['sentence']}", highlight=False)
    out.print(f"the student runs {result['speedup']:g}x faster than its teacher in ONNX Runtime (2 threads); "
              f"ONNX parity {result['onnx']['max_abs_diff']:.1e}", highlight=False)
    out.print(f"everything is in {result['root']}: data/, segment/ (runs, weights, curves), soft_labels/, "
              f"val/ (metrics, overlays), student.onnx, predict/ (masks, overlays, predictions.jsonl)",
              highlight=False)


def _split_size(data: Path, split: str) -> int:
    from defectkd.data.layouts import discover
    from defectkd.tasks.segment.dataset import eval_samples

    return len(eval_samples(discover(data), split))


@app.command("corrupt")
def corrupt_cmd(
    data: Annotated[Path, typer.Option("--data", help="Data set folder.")],
    out_dir: Annotated[Path, typer.Option("--out", help="New (or empty) output folder.")],
    corruptions: Annotated[str | None, typer.Option("--corruptions", help="Comma-separated (default: all).")] = None,
    severities: Annotated[str | None, typer.Option("--severities", help="Comma-separated 1..5 (default: all).")] = None,
    split: Annotated[str, typer.Option("--split", help="Split to corrupt.")] = "test",
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Write corrupted copies of a split: OUT/<corruption>/<severity>/images + masks (masks unchanged)."""
    from defectkd.api import corrupt

    progress, tick = _progress(_split_size(data, split), f"corrupt {split}")
    with progress:
        path = corrupt(data, out_dir, corruptions=corruptions, severities=severities, split=split, seed=seed,
                       progress=tick)
    manifest = json.loads((path / "manifest.json").read_text())
    out.print(f"wrote {manifest['images']} images x {len(manifest['corruptions'])} corruptions x "
              f"{len(manifest['severities'])} severities to {path}/<corruption>/<severity>/", highlight=False)


@app.command("robustness")
def robustness_cmd(
    weights: Annotated[list[Path], typer.Option("--weights", help="Checkpoint or deploy file (repeatable).")],
    data: Annotated[Path, typer.Option("--data", help="Data set folder.")],
    split: Annotated[str, typer.Option("--split", help="Split to evaluate.")] = "test",
    corruptions: Annotated[str | None, typer.Option("--corruptions", help="Comma-separated (default: all).")] = None,
    severities: Annotated[str | None, typer.Option("--severities", help="Comma-separated 1..5 (default: all).")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    threshold: Annotated[float | None, typer.Option("--threshold", help="Default: each model's own.")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Output folder (default: runs/robustness/...).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Only the split's first N images.")] = None,
    threads: Annotated[int | None, typer.Option("--threads", help="Torch CPU threads.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Crack Dice/IoU on the clean split and every corruption x severity; mDS = mean corrupted Dice."""
    from defectkd.api import robustness

    size = _split_size(data, split)
    progress, tick = _progress(min(size, limit) if limit else size, f"robustness {split}")
    with progress:
        report = robustness(weights, data, split=split, corruptions=corruptions, severities=severities, seed=seed,
                            threshold=threshold, out=out_dir, limit=limit, threads=threads, progress=tick)
    if as_json:
        print(json.dumps(report, indent=1))
        return
    rows = [{"weights": m["label"], "clean Dice": m["clean_dice"], "mDS": m["mDS"], **m["per_corruption"]}
            for m in report["models"]]
    title = f"robustness on {data}, split {split}, {report['images']} images (crack Dice)"
    out.print(table(title, rows, list(rows[0])))
    out.print(f"robustness.csv, robustness.json and robustness.png saved to {report['save_dir']}", highlight=False)


def main() -> None:
    """Entry point: known errors become one line and exit status 2."""
    try:
        app()
    except Interrupted as exc:
        err.print(str(exc), highlight=False, markup=False, soft_wrap=True)
        sys.exit(130)
    except DefectKDError as exc:
        err.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted", highlight=False)
        sys.exit(130)


if __name__ == "__main__":
    main()
