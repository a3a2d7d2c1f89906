"""What every task's distillation module shares: the frozen teacher, weighted terms, feature pairs and
their taps, loss construction checked on a probe, DKD's epoch counter.

Segmentation (engine/distill_module.py) and classification (engine/classify_module.py) differ only
in how logits terms see the heads; detection (engine/detect_module.py) has feature terms only, on its
FPN levels; the rest is here, once.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from defectkd.distill import build_loss
from defectkd.distill.balance import TermBalancer, default_shares
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


log = logging.getLogger("defectkd")


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
        balanced = config.get("balance") == "loss" and self.terms
        self.balancer = TermBalancer(default_shares(self.terms), config.get("balance_steps", 20)) if balanced else None
        # factors the collapse guard lowers a dominating term by (dominant=rescale); saved, so a resume keeps them
        self.register_buffer("term_scale", torch.ones(len(self.terms)))

    def term_weights(self) -> list[float]:
        """The weights the loss uses now: the balancer's (measured) or the config's, times any factor the collapse
        guard set on a term that drowned the task loss."""
        base = self.balancer.weights.tolist() if self.balancer is not None else [float(t["weight"]) for t in self.terms]
        return [w * s for w, s in zip(base, self.term_scale.tolist(), strict=True)]

    def rescale_term(self, i: int, ratio: float) -> float:
        """Lower term i, which stood at `ratio` x the weighted task loss, to its balanced share of it (0.5 logits,
        0.25 features, or its own `share`); returns the weight it has now."""
        share = default_shares(self.terms)[i]
        self.term_scale[i] *= share / ratio
        return self.term_weights()[i]

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """A checkpoint written before term_scale existed resumes with every factor at 1."""
        checkpoint["state_dict"].setdefault("term_scale", torch.ones(len(self.terms)))
        super().on_load_checkpoint(checkpoint)

    def _mean_over_ranks(self, row: torch.Tensor) -> torch.Tensor:
        trainer = self._trainer
        return trainer.strategy.reduce(row, reduce_op="mean") if trainer is not None and trainer.world_size > 1 else row

    def weigh_terms(self, task: torch.Tensor, values: list[torch.Tensor], n: int) -> torch.Tensor:
        """sum_i w_i * value_i, each term logged raw, weighted and with its weight; `task` is the weighted task
        loss the balancer measures the terms against (while it calibrates)."""
        if self.balancer is not None and self.training and self.balancer.calibrating:
            ramps = [getattr(loss, "warmup_factor", 1.0) for loss in self.distill_losses]  # DKD: size before ramp
            raw = [v / max(r, 1e-6) for v, r in zip(values, ramps, strict=True)]
            if self.balancer.update(task, raw, reduce=self._mean_over_ranks) and self.global_rank == 0:
                log.info(self.balancer.describe([t["method"] for t in self.terms]))
        distill = task.new_zeros(())
        for i, (term, w, value) in enumerate(zip(self.terms, self.term_weights(), values, strict=True)):
            name = f"{i}_{term['method']}"
            self.log(f"train/term{name}", value, on_step=True, on_epoch=True, batch_size=n)
            self.log(f"train/weight{name}", w, on_step=False, on_epoch=True, batch_size=n)
            distill = distill + w * value
        return distill

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
