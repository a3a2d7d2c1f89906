"""Data shared by every task: image and mask readers, layout discovery, crack drawing, corruptions."""

from defectkd.data.io import binarize_mask, read_image, read_mask
from defectkd.data.layouts import Sample, SegmentationSource, discover

__all__ = ["Sample", "SegmentationSource", "binarize_mask", "discover", "read_image", "read_mask"]
