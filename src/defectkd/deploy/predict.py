"""The prediction loop shared by every runtime: read, segment, measure, save, report (no torch)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from .analysis import crack_stats
from .visualize import overlay


class Segmenter(Protocol):
    threshold: float

    def segment(self, rgb: np.ndarray) -> tuple[np.ndarray, dict[str, float]]: ...


class UnreadableImage(ValueError):
    pass


def read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise UnreadableImage(f"{path}: unreadable or corrupt image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def predict_images(segmenter: Segmenter, files: list[Path], save_dir: Path | None = None,
                   threshold: float | None = None, on_result: Callable[[dict], None] | None = None) -> Iterator[dict]:
    """Yield one result dict per image; with `save_dir`, write masks/, overlays/ and predictions.jsonl."""
    thr = segmenter.threshold if threshold is None else threshold
    log = None
    if save_dir is not None:
        (save_dir / "masks").mkdir(parents=True, exist_ok=True)
        (save_dir / "overlays").mkdir(parents=True, exist_ok=True)
        log = (save_dir / "predictions.jsonl").open("a")
    try:
        for file in files:
            t0 = time.perf_counter()
            rgb = read_rgb(file)
            read_ms = (time.perf_counter() - t0) * 1e3
            prob, times = segmenter.segment(rgb)
            t1 = time.perf_counter()
            mask = prob >= thr
            result = {"image": str(file), "width": rgb.shape[1], "height": rgb.shape[0], "threshold": thr,
                      **crack_stats(mask)}
            times = {"read_ms": read_ms, **times, "measure_ms": (time.perf_counter() - t1) * 1e3}
            if save_dir is not None:
                stem = file.stem
                result["mask"] = str(save_dir / "masks" / f"{stem}.png")
                result["overlay"] = str(save_dir / "overlays" / f"{stem}.jpg")
                cv2.imwrite(result["mask"], mask.astype(np.uint8) * 255)
                cv2.imwrite(result["overlay"], cv2.cvtColor(overlay(rgb, mask, None), cv2.COLOR_RGB2BGR))
            yield finish(result, times, log, on_result)
    finally:
        if log is not None:
            log.close()


def finish(result: dict, times: dict, log, on_result) -> dict:
    """Attach per-stage times (ms, with their total), append the JSON line, call the callback."""
    result["times_ms"] = {k: round(v, 2) for k, v in times.items()}
    result["times_ms"]["total_ms"] = round(sum(times.values()), 2)
    if log is not None:
        log.write(json.dumps(result) + "\n")
    if on_result:
        on_result(result)
    return result
