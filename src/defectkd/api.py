"""The Python API: one function per CLI verb, same arguments, same results.

    from defectkd import api
    api.synth("data/synth", n=64)
    summary = api.train("segment", data="data/synth", model="mcff-l", epochs=5)
    metrics = api.val(summary["best"], data="data/synth")
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from defectkd.core.config import build_config, check_resume, load_yaml
from defectkd.core.errors import ConfigError, DataError
from defectkd.tasks import TASKS, get_task, task_of, task_of_weights


def synth(out: str | Path, n: int = 64, size: int = 256, seed: int = 0, task: str = "segment") -> Path:
    """Write synthetic crack images and masks to OUT/images and OUT/masks (task segment), synthetic
    defect classes to OUT/<class>/<class>_<i>.png (task classify; OUT must be new or empty), or synthetic
    defects with boxes to OUT/images + OUT/annotations (VOC XML) + OUT/splits (task detect; new or empty OUT)."""
    plugin = get_task(task, "data synth")
    if n < 1 or size < 32:
        raise ConfigError("data synth: --n must be >= 1 and --size >= 32")
    return plugin.synth(Path(out), n, size, seed)


def check(path: str | Path, progress: Callable[[], None] | None = None, task: str = "auto",
          classes: str | list[str] | None = None) -> dict:
    """Validate a data set: layout, pairs, sizes, crack fraction and every problem (segment), or classes,
    images per class and split, sizes and every problem (classify), or classes, boxes per class, background
    images, clipped boxes and every problem (detect: VOC, COCO or YOLO; `classes`, a list or comma-separated,
    makes an object of any other class a problem). `auto`: classify for class folders and path,label CSV files,
    segment otherwise (NEU-DET's images/<class>_<n>.jpg needs task classify, its boxes task detect)."""
    if task not in ("auto", *TASKS):
        raise ConfigError(f"data check: task {task!r} unknown (auto, {', '.join(TASKS)})")
    from defectkd.tasks.recognise import task_for

    plugin, found = task_for(path, task)  # auto: the best reading's task (tasks/recognise.py)
    names = [c.strip() for c in classes.split(",") if c.strip()] if isinstance(classes, str) else classes
    report = plugin.check(path, progress, names)
    report.update(found.report())
    report["task"] = plugin.name
    report["task_from"] = "--task" if task in TASKS else "recognised" if found.chosen else "fallback"
    report["alternatives"] = [a for a in report["alternatives"] if a["task"] != plugin.name]
    return report


def train(task: str = "segment", config: str | Path | None = None, overrides: list[str] | None = None,
          resume: str | Path | None = None, **options: Any) -> dict:
    """Train a model; `options` are config keys (data=, model=, epochs=, ...)."""
    from defectkd.core.runs import resolve_run
    from defectkd.engine.fit import run

    plugin = get_task(task, "train")
    if resume is not None:
        run_dir, last = resolve_run(resume)
        saved = load_yaml(run_dir / "config.yaml")
        plugin = get_task(saved.get("task", "segment"), "resume")
        cfg = build_config(plugin.saved_schema(saved), run_dir / "config.yaml", options, overrides)  # file < options
        check_resume(saved, cfg, run_dir / "config.yaml")  # more epochs or another device, never another recipe
        return run(plugin, cfg, resume=last, run_dir=run_dir)
    cfg = build_config(plugin.train_config(), config, options, overrides)
    _fits(plugin, cfg.data, "train", cfg.model)
    return run(plugin, cfg)


def distill(task: str = "segment", config: str | Path | None = None, overrides: list[str] | None = None,
            resume: str | Path | None = None, baseline: bool = False, **options: Any) -> dict:
    """Distil a student: `teacher=` (run folder or weights, online) and/or `soft_labels=` (a cache
    folder, offline); other options as in `train` (model= is the student), plus T=, alpha=, method=.
    The summary adds the teacher's metrics on the same validation images. With `baseline`, the same student is
    also trained alone (same data, seed, epochs and settings) into <name>-alone, and the summary's `baseline`
    holds the distillation gain on the test split (else the held-out validation images) with a paired bootstrap
    95 % interval: "better", "worse" or "within noise"."""
    from defectkd.engine.fit import run

    plugin = get_task(task, "distill")
    if resume is not None:
        return train(task, overrides=overrides, resume=resume, **options)
    if options.get("soft_labels") is not None and not plugin.offline_distillation:
        raise ConfigError(f"distill {task}: soft_labels (offline) is segmentation only; give --teacher")
    cfg = build_config(plugin.distill_config(), config, options, overrides)
    _fits(plugin, cfg.data, "distill", cfg.model)
    if baseline and not plugin.compares_per_image:
        raise ConfigError(f"distill {task} --baseline: its metric has no per-image terms to compare yet")
    summary = run(plugin, cfg)
    if baseline:
        summary["baseline"] = _baseline(plugin, cfg, summary)
        (Path(summary["run"]) / "results.json").write_text(json.dumps(summary, indent=1))
    return summary


def _fits(plugin, data, verb: str, model: str | None = None) -> None:
    """One line when `data` is clearly another task's (tasks/recognise.py), before any run folder exists; a model
    of another task (or an unknown one) is left to the engine's model check, which comes first."""
    from defectkd.core.errors import DefectKDError
    from defectkd.models import model_spec
    from defectkd.tasks.recognise import check_fits

    if model is not None:
        try:
            if model_spec(model).task != plugin.name:
                return
        except DefectKDError:
            return
    if data:
        check_fits(plugin, data, verb)


def _baseline(plugin, cfg, summary: dict) -> dict:
    """Train the student alone with the distillation run's settings, then compare the two on the same images."""
    from defectkd.core.checkpoint import read_checkpoint
    from defectkd.engine.compare import student_gain
    from defectkd.engine.fit import run

    schema = plugin.train_config()
    alone_options = {k: v for k, v in cfg.model_dump().items() if k in schema.model_fields}
    alone_options["name"] = f"{Path(summary['run']).name}-alone"
    alone = run(plugin, build_config(schema, None, alone_options))
    split, samples = plugin.comparison_images(read_checkpoint(summary["best"])["hyper_parameters"], cfg.data)
    if not samples:
        raise DataError(f"{cfg.data}: no labelled {split} images to compare the student alone with")
    return {"run": alone["run"], "alone_val": alone["val"],
            **student_gain(plugin, summary["best"], alone["best"], samples, split)}


def kfold(k: int = 5, task: str = "segment", config: str | Path | None = None, overrides: list[str] | None = None,
          **options: Any) -> dict:
    """k-fold cross-validation: `train` (or `distill`, when a teacher or soft_labels is given) once per
    fold; returns per-fold metrics and their mean and standard deviation."""
    from defectkd.core.config import parse_overrides

    able = [name for name, p in TASKS.items() if p.kfold_ok]
    if task not in able:
        raise ConfigError(f"kfold: task {task!r} not available yet (available: {', '.join(able)})")
    plugin = TASKS[task]
    if k < 2:
        raise ConfigError(f"kfold: k must be at least 2 (got {k})")
    keys = {key for key, v in options.items() if v is not None} | set(parse_overrides(overrides))
    keys |= set(load_yaml(config)) if config else set()
    schema = plugin.saved_schema({key: True for key in keys})
    if "fold" in keys or "folds" in keys:
        raise ConfigError("kfold sets folds and fold itself: drop them from the config")
    cfg = build_config(schema, config, options, overrides)
    _fits(plugin, cfg.data, "kfold", cfg.model)
    return plugin.kfold(cfg, k)


def soft_labels(teacher: str | Path, data: str | Path, out: str | Path, T: float = 10.0, unlabelled: bool = False,
                progress: Callable[[], None] | None = None) -> dict:
    """Run a teacher once over the training images; store its softened outputs (float16) in OUT."""
    from defectkd.tasks.segment.soft_labels import write_soft_labels

    return write_soft_labels(teacher, data, T, out, unlabelled=unlabelled, progress=progress)


def _check_threshold(threshold: float | None) -> None:
    """A probability or score threshold is a number in [0, 1]; NaN would silently find nothing or everything."""
    if threshold is not None and not 0.0 <= float(threshold) <= 1.0:  # NaN fails both comparisons
        raise ConfigError(f"--threshold must be between 0 and 1 (got {threshold})")


def val(weights: str | Path, data: str | Path, split: str | None = None, threshold: float | None = None,
        tolerant: bool = True, save_dir: str | Path | None = None, project: str = "runs",
        progress: Callable[[], None] | None = None, calibrate: bool = False) -> dict:
    """Evaluate a checkpoint on a labelled split; writes metrics.json and overlays to a new val run. Several
    weights joined by commas are evaluated as the ensemble a distillation would use as its teacher (their averaged
    probabilities), so a user can choose teachers on the validation split."""
    _check_threshold(threshold)
    split = val_split(split, calibrate)
    model, hp = _evaluated_model(weights)
    plugin = task_of(hp)
    _fits(plugin, data, "val")
    options: dict[str, Any] = {"tolerant": tolerant}
    if calibrate:
        options["calibrate_from"] = _calibration_source(plugin, weights, split)
    return plugin.val(model, hp, weights, data, split, threshold, save_dir, project, progress, **options)


def val_split(split: str | None, calibrate: bool = False) -> str:
    """The split `val` scores when none is given: test, or val when calibrating (a threshold never comes from test)."""
    return split or ("val" if calibrate else "test")


def _calibration_source(plugin, weights: str | Path, split: str) -> Path:
    """The one weights file `val --calibrate` copies with its new threshold; refused in one line for the test split
    (a threshold chosen there makes every test figure optimistic), an ensemble, or a task without a threshold."""
    from defectkd.core.runs import resolve_weights

    if not plugin.calibrates:
        raise ConfigError(f"val --calibrate: {plugin.label} models have no probability threshold to calibrate")
    if "," in str(weights):
        raise ConfigError(f"val --calibrate: {weights} names several weights files; calibrate one at a time")
    if split == "test":
        raise ConfigError("val --calibrate chooses a threshold on the split it scores: give --split val (or "
                          "labelled images of your own), never test")
    return resolve_weights(weights)


def _evaluated_model(weights: str | Path) -> tuple:
    """(model, hyper-parameters) of one checkpoint, or of an ensemble of several joined by commas: the first
    member's settings (task, classes, threshold, input size) with the ensemble's name."""
    from defectkd.distill.teacher import teacher_files, teacher_from
    from defectkd.models.loading import load_checkpoint_model

    files = teacher_files(weights)
    members = [load_checkpoint_model(f) for f in files]
    if len(members) == 1:
        return members[0]
    first = members[0][1]
    plugin = task_of(first)
    if not plugin.ensembles:
        raise ConfigError(f"{weights}: an ensemble (weights joined by commas) is for segmentation and "
                          f"classification models, not {plugin.label}")
    classes = (first.get("config") or {}).get("class_names")
    for f, (_, hp) in zip(files[1:], members[1:], strict=True):
        if task_of(hp) is not plugin or (hp.get("config") or {}).get("class_names") != classes:
            raise ConfigError(f"{f}: ensemble member {hp['model_name']!r} does not predict what "
                              f"{first['model_name']!r} predicts (another task or other classes)")
    model, name = teacher_from(members)
    return model, {**first, "model_name": name}


def export(weights: str | Path, format: str = "onnx", imgsz: int | None = None, dynamic: bool = False,
           opset: int = 17, out: str | Path | None = None, image: str | Path | None = None,
           overwrite: bool = False, half: bool = False, int8: bool = False, data: str | Path | None = None,
           fraction: float | None = None, max_drop: float | None = None, threads: int | None = None,
           progress: Callable[[], None] | None = None) -> dict:
    """Export the student in WEIGHTS (run folder or file) to a format of `export_formats()` (onnx, onnx-int8,
    openvino, engine; aliases such as trt) and run the written file once. `imgsz` (static input size) defaults
    to 448 for segmentation and to a classifier's training size. INT8 calibrates on `fraction` of the training
    images of `data` (default: the run's data) and, with `max_drop`, refuses a model that loses more than that
    much F1 / accuracy / mAP50 on the validation split (the file is kept aside)."""
    from defectkd.core.runs import resolve_weights
    from defectkd.export.exporter import export_model

    return export_model(resolve_weights(weights), format=format, imgsz=imgsz, dynamic=dynamic, opset=opset, out=out,
                        image=image, overwrite=overwrite, half=half, int8=int8, data=data, fraction=fraction,
                        max_drop=max_drop, threads=threads, progress=progress)


def report(runs: list[str | Path], out: str | Path | None = None, project: str | Path = "runs",
           name: str = "report", title: str = "defectkd report") -> dict:
    """One Markdown + HTML report (tables and plots) of run folders: training, val, robustness, kfold and
    benchmark runs. Writes to OUT (new or empty) or to a new runs/report/<name>/; returns the files written."""
    from defectkd.core.runs import fresh_dir, new_run_dir
    from defectkd.report import build_report, load_runs

    loaded = load_runs(list(runs))  # every folder is checked before anything is written
    save = fresh_dir(out) if out is not None else new_run_dir(project, "report", name)
    return build_report(loaded, save, title)


def benchmark(weights: str | Path, data: str | Path | None = None, split: str = "test", imgsz: int = 448,
              formats: list[str] | None = None, threads: int | None = 2, rounds: int = 5, reps: int = 5,
              limit: int | None = None, fraction: float | None = None, project: str | Path = "runs",
              name: str = "benchmark", progress: Callable[[str], None] | None = None) -> dict:
    """Export WEIGHTS to every available format and measure each (size, F1/accuracy/mAP50 on SPLIT of DATA,
    ms/image, FPS on THREADS threads); writes benchmark.csv/.md/.json to runs/benchmark/<name>/."""
    from defectkd.export.benchmark import benchmark as run_benchmark

    return run_benchmark(weights, data=data, split=split, imgsz=imgsz, formats=formats, threads=threads,
                         rounds=rounds, reps=reps, limit=limit, fraction=fraction, project=project, name=name,
                         progress=progress)


def export_formats() -> list[dict]:
    """The export formats: name, aliases, suffix, devices, options and whether this machine can produce them."""
    from defectkd.export.formats import format_table

    return format_table()


def predict(weights: str | Path, source: str | Path, save: bool = False, threshold: float | None = None,
            project: str | Path = "runs", name: str = "predict", threads: int | None = None,
            on_result: Callable[[dict], None] | None = None, save_dir: str | Path | None = None,
            vid_stride: int = 1, max_frames: int | None = None, sink: str | None = None,
            device_id: str | None = None, send_frame: bool = False, curve_keys: str | Path | None = None,
            spool: str | Path | None = None) -> dict:
    """Segment every image of SOURCE (file, folder or glob), every `vid_stride`-th frame of a video, or a
    camera (`0`) or stream URL (rtsp://, http://...) with a .pt (PyTorch) or .onnx (ONNX Runtime) model;
    returns {"results": [...], "frames": n, "save_dir": ..., "source": stats, "sink": stats}. With save,
    masks/, overlays/ (images) or one overlay video (<name>.mp4), and predictions.jsonl go to a new
    runs/predict/<name>/. A classifier reports per image its top class and probability (`class`, `score`,
    every class in `probs`); with save, predictions.jsonl (and a labelled video) only. A detector reports
    `boxes` (xyxy px), `labels`, `label_indices` and `scores` at the score threshold `threshold` (default: the
    run's), with save overlays/ with the boxes drawn and predictions.jsonl. With `sink`
    (zmq://HOST:PORT), every result goes to a `receive`r as well, without slowing the loop (see
    deploy/sink.py: at least once, acknowledged by the receiver; `spool` is a file that keeps what is not yet
    acknowledged across restarts); `curve_keys` is the sender's key folder. A camera or stream runs until it ends,
    `max_frames`, or Ctrl-C, and keeps no results in memory (`on_result` sees each one)."""
    _check_threshold(threshold)
    from defectkd.deploy.predict import UnreadableImage
    from defectkd.deploy.run import run_source
    from defectkd.deploy.sources import FrameSource, SourceError

    if max_frames is not None and max_frames < 1:
        raise ConfigError("--max-frames must be >= 1")
    try:
        frames = FrameSource(source, vid_stride=vid_stride, max_frames=max_frames)
    except SourceError as exc:
        raise DataError(str(exc)) from None
    try:
        segmenter = _segmenter(Path(weights), threads)
        if hasattr(segmenter, "classify") and threshold is not None:
            raise ConfigError("--threshold applies to segmentation; a classifier reports its top class")
        if save and save_dir is None:
            from defectkd.core.runs import new_run_dir

            save_dir = new_run_dir(project, "predict", name)
        save_dir = Path(save_dir) if save else None
        zsink = _sink(sink, device_id, send_frame, curve_keys, spool) if sink else None
    except BaseException:
        frames.close()
        raise
    try:
        run = run_source(segmenter, frames, save_dir, threshold, on_result, zsink)
    except UnreadableImage as exc:
        raise DataError(str(exc)) from None
    return {"weights": str(weights), **run}


def _sink(url: str, device_id: str | None, send_frame: bool, curve_keys: str | Path | None,
          spool: str | Path | None = None):
    from defectkd.deploy.sink import SinkError, ZmqSink

    try:
        return ZmqSink(url, device_id=device_id, send_frame=send_frame, curve_keys=curve_keys, spool=spool)
    except SinkError as exc:
        raise ConfigError(str(exc)) from None


def receive(bind: str = "tcp://127.0.0.1:5555", store: str | Path = "results", http: int | str | None = None,
            max_bytes: int = 16 * 1024 * 1024, curve_keys: str | Path | None = None, duration: float | None = None,
            on_start: Callable[[Any], None] | None = None, max_pixels: int = 40_000_000,
            http_token: str | None = None) -> dict:
    """Receive results from `predict --sink` senders at BIND (loopback unless told otherwise) into STORE
    (results.sqlite + mask/frame files per device), acknowledging each once committed, serving the web view at
    `http` (PORT or HOST:PORT; `http_token` required when set), until `duration` seconds pass, Ctrl-C or SIGTERM
    (both drain: what arrived is stored first); returns the counters (received, stored, duplicates,
    acknowledged, malformed, dropped_oversize, refused_curve, rejected per reason, per device). `on_start(receiver)`
    runs once it listens. For a receiver that does not block, use `defectkd.serve.Receiver`."""
    from defectkd.serve.receiver import Receiver, ReceiverError

    try:
        receiver = Receiver(bind, store, max_bytes=max_bytes, curve_keys=curve_keys, http=http,
                            max_pixels=max_pixels, http_token=http_token).start()
    except ReceiverError as exc:
        raise ConfigError(str(exc)) from None
    try:
        if on_start:
            on_start(receiver)
    except BaseException:
        receiver.stop()
        raise
    return receiver.serve(duration)


def keys(out: str | Path, name: str, devices: list[str] | None = None) -> dict:
    """Make a CURVE key pair OUT/NAME.key (public) and OUT/NAME.key_secret (never overwritten) for
    `receive --curve-keys` (name it `server`) and `predict --sink ... --curve-keys` (one per sender, speaking for
    the device ids `devices`, default NAME)."""
    from defectkd.serve.protocol import KeyFileError, create_keys

    try:
        public, secret = create_keys(out, name, devices)
    except KeyFileError as exc:
        raise ConfigError(str(exc)) from None
    return {"name": name, "public": str(public), "secret": str(secret)}


def _segmenter(weights: Path, threads: int | None):
    """Runtime from the file name: .onnx, NAME_openvino_model/, .engine -> deploy.backends; .pt (or a run
    folder) -> PyTorch; a classifier (metadata task=classify, or a classification checkpoint) gets the
    classification runtime, a detector (task=detect) the detection one."""
    from defectkd.core.errors import WeightsError
    from defectkd.deploy.backends import BackendError, backend_kind, open_runtime

    if backend_kind(weights) is not None:  # an exported file: ONNX Runtime, OpenVINO or TensorRT
        try:
            return open_runtime(weights, threads=threads)
        except BackendError as exc:
            raise WeightsError(str(exc)) from None
    from defectkd.core.runs import resolve_weights

    if threads:
        import torch

        torch.set_num_threads(threads)
    weights = resolve_weights(weights)
    return task_of_weights(weights).torch_runtime(weights)


def info(model: str, imgsz: int = 448, repeats: int = 10, threads: int | None = None) -> dict:
    """Parameters, GMACs, median CPU latency and FPS of a registered model."""
    from defectkd.models.info import model_info

    return model_info(model, imgsz, repeats=repeats, threads=threads)


def zoo() -> list[dict]:
    """The trained weights shipped with the package (core/zoo): name, task, model, and the model card's fields;
    each name works wherever a weights path does (predict, val, export, --pretrained)."""
    from defectkd.core.zoo import entries

    return [{"name": name, **{k: v for k, v in card.items() if k != "file"}} for name, card in entries().items()]


def models() -> list[dict]:
    """One row per registered model: name, task, role, parameters, GMACs at 448x448 (batch 1), output form, all
    of the deployed model.

    The MACs are counted on the meta device (shapes only, no arithmetic), so the heavy teachers cost nothing;
    a model that cannot run there is counted with a real forward pass."""
    from defectkd.models import build_deployed, list_models, model_spec
    from defectkd.models.info import count_macs, count_macs_meta, count_parameters

    rows = []
    for name in list_models():
        spec = model_spec(name)
        classes = spec.defaults.get("classes", 2)
        model = build_deployed(name)  # a -rep model's training branches folded
        parameters = count_parameters(model)
        try:
            macs = count_macs_meta(model, 448)
        except (NotImplementedError, RuntimeError):
            macs = count_macs(build_deployed(name), 448)
        rows.append({"name": name, "task": spec.task, "role": spec.role,
                     "parameters": parameters, "gmacs_448": round(macs / 1e9, 2),
                     "output": TASKS[spec.task].model_output(classes),
                     "description": spec.description})
    return rows


def layers(model: str, imgsz: int = 64, contains: str | None = None) -> list[dict]:
    """Module paths of a registered model (or a weights file / run folder) with output shapes: the
    names `feat=student.path:teacher.path` takes. Marks the model's default feature layer."""
    from defectkd.distill.features import list_layers
    from defectkd.models import build_model, list_models

    if model in list_models() or not Path(model).exists():
        net = build_model(model)  # an unknown name is refused with the list of known ones
    else:
        from defectkd.distill.teacher import load_teacher

        net, _ = load_teacher(model)
    default = set(getattr(net, "feature_layers", None) or [getattr(net, "feature_layer", None)])  # detectors: FPN
    return [{"path": info.path, "type": info.kind, "shape": "x".join(map(str, info.shape[1:])),
             "parameters": info.params, "default": info.path in default}
            for info in list_layers(net, imgsz) if contains is None or contains in info.path]


def methods() -> list[dict]:
    """Distillation recipes (what --method NAME means): terms, weights and defaults."""
    from defectkd.distill.recipes import RECIPES

    return [{"method": name, "terms": " + ".join(f"{t['weight']} x {t['method']}({t['on']})" for t in r.terms),
             "T": f"{r.T:g}" if r.T else None, "alpha": f"{r.alpha:g}" if r.alpha else None,
             "noisy_fraction": f"{r.noisy_fraction:.2f}" if r.noisy_fraction else None,
             "description": r.description} for name, r in RECIPES.items()]


def demo(project: str | Path = "runs", n_train: int = 96, n_test: int = 48, size: int = 128, epochs: int = 36,
         teacher: str = "mcff-edge-m", teacher_epochs: int = 36, student: str = "mcff-edge-n", labelled: float = 0.25,
         T: float = 1.0, seed: int = 0, say: Callable[[str], None] | None = None) -> dict:
    """The quick-start job on built-in synthetic cracks: a teacher on fully labelled images labels the images of an
    edge student that has masks for `labelled` of them; the student distilled and the student alone (same masks,
    steps and seed) are compared on test images with a paired bootstrap interval; both models are exported and
    timed in ONNX Runtime. See defectkd.demo."""
    import sys

    from defectkd.demo import run_demo

    return run_demo(sys.modules[__name__], project, n_train, n_test, size, epochs, teacher, teacher_epochs, student,
                    labelled, T, seed, say or (lambda _: None))


def corrupt(data: str | Path, out: str | Path, corruptions: str | list[str] | None = None,
            severities: str | list[int] | None = None, split: str = "test", seed: int = 0,
            progress: Callable[[], None] | None = None) -> Path:
    """Write corrupted copies of a labelled split to OUT/<corruption>/<severity>/{images,masks}/ (each an
    images-masks set) and OUT/manifest.json; None means every corruption / severity (see
    defectkd.data.corruptions). Refuses an existing non-empty OUT. Returns OUT."""
    from defectkd.core.runs import fresh_dir
    from defectkd.data.corruptions import select
    from defectkd.tasks.segment.corrupt import write_corrupted
    from defectkd.tasks.segment.dataset import labelled_split

    names, levels = select(corruptions, severities)
    samples = labelled_split(data, split)
    out = fresh_dir(out)
    return write_corrupted(samples, out, names, levels, seed=seed, progress=progress,
                           about={"data": str(data), "split": split})


def robustness(weights: str | Path | list[str | Path], data: str | Path, split: str = "test",
               corruptions: str | list[str] | None = None, severities: str | list[int] | None = None, seed: int = 0,
               threshold: float | None = None, out: str | Path | None = None, project: str | Path = "runs",
               name: str = "robustness", limit: int | None = None, threads: int | None = None,
               progress: Callable[[], None] | None = None) -> dict:
    """Evaluate one or more weights files on the clean split and every corruption x severity of it (the same
    corrupted images for every model): crack Dice and IoU at each model's threshold, mDS = mean Dice over
    the corrupted cells. Writes robustness.csv/.json/.png to OUT (must be new or empty) or to a new
    runs/robustness/<name>/; returns the report (`models`: one entry per weights file, in order).
    `limit`: only the split's first N images (every model the same ones); `threads`: torch CPU threads."""
    _check_threshold(threshold)
    from defectkd.core.runs import fresh_dir, new_run_dir, resolve_weights
    from defectkd.data.corruptions import select
    from defectkd.models.loading import load_checkpoint_model
    from defectkd.tasks.segment.dataset import labelled_split
    from defectkd.tasks.segment.robustness import evaluate_robustness, weights_labels, write_robustness

    names, levels = select(corruptions, severities)
    paths = [weights] if isinstance(weights, str | Path) else list(weights)
    if not paths:
        raise ConfigError("robustness: give at least one --weights file")
    loaded = [load_checkpoint_model(resolve_weights(p)) for p in paths]
    other = next((task_of(hp) for _, hp in loaded if not task_of(hp).evaluates_robustness), None)
    if other is not None:
        raise ConfigError(f"robustness: evaluates segmentation models; a {other.label} model was given")
    _fits(task_of(loaded[0][1]), data, "robustness")
    samples = labelled_split(data, split)
    if limit is not None:
        if limit < 1:
            raise ConfigError(f"robustness: limit must be at least 1 (got {limit})")
        samples = samples[:limit]
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    if out is not None:
        fresh_dir(out, create=False)
    thresholds = [threshold if threshold is not None else hp.get("config", {}).get("threshold", 0.5)
                  for _, hp in loaded]
    results = evaluate_robustness([m for m, _ in loaded], thresholds, samples, names, levels, seed=seed,
                                  progress=progress)
    save = fresh_dir(out) if out is not None else new_run_dir(project, "robustness", name)
    report = {"data": str(data), "split": split, "seed": seed, "images": len(samples), "corruptions": list(names),
              "severities": list(levels), "save_dir": str(save),
              "models": [{"weights": str(p), "label": label, "model": hp.get("model_name"), "threshold": t, **r}
                         for p, label, (_, hp), t, r in zip(paths, weights_labels(paths), loaded, thresholds, results,
                                                            strict=True)]}
    report["files"] = write_robustness(report, save)
    return report
