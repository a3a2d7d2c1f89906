"""Data-set layouts for defect detection: Pascal VOC XML, COCO JSON and YOLO txt; class lists, splits, `data check`.

Layouts (checked in this order):
- `voc`:  PATH/{images,JPEGImages}/* + PATH/{annotations,Annotations}/*.xml with the same stems (NEU-DET);
          optional PATH/splits/{train,val,test}.txt or PATH/ImageSets/Main/{train,val,test}.txt listing stems.
          Coordinates are read as written (pixels, no 1-based shift).
- `coco`: a COCO JSON file, or a folder holding `*.json` files (in it or in annotations/), one per split when the
          name says train / val / test (`instances_val.json`); `file_name` is looked up next to the JSON, in
          images/ beside it or one folder up. `bbox` is [x, y, w, h]; `iscrowd` boxes are left out.
- `yolo`: PATH/images/* + PATH/labels/*.txt (`class cx cy w h`, normalised), or images/{train,val,test} + labels/
          {train,val,test}, or {train,val,test}/images + labels; names from classes.txt or data.yaml (`names`),
          else "0", "1", ...

Classes: the given ones (config `class_names`, `data check --classes`), else VOC names sorted, COCO categories in
id order, YOLO names in file order. Problems (listed by `data check`, refused by `train` unless `--skip-bad`,
which drops the image):
- an unreadable image; an unreadable annotation file; an object whose class is not among the given classes
  (VOC/COCO name or id, YOLO id); an image a split file lists that does not exist;
and, not blocking:
- a box reaching outside the image is CLIPPED to it and counted (`boxes_clipped`); a box with no area left
  (outside the image or degenerate) is dropped and counted (`boxes_dropped`);
- an image with no boxes (an empty XML, a YOLO image without a label file, a COCO image without annotations)
  is kept as background (no object) and counted (`background_images`);
- a VOC image without an XML (or an XML without an image) is left out and listed.
"""

from __future__ import annotations

import json
import random
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from defectkd.core.errors import DataError
from defectkd.data.io import IMAGE_SUFFIXES, image_size, list_images
from defectkd.data.layouts import SPLIT_NAMES, Problem, data_root

_IMAGE_DIRS = ("images", "JPEGImages", "image", "img", "imgs")
_XML_DIRS = ("annotations", "Annotations", "xml", "labels_xml")
_SPLIT_LISTS = ("splits", "ImageSets/Main")
_AREA = (32**2, 96**2)  # COCO's small / medium / large limits


@dataclass
class DetectSample:
    image: Path
    boxes: list[list[float]]  # xyxy in pixels (YOLO: normalised cx, cy, w, h until validated)
    labels: list[int]  # class indices
    annotation: Path | None = None
    normalised: bool = False  # YOLO boxes before validate_detect knows the image size


@dataclass
class DetectSource:
    root: Path
    layout: str
    classes: list[str]
    splits: dict[str, list[DetectSample]]
    problems: list[Problem] = field(default_factory=list)
    bad: set[str] = field(default_factory=set)  # images with a blocking problem

    @property
    def blocking(self) -> list[Problem]:
        return [p for p in self.problems if p.blocking]


@dataclass
class _Raw:  # an image and its objects by class name (VOC, COCO) or id (YOLO), before classes are known
    image: Path
    objects: list[tuple[str, list[float]]]
    annotation: Path | None = None


def _find(root: Path, names: tuple[str, ...]) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


def _split_lists(root: Path) -> dict[str, Path]:
    for folder in _SPLIT_LISTS:
        lists = {s: root / folder / f"{s}.txt" for s in SPLIT_NAMES if (root / folder / f"{s}.txt").is_file()}
        if lists:
            return lists
    return {}


def _stems(listing: Path) -> list[str]:
    out = []
    for line in listing.read_text().splitlines():
        stem = line.strip().split()[0] if line.strip() else ""
        if stem and not stem.startswith("#"):
            out.append(Path(stem).stem if Path(stem).suffix.lower() in IMAGE_SUFFIXES else stem)
    return out


