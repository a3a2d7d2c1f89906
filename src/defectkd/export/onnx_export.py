"""Student -> ONNX: deploy head only, checked with onnx.checker, verified against PyTorch in ONNX Runtime.

The graph takes RGB float images in [0, 1] (N, 3, H, W) and returns logits (N, C, H, W): input scaling
and stride padding are inside, so the edge side does no model-specific preprocessing. The model name,
classes and threshold travel in the file's metadata.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch

from defectkd.core.errors import ConfigError, DefectKDError
from defectkd.models.loading import load_checkpoint_model

PARITY_TOLERANCE = 1e-4


class ExportError(DefectKDError):
    """The exported model is invalid or disagrees with PyTorch."""


def _parity_image(image: str | Path | None, size: tuple[int, int] | None,
                  classify: bool = False) -> tuple[np.ndarray, str]:
    """RGB uint8 of `size` (H, W; None: as it is): the given image, or a synthetic crack (defect) image."""
    import cv2

    if image is not None:
        from defectkd.data.io import read_image

        rgb, name = read_image(image), str(image)
    elif classify:
        from defectkd.tasks.classify.synthetic import synth_defect_sample

        rgb, name = synth_defect_sample("scratches", seed=0, size=max(size or (64,))), "synthetic defect image"
    else:
        from defectkd.tasks.segment.synthetic import synth_crack_sample

        rgb, name = synth_crack_sample(seed=0, size=max(size or (256,)))[0], "synthetic crack image"
    if size is not None and rgb.shape[:2] != size:
        rgb = cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return rgb, name


def _training_image(data: str | None, classify: bool = False) -> Path | None:
    """The first image of the data the model was trained on, when it is still there."""
    if not data or not Path(data).exists():
        return None
    from defectkd.core.errors import DataError
    from defectkd.data.layouts import discover
    from defectkd.tasks.classify.data import discover_classify

    try:
        source = discover_classify(data) if classify else discover(data)
    except DataError:
        return None
    samples = [s for split in source.splits.values() for s in split]
    return samples[0].image if samples else None


def export_onnx(weights: str | Path, imgsz: int | None = None, dynamic: bool = False, opset: int = 17,
                out: str | Path | None = None, image: str | Path | None = None, overwrite: bool = False) -> dict:
    """Export the student in WEIGHTS; returns file, parity max abs difference (logits) and sizes.

    The parity image is `image`, else the first image of the run's training data, else a synthetic one.
    `imgsz` defaults to 448 for segmentation and to the training size for a classifier, whose graph
    returns logits (N, classes) and whose metadata adds task=classify, class_names (JSON) and train_imgsz.
    A detector exports its raw head outputs, any H, W (export/detect_export.py)."""
    import onnx
    import onnxruntime as ort

    if imgsz is not None and imgsz < 32:
        raise ConfigError(f"--imgsz must be >= 32, got {imgsz}")
    weights = Path(weights)
    out = Path(out) if out else weights.with_suffix(".onnx")
    if out.exists() and not overwrite:
        raise ExportError(f"{out}: already exists; pass --out elsewhere or --overwrite (nothing was overwritten)")
    model, hp = load_checkpoint_model(weights)
    config = hp.get("config", {})
    if _is_detector(hp):  # raw head outputs; post-processing in defectkd.deploy (see export/detect_export.py)
        from defectkd.tasks.detect.export import export_detector

        return export_detector(model, hp, out, imgsz=imgsz, opset=opset, image=image)
    classify = _is_classifier(hp)
    if imgsz is None:
        imgsz = int(config.get("imgsz", 224)) if classify else 448
    model = model.float().eval()
    example = torch.zeros(1, 3, imgsz, imgsz)
    axes = {"images": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch", 2: "height", 3: "width"}}
    if classify:
        axes["logits"] = {0: "batch"}
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The TorchScript-based exporter: a few seconds, static or dynamic H, W both exact (measured).
        torch.onnx.export(model, (example,), str(out), input_names=["images"], output_names=["logits"],
                          opset_version=opset, dynamic_axes=axes if dynamic else None, dynamo=False)
    proto = onnx.load(str(out))
    threshold = hp.get("config", {}).get("threshold", 0.5)
    meta = {"model": hp["model_name"], "classes": model.classes, "threshold": threshold,
            "imgsz": "dynamic" if dynamic else imgsz, "input": "RGB float [0,1] NCHW",
            "output": "logits NCHW", "producer": "defectkd"}
    if classify:
        from defectkd.tasks.classify.evaluate import model_class_names

        del meta["threshold"]
        meta.update({"task": "classify", "output": "logits NC (softmax: class probabilities)",
                     "class_names": json.dumps(model_class_names(hp)),
                     "train_imgsz": int(config.get("imgsz", imgsz))})
    save_checked(proto, meta, out)

    if image is None:
        image = _training_image(hp.get("config", {}).get("data"), classify)
    # a dynamic export is checked at the image's own size, a static one at the export size
    rgb, source = _parity_image(image, None if dynamic and image is not None else (imgsz, imgsz), classify)
    x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().div_(255)[None]
    with torch.no_grad():
        reference = model(x).numpy()
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    result = session.run(None, {"images": x.numpy()})[0]
    diff = float(np.abs(result - reference).max())
    summary = {"file": str(out), "model": hp["model_name"], "imgsz": imgsz, "dynamic": dynamic, "opset": opset,
               "size_mb": round(out.stat().st_size / 2**20, 2), "parity_image": source, "max_abs_diff": diff,
               "tolerance": PARITY_TOLERANCE}
    if not diff < PARITY_TOLERANCE:
        raise ExportError(f"{out}: ONNX Runtime logits differ from PyTorch by {diff:.2e} "
                          f"(limit {PARITY_TOLERANCE:g}) on {source}")
    return summary


def save_checked(proto, meta: dict, out: Path) -> None:
    """Write META into the graph's metadata_props, run onnx.checker (one-line ExportError) and save to OUT."""
    import onnx

    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"{out}: onnx.checker rejected the model ({str(exc).splitlines()[0][:120]})") from None
    onnx.save(proto, str(out))


def _is_detector(hp: dict) -> bool:
    from defectkd.tasks.detect.val import is_detector

    return is_detector(hp)


def _is_classifier(hp: dict) -> bool:
    from defectkd.tasks.classify.val import is_classifier

    return is_classifier(hp)
