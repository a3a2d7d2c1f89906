"""Every supported data layout is recognised without --task: a table of small on-disk layouts (one per form, plus
ambiguous and broken ones) and the task, layout, counts and alternatives `data check` reports for each."""

import json

import cv2
import numpy as np
import pytest
from scipy.io import savemat

from defectkd import api
from defectkd.core.errors import DataError
from defectkd.tasks.recognise import recognise

IMG = np.full((32, 40, 3), 120, np.uint8)
MASK = np.zeros((32, 40), np.uint8)
MASK[10:12, 5:35] = 255


def _img(path, mask=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), MASK if mask else IMG)


def _voc(path, name="defect"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<annotation><size><width>40</width><height>32</height></size><object><name>{name}</name>"
                    "<bndbox><xmin>2</xmin><ymin>3</ymin><xmax>20</xmax><ymax>15</ymax></bndbox></object></annotation>")


def images_masks(root):
    for i in range(3):
        _img(root / "images" / f"a{i}.jpg")
        _img(root / "masks" / f"a{i}.png", mask=True)


def splits(root):
    for split, n in (("train", 3), ("test", 2)):
        for i in range(n):
            _img(root / split / "images" / f"{split}{i}.jpg")
            _img(root / split / "masks" / f"{split}{i}.png", mask=True)


def suffixed_dirs(root):  # crack_detection_224_images/ + crack_detection_224_masks/
    for i in range(4):
        _img(root / "crack_224_images" / f"c{i}.jpg")
        _img(root / "crack_224_masks" / f"c{i}.png", mask=True)


def suffixed_files(root):  # a.jpg + a_mask.png side by side
    for i in range(3):
        _img(root / f"p{i}.jpg")
        _img(root / f"p{i}_mask.png", mask=True)


def img_gt_suffix(root):  # img/ + gt/ with <stem>_gt masks
    for i in range(2):
        _img(root / "img" / f"q{i}.jpg")
        _img(root / "gt" / f"q{i}_gt.png", mask=True)


def crackforest(root):
    for i in range(2):
        _img(root / "image" / f"{i:03d}.jpg")
        (root / "groundTruth").mkdir(exist_ok=True)
        savemat(root / "groundTruth" / f"{i:03d}.mat", {"groundTruth": {"Segmentation": (MASK > 0) + 1}})


def imagefolder(root):
    for cls in ("good", "bad"):
        for i in range(2):
            _img(root / cls / f"{cls}{i}.jpg")


def imagefolder_splits(root):
    for split in ("train", "test"):
        for cls in ("good", "bad"):
            _img(root / split / cls / f"{split}{cls}.jpg")


def csv_labels(root):
    rows = []
    for i, cls in enumerate(("good", "bad", "good")):
        _img(root / "pics" / f"x{i}.jpg")
        rows.append(f"pics/x{i}.jpg,{cls}")
    (root / "labels.csv").write_text("path,label\n" + "\n".join(rows) + "\n")


def stem_prefix(root):
    for cls in ("crazing", "patches"):
        for i in range(1, 3):
            _img(root / "images" / f"{cls}_{i}.jpg")


def voc(root):
    for i in range(3):
        _img(root / "images" / f"img{i}.jpg")
        _voc(root / "annotations" / f"img{i}.xml")


def voc_neu_like(root):  # NEU-DET: VOC boxes, and class-prefixed stems that classification reads too
    for cls in ("crazing", "scratches"):
        for i in range(1, 3):
            _img(root / "images" / f"{cls}_{i}.jpg")
            _voc(root / "annotations" / f"{cls}_{i}.xml", cls)


def coco(root):
    for i in range(2):
        _img(root / "images" / f"k{i}.jpg")
    doc = {"images": [{"id": i, "file_name": f"k{i}.jpg", "width": 40, "height": 32} for i in range(2)],
           "annotations": [{"id": 1, "image_id": 0, "category_id": 1, "bbox": [2, 3, 10, 8]}],
           "categories": [{"id": 1, "name": "dent"}]}
    (root / "annotations").mkdir()
    (root / "annotations" / "instances.json").write_text(json.dumps(doc))


def yolo(root):
    for i in range(3):
        _img(root / "images" / f"y{i}.jpg")
        (root / "labels").mkdir(exist_ok=True)
        (root / "labels" / f"y{i}.txt").write_text("0 0.5 0.5 0.2 0.3\n")


def images_only(root):
    for i in range(3):
        _img(root / f"u{i}.jpg")


def images_with_empty_masks_dir(root):  # masks/ exists but holds nothing: unlabelled, not a pairing
    for i in range(2):
        _img(root / "images" / f"e{i}.jpg")
    (root / "masks").mkdir()