def _number(node: ET.Element, tag: str) -> float:
    child = node.find(tag)
    if child is None or child.text is None:
        raise ValueError(f"<{tag}> missing")
    return float(child.text.strip())


def read_voc(xml: Path) -> list[tuple[str, list[float]]]:
    """(class name, [xmin, ymin, xmax, ymax]) of every <object>; ValueError for a file that cannot be read."""
    try:
        root = ET.parse(xml).getroot()
    except (ET.ParseError, OSError) as exc:
        raise ValueError(f"unreadable annotation ({str(exc).splitlines()[0][:80]})") from None
    objects = []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        box = obj.find("bndbox")
        if not name or box is None:
            raise ValueError("an <object> without <name> or <bndbox>")
        objects.append((name, [_number(box, t) for t in ("xmin", "ymin", "xmax", "ymax")]))
    return objects


def _voc(root: Path, image_dir: Path, xml_dir: Path) -> tuple[dict[str, list[_Raw]], list[Problem]]:
    problems: list[Problem] = []
    images = {p.stem: p for p in list_images(image_dir)}
    xmls = {p.stem: p for p in sorted(xml_dir.glob("*.xml"))}
    raws: dict[str, _Raw] = {}
    for stem, xml in xmls.items():
        if stem not in images:
            problems.append(Problem(xml, "annotation without an image: left out", blocking=False, kind="unlabelled"))
            continue
        try:
            raws[stem] = _Raw(images[stem], read_voc(xml), xml)
        except ValueError as exc:
            problems.append(Problem(xml, str(exc), kind="annotation"))
            raws[stem] = _Raw(images[stem], [], xml)
    for stem, image in images.items():
        if stem not in xmls:
            problems.append(Problem(image, "no annotation file: left out", blocking=False, kind="unlabelled"))
    lists = _split_lists(root)
    if not lists:
        return {"all": list(raws.values())}, problems
    by_split: dict[str, list[_Raw]] = {}
    for split, listing in lists.items():
        items = by_split.setdefault(split, [])
        for stem in _stems(listing):
            if stem in raws:
                items.append(raws[stem])
            elif stem not in images:
                problems.append(Problem(image_dir / stem, f"listed in {listing.name} but no image has this stem"))
    return by_split, problems


def _coco_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    folder = root / "annotations" if (root / "annotations").is_dir() else root
    return sorted(p for p in folder.glob("*.json") if p.is_file())


def _coco_split(file: Path, n_files: int) -> str:
    name = file.stem.lower()
    for split in ("train", "val", "test"):
        if split in name:
            return split
    return "all" if n_files == 1 else file.stem


def _coco_image(file: Path, root: Path, split: str, name: str) -> Path:
    bases = [file.parent, file.parent / "images", file.parent.parent, file.parent.parent / "images",
             root / "images" / split, root / split]
    return next((b / name for b in bases if (b / name).is_file()), file.parent / name)


def _coco(root: Path, files: list[Path]) -> tuple[dict[str, list[_Raw]], list[Problem], list[str]]:
    problems: list[Problem] = []
    by_split: dict[str, list[_Raw]] = {}
    categories: dict[int, str] = {}
    for file in files:
        try:
            doc = json.loads(file.read_text())
            cats = {int(c["id"]): str(c["name"]) for c in doc.get("categories", [])}
            images = {int(im["id"]): im for im in doc["images"]}
            anns = doc.get("annotations", [])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{file}: not a COCO detection file ({type(exc).__name__}: {str(exc)[:80]})") from None
        for cid, name in cats.items():
            categories.setdefault(cid, name)
        split = _coco_split(file, len(files))
        raws = {iid: _Raw(_coco_image(file, root, split, str(im["file_name"])), [], file) for iid, im in images.items()}
        for ann in anns:
            raw = raws.get(int(ann.get("image_id", -1)))
            if raw is None or ann.get("iscrowd", 0):
                continue
            cid = int(ann.get("category_id", -1))
            x, y, w, h = (float(v) for v in ann["bbox"])
            raw.objects.append((cats.get(cid, f"category_id {cid}"), [x, y, x + w, y + h]))
        by_split.setdefault(split, []).extend(raws.values())
    return by_split, problems, [categories[c] for c in sorted(categories)]


