"""Data-set layouts for defect classification: discovery, class lists, splits and `data check`.

Supported layouts (checked in this order):
- `csv`:                a CSV file (or a folder holding `labels.csv`) of `path,label[,split]` rows; paths relative
                        to the CSV's folder; a header row (`path,label`) is optional
- `stem-prefix`:        PATH/images/<class>_<n>.<ext>, the class is the stem without its trailing `_<n>`
                        (NEU-DET: crazing_1.jpg .. scratches_300.jpg); optional PATH/splits/{train,val,test}.txt
                        list the stems of each split; needs no masks folder next to images/
- `imagefolder-splits`: PATH/{train,val,test}/<class>/*
- `imagefolder`:        PATH/<class>/*

Classes are sorted by name (the ImageFolder convention), so a class's index is the same on every
machine. The class list comes from the training split (or the only split); a class that shows up only
in val/test, an empty class folder, a CSV row naming a missing file and an unreadable image are
problems that `data check` lists and training refuses (`--skip-bad` drops bad images, not bad classes).
"""

from __future__ import annotations

import csv
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from defectkd.core.errors import DataError
from defectkd.data.io import IMAGE_SUFFIXES, image_size, list_images
from defectkd.data.layouts import SPLIT_NAMES, Problem, data_root

_IMAGE_DIRS = ("images", "image", "img", "imgs")
_MASK_DIRS = ("masks", "mask", "labels", "label", "gt", "groundTruth")
_STEM = re.compile(r"^(?P<cls>.+?)_\d+$")
_CSV_NAMES = ("labels.csv",)


@dataclass(frozen=True)
class ClassSample:
    image: Path
    label: int


@dataclass
class ClassifySource:
    root: Path
    layout: str
    classes: list[str]
    splits: dict[str, list[ClassSample]]
    problems: list[Problem] = field(default_factory=list)
    unknown: dict[str, list[str]] = field(default_factory=dict)  # split -> classes not among the training classes

    def counts(self, split: str) -> dict[str, int]:
        c = Counter(s.label for s in self.splits.get(split, []))
        return {name: c.get(i, 0) for i, name in enumerate(self.classes)}

    @property
    def blocking(self) -> list[Problem]:
        return [p for p in self.problems if p.blocking]


def _class_folders(folder: Path) -> dict[str, list[Path]]:
    return {d.name: list_images(d) for d in sorted(folder.iterdir()) if d.is_dir() and not d.name.startswith(".")}


def _csv_file(root: Path) -> Path | None:
    if root.is_file() and root.suffix.lower() == ".csv":
        return root
    if root.is_dir():
        for name in _CSV_NAMES:
            if (root / name).is_file():
                return root / name
    return None


def _find(root: Path, names: tuple[str, ...]) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


def _pair_folders(classes: list[str]) -> bool:
    from defectkd.data.layouts import DIR_SUFFIX_PAIRS, IMAGE_DIRS, MASK_DIRS

    names = set(classes)
    if names & set(IMAGE_DIRS) and names & set(MASK_DIRS):
        return True
    return any(c.endswith(i) and c[: -len(i)] + m in names for c in names for i, m in DIR_SUFFIX_PAIRS)


def classify_reading(path: str | Path):
    """The classification reading of a folder (tasks/recognise.py): a CSV (strength 3), or at least two classes of
    images as class folders or images/<class>_<n> stems (strength 2: class folders also hold other tasks' data)."""
    from defectkd.tasks.base import Reading

    try:
        source = discover_classify(path)
    except DataError:
        return None
    if _pair_folders(source.classes):
        return None  # "images" and "masks" (or x_images and x_masks) are a segmentation set's halves, not classes
    images = sum(len(v) for v in source.splits.values())
    if len({s.label for v in source.splits.values() for s in v}) < 2:  # no images, or all of one class
        return None
    names = ", ".join(source.classes[:6]) + (", ..." if len(source.classes) > 6 else "")
    splits = f" in {', '.join(source.splits)}" if set(source.splits) != {"all"} else ""
    where = {"csv": f"rows of {Path(source.root).name}", "stem-prefix": "images/<class>_<n> file names"}.get(
        source.layout, "class folders")
    return Reading("classify", source.layout, f"{images} images in {len(source.classes)} classes ({names}) from "
                   f"{where}{splits}", 3 if source.layout == "csv" else 2)


def _ordered(names: set[str]) -> list[str]:
    return sorted(names)


