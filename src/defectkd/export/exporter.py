"""`defectkd export` for every format of export/formats.py.

Every format starts from the FP32 ONNX graph (checked against PyTorch to 1e-4 by export_onnx). INT8
quantizes that graph (calibrated on training images); OpenVINO and TensorRT convert it. The written
file is then loaded by its own runtime and run once on the parity image: its deviation from the FP32
graph is reported. An INT8 model is also scored on the validation split against the FP32 graph, and
`max_drop` rejects it (the file is moved aside, never deleted) when it loses more than that.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from defectkd.core.errors import ConfigError, ExportError
from defectkd.export.formats import ExportFormat, check_options, resolve_format
from defectkd.export.onnx_export import export_onnx

DEFAULT_FRACTION = 0.25
DEAD_METRIC = 0.01  # `--max-drop` refuses a model whose own FP32 metric is below this: a student that finds nothing
CONSTANT_OUTPUT = 1e-6  # ... or whose outputs on the check image span less than this


def aside(out: Path) -> Path:
    """A free name beside OUT for a rejected file: best.int8.onnx -> best.int8.rejected.onnx."""
    for i in range(1000):
        tag = "rejected" if i == 0 else f"rejected{i}"
        candidate = out.with_name(f"{out.name}.{tag}") if out.is_dir() or not out.suffix else \
            out.with_name(f"{out.stem}.{tag}{out.suffix}")
        if not candidate.exists():
            return candidate
    raise ExportError(f"{out}: too many rejected exports beside it; remove some")


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
        Path(str(path) + ".json").unlink(missing_ok=True)


def export_model(weights: Path, format: str = "onnx", imgsz: int | None = None, dynamic: bool = False,
                 opset: int = 17, out: str | Path | None = None, image: str | Path | None = None,
                 overwrite: bool = False, half: bool = False, int8: bool = False, data: str | Path | None = None,
                 fraction: float | None = None, max_drop: float | None = None, threads: int | None = None,
                 progress: Callable[[], None] | None = None, fp32: dict | None = None) -> dict:
    """Export WEIGHTS to FORMAT; returns the summary `defectkd export` prints (file, size, deviation and, for
    INT8, the validation metric before and after). `fp32`: the summary of an ONNX export of the same weights,
    imgsz, dynamic and opset, to convert from instead of exporting again (benchmark exports it once)."""
    fmt = resolve_format(format, int8)
    check_options(fmt, {"dynamic": dynamic, "half": half, "int8": int8, "data": data, "fraction": fraction,
                        "max_drop": max_drop})
    quantized = fmt.name == "onnx-int8" or int8
    if not quantized and (data is not None or fraction is not None or max_drop is not None):
        raise ConfigError("--data, --fraction and --max-drop apply to INT8 exports (add --int8)")
    if max_drop is not None and not 0 <= max_drop < 1:
        raise ConfigError(f"--max-drop is a fraction of the metric in [0, 1), got {max_drop}")
    reason = fmt.missing()
    if reason:
        raise ConfigError(f"--format {fmt.name} is unavailable on this machine: {reason}")
    from defectkd.core.zoo import is_zoo_file

    # a zoo file's export goes to the current folder, never into the installed package
    out = Path(out) if out else fmt.output_for(Path.cwd() / weights.name if is_zoo_file(weights) else weights)
    if out.exists() and not overwrite:
        raise ExportError(f"{out}: already exists; pass --out elsewhere or --overwrite (nothing was overwritten)")
    if fmt.name == "onnx":
        return {**export_onnx(weights, imgsz=imgsz, dynamic=dynamic, opset=opset, out=out, image=image,
                              overwrite=overwrite), "format": "onnx"}
    with tempfile.TemporaryDirectory() as tmp:
        return _convert(fmt, weights, Path(tmp), out, imgsz, dynamic, opset, image, half, quantized, data,
                        fraction, max_drop, threads, progress, fp32)


def _convert(fmt: ExportFormat, weights: Path, tmp: Path, out: Path, imgsz: int | None, dynamic: bool, opset: int,
             image, half: bool, quantized: bool, data, fraction: float | None, max_drop: float | None,
             threads: int | None, progress, base: dict | None) -> dict:
    from defectkd.deploy.backends import open_runtime
    from defectkd.export.quality import eval_images, metric_name, pick_calibration, score
    from defectkd.models.loading import load_checkpoint_model
    from defectkd.tasks import TASKS, task_of

    _, hp = load_checkpoint_model(weights)
    task = task_of(hp).name
    checked = eval_images(hp, data, "val") if quantized else None  # a data problem shows before the slow part
    base = base or export_onnx(weights, imgsz=imgsz, dynamic=dynamic, opset=opset, out=tmp / "model.onnx",
                               image=image)
    fp32 = open_runtime(base["file"], threads)
    summary = {**base, "format": fmt.name, "task": task, "precision": "int8" if quantized else
               "fp16" if half else "fp32"}
    source = Path(base["file"])
    if checked is not None:
        from defectkd.export.quantize import quantize_int8

        calibration = pick_calibration(checked.calibration, fraction or DEFAULT_FRACTION)
        source = tmp / "model.int8.onnx"
        summary.update(quantize_int8(Path(base["file"]), source, calibration, fp32.prepare,
                                     method=TASKS[task].int8_calibration))
    metadata = {**fp32.metadata, "precision": summary["precision"], "format": fmt.name}
    if out.exists():  # --overwrite: replaced only now that the new file is ready to be written
        _remove(out)
    if fmt.name == "onnx-int8":
        shutil.copyfile(source, out)
    elif fmt.name == "openvino":
        from defectkd.export.openvino_export import onnx_to_openvino

        onnx_to_openvino(source, out, metadata, half=half)
    else:
        from defectkd.export.tensorrt_export import onnx_to_engine

        onnx_to_engine(source, out, metadata, imgsz=base["imgsz"], half=half, int8=quantized, dynamic=dynamic)
    exported = open_runtime(out, threads)
    x = _check_input(fp32, hp, image, task)
    reference, result = fp32.backend.run(x)[0], exported.backend.run(x)[0]
    summary.update(file=str(out), size_mb=_size_mb(out), check=f"{out.name} run once by {exported.backend.name}",
                   deviation=float(np.abs(result.astype(np.float32) - reference).max()),
                   deviation_of="max abs difference of the first output from the FP32 ONNX graph")
    if checked is not None:
        before, after = score(fp32, checked, progress), score(exported, checked, progress)
        metric = metric_name(task)
        n = len(checked.samples)
        summary.update(metric=metric, images=n, metric_fp32=before, metric_int8=after, drop=before - after,
                       max_drop=max_drop)
        if max_drop is not None:  # a dead model loses nothing: 0 -> 0 is not a pass
            if float(np.ptp(reference)) < CONSTANT_OUTPUT:
                _reject(out, f"the model's outputs are constant (the same {reference.size} values whatever the "
                             "image): it has learnt nothing; see its run's metrics.csv and `defectkd report`")
            if before < DEAD_METRIC:
                _reject(out, f"the model itself scores {metric} {before:.4f} on {n} validation images: it finds "
                             "nothing, so no drop can be checked; see its run's metrics.csv and `defectkd report`")
            if before - after > max_drop:
                _reject(out, f"INT8 loses {before - after:.4f} {metric} on {n} validation images ({before:.4f} -> "
                             f"{after:.4f}), more than --max-drop {max_drop:g}")
    return summary


def _reject(out: Path, why: str) -> None:
    """Move a refused export aside (never delete what was made) and say why in one line."""
    kept = aside(out)
    out.rename(kept)
    if Path(str(out) + ".json").exists():
        Path(str(out) + ".json").rename(Path(str(kept) + ".json"))
    raise ExportError(f"{out}: {why}; kept aside as {kept}")


def _check_input(runtime, hp: dict, image, task: str) -> np.ndarray:
    """The parity image (given, else the training data's first, else synthetic) as the model's input."""
    from defectkd.tasks import TASKS

    return TASKS[task].parity_input(runtime, hp, image)


def _size_mb(path: Path) -> float:
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    return round(sum(p.stat().st_size for p in files) / 2**20, 2)