def _yolo_names(root: Path) -> list[str] | None:
    if (root / "classes.txt").is_file():
        return [line.strip() for line in (root / "classes.txt").read_text().splitlines() if line.strip()]
    for name in ("data.yaml", "dataset.yaml"):
        if (root / name).is_file():
            import yaml

            names = (yaml.safe_load((root / name).read_text()) or {}).get("names")
            if isinstance(names, dict):
                return [str(names[k]) for k in sorted(names)]
            if isinstance(names, list):
                return [str(n) for n in names]
    return None


def _yolo_dirs(root: Path) -> dict[str, tuple[Path, Path]]:
    if (root / "images").is_dir() and (root / "labels").is_dir():
        splits = {s: (root / "images" / s, root / "labels" / s) for s in SPLIT_NAMES if (root / "images" / s).is_dir()}
        return splits or {"all": (root / "images", root / "labels")}
    return {s: (root / s / "images", root / s / "labels") for s in SPLIT_NAMES
            if (root / s / "images").is_dir() and (root / s / "labels").is_dir()}


def _yolo(dirs: dict[str, tuple[Path, Path]]) -> tuple[dict[str, list[_Raw]], list[Problem]]:
    problems: list[Problem] = []
    by_split: dict[str, list[_Raw]] = {}
    for split, (image_dir, label_dir) in dirs.items():
        items = by_split.setdefault(split, [])
        for image in list_images(image_dir):
            label = label_dir / f"{image.stem}.txt"
            objects: list[tuple[str, list[float]]] = []
            if label.is_file():
                try:
                    for n, line in enumerate(label.read_text().splitlines(), 1):
                        parts = line.split()
                        if not parts:
                            continue
                        if len(parts) != 5:
                            raise ValueError(f"line {n}: expected 'class cx cy w h'")
                        objects.append((str(int(float(parts[0]))), [float(v) for v in parts[1:]]))
                except (OSError, ValueError) as exc:
                    problems.append(Problem(label, f"unreadable annotation ({exc})", kind="annotation"))
                    objects = []
            items.append(_Raw(image, objects, label if label.is_file() else None))
    return by_split, problems


def detect_reading(path: str | Path):
    """The detection reading of a folder (tasks/recognise.py), from file counts only: VOC XML beside images, a COCO
    JSON, or YOLO images/ + labels/ of .txt files; each is strength 3 (only detection reads them)."""
    from defectkd.tasks.base import Reading

    root = Path(path)
    if not root.exists():
        return None
    if root.is_dir():
        xml_dir, image_dir = _find(root, _XML_DIRS), _find(root, _IMAGE_DIRS)
        xml = len(list(xml_dir.glob("*.xml"))) if xml_dir is not None else 0
        if xml and image_dir is not None:
            return Reading("detect", "voc", f"{len(list_images(image_dir))} images in {image_dir.name}/, {xml} XML "
                           f"files in {xml_dir.name}/", 3)
    coco = _coco_files(root)
    if coco and all(_is_coco(f) for f in coco):
        return Reading("detect", "coco", f"COCO JSON {', '.join(f.name for f in coco)}", 3)
    yolo = _yolo_dirs(root) if root.is_dir() else {}
    txt = sum(len(list(labels.glob("*.txt"))) for _, labels in yolo.values() if labels.is_dir())
    if txt:
        images = sum(len(list_images(img)) for img, _ in yolo.values() if img.is_dir())
        return Reading("detect", "yolo", f"{images} images, {txt} YOLO .txt label files", 3)
    return None


def _is_coco(file: Path) -> bool:
    """A JSON file with "images" and "annotations" keys (read only up to its first 1 MB for the check)."""
    try:
        head = file.read_bytes()[:1_000_000]
    except OSError:
        return False
    return b'"images"' in head and b'"annotations"' in head