def _from_csv(file: Path) -> ClassifySource:
    problems: list[Problem] = []
    rows: list[tuple[Path, str, str]] = []
    try:
        lines = list(csv.reader(file.read_text().splitlines()))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{file}: unreadable CSV ({exc})") from None
    for n, row in enumerate(lines, 1):
        row = [c.strip() for c in row]
        if not row or not any(row) or row[0].startswith("#"):
            continue
        if n == 1 and row[0].lower() in ("path", "image", "file", "filename"):
            continue  # header
        if len(row) < 2 or not row[0] or not row[1]:
            raise DataError(f"{file}: line {n}: expected path,label[,split] (got {','.join(row)!r})")
        split = row[2] if len(row) > 2 and row[2] else "all"
        if split not in (*SPLIT_NAMES, "all"):
            raise DataError(f"{file}: line {n}: split {split!r} is not one of {', '.join(SPLIT_NAMES)}")
        image = Path(row[0]) if Path(row[0]).is_absolute() else file.parent / row[0]
        rows.append((image, row[1], split))
    if not rows:
        raise DataError(f"{file}: no path,label rows")
    by_split: dict[str, list[tuple[Path, str]]] = {}
    for image, label, split in rows:
        by_split.setdefault(split, []).append((image, label))
        if not image.is_file():
            problems.append(Problem(image, f"named in {file.name} but not found"))
    return _build(file, "csv", by_split, problems)


def _from_stems(root: Path, image_dir: Path) -> ClassifySource:
    problems: list[Problem] = []
    by_stem: dict[str, Path] = {}
    for p in list_images(image_dir):
        by_stem.setdefault(p.stem, p)
    labels: dict[str, str] = {}
    for stem, p in by_stem.items():
        m = _STEM.match(stem)
        if m is None:
            problems.append(Problem(p, "stem is not <class>_<number>: no class"))
        else:
            labels[stem] = m["cls"]
    split_dir = root / "splits"
    lists = {s: split_dir / f"{s}.txt" for s in SPLIT_NAMES if (split_dir / f"{s}.txt").is_file()}
    by_split: dict[str, list[tuple[Path, str]]] = {}
    if not lists:
        by_split["all"] = [(by_stem[s], c) for s, c in labels.items()]
    for split, listing in lists.items():
        items = by_split.setdefault(split, [])
        for stem in (line.strip() for line in listing.read_text().splitlines()):
            if not stem or stem.startswith("#"):
                continue
            stem = Path(stem).stem if Path(stem).suffix.lower() in IMAGE_SUFFIXES else stem
            if stem not in by_stem:
                problems.append(Problem(image_dir / stem, f"listed in {listing.name} but no image has this stem"))
            elif stem in labels:
                items.append((by_stem[stem], labels[stem]))
    return _build(root, "stem-prefix", by_split, problems)


def _from_folders(root: Path) -> ClassifySource:
    problems: list[Problem] = []
    split_dirs = [s for s in SPLIT_NAMES if (root / s).is_dir()]
    folders = {s: root / s for s in split_dirs} if split_dirs else {"all": root}
    by_split: dict[str, list[tuple[Path, str]]] = {}
    empty: list[str] = []
    for split, folder in folders.items():
        items = by_split.setdefault(split, [])
        for name, images in _class_folders(folder).items():
            if not images:
                problems.append(Problem(folder / name, "class folder holds no images", kind="class"))
                if split in ("train", "all"):
                    empty.append(name)
            items += [(p, name) for p in images]
        stray = list_images(folder)
        if stray:
            problems.append(Problem(stray[0], f"image outside any class folder ({len(stray)} in {folder})",
                                    blocking=False))
    return _build(root, "imagefolder-splits" if split_dirs else "imagefolder", by_split, problems, tuple(empty))


def _build(root: Path, layout: str, by_split: dict[str, list[tuple[Path, str]]], problems: list[Problem],
           empty: tuple[str, ...] = ()) -> ClassifySource:
    """Class list from the training split (or every split when there is none); labels to indices."""
    train_key = "train" if "train" in by_split else ("all" if "all" in by_split else None)
    if train_key is not None:
        names = {c for _, c in by_split[train_key]}
    else:
        names = {c for items in by_split.values() for _, c in items}
    names |= set(empty)  # an empty class folder still names a class (reported as a problem)
    classes = _ordered(names)
    index = {c: i for i, c in enumerate(classes)}
    splits: dict[str, list[ClassSample]] = {}
    unknown_by_split: dict[str, list[str]] = {}
    for split, items in by_split.items():
        unknown = sorted({c for _, c in items if c not in index})
        if unknown:
            unknown_by_split[split] = unknown
        for c in unknown:
            problems.append(Problem(root / split / c if layout == "imagefolder-splits" else root,
                                    f"class {c!r} of split {split!r} is not among the {train_key} classes",
                                    kind="class"))
        splits[split] = [ClassSample(p, index[c]) for p, c in items if c in index]
    if not any(splits.values()) and not names:
        raise DataError(f"{root}: no labelled images found (expected class folders, train/ val/ test/ with class "
                        "folders, a path,label CSV, or images/<class>_<n>.jpg)")
    return ClassifySource(root, layout, classes, splits, problems, unknown_by_split)


