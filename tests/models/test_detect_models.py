"""Detection models (registry, no downloads, FPN taps), the numpy twin of torchvision's transform and post-processing,
COCO mAP against pycocotools, the detection recipes and the distillation module (one loss per FPN level, gradients
to the student only)."""

import contextlib
import io

import numpy as np
import pytest
import torch

from defectkd.deploy.detect_post import anchors, grid_sizes, postprocess, preprocess, resize_bilinear
from defectkd.distill.features import FeatureTaps
from defectkd.models import build_model, list_models, model_spec
from defectkd.models.detect import LEVELS
from defectkd.tasks.detect.metrics import DetectionMetrics

TINY = {"classes": 3, "min_size": 64, "max_size": 64}


def tiny(seed: int = 0, **kw) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("retinanet-r18", **{**TINY, **kw})


def spread_scores(model: torch.nn.Module) -> torch.nn.Module:
    """A random but fixed detector whose scores spread over (0, 1) (at init they all sit at the 0.01 prior)."""
    head = model.net.head.classification_head.cls_logits
    torch.nn.init.normal_(head.weight, std=0.05)
    torch.nn.init.constant_(head.bias, -1.0)
    return model


def test_registered_detectors():
    assert list_models("detect") == ["retinanet-r101", "retinanet-r50", "retinanet-r18", "retinanet-mnv3"]
    assert [model_spec(n).role for n in list_models("detect")] == ["teacher", "student", "student", "student"]


