"""Detection data: VOC, COCO and YOLO readers, the bad-input cases of `data check` (unknown class, boxes outside the
image, empty annotations, unreadable files), splits, the synthetic set, the dataset's flips and real NEU-DET."""

import json
import shutil

import cv2
import numpy as np
import pytest
import torch

from defectkd.core.errors import DataError
from defectkd.tasks.detect.data import check_detect, eval_split, load_detect, split_train_val_detect
from defectkd.tasks.detect.dataset import DetectAugment, DetectDataset, collate_detect
from defectkd.tasks.detect.synthetic import DETECT_CLASSES, synth_detect_sample, voc_xml, write_synthetic_detect
from tests.conftest import SHARED_DATASETS

NEU = SHARED_DATASETS / "neu_det"


def _image(path, w=80, h=60):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), 120, np.uint8))


def _voc(root, stem, objects, w=80, h=60):
    _image(root / "images" / f"{stem}.jpg", w, h)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / f"{stem}.xml").write_text(
        voc_xml(f"{stem}.jpg", w, h, [b for _, b in objects], [n for n, _ in objects]))


@pytest.fixture
def voc(tmp_path):
    root = tmp_path / "voc"
    _voc(root, "a", [("scratch", [10, 10, 30, 40]), ("pit", [50, 5, 70, 25])])
    _voc(root, "b", [("pit", [-5, 20, 20, 70]), ("scratch", [90, 10, 100, 20]), ("scratch", [30, 30, 30, 50])])
    _voc(root, "c", [])  # an empty annotation: background
    return root


def test_voc_boxes_classes_clipping_and_background(voc):
    source, report = load_detect(voc)
    assert report["layout"] == "voc" and report["classes"] == ["pit", "scratch"]  # sorted names
    assert report["images"] == 3 and report["background_images"] == 1
    # b: the pit box is clipped to the image (x1 -5 -> 0, y2 70 -> 60), the scratch right of it (x 90..100 > w 80)
    # has no area left and the zero-width one is degenerate: both dropped, counted
    assert report["boxes_clipped"] == 1 and report["boxes_dropped"] == 2
    assert report["per_class"] == {"pit": 2, "scratch": 1} and report["boxes"] == 3
    b = next(s for s in source.splits["all"] if s.image.stem == "b")
    assert b.boxes == [[0.0, 20.0, 20.0, 60.0]] and b.labels == [0]
    assert not source.blocking and all(not p["blocking"] for p in report["problems"])
    assert any("clipped" in p["message"] and "dropped" in p["message"] for p in report["problems"])