def discover_classify(path: str | Path) -> ClassifySource:
    """Detect the classification layout under `path`; classes, samples per split, problems found so far."""
    root = data_root(path)
    table = _csv_file(root)
    if table is not None:
        return _from_csv(table)
    if root.is_file():
        raise DataError(f"{root}: not a CSV file or a data folder")
    image_dir = _find(root, _IMAGE_DIRS)
    if image_dir is not None:
        mask_dir = _find(root, _MASK_DIRS)
        if mask_dir is not None and list_images(mask_dir):
            raise DataError(f"{root}: holds {image_dir.name}/ and {mask_dir.name}/, a segmentation set; "
                            "classification reads class folders, a path,label CSV or images/<class>_<n>.jpg")
        return _from_stems(root, image_dir)
    return _from_folders(root)


def validate_classify(source: ClassifySource, progress=None) -> dict:
    """Read every image once; returns a JSON-ready report and appends problems to `source.problems`."""
    sizes: Counter[str] = Counter()
    bad: set[str] = set()
    missing = {str(p.file) for p in source.problems}
    for samples in source.splits.values():
        for s in samples:
            if progress:
                progress()
            if str(s.image) in missing:
                bad.add(str(s.image))
                continue
            size, why = image_size(s.image)
            if size is None:
                source.problems.append(Problem(s.image, why))
                bad.add(str(s.image))
                continue
            sizes[f"{size[0]}x{size[1]}"] += 1
    return {
        "path": str(source.root), "task": "classify", "layout": source.layout, "classes": source.classes,
        "splits": {split: {"images": len(samples), "per_class": source.counts(split)}
                   for split, samples in source.splits.items()},
        "images": sum(len(v) for v in source.splits.values()),
        "image_sizes": dict(sizes.most_common()),
        "problems": [{"file": str(p.file), "message": p.message, "blocking": p.blocking} for p in source.problems],
        "bad_images": sorted(bad),
    }


def check_classify(path: str | Path, progress=None) -> dict:
    return validate_classify(discover_classify(path), progress)


def split_train_val_classify(source: ClassifySource, val_fraction: float, seed: int
                             ) -> tuple[list[ClassSample], list[ClassSample], str]:
    """Training and validation samples: the set's val split, else a stratified draw from train
    (per class, `val_fraction` of its images, at least one when the class has two or more)."""
    train_key = "train" if "train" in source.splits else "all"
    train = list(source.splits.get(train_key, []))
    if source.splits.get("val"):
        return train, list(source.splits["val"]), "val split of the data set"
    if len(train) < 2:
        raise DataError(f"{source.root}: needs at least 2 labelled images to train, found {len(train)}")
    rng = random.Random(seed)
    held: set[int] = set()
    for label in range(len(source.classes)):
        idx = [i for i, s in enumerate(train) if s.label == label]
        rng.shuffle(idx)
        if len(idx) >= 2:
            held.update(idx[:max(1, round(len(idx) * val_fraction))])
    if not held:
        held.add(rng.randrange(len(train)))
    return ([s for i, s in enumerate(train) if i not in held], [s for i, s in enumerate(train) if i in held],
            f"{len(held)} of {len(train)} '{train_key}' images drawn per class with seed {seed}")


def eval_split(source: ClassifySource, split: str) -> list[ClassSample]:
    """Samples of a split for evaluation; `test` falls back to the only split of a set without splits.
    Refuses a split with classes the training split lacks (a model trained on it cannot know them)."""
    key = split if split in source.splits else "all"
    if key not in source.splits:
        raise DataError(f"{source.root}: no '{split}' split (found: {', '.join(source.splits)})")
    if source.unknown.get(key):
        raise DataError(f"{source.root}: class {source.unknown[key][0]!r} of split {key!r} is not among the "
                        f"training classes ({', '.join(source.classes)})")
    return source.splits[key]