TABLE = [
    # builder, task, layout, words in the evidence, alternative tasks
    (images_masks, "segment", "images-masks", ["3 images, 3 with a mask", "images/, masks/"], []),
    (splits, "segment", "splits", ["5 images, 5 with a mask", "train, test"], []),
    (suffixed_dirs, "segment", "suffixed-dirs", ["4 images, 4 with a mask", "crack_224_images/, crack_224_masks/"],
     []),
    (suffixed_files, "segment", "suffixed-files", ["3 images, 3 with a mask", "<stem>_mask files"], []),
    (img_gt_suffix, "segment", "images-masks", ["2 images, 2 with a mask", "img/, gt/"], []),
    (crackforest, "segment", "crackforest", ["2 images, 2 with a mask", "image/, groundTruth/"], []),
    (imagefolder, "classify", "imagefolder", ["4 images in 2 classes (bad, good)", "class folders"], []),
    (imagefolder_splits, "classify", "imagefolder-splits", ["4 images in 2 classes", "in train, test"], []),
    (csv_labels, "classify", "csv", ["3 images in 2 classes", "labels.csv"], []),
    (stem_prefix, "classify", "stem-prefix", ["4 images in 2 classes (crazing, patches)"], []),
    (voc, "detect", "voc", ["3 images in images/, 3 XML files in annotations/"], []),
    (voc_neu_like, "detect", "voc", ["4 images in images/, 4 XML files"], ["classify"]),
    (coco, "detect", "coco", ["instances.json"], []),
    (yolo, "detect", "yolo", ["3 images, 3 YOLO .txt label files"], []),
    (images_only, "segment", "images-only", ["3 images, 0 with a mask"], []),
    (images_with_empty_masks_dir, "segment", "images-only", ["2 images, 0 with a mask"], []),
]


@pytest.mark.parametrize("build,task,layout,evidence,alternatives", TABLE, ids=[row[0].__name__ for row in TABLE])
def test_layouts_are_recognised_with_their_task_and_counts(tmp_path, build, task, layout, evidence, alternatives):
    build(tmp_path)
    found = recognise(tmp_path)
    assert (found.chosen.task, found.chosen.layout) == (task, layout), found
    for words in evidence:
        assert words in found.chosen.evidence, found.chosen.evidence
    assert [a.task for a in found.alternatives] == alternatives
    report = api.check(tmp_path)  # data check without --task reads it the same way, and says so
    assert report["task"] == task and report["task_from"] == "recognised"
    assert report["recognised"]["layout"] == layout and report["layout"] == layout
    assert [a["task"] for a in report["alternatives"]] == alternatives
    assert all(a["pick_with"] == f"--task {a['task']}" for a in report["alternatives"])


def test_task_is_honoured_over_the_recognised_one(tmp_path):
    voc_neu_like(tmp_path)
    report = api.check(tmp_path, task="classify")
    assert report["task"] == "classify" and report["task_from"] == "--task" and report["layout"] == "stem-prefix"
    assert report["recognised"]["task"] == "detect" and report["alternatives"] == []


def test_broken_folders_say_what_is_missing(tmp_path):
    (tmp_path / "empty").mkdir()
    assert recognise(tmp_path / "empty").chosen is None
    with pytest.raises(DataError, match="no images found"):
        api.check(tmp_path / "empty")
    with pytest.raises(DataError, match="does not exist"):
        recognise(tmp_path / "nope")


def test_data_check_cli_prints_the_reading_and_exits_by_blocking_problems(cli, tmp_path):
    voc_neu_like(tmp_path / "neu")
    r = cli("data", "check", tmp_path / "neu")
    assert r.code == 0, r.err
    assert "task detect (recognised): layout voc, 4 images in images/, 4 XML files in annotations/" in r.out
    assert "also fits: classify (stem-prefix" in r.out and "pick it with --task classify" in r.out
    images_only(tmp_path / "unlabelled")  # unlabelled images: listed, not blocking
    assert cli("data", "check", tmp_path / "unlabelled").code == 0
    images_masks(tmp_path / "broken")
    (tmp_path / "broken" / "masks" / "a1.png").unlink()
    (tmp_path / "broken" / "masks" / "zz.png").write_bytes(b"not a png")
    assert cli("data", "check", tmp_path / "broken").code == 1


def test_verbs_refuse_another_tasks_data_in_one_line(cli, tmp_path, tiny_weights):
    voc(tmp_path / "boxes")
    r = cli("train", "segment", "--data", tmp_path / "boxes", "--epochs", 1, f"project={tmp_path / 'p'}")
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1, r.err
    assert "this is detect data (voc: 3 images in images/, 3 XML files in annotations/), not segment data" in r.err
    assert "defectkd train detect" in r.err and not (tmp_path / "p").exists()
    images_only(tmp_path / "photos")
    v = cli("val", "--weights", tiny_weights, "--data", tmp_path / "photos")
    assert v.code == 2 and "no masks found for its 3 images (looked for masks/" in v.err, v.err


def test_classes_option_on_a_segmentation_set_is_one_line(cli, tmp_path):
    from tests.helpers import assert_one_line_error

    images_masks(tmp_path)
    assert_one_line_error(cli("data", "check", tmp_path, "--classes", "pits"), "--classes", "--task detect")


@pytest.mark.parametrize("name,task,layout,words", [
    ("neu_det", "detect", "voc", "1800 images in images/, 1800 XML files in annotations/"),
    ("deepcrack", "segment", "splits", "537 images, 537 with a mask"),
])
def test_the_real_data_sets_are_recognised(name, task, layout, words):
    from tests.conftest import SHARED_DATASETS

    if not (SHARED_DATASETS / name).is_dir():
        pytest.skip(f"{name} is not in ../shared/datasets")
    found = recognise(SHARED_DATASETS / name)
    assert (found.chosen.task, found.chosen.layout) == (task, layout) and words in found.chosen.evidence
