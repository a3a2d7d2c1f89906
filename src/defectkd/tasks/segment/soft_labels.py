"""Offline distillation labels: the teacher runs once, its softened outputs are stored on disk.

Layout of a cache folder:
    manifest.json        teacher file + sha256, model, T, heads, classes, and per image: file, sha256, size
    <image-key>.npz      one compressed file per image: one float16 array (C, H, W) per head

The MCFF-L authors stored these as 8-bit images, which throws away most of the soft-label
precision at high T; float16 keeps it (docs/papers.md). A cache is only used when it matches:
same T, every training image present with the same content hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from defectkd.core.errors import ConfigError, DataError

MANIFEST = "manifest.json"
FORMAT = "defectkd-soft-labels-1"


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def image_key(image: Path, root: Path) -> str:
    """Stable name of an image inside a cache: its path relative to the data root."""
    try:
        rel = image.resolve().relative_to(root.resolve())
    except ValueError:
        rel = Path(image.name)
    return rel.as_posix()


def _npz_name(key: str) -> str:
    return key.replace("/", "__").rsplit(".", 1)[0] + ".npz"


def write_soft_labels(teacher_weights: str | Path | list, data: str | Path, T: float, out: str | Path,
                      splits: tuple[str, ...] = ("train", "val"), unlabelled: bool = False,
                      progress: Callable[[], None] | None = None) -> dict:
    """Run the teacher over the training images (and unlabelled ones if asked); write the cache.
    `teacher_weights`: a run folder or weights file, or several joined by commas (an ensemble)."""
    import torch

    from defectkd.data.layouts import discover
    from defectkd.distill.kd import soften
    from defectkd.distill.teacher import join_files, load_teacher, teacher_files
    from defectkd.tasks.segment.dataset import SegmentationDataset

    if T <= 0:
        raise ConfigError(f"--T must be > 0, got {T}")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise DataError(f"{out}: folder is not empty; choose another --out (nothing was overwritten)")
    source = discover(data)
    names = [s for s in source.splits if s in splits or s == "all"]
    samples = [s for n in names for s in source.splits[n] if s.mask is not None or unlabelled]
    if not samples:
        raise DataError(f"{data}: no training images found (splits: {', '.join(source.splits)})")
    files = teacher_files(teacher_weights)
    teacher, teacher_name = load_teacher(teacher_weights)
    out.mkdir(parents=True, exist_ok=True)
    images: dict[str, dict] = {}
    heads: list[str] = []
    dataset = SegmentationDataset(samples, transform=None, cache=False)
    with torch.no_grad():
        for i, sample in enumerate(samples):
            x = dataset[i][0][None]
            outputs = teacher.forward_heads(x)
            heads = list(outputs)
            arrays = {h: soften(z, T)[0].numpy().astype(np.float16) for h, z in outputs.items()}
            key = image_key(sample.image, source.root)
            np.savez_compressed(out / _npz_name(key), **arrays)
            images[key] = {"file": _npz_name(key), "sha256": file_sha256(sample.image),
                           "size": list(x.shape[-2:]), "labelled": sample.mask is not None}
            if progress:
                progress()
    manifest = {"format": FORMAT, "teacher": join_files(files),
                "teacher_sha256": ",".join(file_sha256(f) for f in files), "teacher_model": teacher_name,
                "T": float(T), "heads": heads, "main_head": getattr(teacher, "main_head", heads[0]),
                "classes": int(getattr(teacher, "classes", 2)), "dtype": "float16",
                "data": str(source.root.resolve()), "images": images}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


class SoftLabelCache:
    """A validated cache: refuses a folder made at another T or from other image contents."""

    def __init__(self, folder: str | Path, T: float, data_root: Path, samples: list) -> None:
        self.folder = Path(folder)
        path = self.folder / MANIFEST
        if not path.is_file():
            raise DataError(f"{path}: no soft-label manifest; create one with `defectkd soft-labels`")
        try:
            self.manifest = json.loads(path.read_text())
        except json.JSONDecodeError:
            raise DataError(f"{path}: manifest is not valid JSON") from None
        if self.manifest.get("format") != FORMAT:
            raise DataError(f"{path}: unknown soft-label format {self.manifest.get('format')!r}")
        made_at = self.manifest["T"]
        if abs(made_at - T) > 1e-9:
            raise DataError(f"{self.folder}: soft labels were made at T={made_at:g} but the run asks T={T:g}; "
                            f"rebuild them with `defectkd soft-labels --T {T:g}` or set T={made_at:g}")
        self.T = made_at
        self.heads: list[str] = self.manifest["heads"]
        self.main_head: str = self.manifest["main_head"]
        self.classes: int = self.manifest["classes"]
        self._files: dict[str, Path] = {}
        entries = self.manifest["images"]
        for sample in samples:
            key = image_key(sample.image, data_root)
            entry = entries.get(key)
            if entry is None:
                raise DataError(f"{self.folder}: no soft labels for {sample.image} (the cache covers "
                                f"{len(entries)} images of {self.manifest['data']}); rebuild the cache")
            if entry["sha256"] != file_sha256(sample.image):
                raise DataError(f"{self.folder}: soft labels of {sample.image} are stale (the image changed "
                                f"after the cache was made); rebuild the cache")
            file = self.folder / entry["file"]
            if not file.is_file():
                raise DataError(f"{file}: soft-label file missing; rebuild the cache")
            self._files[str(sample.image)] = file

    def unlabelled_samples(self, data_root: Path) -> list:
        """Cached images without masks (made with `soft-labels --unlabelled`), as Samples."""
        from defectkd.data.layouts import Sample

        return [Sample(data_root / key, None) for key, e in self.manifest["images"].items() if not e["labelled"]]

    def load(self, image: Path) -> dict[str, np.ndarray]:
        """Every head's softened probabilities for one image, float16 (C, H, W)."""
        with np.load(self._files[str(image)]) as npz:
            return {h: npz[h] for h in self.heads}
