"""The prediction loop shared by every runtime: read, segment, measure, save, report, stream (no torch).

Images get masks/ and overlays/ per image; a video, camera or stream gets one overlay video (mp4v). Both
append one JSON line per image or frame to predictions.jsonl. Each result carries per-stage times
(read, pre-process, inference, post-process, measure) and a running FPS over the last frames; a sink
(deploy.sink.ZmqSink) receives every result with its mask and frame.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from defectkd.deploy.analysis import crack_stats
from defectkd.deploy.sources import UnreadableImage, read_rgb  # noqa: F401 (re-exported: api and classify import them here)
from defectkd.deploy.visualize import overlay

Frames = Iterable[tuple[int, np.ndarray, dict]]


class Segmenter(Protocol):
    threshold: float

    def segment(self, rgb: np.ndarray) -> tuple[np.ndarray, dict[str, float]]: ...


class Sink(Protocol):
    def send(self, result: dict, mask: np.ndarray | None = None, frame: np.ndarray | None = None,
             task: str = "segment") -> None: ...


class RunningFPS:
    """Frames per second over the last `window` results (wall clock, so saving and sending count too)."""

    def __init__(self, window: int = 30) -> None:
        self.stamps: deque[float] = deque(maxlen=window)

    def tick(self, total_ms: float) -> float:
        self.stamps.append(time.perf_counter())
        if len(self.stamps) < 2:
            return round(1e3 / total_ms, 2) if total_ms > 0 else 0.0
        span = self.stamps[-1] - self.stamps[0]
        return round((len(self.stamps) - 1) / span, 2) if span > 0 else 0.0


def image_frames(files: list[Path]) -> Iterator[tuple[int, np.ndarray, dict]]:
    for i, file in enumerate(files):
        t0 = time.perf_counter()
        rgb = read_rgb(file)
        yield i, rgb, {"kind": "image", "source": str(file), "image": str(file),
                       "read_ms": (time.perf_counter() - t0) * 1e3}


class Outputs:
    """What `--save` writes into `save_dir`: predictions.jsonl always; masks/ + overlays/ per image, or one
    overlay video per video/camera/stream source (mp4v at the source's rate over the stride)."""

    def __init__(self, save_dir: Path | None, video_fps: float | None = None, masks: bool = True) -> None:
        self.dir = save_dir
        self.video_fps = video_fps or 25.0
        self.masks = masks
        self.log = None
        self.writer = None
        self.video: Path | None = None
        self._size = None
        if save_dir is not None:
            save_dir.mkdir(parents=True, exist_ok=True)
            self.log = (save_dir / "predictions.jsonl").open("a")

    def image(self, stem: str, mask: np.ndarray | None, overlay_rgb: np.ndarray) -> dict:
        """Per-image files; returns the paths to put in the result."""
        paths = {}
        if mask is not None and self.masks:
            (self.dir / "masks").mkdir(exist_ok=True)
            paths["mask"] = str(self.dir / "masks" / f"{stem}.png")
            cv2.imwrite(paths["mask"], mask.astype(np.uint8) * 255)
        (self.dir / "overlays").mkdir(exist_ok=True)
        paths["overlay"] = str(self.dir / "overlays" / f"{stem}.jpg")
        cv2.imwrite(paths["overlay"], cv2.cvtColor(overlay_rgb, cv2.COLOR_RGB2BGR))
        return paths

    def video_frame(self, name: str, overlay_rgb: np.ndarray) -> None:
        if self.writer is None:
            h, w = overlay_rgb.shape[:2]
            self._size = (w, h)
            self.video = self.dir / f"{name}.mp4"
            self.writer = cv2.VideoWriter(str(self.video), cv2.VideoWriter_fourcc(*"mp4v"), self.video_fps, self._size)
        if overlay_rgb.shape[1::-1] != self._size:
            overlay_rgb = cv2.resize(overlay_rgb, self._size, interpolation=cv2.INTER_AREA)
        self.writer.write(cv2.cvtColor(overlay_rgb, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        if self.log is not None:
            self.log.close()
            self.log = None


def video_name(info: dict) -> str:
    """The overlay video's stem: the video file's stem, camera<index>, or "stream"."""
    if info.get("kind") == "video":
        return Path(info["source"]).stem
    if info.get("kind") == "camera":
        return f"camera{info['source']}"
    return "stream"


def where(frame_id: int, info: dict, rgb: np.ndarray) -> dict:
    """The result's first keys: the image (images) or the source and frame index (video, camera, stream)."""
    head = {"image": info["image"]} if "image" in info else {"source": info["source"]}
    return {**head, "frame": frame_id, "width": rgb.shape[1], "height": rgb.shape[0]}


def predict_frames(segmenter: Segmenter, frames: Frames, save_dir: Path | None = None,
                   threshold: float | None = None, on_result: Callable[[dict], None] | None = None,
                   sink: Sink | None = None, video_fps: float | None = None) -> Iterator[dict]:
    """Yield one result per frame of `frames` ((frame_id, rgb, info), e.g. sources.frames(...)): crack stats,
    times, running FPS; with `save_dir`, write files and JSON lines; with `sink`, send the result, mask and frame."""
    thr = segmenter.threshold if threshold is None else threshold
    out = Outputs(save_dir, video_fps) if save_dir is not None else None
    fps = RunningFPS()
    try:
        for frame_id, rgb, info in frames:
            prob, times = segmenter.segment(rgb)
            t1 = time.perf_counter()
            mask = prob >= thr
            result = {**where(frame_id, info, rgb), "threshold": thr, **crack_stats(mask)}
            times = {"read_ms": info.get("read_ms", 0.0), **times, "measure_ms": (time.perf_counter() - t1) * 1e3}
            if out is not None:
                if "image" in info:
                    result.update(out.image(Path(info["image"]).stem, mask, overlay(rgb, mask, None)))
                else:
                    out.video_frame(video_name(info), overlay(rgb, mask, None))
            yield emit(result, times, out, fps, on_result, sink, mask, rgb, "segment")
    finally:
        if out is not None:
            out.close()


def emit(result: dict, times: dict, out: Outputs | None, fps: RunningFPS, on_result, sink, mask, rgb,
         task: str) -> dict:
    """Attach times and the running FPS, append the JSON line, call the callback, hand the result to the sink."""
    finish(result, times, None, None)
    result["fps"] = fps.tick(result["times_ms"]["total_ms"])
    if out is not None and out.log is not None:
        out.log.write(json.dumps(result) + "\n")
    if on_result:
        on_result(result)
    if sink is not None:
        sink.send(result, mask=mask, frame=rgb, task=task)
    return result


def predict_images(segmenter: Segmenter, files: list[Path], save_dir: Path | None = None,
                   threshold: float | None = None, on_result: Callable[[dict], None] | None = None,
                   sink: Sink | None = None) -> Iterator[dict]:
    """Yield one result dict per image; with `save_dir`, write masks/, overlays/ and predictions.jsonl."""
    return predict_frames(segmenter, image_frames(files), save_dir, threshold, on_result, sink)


def finish(result: dict, times: dict, log, on_result) -> dict:
    """Attach per-stage times (ms, with their total), append the JSON line, call the callback."""
    result["times_ms"] = {k: round(v, 2) for k, v in times.items()}
    result["times_ms"]["total_ms"] = round(sum(times.values()), 2)
    if log is not None:
        log.write(json.dumps(result) + "\n")
    if on_result:
        on_result(result)
    return result
