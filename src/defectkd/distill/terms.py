"""What every task's distillation module shares: the frozen teacher, weighted terms, feature pairs and
their taps, loss construction checked on a probe, DKD's epoch counter.

Segmentation (engine/distill_module.py) and classification (engine/classify_module.py) differ only
in how logits terms see the heads; detection (engine/detect_module.py) has feature terms only, on its
FPN levels; the rest is here, once.
"""

from __future__ import annotations

import torch
from torch import nn

from defectkd.distill import build_loss
from defectkd.distill.features import FeatureTaps, parse_feature_pairs
from defectkd.distill.recipes import CHANNEL_ADAPTED


def default_feature_pair(student: nn.Module, teacher: nn.Module | None) -> list[tuple[str, str]]:
    """(student.feature_layer, teacher.feature_layer): each model names its own best tap. Models with several
    levels (`feature_layers`, a detector's FPN levels) pair the levels both have, by name."""
    s_levels, t_levels = getattr(student, "feature_layers", None), getattr(teacher, "feature_layers", None)
    if s_levels and t_levels and any(p in t_levels for p in s_levels):
        return [(p, p) for p in s_levels if p in t_levels]
    s, t = getattr(student, "feature_layer", None), getattr(teacher, "feature_layer", None)
    if not s or not t:
        who = "student" if not s else "teacher"
        raise ValueError(f"feature distillation needs layer pairs: the {who} names no default feature layer; "
                         "give feat=student.path:teacher.path (see `defectkd layers --model NAME`)")
    return [(s, t)]


def try_loss(loss: nn.Module, s: torch.Tensor, t: torch.Tensor, target, what: str) -> None:
    """Run a loss once on probe tensors: a shape it cannot take fails at setup, not mid-run.
    eval: no BatchNorm statistics from the probe; fork_rng: MGD's mask draw leaves no trace."""
    try:
        with torch.no_grad(), torch.random.fork_rng():
            loss.eval()(s, t, target)
        loss.train()
    except (ValueError, RuntimeError) as exc:
        raise ValueError(f"{what} ({str(exc).splitlines()[0]})") from None


class DistillTerms:
    """Mixin for a LightningModule whose `self.model` is the student."""

    def setup_terms(self, config: dict, teacher: nn.Module | None) -> None:
        if teacher is not None:
            teacher.eval().requires_grad_(False)
        object.__setattr__(self, "teacher", teacher)  # not a child: not trained, saved or moved by Lightning
        self.hard_weight = float(config["hard_weight"])
        self.terms = [dict(t) for t in config["losses"]]
        default_pairs = parse_feature_pairs(config.get("feat") or [])
        self.pairs: list[list[tuple[str, str]]] = []
        for term in self.terms:
            if term["on"] != "features":
                self.pairs.append([])
            elif term.get("feat"):
                self.pairs.append(parse_feature_pairs(term["feat"]))
            else:
                self.pairs.append(default_pairs or default_feature_pair(self.model, teacher))
        if any(self.pairs) and teacher is None:
            raise ValueError("feature distillation needs the teacher in memory: give a teacher, not soft_labels")
        student_paths = [s for pairs in self.pairs for s, _ in pairs]
        teacher_paths = [t for pairs in self.pairs for _, t in pairs]
        self.student_taps = FeatureTaps(self.model, student_paths, "student") if student_paths else None
        self.teacher_taps = FeatureTaps(teacher, teacher_paths, "teacher") if teacher_paths else None

    def feature_losses(self, term: dict, pairs: list[tuple[str, str]], s_feats: dict, t_feats: dict) -> nn.ModuleList:
        """One loss per feature pair, adapters sized from the probe's maps, each tried once."""
        per_pair = nn.ModuleList()
        for s_path, t_path in pairs:
            s, t = s_feats[s_path], t_feats[t_path]
            params = dict(term["params"])
            if term["method"] in CHANNEL_ADAPTED and s.dim() == 4 and t.dim() == 4:
                params.update(student_channels=s.shape[1], teacher_channels=t.shape[1])
            loss = build_loss(term["method"], **params)
            try_loss(loss, s.float(), t.float(), None,
                     f"feat {s_path}:{t_path} ({term['method']}): student output {tuple(s.shape)} and teacher "
                     f"output {tuple(t.shape)} cannot be aligned")
            per_pair.append(loss)
        return per_pair

    @staticmethod
    def feature_value(losses: nn.ModuleList, pairs: list[tuple[str, str]], s_feats: dict, t_feats: dict):
        return sum(fn(s_feats[s].float(), t_feats[t].float()) for fn, (s, t) in zip(losses, pairs, strict=True))

    def on_fit_start(self) -> None:
        if self.teacher is not None:
            self.teacher.to(self.device)
            if self.cfg.get("channels_last"):
                self.teacher.to(memory_format=torch.channels_last)
            self.teacher.eval()

    def on_train_epoch_start(self) -> None:
        for loss in self.distill_losses.modules():
            if hasattr(loss, "set_epoch"):  # DKD's warm-up counts epochs from 1, as in its original code
                loss.set_epoch(self.current_epoch + 1)
