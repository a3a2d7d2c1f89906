"""Teachers: one trained model, or an ensemble of several whose averaged probabilities teach.

An ensemble is what Hinton et al. distilled in the first place: several models agree better than
any one, and a single small student can learn their average. `--teacher a.pt,b.pt,c.pt` makes one.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from defectkd.core.runs import resolve_weights
from defectkd.models.loading import load_checkpoint_model


class EnsembleTeacher(nn.Module):
    """Mean of the members' class probabilities (main heads), returned as log-probabilities under
    one head "out", so softmax(out / T) is the usual softened teacher at any T."""

    main_head = "out"

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.classes = 2 if any(getattr(m, "classes", 2) != 1 for m in members) else 1
        first = getattr(members[0], "feature_layer", None)  # feature distillation taps the first member
        self.feature_layer = f"members.0.{first}" if first else None

    def forward_heads(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        probs = []
        for m in self.members:
            z = m(x).float()
            if z.shape[1] == 1 and self.classes == 2:
                z = torch.cat([torch.zeros_like(z), z], dim=1)
            probs.append(torch.sigmoid(z) if self.classes == 1 else torch.softmax(z, dim=1))
        mean = torch.stack(probs).mean(0).clamp_min(1e-7)
        if self.classes == 1:  # a logit whose sigmoid is the mean probability
            return {"out": mean.log() - (1 - mean).clamp_min(1e-7).log()}
        return {"out": mean.log()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_heads(x)["out"]


def teacher_files(spec: str | Path) -> list[Path]:
    """Weights files of a teacher spec: a run folder or file, or several joined by commas."""
    return [resolve_weights(part.strip()) for part in str(spec).split(",") if part.strip()]


def load_teacher(spec: str | Path) -> tuple[nn.Module, str]:
    """(teacher in eval mode, a short name such as 'unet-r50' or 'ensemble(unet-r50, mcff-l)')."""
    loaded = [load_checkpoint_model(f) for f in teacher_files(spec)]
    if len(loaded) == 1:
        model, hp = loaded[0]
        return model, hp["model_name"]
    names = ", ".join(hp["model_name"] for _, hp in loaded)
    return EnsembleTeacher([m for m, _ in loaded]).eval(), f"ensemble({names})"


def join_files(files: list[Path]) -> str:
    return ",".join(str(Path(f).resolve()) for f in files)
