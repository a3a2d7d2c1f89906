"""`defectkd data check`: validate every image/mask pair of a segmentation data set."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from defectkd.core.errors import DataError
from defectkd.data.io import image_size, read_mask
from defectkd.data.layouts import Problem, SegmentationSource, discover


def validate(source: SegmentationSource, progress=None) -> dict:
    """Read every file once; returns a JSON-ready report and appends problems to `source.problems`."""
    sizes: Counter[str] = Counter()
    fractions: list[float] = []
    splits_report = {}
    bad: set[Path] = set()
    for split, samples in source.splits.items():
        pairs = unlabelled = 0
        for sample in samples:
            if progress:
                progress()
            size, why = image_size(sample.image)
            if size is None:
                source.problems.append(Problem(sample.image, why))
                bad.add(sample.image)
                continue
            sizes[f"{size[0]}x{size[1]}"] += 1
            if sample.mask is None:
                unlabelled += 1
                continue
            try:
                mask = read_mask(sample.mask)
            except DataError as exc:
                source.problems.append(Problem(sample.mask, str(exc).split(": ", 1)[-1]))
                bad.add(sample.image)
                continue
            if (mask.shape[1], mask.shape[0]) != size:
                source.problems.append(Problem(
                    sample.mask, f"mask is {mask.shape[1]}x{mask.shape[0]} but image is {size[0]}x{size[1]}"))
                bad.add(sample.image)
                continue
            pairs += 1
            fractions.append(float(mask.mean()))
        splits_report[split] = {"pairs": pairs, "unlabelled": unlabelled}
    frac = np.array(fractions) if fractions else np.zeros(1)
    return {
        "path": str(source.root),
        "layout": source.layout,
        "splits": splits_report,
        "pairs": sum(s["pairs"] for s in splits_report.values()),
        "unlabelled": sum(s["unlabelled"] for s in splits_report.values()),
        "image_sizes": dict(sizes.most_common()),
        "crack_fraction": {
            "mean": round(float(frac.mean()), 5),
            "min": round(float(frac.min()), 5),
            "max": round(float(frac.max()), 5),
        },
        "problems": [{"file": str(p.file), "message": p.message, "blocking": p.blocking} for p in source.problems],
        "bad_images": sorted(str(p) for p in bad),
    }


def check_dataset(path: str | Path, progress=None) -> dict:
    """Detect the layout of `path`, validate every pair and return the report."""
    return validate(discover(path), progress)
