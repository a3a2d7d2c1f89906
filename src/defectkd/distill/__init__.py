"""Distillation methods (losses) and offline soft-label caches."""

from .adapters import ChannelAdapter, match_spatial
from .at import ATLoss
from .cwd import CWDLoss
from .dkd import DKDLoss
from .fitnet import FitNetLoss
from .kd import KDLoss, kd_from_probabilities, match_channels, match_size, soften
from .mgd import MGDLoss
from .pairwise import PairwiseLoss
from .registry import build_loss, list_methods

__all__ = ["ATLoss", "CWDLoss", "ChannelAdapter", "DKDLoss", "FitNetLoss", "KDLoss", "MGDLoss", "PairwiseLoss",
           "build_loss", "kd_from_probabilities", "list_methods", "match_channels", "match_size", "match_spatial",
           "soften"]