def test_backbones_build_without_downloading(monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    sizes = {name: sum(p.numel() for p in build_model(name).parameters()) for name in ("retinanet-r101",
                                                                                        "retinanet-r50")}
    assert 51.0e6 < sizes["retinanet-r101"] < 51.6e6 and 32.0e6 < sizes["retinanet-r50"] < 32.6e6
    assert sum(p.numel() for p in tiny().parameters()) < 18e6  # ResNet-18-FPN, two-conv heads
    edge = sum(p.numel() for p in build_model("retinanet-mnv3").parameters())
    assert 4.4e6 < edge < 4.7e6  # MobileNetV3-Large + 128-channel FPN, two-conv heads


def test_edge_detector_levels_and_cost():
    from defectkd.models.info import count_macs_meta

    torch.manual_seed(0)
    model = build_model("retinanet-mnv3", **TINY).eval()
    taps = FeatureTaps(model, list(model.feature_layers))
    with torch.no_grad():
        dets = model(torch.rand(1, 3, 64, 64))
    assert set(dets[0]) == {"boxes", "scores", "labels"}
    assert {p: tuple(t.shape) for p, t in taps.features.items()} == {
        f"fpn_levels.{lv}": (1, 128, h, w) for lv, (h, w) in zip(LEVELS, grid_sizes(64, 64), strict=True)}
    macs = {n: count_macs_meta(build_model(n), 224) for n in ("retinanet-r18", "retinanet-mnv3")}
    assert macs["retinanet-mnv3"] * 4 < macs["retinanet-r18"]  # 1.1 vs 5.2 GMACs at 224
    with pytest.raises(ValueError, match="fpn_channels"):
        build_model("retinanet-mnv3", fpn_channels=4)


def test_fpn_levels_are_feature_taps_by_name():
    model = tiny().eval()
    assert model.feature_layers == tuple(f"fpn_levels.{level}" for level in LEVELS)
    taps = FeatureTaps(model, list(model.feature_layers))
    with torch.no_grad():
        dets = model(torch.rand(2, 3, 60, 90))  # longer side -> 64: 42 x 64, padded to 64 x 64
    assert len(dets) == 2 and set(dets[0]) == {"boxes", "scores", "labels"}
    shapes = {path: tuple(t.shape) for path, t in taps.features.items()}
    assert shapes == {f"fpn_levels.{lv}": (2, 256, h, w) for lv, (h, w) in zip(LEVELS, grid_sizes(64, 64), strict=True)}
    from defectkd.api import layers

    rows = layers("retinanet-r18", imgsz=64, contains="fpn_levels.")
    assert [r["path"] for r in rows if r["default"]] == list(model.feature_layers)


def test_train_mode_losses_accept_background_images():
    model = tiny().train()
    images = [torch.rand(3, 64, 64), torch.rand(3, 50, 70)]
    targets = [{"boxes": torch.tensor([[5.0, 5.0, 30.0, 40.0]]), "labels": torch.tensor([2])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]
    losses = model(images, targets)
    assert set(losses) == {"classification", "bbox_regression"} and all(torch.isfinite(v) for v in losses.values())


def test_numpy_resize_matches_pytorch_bilinear():
    rng = np.random.default_rng(0)
    img = rng.random((37, 53, 3), dtype=np.float32)
    x = torch.from_numpy(img.transpose(2, 0, 1).copy())[None]
    for h, w in ((64, 91), (20, 29), (37, 53)):
        ref = torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)[0]
        assert np.abs(resize_bilinear(img, h, w) - ref.numpy().transpose(1, 2, 0)).max() < 1e-5


@pytest.mark.parametrize("shape", [(150, 200), (64, 64), (40, 70)])
def test_numpy_post_processing_matches_torchvision(shape):
    """Resize + pad, anchors, decoding, thresholds, NMS and the scale back: the deploy side (numpy) on the raw head
    outputs gives torchvision's boxes (to 1e-3 px), labels and scores."""
    model = spread_scores(tiny(seed=1, max_size=96)).eval()
    rgb = (np.random.default_rng(1).random((*shape, 3)) * 255).astype(np.uint8)
    x, resized = preprocess(rgb, model.post)
    model.net.score_thresh = 0.3
    with torch.no_grad():
        ref = model([torch.from_numpy(rgb.transpose(2, 0, 1).copy()).float() / 255])[0]
        cls, reg = model.head_outputs(torch.from_numpy(x))
        batch, _ = model.net.transform([torch.from_numpy(rgb.transpose(2, 0, 1).copy()).float() / 255])
        feats = list(model.net.backbone(batch.tensors).values())
        torch_anchors = model.net.anchor_generator(batch, feats)[0].numpy()
    assert x.shape[2:] == tuple(batch.tensors.shape[2:]) and resized == tuple(batch.image_sizes[0])
    assert np.array_equal(np.concatenate(anchors(x.shape[2:], model.post)), torch_anchors)
    got = postprocess(cls[0].numpy(), reg[0].numpy(), x.shape[2:], resized, shape, model.post, score_thresh=0.3)
    assert len(ref["boxes"]) > 5 and len(got["boxes"]) == len(ref["boxes"])
    # the order of detections with equal scores is not defined (it moved with thread counts in CI): compare sorted
    def canonical(labels, scores, boxes):
        order = np.lexsort((*np.round(boxes, 2).T[::-1], labels, -np.round(scores, 5)))
        return labels[order], boxes[order]

    got_labels, got_boxes = canonical(np.asarray(got["labels"]), np.asarray(got["scores"]), np.asarray(got["boxes"]))
    ref_labels, ref_boxes = canonical(ref["labels"].numpy(), ref["scores"].numpy(), ref["boxes"].numpy())
    assert np.array_equal(got_labels, ref_labels)
    assert np.abs(got_boxes - ref_boxes).max() < 1e-3
    assert np.abs(got["scores"] - ref["scores"].numpy()).max() < 1e-5


def _random_detections(seed: int, images: int = 16, classes: int = 3):
    rng = np.random.default_rng(seed)
    preds, targets = [], []
    for _ in range(images):
        n, m = int(rng.integers(0, 5)), int(rng.integers(0, 6))
        xy, wh = rng.uniform(0, 150, (n, 2)), rng.uniform(4, 140, (n, 2))
        truth = np.concatenate([xy, xy + wh], 1)
        labels = rng.integers(0, classes, n)
        near = truth + rng.normal(0, 6, truth.shape)
        xy2, wh2 = rng.uniform(0, 150, (m, 2)), rng.uniform(4, 140, (m, 2))
        boxes = np.concatenate([near, np.concatenate([xy2, xy2 + wh2], 1)])
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        pl = np.concatenate([np.where(rng.random(n) < 0.8, labels, rng.integers(0, classes, n)),
                             rng.integers(0, classes, m)])
        preds.append({"boxes": torch.tensor(boxes, dtype=torch.float32),
                      "scores": torch.tensor(rng.random(len(boxes)), dtype=torch.float32), "labels": torch.tensor(pl)})
        targets.append({"boxes": torch.tensor(truth, dtype=torch.float32), "labels": torch.tensor(labels)})
    return preds, targets


def _coco_reference(preds, targets, classes):
    """pycocotools (else faster-coco-eval's COCOeval) on the same boxes: stats and per-class precision."""
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:  # pragma: no cover - pycocotools is a dev dependency
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as COCOeval
    gt = {"images": [{"id": i, "width": 320, "height": 320} for i in range(len(targets))],
          "categories": [{"id": k, "name": str(k)} for k in range(classes)], "annotations": []}
    dt = []
    for i, (p, t) in enumerate(zip(preds, targets, strict=True)):
        for b, lab in zip(t["boxes"].tolist(), t["labels"].tolist(), strict=True):
            w, h = b[2] - b[0], b[3] - b[1]
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": i, "category_id": lab,
                                      "bbox": [b[0], b[1], w, h], "area": w * h, "iscrowd": 0})
        for b, lab, s in zip(p["boxes"].tolist(), p["labels"].tolist(), p["scores"].tolist(), strict=True):
            dt.append({"image_id": i, "category_id": lab, "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "score": s})
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(dt), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def test_map_agrees_with_pycocotools():
    names = ["a", "b", "c"]
    preds, targets = _random_detections(0)
    metrics = DetectionMetrics(names)
    metrics.update(preds[:9], targets[:9])
    metrics.update(preds[9:], targets[9:])
    got = metrics.compute()
    ev = _coco_reference(preds, targets, 3)
    keys = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_1", "mar_10", "mar_100")
    for k, ref in zip(keys, ev.stats[:9], strict=True):
        assert got[k] == pytest.approx(ref, abs=1e-4), k
    assert got["map_large"] > 0 and got["images"] == 16
    for k, name in enumerate(names):
        p = ev.eval["precision"][:, :, k, 0, -1]
        assert got["per_class"][name]["ap"] == pytest.approx(p[p > -1].mean(), abs=1e-4)
        assert got["per_class"][name]["ap_50"] == pytest.approx(p[0].mean(), abs=1e-4)
    assert set(metrics.pr_curves()) == set(names)


def test_detection_recipes_resolve_into_feature_terms():
    from defectkd.core.config import build_config
    from defectkd.core.errors import ConfigError
    from defectkd.tasks.detect.config import DistillDetectConfig

    cfg = build_config(DistillDetectConfig, options={"data": "d", "teacher": "t"})
    assert cfg.method == "mgd" and cfg.hard_weight == 1.0 and len(cfg.losses) == 1
    term = cfg.losses[0]
    assert (term.method, term.on, term.weight) == ("mgd", "features", 1.0)
    assert term.params == {"alpha": 2e-5, "mask_ratio": 0.65, "mask": "spatial"}
    cwd = build_config(DistillDetectConfig, options={"data": "d", "teacher": "t", "method": "cwd"}).losses[0]
    assert (cwd.weight, cwd.params["T"], cwd.on) == (5.0, 1.0, "features")
    with pytest.raises(ConfigError, match="unknown distillation method 'kd'"):
        build_config(DistillDetectConfig, options={"data": "d", "teacher": "t", "method": "kd"})


def test_distill_module_one_mgd_per_level_and_gradients_to_the_student_only():
    from defectkd.core.config import build_config
    from defectkd.distill.mgd import MGDLoss
    from defectkd.tasks.detect.config import DistillDetectConfig
    from defectkd.tasks.detect.module import DetectDistillModule

    cfg = build_config(DistillDetectConfig, options={"data": "d", "teacher": "t", "model": "retinanet-r18"})
    config = {**cfg.model_dump(), "class_names": ["a", "b", "c"]}
    teacher = tiny(seed=5)
    module = DetectDistillModule("retinanet-r18", TINY, config, teacher)
    per_level = module.distill_losses[0]
    assert len(per_level) == 5 and all(isinstance(loss, MGDLoss) for loss in per_level)
    assert module.pairs[0] == [(f"fpn_levels.{lv}", f"fpn_levels.{lv}") for lv in LEVELS]
    assert all(loss.align.identity for loss in per_level)  # 256 channels both sides: no adapter
    assert not any(k.startswith("teacher") for k in module.state_dict())  # never in a checkpoint
    module.log = lambda *a, **k: None  # no Trainer attached
    images = [torch.rand(3, 64, 64), torch.rand(3, 64, 64)]
    targets = [{"boxes": torch.tensor([[5.0, 5.0, 30.0, 40.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.tensor([[20.0, 10.0, 60.0, 30.0]]), "labels": torch.tensor([0])}]
    module.train()
    loss = module.training_step((images, targets, torch.tensor([0, 1])), 0)
    loss.backward()
    assert all(lv in module.student_taps.features for lv in module.model.feature_layers)
    assert module.model.net.backbone.body.conv1.weight.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert all(loss.generation[0].weight.grad is not None for loss in per_level)
    assert not teacher.training


def test_edge_student_learns_from_a_wider_teacher_through_adapters():
    """retinanet-mnv3 (128-channel FPN) under MGD from retinanet-r18 (256): one 1x1 adapter per level, trained
    with the student; the loss reaches the MobileNet backbone, never the teacher."""
    from defectkd.core.config import build_config
    from defectkd.tasks.detect.config import DistillDetectConfig
    from defectkd.tasks.detect.module import DetectDistillModule

    cfg = build_config(DistillDetectConfig, options={"data": "d", "teacher": "t", "model": "retinanet-mnv3"})
    config = {**cfg.model_dump(), "class_names": ["a", "b", "c"]}
    teacher = tiny(seed=5)
    torch.manual_seed(1)
    module = DetectDistillModule("retinanet-mnv3", TINY, config, teacher)
    per_level = module.distill_losses[0]
    assert len(per_level) == 5 and not any(loss.align.identity for loss in per_level)
    module.log = lambda *a, **k: None
    images = [torch.rand(3, 64, 64), torch.rand(3, 64, 64)]
    targets = [{"boxes": torch.tensor([[5.0, 5.0, 30.0, 40.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.tensor([[20.0, 10.0, 60.0, 30.0]]), "labels": torch.tensor([0])}]
    module.train()
    module.training_step((images, targets, torch.tensor([0, 1])), 0).backward()
    assert module.model.net.backbone.body["0"][0].weight.grad.abs().sum() > 0
    assert all(p.grad is not None for loss in per_level for p in loss.align.parameters())
    assert all(p.grad is None for p in teacher.parameters())
