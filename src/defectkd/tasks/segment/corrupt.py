"""`defectkd corrupt`: corrupted copies of a labelled segmentation split, each an images-masks set."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2

from defectkd.data.corruptions import corrupt, corruption_seed


def write_corrupted(samples: list, out: str | Path, corruptions: Sequence[str], severities: Sequence[int],
                    seed: int = 0, progress: Callable[[], None] | None = None, about: dict | None = None) -> Path:
    """Corrupted copies of labelled `samples` in OUT/<corruption>/<severity>/images/*.png (lossless) and
    masks/*.png (0/255, unchanged), each an images-masks set; OUT/manifest.json records how.
    Seeds come from `corruption_seed(seed, stem, ...)`, so the copies equal what `robustness` evaluates."""
    from defectkd.tasks.segment.dataset import SegmentationDataset

    out = Path(out)
    dataset = SegmentationDataset(samples, transform=None, cache=False)
    for name in corruptions:
        for severity in severities:
            (out / name / str(severity) / "images").mkdir(parents=True, exist_ok=True)
            (out / name / str(severity) / "masks").mkdir(parents=True, exist_ok=True)
    for i, sample in enumerate(samples):
        image, mask = dataset.load(i)
        stem = sample.image.stem
        for name in corruptions:
            for severity in severities:
                cell = out / name / str(severity)
                bad = corrupt(image, name, severity, corruption_seed(seed, stem, name, severity))
                cv2.imwrite(str(cell / "images" / f"{stem}.png"), cv2.cvtColor(bad, cv2.COLOR_RGB2BGR))
                cv2.imwrite(str(cell / "masks" / f"{stem}.png"), mask * 255)
        if progress:
            progress()
    manifest = {**(about or {}), "seed": seed, "corruptions": list(corruptions), "severities": list(severities),
                "images": len(samples), "layout": "<corruption>/<severity>/{images,masks}/<stem>.png"}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return out