def discover_detect(path: str | Path, class_names: list[str] | None = None) -> DetectSource:
    """Detect the layout under `path`; classes (given, or from the annotations), samples per split, problems."""
    root = data_root(path)
    names: list[str] | None = None
    xml_dir = _find(root, _XML_DIRS) if root.is_dir() else None
    image_dir = _find(root, _IMAGE_DIRS) if root.is_dir() else None
    if xml_dir is not None and image_dir is not None and any(xml_dir.glob("*.xml")):
        layout, (by_split, problems) = "voc", _voc(root, image_dir, xml_dir)
    elif _coco_files(root):
        layout = "coco"
        by_split, problems, names = _coco(root, _coco_files(root))
    elif root.is_dir() and _yolo_dirs(root):
        layout, (by_split, problems) = "yolo", _yolo(_yolo_dirs(root))
        names = _yolo_names(root)
        if names is None:
            top = max((int(c) for raws in by_split.values() for r in raws for c, _ in r.objects), default=-1)
            names = [str(i) for i in range(top + 1)]
        else:  # objects by id -> by name (an id beyond the names stays unknown)
            for raws in by_split.values():
                for r in raws:
                    r.objects = [(names[int(c)] if int(c) < len(names) else f"class id {c}", b) for c, b in r.objects]
    else:
        raise DataError(f"{root}: no detection data found (expected images/ + annotations/*.xml (VOC), a COCO "
                        "*.json, or images/ + labels/*.txt (YOLO))")
    return _build(root, layout, by_split, problems, class_names, names)


def _build(root: Path, layout: str, by_split: dict[str, list[_Raw]], problems: list[Problem],
           given: list[str] | None, found: list[str] | None) -> DetectSource:
    if given is not None:
        classes = list(given)
    elif found is not None:
        classes = list(found)
    else:
        classes = sorted({name for raws in by_split.values() for r in raws for name, _ in r.objects})
    index = {c: i for i, c in enumerate(classes)}
    source = DetectSource(root, layout, classes, {}, problems)
    bad_files = {str(p.file) for p in problems if p.blocking}  # unreadable annotations so far
    for split, raws in by_split.items():
        samples = source.splits.setdefault(split, [])
        for r in raws:
            unknown = sorted({name for name, _ in r.objects if name not in index})
            if unknown:
                problems.append(Problem(r.annotation or r.image, f"object class {unknown[0]!r} is not one of the "
                                        f"classes ({', '.join(classes)})", kind="class"))
                source.bad.add(str(r.image))
            if str(r.annotation) in bad_files or str(r.image) in bad_files:
                source.bad.add(str(r.image))
            kept = [(index[n], b) for n, b in r.objects if n in index]
            samples.append(DetectSample(r.image, [b for _, b in kept], [c for c, _ in kept], r.annotation,
                                        normalised=layout == "yolo"))
    if not any(source.splits.values()):
        raise DataError(f"{root}: no annotated images found ({layout} layout)")
    return source


