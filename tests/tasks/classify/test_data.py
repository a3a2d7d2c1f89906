"""Classification data: ImageFolder (flat and split), CSV, NEU-DET-style stems, synthetic classes, `data check`."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from defectkd.core.errors import DataError
from defectkd.tasks.classify.data import (
    check_classify,
    classify_reading,
    discover_classify,
    eval_split,
    split_train_val_classify,
)
from defectkd.tasks.classify.synthetic import SYNTH_CLASSES, synth_defect_sample, write_synthetic_classify
from tests.conftest import SHARED_DATASETS


def _img(path: Path, value: int = 128, size: int = 32) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((size, size, 3), value, np.uint8))
    return path


def test_synthetic_classes_are_deterministic_and_distinct(tmp_path):
    a = synth_defect_sample("crazing", seed=3, size=48)
    assert a.shape == (48, 48, 3) and a.dtype == np.uint8
    assert np.array_equal(a, synth_defect_sample("crazing", seed=3, size=48))
    assert not np.array_equal(a, synth_defect_sample("crazing", seed=4, size=48))
    assert not np.array_equal(a, synth_defect_sample("spots", seed=3, size=48))
    with pytest.raises(ValueError, match="unknown synthetic class"):
        synth_defect_sample("rust", 0)
    out = write_synthetic_classify(tmp_path / "s", 12, 32, seed=1)
    assert sorted(d.name for d in out.iterdir()) == sorted(SYNTH_CLASSES)
    assert sum(len(list(d.iterdir())) for d in out.iterdir()) == 12
    assert (out / "crazing" / "crazing_00000.png").is_file() and (out / "inclusion" / "inclusion_00001.png").is_file()


def test_imagefolder_flat_with_stratified_validation(tmp_path):
    for cls, n in (("b_scratch", 6), ("a_spot", 4)):
        for i in range(n):
            _img(tmp_path / cls / f"{i}.png", 20 * i)
    assert classify_reading(tmp_path).layout == "imagefolder"
    source = discover_classify(tmp_path)
    assert source.layout == "imagefolder" and source.classes == ["a_spot", "b_scratch"]  # sorted: stable indices
    assert source.counts("all") == {"a_spot": 4, "b_scratch": 6}
    assert {s.label for s in source.splits["all"] if s.image.parent.name == "b_scratch"} == {1}
    train, val, how = split_train_val_classify(source, 0.25, seed=0)
    assert len(train) + len(val) == 10 and {s.label for s in val} == {0, 1}  # every class validates
    again = split_train_val_classify(source, 0.25, seed=0)[1]
    assert [s.image for s in val] == [s.image for s in again] and "per class" in how
    assert eval_split(source, "test") == source.splits["all"]  # flat sets: test falls back to all images


def test_imagefolder_splits_and_unknown_class(tmp_path):
    for split, classes in (("train", ("a", "b")), ("val", ("a", "b")), ("test", ("a", "b", "c"))):
        for cls in classes:
            _img(tmp_path / split / cls / "x.png")
    source = discover_classify(tmp_path)
    assert source.layout == "imagefolder-splits" and source.classes == ["a", "b"]
    train, val, how = split_train_val_classify(source, 0.1, 0)
    assert len(train) == len(val) == 2 and how == "val split of the data set"
    problems = [p for p in source.problems if p.kind == "class"]
    assert len(problems) == 1 and "'c'" in problems[0].message and "'test'" in problems[0].message
    with pytest.raises(DataError, match="class 'c' of split 'test'"):
        eval_split(source, "test")


def test_csv_with_header_relative_paths_and_split_column(tmp_path):
    for i in range(4):
        _img(tmp_path / "imgs" / f"{i}.png")
    table = tmp_path / "labels.csv"
    table.write_text("path,label,split\nimgs/0.png,ok,train\nimgs/1.png,dent,train\nimgs/2.png,ok,test\n"
                     f"{tmp_path / 'imgs' / '3.png'},dent,test\nimgs/9.png,dent,train\n")
    for path in (table, tmp_path):  # the file itself, or a folder holding labels.csv
        source = discover_classify(path)
        assert source.layout == "csv" and source.classes == ["dent", "ok"]
        assert [s.label for s in source.splits["train"]] == [1, 0, 0] and len(source.splits["test"]) == 2
        assert len(source.problems) == 1 and "9.png" in str(source.problems[0].file)
        assert "not found" in source.problems[0].message
    bad = tmp_path / "bad.csv"
    bad.write_text("imgs/0.png\n")
    with pytest.raises(DataError, match="line 1: expected path,label"):
        discover_classify(bad)


def test_neu_style_stems_with_split_files(tmp_path):
    """images/<class>_<n>.jpg (class names may hold '_' and '-') + splits/{train,test}.txt listing stems."""
    root = tmp_path / "neu"
    classes = ("crazing", "pitted_surface", "rolled-in_scale")
    for cls in classes:
        for i in range(1, 5):
            _img(root / "images" / f"{cls}_{i}.jpg")
    (root / "annotations").mkdir()
    (root / "splits").mkdir()
    (root / "splits" / "train.txt").write_text("\n".join(f"{c}_{i}" for c in classes for i in (1, 2, 3)) + "\n")
    (root / "splits" / "test.txt").write_text("\n".join(f"{c}_4" for c in classes) + "\ncrazing_99\n")
    assert classify_reading(root).strength == 2  # class-prefixed stems: a reading, weaker than annotation files
    source = discover_classify(root)
    assert source.layout == "stem-prefix" and source.classes == sorted(classes)
    assert source.counts("train") == dict.fromkeys(sorted(classes), 3)
    assert source.counts("test") == dict.fromkeys(sorted(classes), 1)
    assert [p.message for p in source.problems] == ["listed in test.txt but no image has this stem"]
    report = check_classify(root)
    assert report["splits"]["test"]["images"] == 3 and report["image_sizes"] == {"32x32": 12}


def test_check_reports_unreadable_images_and_empty_class_folders(tmp_path):
    _img(tmp_path / "a" / "0.png")
    _img(tmp_path / "a" / "1.png")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (tmp_path / "c").mkdir()
    report = check_classify(tmp_path)
    assert report["classes"] == ["a", "b", "c"] and report["splits"]["all"]["per_class"] == {"a": 2, "b": 1, "c": 0}
    messages = {Path(p["file"]).name: p["message"] for p in report["problems"]}
    assert messages == {"c": "class folder holds no images", "broken.png": "truncated image (the file ends before "
                        "the image does)"}
    assert report["bad_images"] == [str(tmp_path / "b" / "broken.png")]


def test_segmentation_sets_and_empty_folders_are_refused(tmp_path, tiny_seg):
    with pytest.raises(DataError, match="segmentation set"):
        discover_classify(tiny_seg)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no labelled images"):
        discover_classify(tmp_path / "empty")
    with pytest.raises(DataError, match="does not exist"):
        discover_classify(tmp_path / "nope")


@pytest.mark.realdata
@pytest.mark.skipif(not (SHARED_DATASETS / "neu_det" / "splits" / "train.txt").is_file(), reason="no NEU-DET")
def test_real_neu_det_as_six_classes():
    source = discover_classify(SHARED_DATASETS / "neu_det")
    assert source.layout == "stem-prefix"
    assert source.classes == ["crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches"]
    assert len(source.splits["train"]) == 1440 and len(source.splits["test"]) == 360
    assert set(source.counts("train").values()) == {240} and set(source.counts("test").values()) == {60}
    assert not source.problems
    sample = source.splits["test"][0]
    assert sample.image.stem.startswith(source.classes[sample.label])
