"""Deployment side: ONNX Runtime inference, crack measurements, overlays, image sources.

Nothing here imports torch, so an edge device installs onnxruntime, opencv and numpy only.
"""

from .analysis import crack_stats
from .classify import OnnxClassifier, classify_images
from .predict import predict_images
from .runtime import OnnxSegmenter
from .sources import list_sources
from .visualize import overlay

__all__ = ["OnnxClassifier", "OnnxSegmenter", "classify_images", "crack_stats", "list_sources", "overlay",
           "predict_images"]
