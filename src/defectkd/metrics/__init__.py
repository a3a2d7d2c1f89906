"""Metrics: crack segmentation (pooled and per-image, ODS/OIS exact and tolerant)."""

from .segment import SegmentationMetrics, tolerant_counts

__all__ = ["SegmentationMetrics", "tolerant_counts"]
