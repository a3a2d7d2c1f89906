"""Student -> ONNX, for any task: the task writes its graph (dense logits, or a detector's raw heads) and checks
it against PyTorch in ONNX Runtime; this module resolves the weights, the output path and the task."""

from __future__ import annotations

from pathlib import Path

from defectkd.core.errors import ConfigError, ExportError
from defectkd.models.loading import load_checkpoint_model
from defectkd.models.onnx import PARITY_TOLERANCE, save_checked
from defectkd.tasks import task_of

__all__ = ["PARITY_TOLERANCE", "ExportError", "export_onnx", "save_checked"]


def export_onnx(weights: str | Path, imgsz: int | None = None, dynamic: bool = False, opset: int = 17,
                out: str | Path | None = None, image: str | Path | None = None, overwrite: bool = False) -> dict:
    """Export the student in WEIGHTS; returns file, parity max abs difference (logits) and sizes.

    The parity image is `image`, else the first image of the run's training data, else a synthetic one.
    `imgsz` defaults to the training images' size for segmentation (448 when they are gone) and to the training
    size for a classifier, whose graph
    returns logits (N, classes) and whose metadata adds task=classify, class_names (JSON) and train_imgsz.
    A detector exports its raw head outputs, any H, W (tasks/detect/export.py)."""
    if imgsz is not None and imgsz < 32:
        raise ConfigError(f"--imgsz must be >= 32, got {imgsz}")
    weights = Path(weights)
    out = Path(out) if out else weights.with_suffix(".onnx")
    if out.exists() and not overwrite:
        raise ExportError(f"{out}: already exists; pass --out elsewhere or --overwrite (nothing was overwritten)")
    model, hp = load_checkpoint_model(weights)
    return task_of(hp).export_onnx(model, hp, out, imgsz, dynamic, opset, image)
