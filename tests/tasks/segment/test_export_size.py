"""A static segmentation export defaults to the size of the images the model was trained on, not a fixed 448."""

import cv2
import numpy as np
import onnx
import torch

from defectkd.core.checkpoint import DEPLOY_FORMAT
from defectkd.models import build_model
from defectkd.tasks.segment.task import DEFAULT_EXPORT_SIZE, export_size


def _image(path, h, w):
    cv2.imwrite(str(path), np.zeros((h, w, 3), np.uint8))
    return path


def test_export_size_is_the_mean_side_on_the_32_grid(tmp_path):
    assert export_size(_image(tmp_path / "a.png", 128, 128)) == 128
    assert export_size(_image(tmp_path / "b.png", 384, 544)) == 448  # DeepCrack: (384 + 544) / 2 = 464 -> 448
    assert export_size(_image(tmp_path / "c.png", 20, 30)) == 64  # never below 64
    assert export_size(None) == DEFAULT_EXPORT_SIZE == 448


def test_export_without_imgsz_uses_the_training_images_size(tmp_path, tiny_seg, cli):
    torch.manual_seed(0)
    weights = tmp_path / "w.pt"
    torch.save({"format": DEPLOY_FORMAT, "model_name": "mcff-edge-n", "model_kwargs": {"classes": 2},
                "threshold": 0.5, "data": str(tiny_seg),
                "state_dict": build_model("mcff-edge-n").state_dict()}, weights)
    r = cli("export", "--weights", weights, "--out", tmp_path / "m.onnx")
    assert r.code == 0, r.err
    dims = [d.dim_value for d in onnx.load(str(tmp_path / "m.onnx")).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 64, 64] and "exporting at 64 px (the training images' size" in r.err
