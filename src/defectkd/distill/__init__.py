"""Distillation methods (losses) and offline soft-label caches."""

from defectkd.distill.adapters import ChannelAdapter, match_spatial
from defectkd.distill.at import ATLoss
from defectkd.distill.cwd import CWDLoss
from defectkd.distill.dkd import DKDLoss
from defectkd.distill.fitnet import FitNetLoss
from defectkd.distill.kd import KDLoss, kd_from_probabilities, match_channels, match_size, soften
from defectkd.distill.mgd import MGDLoss
from defectkd.distill.pairwise import PairwiseLoss
from defectkd.distill.registry import build_loss, list_methods

__all__ = ["ATLoss", "CWDLoss", "ChannelAdapter", "DKDLoss", "FitNetLoss", "KDLoss", "MGDLoss", "PairwiseLoss",
           "build_loss", "kd_from_probabilities", "list_methods", "match_channels", "match_size", "match_spatial",
           "soften"]