def test_voc_unknown_class_unreadable_image_and_broken_xml_are_problems(voc):
    report = check_detect(voc, class_names=["scratch"])
    blocking = [p for p in report["problems"] if p["blocking"]]
    assert len(blocking) == 2 and "object class 'pit' is not one of the classes (scratch)" in blocking[0]["message"]
    assert {p["file"].split("/")[-1] for p in blocking} == {"a.xml", "b.xml"} and len(report["bad_images"]) == 2
    (voc / "images" / "a.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (voc / "annotations" / "b.xml").write_text("<annotation><object><name>pit</name>")
    _image(voc / "images" / "orphan.jpg")  # no XML: left out, not blocking
    report = check_detect(voc)
    messages = {p["file"].split("/")[-1]: (p["message"], p["blocking"]) for p in report["problems"]}
    assert messages["a.jpg"] == ("truncated image (the file ends before the image does)", True)  # no JPEG end
    assert messages["b.xml"][0].startswith("unreadable annotation") and messages["b.xml"][1]
    assert messages["orphan.jpg"] == ("no annotation file: left out", False)
    assert sorted(p.split("/")[-1] for p in report["bad_images"]) == ["a.jpg", "b.jpg"]


def test_voc_split_lists_and_validation_draw(tmp_path):
    root = write_synthetic_detect(tmp_path / "s", 20, 64, seed=2)
    source, report = load_detect(root)
    assert set(report["splits"]) == {"train", "test"} and report["splits"]["test"]["images"] == 4
    assert report["splits"]["train"]["background_images"] == 1 and report["splits"]["test"]["background_images"] == 1
    train, val, how = split_train_val_detect(source, 0.25, seed=0)
    assert len(train) == 12 and len(val) == 4 and "seed 0" in how
    assert len(eval_split(source, "test")) == 4
    (root / "splits" / "test.txt").write_text("synth_00016\nmissing_1\n")
    problems = check_detect(root)["problems"]
    assert any("missing_1" in p["file"] and "listed in test.txt" in p["message"] for p in problems)


def test_coco_json(tmp_path):
    root = tmp_path / "coco"
    for name in ("x.png", "y.png"):
        _image(root / "images" / name, 100, 50)
    doc = {"images": [{"id": 1, "file_name": "x.png", "width": 100, "height": 50},
                      {"id": 2, "file_name": "y.png", "width": 100, "height": 50}],
           "categories": [{"id": 7, "name": "rust"}, {"id": 3, "name": "dent"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [10, 5, 20, 10], "iscrowd": 0},
                           {"id": 2, "image_id": 1, "category_id": 3, "bbox": [90, 40, 20, 20], "iscrowd": 0},
                           {"id": 3, "image_id": 1, "category_id": 3, "bbox": [0, 0, 50, 50], "iscrowd": 1}]}
    (root / "annotations").mkdir()
    (root / "annotations" / "instances_val.json").write_text(json.dumps(doc))
    source, report = load_detect(root)
    assert report["layout"] == "coco" and report["classes"] == ["dent", "rust"]  # category id order (3, 7)
    assert list(report["splits"]) == ["val"] and report["background_images"] == 1  # y.png has no annotation
    x = source.splits["val"][0]
    assert x.boxes == [[10.0, 5.0, 30.0, 15.0], [90.0, 40.0, 100.0, 50.0]] and x.labels == [1, 0]  # crowd left out
    assert report["boxes_clipped"] == 1
    doc["annotations"].append({"id": 4, "image_id": 2, "category_id": 99, "bbox": [1, 1, 5, 5]})
    (root / "annotations" / "instances_val.json").write_text(json.dumps(doc))
    blocking = [p for p in check_detect(root)["problems"] if p["blocking"]]
    assert len(blocking) == 1 and "category_id 99" in blocking[0]["message"]
    (root / "annotations" / "instances_val.json").write_text("{not json")
    with pytest.raises(DataError, match="not a COCO detection file"):
        check_detect(root)


def test_yolo_txt(tmp_path):
    root = tmp_path / "yolo"
    for split in ("train", "val"):
        for stem in ("p", "q"):
            _image(root / "images" / split / f"{stem}.jpg", 100, 50)
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    (root / "labels" / "train" / "p.txt").write_text("1 0.5 0.5 0.2 0.4\n0 0.95 0.5 0.2 0.2\n")
    (root / "labels" / "val" / "p.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (root / "labels" / "val" / "q.txt").write_text("not a box\n")
    (root / "data.yaml").write_text("names: [crack, hole]\n")
    source, report = load_detect(root)
    assert report["layout"] == "yolo" and report["classes"] == ["crack", "hole"]
    p = source.splits["train"][0]
    assert p.boxes[0] == pytest.approx([40.0, 15.0, 60.0, 35.0]) and p.labels == [1, 0]
    assert p.boxes[1] == pytest.approx([85.0, 20.0, 100.0, 30.0])  # clipped at x = 100
    assert report["splits"]["train"]["background_images"] == 1  # q.jpg: no label file = background
    assert report["boxes_clipped"] == 1
    assert any(p["file"].endswith("q.txt") and p["blocking"] for p in report["problems"])
    (root / "data.yaml").unlink()
    assert check_detect(root)["classes"] == ["0", "1"]


def test_dataset_flips_move_boxes_and_collate(tmp_path):
    root = write_synthetic_detect(tmp_path / "s", 6, 64, seed=1)
    source, _ = load_detect(root)
    samples = [s for s in source.splits["train"] if s.boxes]
    plain = DetectDataset(samples, None)
    flipped = DetectDataset(samples, DetectAugment(seed=0, p_flip=1.0, jitter=0.0))
    (x, t, _), (xf, tf, _) = plain[0], flipped[0]
    assert torch.equal(xf, x.flip(1).flip(2)) and t["labels"].dtype == torch.int64
    w = h = 64
    expected = torch.stack([w - t["boxes"][:, 2], h - t["boxes"][:, 3], w - t["boxes"][:, 0], h - t["boxes"][:, 1]], 1)
    assert torch.allclose(tf["boxes"], expected)
    images, targets, idx = collate_detect([plain[0], plain[1]])
    assert len(images) == 2 and len(targets) == 2 and idx.tolist() == [0, 1]


def test_synthetic_sample_is_deterministic_with_tight_boxes():
    a, boxes, names = synth_detect_sample(3, 96)
    b, boxes_b, _ = synth_detect_sample(3, 96)
    assert np.array_equal(a, b) and boxes == boxes_b and 1 <= len(boxes) <= 3 and set(names) <= set(DETECT_CLASSES)
    for x1, y1, x2, y2 in boxes:
        assert 0 <= x1 < x2 <= 96 and 0 <= y1 < y2 <= 96
    _, none, _ = synth_detect_sample(3, 96, background=True)
    assert none == []


def test_not_detection_data_is_one_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no detection data found"):
        check_detect(tmp_path / "empty")
    with pytest.raises(DataError, match="does not exist"):
        check_detect(tmp_path / "nope")


@pytest.mark.realdata
@pytest.mark.skipif(not (NEU / "annotations").is_dir(), reason="needs ../shared/datasets/neu_det")
def test_real_neu_det_annotations(tmp_path):
    """Every XML of NEU-DET, without decoding the 1800 images: the counts of its README."""
    root = tmp_path / "neu"
    root.mkdir()
    (root / "images").symlink_to(NEU / "images")
    (root / "annotations").symlink_to(NEU / "annotations")
    shutil.copytree(NEU / "splits", root / "splits")
    from defectkd.tasks.detect.data import discover_detect

    source = discover_detect(root)
    assert source.layout == "voc" and source.classes == ["crazing", "inclusion", "patches", "pitted_surface",
                                                         "rolled-in_scale", "scratches"]
    assert len(source.splits["train"]) == 1440 and len(source.splits["test"]) == 360
    counts = np.bincount([c for s in [*source.splits["train"], *source.splits["test"]] for c in s.labels])
    assert counts.tolist() == [689, 1011, 881, 432, 628, 548] and counts.sum() == 4189
    assert not source.problems
    boxes = np.array([b for split in source.splits.values() for s in split for b in s.boxes])
    assert boxes.min() >= 0 and boxes[:, 2:].max() <= 200 and (boxes[:, 2:] > boxes[:, :2]).all()
