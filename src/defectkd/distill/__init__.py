"""Distillation methods (losses) and offline soft-label caches."""

from .kd import KDLoss, kd_from_probabilities, match_channels, match_size, soften
from .registry import build_loss, list_methods

__all__ = ["KDLoss", "build_loss", "kd_from_probabilities", "list_methods", "match_channels", "match_size", "soften"]
