"""Teachers: one trained model, or an ensemble of several whose averaged probabilities teach.

An ensemble is what Hinton et al. distilled in the first place: several models agree better than
any one, and a single small student can learn their average. `--teacher a.pt,b.pt,c.pt` makes one.
Mirror views (test-time augmentation) make a teacher stronger the same way at no training cost: each member also
sees the image flipped, and its answer is flipped back before the average (`teacher_tta`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from defectkd.core.runs import resolve_weights
from defectkd.models.loading import load_checkpoint_model


class EnsembleTeacher(nn.Module):
    """Mean of the members' class probabilities (main heads), returned as log-probabilities under
    one head "out", so softmax(out / T) is the usual softened teacher at any T. `mean="logits"` averages
    log-probabilities instead (a normalised geometric mean): where members disagree it stays as sure as
    they are on average rather than drifting towards 0.5, so the taught probabilities stay sharp."""

    main_head = "out"

    def __init__(self, members: list[nn.Module], tta: str = "none", mean: str = "probs") -> None:
        super().__init__()
        if tta not in TTA_VIEWS:
            raise ValueError(f"teacher_tta must be one of {', '.join(TTA_VIEWS)}, got {tta!r}")
        if mean not in MEANS:
            raise ValueError(f"teacher_mean must be one of {', '.join(MEANS)}, got {mean!r}")
        self.mean = mean
        self.members = nn.ModuleList(members)
        self.views = TTA_VIEWS[tta]
        self.classes = 2 if any(getattr(m, "classes", 2) != 1 for m in members) else 1
        first = getattr(members[0], "feature_layer", None)  # feature distillation taps the first member
        self.feature_layer = f"members.0.{first}" if first else None

    def forward_heads(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        probs = []
        for m in self.members:
            for dims in self.views:  # the plain view last, so a feature tap on a member keeps its features
                z = m(x.flip(dims) if dims else x).float()
                z = z.flip(dims) if dims else z
                if z.shape[1] == 1 and self.classes == 2:
                    z = torch.cat([torch.zeros_like(z), z], dim=1)
                if self.mean == "logits":  # a logit (sigmoid) or log-probabilities, averaged as they are
                    probs.append(z if self.classes == 1 else torch.log_softmax(z, dim=1))
                else:
                    probs.append(torch.sigmoid(z) if self.classes == 1 else torch.softmax(z, dim=1))
        if self.mean == "logits":
            return {"out": torch.stack(probs).mean(0)}
        mean = torch.stack(probs).mean(0).clamp_min(1e-7)
        if self.classes == 1:  # a logit whose sigmoid is the mean probability
            return {"out": mean.log() - (1 - mean).clamp_min(1e-7).log()}
        return {"out": mean.log()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_heads(x)["out"]


MEANS = ("probs", "logits")  # how an ensemble averages its members' answers

# Image axes each view flips, the plain view (no flip) last: horizontal mirror, or all four flips of both axes
# (cracks have no up or down).
TTA_VIEWS: dict[str, tuple[tuple[int, ...], ...]] = {
    "none": ((),),
    "hflip": ((-1,), ()),
    "flips": ((-1,), (-2,), (-2, -1), ()),
}


def teacher_files(spec: str | Path) -> list[Path]:
    """Weights files of a teacher spec: a run folder or file, or several joined by commas."""
    return [resolve_weights(part.strip()) for part in str(spec).split(",") if part.strip()]


def load_teacher(spec: str | Path, tta: str = "none", mean: str = "probs") -> tuple[nn.Module, str]:
    """(teacher in eval mode, a short name such as 'unet-r50', 'ensemble(unet-r50, mcff-l)' or
    'unet-r50 +hflip'). One model without mirror views is returned as it is (all its heads can teach)."""
    return teacher_from(load_members(spec), tta, mean)


def load_members(spec: str | Path) -> list[tuple[nn.Module, dict]]:
    """(model, hyper-parameters) of every weights file of a teacher spec."""
    return [load_checkpoint_model(f) for f in teacher_files(spec)]


def teacher_from(loaded: list[tuple[nn.Module, dict]], tta: str = "none",
                 mean: str = "probs") -> tuple[nn.Module, str]:
    """`load_teacher` for members already loaded (callers that also read their hyper-parameters)."""
    names = ", ".join(hp["model_name"] for _, hp in loaded)
    if len(loaded) == 1 and tta == "none":
        return loaded[0][0], names
    name = names if len(loaded) == 1 else f"{'geometric ' if mean == 'logits' else ''}ensemble({names})"
    return EnsembleTeacher([m for m, _ in loaded], tta, mean).eval(), name + ("" if tta == "none" else f" +{tta}")


def join_files(files: list[Path]) -> str:
    return ",".join(str(Path(f).resolve()) for f in files)