def _fit_boxes(sample: DetectSample, w: int, h: int) -> tuple[int, int]:
    """Boxes in pixels, clipped to the image; returns (clipped, dropped)."""
    clipped = dropped = 0
    boxes, labels = [], []
    for box, label in zip(sample.boxes, sample.labels, strict=True):
        if sample.normalised:
            cx, cy, bw, bh = box
            box = [(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h]
        fit = [min(max(box[0], 0.0), w), min(max(box[1], 0.0), h), min(max(box[2], 0.0), w), min(max(box[3], 0.0), h)]
        if fit[2] <= fit[0] or fit[3] <= fit[1]:
            dropped += 1
            continue
        clipped += fit != box
        boxes.append(fit)
        labels.append(label)
    sample.boxes, sample.labels, sample.normalised = boxes, labels, False
    return clipped, dropped


def validate_detect(source: DetectSource, progress=None) -> dict:
    """Read every image once; boxes to pixels, clipped to the image (degenerate ones dropped); returns the JSON-ready
    `data check` report and appends problems to `source.problems`."""
    sizes: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    splits: dict[str, dict] = {}
    totals: Counter[str] = Counter()
    reported = {str(p.file) for p in source.problems}
    for split, samples in source.splits.items():
        per_class: Counter[int] = Counter()
        background = 0
        for s in samples:
            if progress:
                progress()
            size, why = image_size(s.image)
            if size is None:
                if str(s.image) not in reported:
                    source.problems.append(Problem(s.image, why if s.image.exists() else "image file not found"))
                    reported.add(str(s.image))
                source.bad.add(str(s.image))
                continue
            sizes[f"{size[0]}x{size[1]}"] += 1
            if not s.normalised and not s.boxes:
                background += 1
                continue
            clipped, dropped = _fit_boxes(s, *size)
            if clipped or dropped:
                what = ", ".join(t for t in (f"{clipped} clipped to the image" if clipped else "",
                                             f"{dropped} with no area inside it dropped" if dropped else "") if t)
                source.problems.append(Problem(s.annotation or s.image, f"boxes outside the image: {what}",
                                               blocking=False, kind="box"))
                totals["clipped"] += clipped
                totals["dropped"] += dropped
            background += not s.boxes
            per_class.update(s.labels)
            for b in s.boxes:
                a = (b[2] - b[0]) * (b[3] - b[1])
                areas["small" if a < _AREA[0] else "medium" if a < _AREA[1] else "large"] += 1
        splits[split] = {"images": len(samples), "boxes": sum(per_class.values()), "background_images": background,
                         "per_class": {c: per_class.get(i, 0) for i, c in enumerate(source.classes)}}
    return {
        "path": str(source.root), "task": "detect", "layout": source.layout, "classes": source.classes,
        "splits": splits, "images": sum(v["images"] for v in splits.values()),
        "boxes": sum(v["boxes"] for v in splits.values()),
        "per_class": {c: sum(v["per_class"][c] for v in splits.values()) for c in source.classes},
        "background_images": sum(v["background_images"] for v in splits.values()),
        "boxes_clipped": totals["clipped"], "boxes_dropped": totals["dropped"],
        "image_sizes": dict(sizes.most_common()),
        "box_areas": {k: areas.get(k, 0) for k in ("small", "medium", "large")},
        "problems": [{"file": str(p.file), "message": p.message, "blocking": p.blocking} for p in source.problems],
        "bad_images": sorted(source.bad),
    }


def load_detect(path: str | Path, class_names: list[str] | None = None, progress=None) -> tuple[DetectSource, dict]:
    """Discover and validate: (source with pixel boxes, `data check` report)."""
    source = discover_detect(path, class_names)
    return source, validate_detect(source, progress)


def check_detect(path: str | Path, progress=None, class_names: list[str] | None = None) -> dict:
    return load_detect(path, class_names, progress)[1]


def usable(source: DetectSource, samples: list[DetectSample]) -> list[DetectSample]:
    return [s for s in samples if str(s.image) not in source.bad]


def split_train_val_detect(source: DetectSource, val_fraction: float, seed: int
                           ) -> tuple[list[DetectSample], list[DetectSample], str]:
    """Training and validation samples: the set's val split, else `val_fraction` of the training images (at
    least one) drawn with `seed`."""
    train_key = "train" if "train" in source.splits else "all"
    train = usable(source, source.splits.get(train_key, []))
    if source.splits.get("val"):
        return train, usable(source, source.splits["val"]), "val split of the data set"
    if len(train) < 2:
        raise DataError(f"{source.root}: needs at least 2 usable images to train, found {len(train)}")
    idx = list(range(len(train)))
    random.Random(seed).shuffle(idx)
    held = set(idx[:max(1, round(len(train) * val_fraction))])
    return ([s for i, s in enumerate(train) if i not in held], [s for i, s in enumerate(train) if i in held],
            f"{len(held)} of {len(train)} '{train_key}' images drawn with seed {seed}")


def eval_split(source: DetectSource, split: str) -> list[DetectSample]:
    """Samples of a split for evaluation; `test` (any split) falls back to the only split of a set without splits."""
    key = split if split in source.splits else "all"
    if key not in source.splits:
        raise DataError(f"{source.root}: no '{split}' split (found: {', '.join(source.splits)})")
    return source.splits[key]
