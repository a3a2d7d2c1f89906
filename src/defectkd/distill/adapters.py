"""Shared pieces of the feature losses: shape checks, the 1x1 channel adapter, spatial matching.

Shape problems that no adapter can fix raise ValueError with one line naming the shapes given and
the shapes expected, so a mis-wired feature layer fails on the first batch instead of training on
broadcast garbage (known pitfalls of other toolkits, docs/methods.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def shape_of(t: torch.Tensor) -> str:
    return "(" + ", ".join(str(d) for d in t.shape) + ")"


def check_pair(name: str, student: torch.Tensor, teacher: torch.Tensor, dims: tuple[int, ...] = (4,)) -> None:
    """Both tensors have an allowed number of dimensions, the same one, and the same batch size."""
    want = " or ".join(f"{d}-D" for d in dims)
    for role, t in (("student", student), ("teacher", teacher)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name}: {role} must be a tensor, got {type(t).__name__}")
        if t.dim() not in dims:
            raise ValueError(f"{name}: {role} is {t.dim()}-D {shape_of(t)}, expected {want} "
                             f"(student {shape_of(student)}, teacher {shape_of(teacher)})")
    if student.dim() != teacher.dim():
        raise ValueError(f"{name}: student {shape_of(student)} and teacher {shape_of(teacher)} differ in "
                         f"dimensions, expected both {want}")
    if student.shape[0] != teacher.shape[0]:
        raise ValueError(f"{name}: batch sizes differ, student {shape_of(student)} vs teacher "
                         f"{shape_of(teacher)}, expected the same N")


def check_channels(name: str, student: torch.Tensor, teacher: torch.Tensor) -> None:
    """Same channel count (after any adapter); the message says how to get an adapter."""
    cs, ct = student.shape[1], teacher.shape[1]
    if cs != ct:
        raise ValueError(f"{name}: student {shape_of(student)} has {cs} channels, teacher {shape_of(teacher)} "
                         f"{ct}; expected equal channels, or build the loss with "
                         f"student_channels={cs}, teacher_channels={ct} for a 1x1 adapter")


def match_spatial(student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
    """The student map bilinearly resized to the teacher's H, W (the teacher is the target, so it
    is never resampled); 4-D maps only."""
    if student_feat.dim() != 4 or teacher_feat.dim() != 4:
        raise ValueError(f"match_spatial: expected 4-D maps (N, C, H, W), got student {shape_of(student_feat)}, "
                         f"teacher {shape_of(teacher_feat)}")
    if student_feat.shape[-2:] == teacher_feat.shape[-2:]:
        return student_feat
    return F.interpolate(student_feat, size=teacher_feat.shape[-2:], mode="bilinear", align_corners=False)


def full_precision(t: torch.Tensor):
    """Context without autocast: the loss arithmetic (softmax over positions, squared errors of
    near-equal similarities) runs in float32 even when the networks run in bf16/fp16."""
    return torch.autocast(device_type=t.device.type, enabled=False)


class ChannelAdapter(nn.Module):
    """1x1 conv from the student's channels to the teacher's; identity when they are equal or one is
    not given. `bn_relu=True` appends BatchNorm + ReLU (the FitNets regressor).

    The declared channel counts are checked on every call, so features of another layer than the one
    configured are refused rather than silently projected."""

    def __init__(self, student_channels: int | None = None, teacher_channels: int | None = None,
                 bn_relu: bool = False) -> None:
        super().__init__()
        for label, c in (("student_channels", student_channels), ("teacher_channels", teacher_channels)):
            if c is not None and (isinstance(c, bool) or not isinstance(c, int) or c < 1):
                raise ValueError(f"{label} must be a positive integer or None, got {c!r}")
        self.student_channels = student_channels
        self.teacher_channels = teacher_channels
        self.identity = student_channels is None or teacher_channels is None or student_channels == teacher_channels
        if self.identity:
            self.proj: nn.Module = nn.Identity()
        else:
            conv = nn.Conv2d(student_channels, teacher_channels, kernel_size=1, bias=not bn_relu)
            self.proj = nn.Sequential(conv, nn.BatchNorm2d(teacher_channels), nn.ReLU(inplace=True)) if bn_relu \
                else conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"channel adapter: expected 4-D features (N, C, H, W), got {shape_of(x)}")
        if self.student_channels is not None and x.shape[1] != self.student_channels:
            raise ValueError(f"student features {shape_of(x)} have {x.shape[1]} channels, expected "
                             f"student_channels={self.student_channels} as the loss was built")
        return self.proj(x)

    def adapt(self, name: str, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """The student projected to the teacher's channels, after checking both declared counts."""
        if self.student_channels is not None and student.shape[1] != self.student_channels:
            raise ValueError(f"{name}: student {shape_of(student)} has {student.shape[1]} channels, expected "
                             f"student_channels={self.student_channels} as the loss was built")
        if self.teacher_channels is not None and teacher.shape[1] != self.teacher_channels:
            raise ValueError(f"{name}: teacher {shape_of(teacher)} has {teacher.shape[1]} channels, expected "
                             f"teacher_channels={self.teacher_channels} as the loss was built")
        out = self.proj(student)
        check_channels(name, out, teacher)
        return out

    def extra_repr(self) -> str:
        return f"student_channels={self.student_channels}, teacher_channels={self.teacher_channels}"
