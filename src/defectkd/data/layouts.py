"""Data-set layouts for crack segmentation: detection of the layout and pairing of files.

Supported layouts (checked in this order):
- `splits`:       PATH/{train,val,test}/images + masks   (DeepCrack as shipped in ../shared)
- `images-masks`: PATH/images + PATH/masks, matching stems
- `crackforest`:  PATH/image/*.jpg + PATH/groundTruth/*.mat (crack = Segmentation == 2)
- `images-only`:  PATH holds images and no masks (prediction, unlabelled distillation data)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from defectkd.core.errors import DataError
from defectkd.data.io import IMAGE_SUFFIXES, MASK_SUFFIXES, list_images

SPLIT_NAMES = ("train", "val", "test")
_IMAGE_DIRS = ("images", "image", "img", "imgs")
_MASK_DIRS = ("masks", "mask", "labels", "label", "gt", "groundTruth", "annotations")


@dataclass
class Sample:
    image: Path
    mask: Path | None  # None: unlabelled


@dataclass
class Problem:
    file: Path
    message: str
    blocking: bool = True  # unlabelled images are reported but do not stop training
    kind: str = "bad"  # "unlabelled": an image without a mask (training data for offline KD); "class": an empty
    # class folder or a class only val/test has (classification, data/classify.py)

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"


@dataclass
class SegmentationSource:
    root: Path
    layout: str
    splits: dict[str, list[Sample]]
    problems: list[Problem] = field(default_factory=list)

    def labelled(self, split: str) -> list[Sample]:
        return [s for s in self.splits.get(split, []) if s.mask is not None]


def _find_dir(root: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        if (root / name).is_dir():
            return root / name
    return None


def _pair(image_dir: Path, mask_dir: Path, problems: list[Problem], orphan_is_problem: bool) -> list[Sample]:
    images = list_images(image_dir)
    masks: dict[str, Path] = {}
    for m in list_images(mask_dir, MASK_SUFFIXES):
        masks.setdefault(m.stem, m)
    samples = []
    for img in images:
        mask = masks.pop(img.stem, None)
        samples.append(Sample(img, mask))
        if mask is None:
            problems.append(Problem(img, "no mask with the same stem (unlabelled)", blocking=orphan_is_problem,
                                    kind="unlabelled"))
    for stem, m in sorted(masks.items()):
        problems.append(Problem(m, f"mask has no image named {stem}.*"))
    return samples


def _pair_dir(root: Path, problems: list[Problem]) -> tuple[str, list[Sample]] | None:
    image_dir = _find_dir(root, _IMAGE_DIRS)
    mask_dir = _find_dir(root, _MASK_DIRS)
    if image_dir is None:
        return None
    if mask_dir is None:
        return "images-only", [Sample(p, None) for p in list_images(image_dir)]
    crackforest = any(p.suffix.lower() == ".mat" for p in mask_dir.iterdir())
    layout = "crackforest" if crackforest else "images-masks"
    return layout, _pair(image_dir, mask_dir, problems, orphan_is_problem=not crackforest)


def discover(path: str | Path) -> SegmentationSource:
    """Detect the layout under `path` and pair every image with its mask."""
    root = Path(path)
    if not str(path).strip():
        raise DataError("data path is empty")
    if not root.exists():
        raise DataError(f"{root}: data path does not exist")
    if root.is_file():
        if root.suffix.lower() in IMAGE_SUFFIXES:
            return SegmentationSource(root, "image", {"all": [Sample(root, None)]})
        raise DataError(f"{root}: not an image file or a data folder")
    problems: list[Problem] = []
    split_dirs = [s for s in SPLIT_NAMES if (root / s).is_dir()]
    if split_dirs:
        splits: dict[str, list[Sample]] = {}
        layout = "splits"
        for split in split_dirs:
            found = _pair_dir(root / split, problems)
            if found is None:
                raise DataError(f"{root / split}: split folder has no images/ subfolder")
            splits[split] = found[1]
        source = SegmentationSource(root, layout, splits, problems)
    else:
        found = _pair_dir(root, problems)
        if found is None:
            images = list_images(root)
            source = SegmentationSource(root, "images-only", {"all": [Sample(p, None) for p in images]})
        else:
            source = SegmentationSource(root, found[0], {"all": found[1]}, problems)
    if not any(source.splits.values()):
        raise DataError(f"{root}: no images found (expected images/ + masks/, train/ test/ splits, "
                        "image/ + groundTruth/, or a folder of images)")
    return source
