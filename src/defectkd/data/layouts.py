"""Data-set layouts for crack segmentation: detection of the layout and pairing of files.

Supported layouts (checked in this order; docs/data.md shows a tree of each):
- `splits`:          PATH/{train,val,test}/ each holding one of the layouts below (DeepCrack as shipped in ../shared)
- `images-masks`:    PATH/images + PATH/masks (or image|img|imgs + mask|labels|label|gt|groundTruth|annotations
                     holding mask images), matching stems; a mask may add _mask, _gt or _label to its image's stem
- `suffixed-dirs`:   PATH/<name>_images + PATH/<name>_masks (also _image/_mask, _img/_gt, _imgs/_labels)
- `suffixed-files`:  PATH/a.jpg + PATH/a_mask.png side by side (also _gt, _label)
- `crackforest`:     PATH/image/*.jpg + PATH/groundTruth/*.mat (crack = Segmentation == 2)
- `images-only`:     PATH holds images and no masks (prediction, unlabelled distillation data)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from defectkd.core.errors import DataError
from defectkd.data.io import IMAGE_SUFFIXES, MASK_SUFFIXES, list_images

SPLIT_NAMES = ("train", "val", "test")
IMAGE_DIRS = ("images", "image", "img", "imgs")
MASK_DIRS = ("masks", "mask", "labels", "label", "gt", "groundTruth", "annotations")
MASK_STEM_SUFFIXES = ("_mask", "_gt", "_label")
DIR_SUFFIX_PAIRS = (("_images", "_masks"), ("_image", "_mask"), ("_img", "_gt"), ("_imgs", "_labels"),
                    ("_images", "_labels"), ("_images", "_gt"))
LOOKED_FOR = ("masks/ (or mask, labels, label, gt, groundTruth, annotations) beside images/, <name>_masks/ beside "
              "<name>_images/, or <stem>_mask.png beside each image")


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


def _mask_stem(stem: str) -> str:
    """The image stem a mask file belongs to: foo_mask -> foo (also _gt, _label); foo -> foo."""
    for suffix in MASK_STEM_SUFFIXES:
        if stem.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return stem


def _pair(images: list[Path], mask_files: list[Path], problems: list[Problem], orphan_is_problem: bool
          ) -> list[Sample]:
    masks: dict[str, Path] = {}
    for m in mask_files:
        masks.setdefault(m.stem, m)
    stems = {img.stem for img in images}
    for m in mask_files:  # foo_mask.png pairs with foo.jpg, unless a mask named foo exists (or foo_mask is an image)
        if m.stem not in stems:
            masks.setdefault(_mask_stem(m.stem), m)
    samples, used = [], set()
    for img in images:
        mask = masks.get(img.stem)
        samples.append(Sample(img, mask))
        if mask is None:
            problems.append(Problem(img, "no mask with the same stem (unlabelled)", blocking=orphan_is_problem,
                                    kind="unlabelled"))
        else:
            used.add(mask)
    for m in sorted(set(mask_files) - used):
        problems.append(Problem(m, f"mask has no image named {_mask_stem(m.stem)}.*"))
    return samples


def _suffixed_dirs(root: Path) -> tuple[Path, Path] | None:
    """<name>_images + <name>_masks (and the other DIR_SUFFIX_PAIRS) side by side in `root`."""
    dirs = {d.name: d for d in root.iterdir() if d.is_dir()}
    for name in sorted(dirs):
        for image_suffix, mask_suffix in DIR_SUFFIX_PAIRS:
            if name.endswith(image_suffix) and name[: -len(image_suffix)] + mask_suffix in dirs:
                return dirs[name], dirs[name[: -len(image_suffix)] + mask_suffix]
    return None


def _suffixed_files(root: Path) -> tuple[list[Path], list[Path]] | None:
    """Images and <stem>_mask files side by side in one folder: (images, masks), or None when there are no such
    masks."""
    files = list_images(root, tuple(set(IMAGE_SUFFIXES) | set(MASK_SUFFIXES)))
    stems = {f.stem for f in files}
    masks = [f for f in files if _mask_stem(f.stem) != f.stem and _mask_stem(f.stem) in stems]
    if not masks:
        return None
    images = [f for f in files if f not in set(masks) and f.suffix.lower() in IMAGE_SUFFIXES]
    return images, masks


def _pair_dir(root: Path, problems: list[Problem]) -> tuple[str, list[Sample]] | None:
    image_dir = _find_dir(root, IMAGE_DIRS)
    mask_dir = _find_dir(root, MASK_DIRS)
    layout = "images-masks"
    if image_dir is None:
        found = _suffixed_dirs(root)
        if found is not None:
            (image_dir, mask_dir), layout = found, "suffixed-dirs"
        else:
            files = _suffixed_files(root)
            if files is None:
                return None
            return "suffixed-files", _pair(files[0], files[1], problems, orphan_is_problem=True)
    mask_files = list_images(mask_dir, MASK_SUFFIXES) if mask_dir is not None else []
    if not mask_files:  # no masks (or e.g. annotations/ of XML files: another task's layout)
        return "images-only", [Sample(p, None) for p in list_images(image_dir)]
    crackforest = any(p.suffix.lower() == ".mat" for p in mask_files)
    return ("crackforest" if crackforest else layout,
            _pair(list_images(image_dir), mask_files, problems, orphan_is_problem=not crackforest))


def data_root(path: str | Path) -> Path:
    """The data path as a Path; one line when it is empty or does not exist (every task's reader starts here)."""
    if not str(path).strip():
        raise DataError("data path is empty")
    root = Path(path)
    if not root.exists():
        raise DataError(f"{root}: data path does not exist")
    return root


def discover(path: str | Path) -> SegmentationSource:
    """Detect the layout under `path` and pair every image with its mask."""
    root = data_root(path)
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
        raise DataError(f"{root}: no images found (expected images/ + masks/, <name>_images/ + <name>_masks/, "
                        "train/ test/ splits, image/ + groundTruth/, or a folder of images)")
    return source


def describe(source: SegmentationSource) -> str:
    """The evidence for a segmentation reading, e.g. "images-masks: 300 images, 300 with a mask (images/, masks/)"."""
    samples = [s for split in source.splits.values() for s in split]
    pairs = sum(s.mask is not None for s in samples)
    where = ""
    first = next((s for s in samples if s.mask is not None), None)
    if first is not None:
        img_dir, mask_dir = first.image.parent, first.mask.parent
        suffix = first.mask.stem[len(first.image.stem):]
        where = f" ({img_dir.name}/, {mask_dir.name}/)" if img_dir != mask_dir else f" (<stem>{suffix} files)"
    splits = f" in {', '.join(source.splits)}" if source.layout == "splits" else ""
    return f"{len(samples)} images, {pairs} with a mask{where}{splits}"



def no_masks_message(source: SegmentationSource, split: str) -> str:
    """Why a split has nothing to score: no masks at all (and where they were looked for), or none in that split."""
    if not any(s.mask is not None for v in source.splits.values() for s in v):
        n = sum(map(len, source.splits.values()))
        return f"{source.root}: no masks found for its {n} images (looked for {LOOKED_FOR})"
    return f"{source.root}: split {split!r} has no labelled pairs (splits: {', '.join(source.splits)})"
