"""Deployment side: ONNX Runtime inference, crack measurements, overlays, image/video/camera/stream sources,
and the ZeroMQ result sink.

Nothing here imports torch (or scikit-image, when it is missing), so an edge device installs numpy, opencv,
onnxruntime and pyzmq only (the `edge` extra). `ZmqSink` imports pyzmq on first use.
"""

from defectkd.deploy.analysis import crack_stats
from defectkd.deploy.classify import OnnxClassifier, classify_frames, classify_images
from defectkd.deploy.detect import OnnxDetector, detect_frames, detect_images
from defectkd.deploy.predict import predict_frames, predict_images
from defectkd.deploy.runtime import OnnxSegmenter
from defectkd.deploy.sources import FrameSource, frames, list_sources
from defectkd.deploy.visualize import overlay

__all__ = ["FrameSource", "OnnxClassifier", "OnnxDetector", "OnnxSegmenter", "ZmqSink", "classify_frames",
           "classify_images", "crack_stats", "detect_frames", "detect_images", "frames", "list_sources", "overlay",
           "predict_frames", "predict_images"]


def __getattr__(name: str):
    if name == "ZmqSink":
        from defectkd.deploy.sink import ZmqSink

        return ZmqSink
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
