"""Crack segmentation: pixel masks, F1/IoU/ODS, soft-label caches, k-fold, robustness (plug-in: task.py)."""
