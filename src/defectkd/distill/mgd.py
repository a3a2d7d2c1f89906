"""Masked generative distillation (Yang et al. ECCV 2022), as in the original code.

align = 1x1 conv when C_s != C_t; a random mask M drops student positions (mask="spatial", shape
(N, 1, H, W), each zeroed with probability mask_ratio) or channels (mask="channel", (N, C_t, 1, 1),
the classification variant), or nothing (mask="none"); a generator G = conv3x3 -> ReLU -> conv3x3
must rebuild the teacher's features from what is left:
    L = alpha * sum((G(align(F_s) * M) - F_t)^2) / N.
A sum over channels and positions, divided by the batch size only, so the value grows with the
feature map's size: that is what the published alpha values (2e-5 detection / segmentation,
7e-5 classification) are tuned for. The student is resized to the teacher's H, W after align.
"""

from __future__ import annotations

import torch
from torch import nn

from defectkd.distill.adapters import ChannelAdapter, check_pair, full_precision, match_spatial, shape_of

MASKS = ("spatial", "channel", "none")


class MGDLoss(nn.Module):
    """`loss(student_feat, teacher_feat)`: both (N, C, H, W). Always trainable (the generation
    network; plus align when channels differ).

    `generator`: an optional torch.Generator the masks are drawn from (on its device, then moved);
    without one they come from the global RNG on the features' device, so `torch.manual_seed`
    reproduces them. `make_mask` is the single draw `forward` makes per call."""

    def __init__(self, student_channels: int | None = None, teacher_channels: int | None = None,
                 alpha: float = 2e-5, mask_ratio: float = 0.65, mask: str = "spatial",
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if teacher_channels is None and student_channels is None:
            raise ValueError("mgd needs teacher_channels (the generation network is built for them)")
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        if not 0 <= mask_ratio <= 1:
            raise ValueError(f"mask_ratio must be in [0, 1], got {mask_ratio}")
        if mask not in MASKS:
            raise ValueError(f"mask must be one of {', '.join(MASKS)}, got {mask!r}")
        self.align = ChannelAdapter(student_channels, teacher_channels)
        c = teacher_channels if teacher_channels is not None else student_channels
        self.channels = c
        self.alpha = float(alpha)
        self.mask_ratio = float(mask_ratio)
        self.mask = mask
        self.generator = generator
        self.generation = nn.Sequential(
            nn.Conv2d(c, c, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c, c, kernel_size=3, padding=1),
        )

    def make_mask(self, shape: tuple[int, ...] | torch.Size, device: torch.device | str) -> torch.Tensor | None:
        """The 0/1 float mask for aligned features of `shape` (N, C, H, W); None for mask="none"."""
        n, c, h, w = shape
        if self.mask == "none":
            return None
        size = (n, 1, h, w) if self.mask == "spatial" else (n, c, 1, 1)
        if self.generator is not None:
            mat = torch.rand(size, generator=self.generator, device=self.generator.device).to(device)
        else:
            mat = torch.rand(size, device=device)
        # the original code's comparisons: spatial zeroes rand > 1 - ratio, channel zeroes rand < ratio
        drop = mat > 1 - self.mask_ratio if self.mask == "spatial" else mat < self.mask_ratio
        return (~drop).float()

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        check_pair("mgd", student, teacher)
        teacher = teacher.detach()
        if teacher.shape[1] != self.channels:
            raise ValueError(f"mgd: teacher {shape_of(teacher)} has {teacher.shape[1]} channels, expected "
                             f"teacher_channels={self.channels} as the loss was built")
        s = match_spatial(self.align.adapt("mgd", student, teacher), teacher)
        m = self.make_mask(s.shape, s.device)
        if m is not None:
            s = s * m.to(s.dtype)
        new = self.generation(s)
        with full_precision(new):
            return self.alpha * (new.float() - teacher.float()).pow(2).sum() / teacher.shape[0]

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, mask_ratio={self.mask_ratio}, mask={self.mask!r}"
