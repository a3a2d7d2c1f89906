"""Metrics: crack segmentation (pooled and per-image, ODS/OIS exact and tolerant)."""

from defectkd.metrics.segment import SegmentationMetrics, plot_pr_curve, tolerant_counts

__all__ = ["SegmentationMetrics", "plot_pr_curve", "tolerant_counts"]
