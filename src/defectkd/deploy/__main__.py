"""`python -m defectkd.deploy predict ...`: ONNX prediction (and streaming) on a device without torch, typer or
pydantic: the `edge` extra (numpy, opencv-python-headless, onnxruntime, pyzmq) is all it needs. Same options
as `defectkd predict` (ONNX only; --save writes to --out). Errors: one line, exit status 2."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m defectkd.deploy", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="verb", required=True)
    p = sub.add_parser("predict", help="segment or classify images, a video, a camera or a stream with an .onnx model")
    p.add_argument("--weights", required=True, type=Path, help=".onnx file from `defectkd export`")
    p.add_argument("--source", required=True, help="image, folder, glob, video file, camera index or stream URL")
    p.add_argument("--out", type=Path, default=None, help="write masks/overlays or an overlay video + JSON lines here")
    p.add_argument("--threshold", type=float, default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--vid-stride", type=int, default=1)
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--sink", default=None, help="zmq://HOST:PORT of a `defectkd receive`")
    p.add_argument("--device-id", default=None)
    p.add_argument("--send-frame", action="store_true")
    p.add_argument("--curve-keys", type=Path, default=None)
    p.add_argument("--spool", type=Path, default=None, help="file keeping unacknowledged results across restarts")
    p.add_argument("--quiet", action="store_true", help="no JSON lines, only the summary")
    return ap


def main(argv: list[str] | None = None) -> int:
    from defectkd.deploy.backends import backend_kind, open_runtime
    from defectkd.deploy.run import run_source
    from defectkd.deploy.sources import FrameSource, SourceError, UnreadableImage

    args = _parser().parse_args(argv)
    try:
        if backend_kind(args.weights) is None:
            raise SourceError(f"{args.weights}: not an exported model (.onnx, NAME_openvino_model/ or .engine; "
                              "export with `defectkd export`)")
        frames = FrameSource(args.source, vid_stride=args.vid_stride, max_frames=args.max_frames)
        runtime = open_runtime(args.weights, threads=args.threads)
        sink = None
        if args.sink:
            from defectkd.deploy.sink import ZmqSink

            sink = ZmqSink(args.sink, device_id=args.device_id, send_frame=args.send_frame, curve_keys=args.curve_keys,
                           spool=args.spool)
        run = run_source(runtime, frames, args.out, args.threshold,
                         None if args.quiet else (lambda r: print(json.dumps(r), flush=True)), sink)
    except (SourceError, UnreadableImage, ValueError) as exc:  # SinkError, BackendError are ValueErrors
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = {k: run[k] for k in ("runtime", "frames", "save_dir", "video", "source", "sink")}
    print(json.dumps(summary), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
