"""What `predict` reads: images (a file, a folder, a glob), a video file, a camera index or a stream URL.

`list_sources` names image files. `frames(source)` reads any kind of source and yields
`(frame_id, rgb, info)`: frame_id is the image's index, or the frame's index in the video or stream
(so `vid_stride=3` yields 0, 3, 6, ...); rgb is uint8 (H, W, 3); info says where it came from
(`kind`, `source`, `image` for files, `fps` of the source, `read_ms`). A video ends when its last frame
is read; a camera or stream that stops delivering is reopened up to `retries` times in a row, waiting
`backoff` s, then twice as long, ... (at most `max_backoff` s), and ends when they are spent. Every
reopening is counted in `FrameSource.stats`. No torch here.
"""

from __future__ import annotations

import glob
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from defectkd.core.imagefile import decode

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv", ".webm", ".ts", ".asf", ".gif")
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")
LIVE_KINDS = ("camera", "stream")

log = logging.getLogger("defectkd.sources")


class SourceError(ValueError):
    """Nothing to read at the given source (the CLI turns it into one line)."""


def list_sources(source: str | Path) -> list[Path]:
    """Image files named by SOURCE (a file, a folder, searched recursively, or a glob), sorted."""
    text = str(source)
    path = Path(text)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    elif any(ch in text for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
    else:
        raise SourceError(f"{source}: no such file, folder or pattern")
    if not files:
        raise SourceError(f"{source}: no images found ({', '.join(IMAGE_SUFFIXES)})")
    return files


def source_kind(source: str | Path | int) -> str:
    """"camera" (an index such as 0), "stream" (rtsp/http/... URL), "video" (a video file) or "images"."""
    text = str(source).strip()
    if isinstance(source, int) or text.isdigit():
        return "camera"
    if text.lower().startswith(STREAM_SCHEMES):
        return "stream"
    path = Path(text)
    if path.suffix.lower() in VIDEO_SUFFIXES and not any(ch in text for ch in "*?["):
        if not path.is_file():
            raise SourceError(f"{source}: no such video file")
        return "video"
    return "images"


class UnreadableImage(ValueError):
    pass


def read_rgb(path: Path) -> np.ndarray:
    img, why = decode(path)
    if img is None:
        raise UnreadableImage(f"{path}: {why}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _open_capture(source: str, kind: str):
    """A cv2.VideoCapture on a video file, camera index or stream URL (None when it cannot open)."""
    cap = cv2.VideoCapture(int(source)) if kind == "camera" else cv2.VideoCapture(source)
    if not cap.isOpened():
        cap.release()
        return None
    if kind in LIVE_KINDS:
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # live sources: the newest frame, not a backlog
    return cap


class FrameSource:
    """Iterate over the frames of SOURCE: `for frame_id, rgb, info in FrameSource("clip.mp4", vid_stride=2)`.

    `stats` counts frames read and yielded, reconnects, and whether the source gave up (a live source
    whose retries ran out) or ended (the last frame of a video, the last image). `opener(source, kind)`
    replaces cv2.VideoCapture (tests, other back-ends); `sleep` replaces time.sleep.
    """

    def __init__(self, source: str | Path | int, vid_stride: int = 1, retries: int = 5, backoff: float = 0.5,
                 max_backoff: float = 8.0, opener: Callable | None = None, sleep: Callable[[float], None] = time.sleep,
                 max_frames: int | None = None) -> None:
        if vid_stride < 1:
            raise SourceError(f"--vid-stride must be >= 1, got {vid_stride}")
        self.source = str(source).strip()
        self.kind = source_kind(source)
        self.vid_stride = int(vid_stride)
        self.retries, self.backoff, self.max_backoff = int(retries), float(backoff), float(max_backoff)
        self.max_frames = max_frames
        self._opener = opener or _open_capture
        self._sleep = sleep
        self.files = list_sources(self.source) if self.kind == "images" else None
        self.fps: float | None = None
        self.width = self.height = self.frame_count = None
        self.stats = {"kind": self.kind, "read": 0, "yielded": 0, "reconnects": 0, "failed_reads": 0,
                      "ended": False, "gave_up": False}
        self._cap = None
        self._streak = 0  # reconnection tries since the last good frame
        if self.kind in ("video", *LIVE_KINDS):
            self._cap = self._opener(self.source, self.kind)
            if self._cap is None:
                raise SourceError(f"{self.source}: cannot open {self.kind} (OpenCV VideoCapture failed)")
            self._read_properties()

    def _read_properties(self) -> None:
        fps = self._cap.get(cv2.CAP_PROP_FPS) or 0.0
        self.fps = float(fps) if 0 < fps < 1000 else None
        self.width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0) or None
        self.height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0) or None
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = count if count > 0 and self.kind == "video" else None

    @property
    def live(self) -> bool:
        return self.kind in LIVE_KINDS

    @property
    def output_fps(self) -> float:
        """Frames per second of what is yielded (source fps / stride; 25 / stride when unknown)."""
        return (self.fps or 25.0) / self.vid_stride

    def __len__(self) -> int:
        if self.files is not None:
            n = len(self.files)
        elif self.frame_count is not None:
            n = -(-self.frame_count // self.vid_stride)
        else:
            raise TypeError(f"a {self.kind} source has no length")
        return min(n, self.max_frames) if self.max_frames else n

    def __iter__(self) -> Iterator[tuple[int, np.ndarray, dict]]:
        try:
            yield from (self._images() if self.files is not None else self._video())
        finally:
            self.close()

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _done(self) -> bool:
        return self.max_frames is not None and self.stats["yielded"] >= self.max_frames

    def _images(self):
        for i, file in enumerate(self.files):
            if self._done():
                return
            t0 = time.perf_counter()
            rgb = read_rgb(file)
            self.stats["read"] += 1
            self.stats["yielded"] += 1
            yield i, rgb, {"kind": "image", "source": self.source, "image": str(file), "fps": None,
                           "read_ms": (time.perf_counter() - t0) * 1e3}
        self.stats["ended"] = True

    def _video(self):
        index = -1  # index of the last frame taken from the source
        while not self._done():
            t0 = time.perf_counter()
            ok = True
            for _ in range(self.vid_stride - 1 if index >= 0 else 0):  # skipped frames: grabbed, not decoded
                if not self._cap.grab():
                    ok = False
                    break
                index += 1
            frame = None
            if ok:
                ok, frame = self._cap.read()
            if not ok or frame is None:
                if self.kind == "video":
                    self.stats["ended"] = True
                    return
                self.stats["failed_reads"] += 1
                if not self._reconnect():
                    self.stats["gave_up"] = True
                    return
                continue
            index += 1
            self._streak = 0
            self.stats["read"] += 1
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
            self.stats["yielded"] += 1
            yield index, rgb, {"kind": self.kind, "source": self.source, "fps": self.fps,
                               "read_ms": (time.perf_counter() - t0) * 1e3}

    def _reconnect(self) -> bool:
        """Reopen a live source after waits of backoff, 2 x backoff, ... (at most max_backoff); `retries`
        tries without a good frame in between; False when they are spent."""
        self.close()
        while self._streak < self.retries:
            wait = min(self.backoff * 2 ** self._streak, self.max_backoff)
            self._streak += 1
            self._sleep(wait)
            self.stats["reconnects"] += 1
            log.warning("%s: stream dropped, reconnecting (try %d of %d)", self.source, self._streak, self.retries)
            self._cap = self._opener(self.source, self.kind)
            if self._cap is not None:
                self._read_properties()
                return True
        log.warning("%s: gave up after %d reconnection tries", self.source, self.retries)
        return False


def frames(source: str | Path | int, vid_stride: int = 1, retries: int = 5, backoff: float = 0.5,
           max_frames: int | None = None) -> FrameSource:
    """The frames of any source as `(frame_id, rgb, info)` (see FrameSource): images, video, camera, stream.

        for frame_id, rgb, info in frames("line.mp4", vid_stride=5):
            ...
    """
    return FrameSource(source, vid_stride=vid_stride, retries=retries, backoff=backoff, max_frames=max_frames)
