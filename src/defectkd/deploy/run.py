"""One prediction run over any source with any runtime: the loop behind `defectkd predict` and
`python -m defectkd.deploy` (no torch)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from defectkd.deploy.classify import classify_frames
from defectkd.deploy.predict import predict_frames, video_name
from defectkd.deploy.sources import FrameSource


def run_source(runtime, frames: FrameSource, save_dir: Path | None = None, threshold: float | None = None,
               on_result: Callable[[dict], None] | None = None, sink=None) -> dict:
    """Segment (classify, for a runtime with `classify`; detect, with `detect`) every frame; close the source and
    the sink.

    Returns {"runtime", "results", "frames", "save_dir", "video", "source": stats, "sink": stats}. A camera
    or stream keeps no results in memory (it may run for days: `on_result` sees each one) and stops on
    Ctrl-C as at its end (`source["interrupted"]`); a finite source lets Ctrl-C through."""
    if hasattr(runtime, "classify"):
        loop = classify_frames(runtime, frames, save_dir, on_result, sink, frames.output_fps)
    elif hasattr(runtime, "detect"):  # boxes, labels, scores (deploy/detect.py)
        from defectkd.deploy.detect import detect_frames

        loop = detect_frames(runtime, frames, save_dir, threshold, on_result, sink, frames.output_fps)
    else:
        loop = predict_frames(runtime, frames, save_dir, threshold, on_result, sink, frames.output_fps)
    results, n = [], 0
    try:
        with contextlib.closing(loop):
            for r in loop:
                n += 1
                if not frames.live:
                    results.append(r)
    except KeyboardInterrupt:
        if not frames.live:
            raise
        frames.stats["interrupted"] = True
    finally:
        frames.close()
        sink_stats = sink.close() if sink is not None else None
    video = None
    if save_dir is not None and frames.kind != "images":
        path = Path(save_dir) / f"{video_name({'kind': frames.kind, 'source': frames.source})}.mp4"
        video = str(path) if path.exists() else None
    return {"runtime": type(runtime).__name__, "results": results, "frames": n,
            "save_dir": str(save_dir) if save_dir else None, "video": video, "source": frames.stats,
            "sink": sink_stats}
