"""Data: layouts and readers, synthetic cracks, validation (`data check`), torch datasets."""

from defectkd.data.check import check_dataset, validate
from defectkd.data.io import binarize_mask, read_image, read_mask
from defectkd.data.layouts import Sample, SegmentationSource, discover
from defectkd.data.synthetic import synth_crack_sample, write_synthetic_segment

__all__ = [
    "Sample", "SegmentationSource", "binarize_mask", "check_dataset", "discover", "read_image", "read_mask",
    "synth_crack_sample", "validate", "write_synthetic_segment",
]
