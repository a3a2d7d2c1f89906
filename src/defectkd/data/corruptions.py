"""Image corruptions at five severities, for robustness tests and noisy training.

Every corruption maps an RGB uint8 (H, W, 3) image to one of the same shape and dtype, fully
determined by `seed`; masks are never touched (the crack is where it was). Parameters are fixed per
severity (1 = mild .. 5 = severe); only positions, noise values and directions are drawn from `seed`.

| name                | what                                              | 1     | 2     | 3     | 4     | 5     |
|---------------------|---------------------------------------------------|-------|-------|-------|-------|-------|
| salt                | fraction of pixels set to white (all channels)    | 1 %   | 2 %   | 4 %   | 7 %   | 10 %  |
| pepper              | fraction of pixels set to black                   | 1 %   | 2 %   | 4 %   | 7 %   | 10 %  |
| salt-pepper         | fraction of pixels set to white or black, 50:50   | 1 %   | 2 %   | 4 %   | 7 %   | 10 %  |
| gaussian-noise      | additive noise, std as a fraction of 255          | 0.04  | 0.08  | 0.12  | 0.18  | 0.26  |
| gaussian-blur       | Gaussian blur sigma (px)                          | 0.6   | 1.0   | 1.5   | 2.0   | 3.0   |
| motion-blur         | line kernel length (px), random angle             | 3     | 5     | 7     | 9     | 13    |
| jpeg                | JPEG quality                                      | 60    | 40    | 25    | 15    | 8     |
| brightness-contrast | contrast c (reduced around grey 127.5) and        | .2/.05| .35/.1| .5/.15| .6/.2 | .7/.25|
|                     | brightness shift +-b x 255 (sign drawn): c / b    |       |       |       |       |       |
| crack-texture       | thin dark random-walk lines NOT in the mask:      | 1     | 2     | 3     | 5     | 8     |
|                     | number of lines (darkening 0.25 .. 0.45)          |       |       |       |       |       |

brightness-contrast computes out = (img - 127.5) x (1 - c) + 127.5 + b x 255 (clipped); crack-texture
draws the random walks of `data.synthetic` (1-2 px, with branches), a distractor a model must not
segment. gaussian-blur and jpeg are torchvision.transforms.v2.functional (gaussian_blur with a
2 x int(3.5 sigma) + 1 kernel, jpeg); the others are small numpy/OpenCV code where torchvision has no such
operation or cannot draw from a per-image seed: salt/pepper set exactly int(H x W x amount) pixels
(numpy `choice` without replacement), gaussian-noise adds numpy normal noise, motion-blur filters with a
centred line kernel (cv2.filter2D, reflected borders), brightness-contrast is a 256-entry lookup table.
All but gaussian-noise and jpeg give the pixels the albumentations 2.0.8 suite gave for the same seed (gaussian-blur
up to +-1 on a few pixels in 10^5); gaussian-noise draws other noise of the same std, and jpeg now encodes the
image as RGB (albumentations passed RGB to OpenCV as BGR, which swaps the chroma weights; about 1 grey level).

`NoisyMix` corrupts a share `p` of training images with a random corruption and severity (the
RFKD recipe: clean:noisy 2:1 with pepper, salt, crack-texture and gaussian-blur).
`write_corrupted` writes corrupted copies of a split as OUT/<corruption>/<severity>/{images,masks}/.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Iterable, Sequence

import cv2
import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

from defectkd.core.errors import ConfigError, DataError

CORRUPTIONS: tuple[str, ...] = ("salt", "pepper", "salt-pepper", "gaussian-noise", "gaussian-blur", "motion-blur",
                                "jpeg", "brightness-contrast", "crack-texture")
SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)
RFKD_CORRUPTIONS: tuple[str, ...] = ("pepper", "salt", "crack-texture", "gaussian-blur")

NOISE_AMOUNT = (0.01, 0.02, 0.04, 0.07, 0.10)
NOISE_STD = (0.04, 0.08, 0.12, 0.18, 0.26)
BLUR_SIGMA = (0.6, 1.0, 1.5, 2.0, 3.0)
MOTION_KERNEL = (3, 5, 7, 9, 13)
JPEG_QUALITY = (60, 40, 25, 15, 8)
CONTRAST_DROP = (0.2, 0.35, 0.5, 0.6, 0.7)
BRIGHTNESS_SHIFT = (0.05, 0.1, 0.15, 0.2, 0.25)
CRACK_LINES = (1, 2, 3, 5, 8)
CRACK_DARKENING = (0.25, 0.3, 0.35, 0.4, 0.45)
SALT_SHARE = {"salt": 1.0, "pepper": 0.0, "salt-pepper": 0.5}


def _check(name: str, severity: int) -> None:
    if name not in CORRUPTIONS:
        raise ConfigError(f"unknown corruption {name!r} (valid: {', '.join(CORRUPTIONS)})")
    if severity not in SEVERITIES:
        raise ConfigError(f"corruption severity {severity!r} not in {', '.join(map(str, SEVERITIES))}")


def brightness_contrast(image: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """uint8 `image` x `alpha` + `beta` (grey levels), clipped to 0..255 and truncated, through a 256-entry lookup
    table. torchvision's adjust_contrast blends towards the image's mean grey and its adjust_brightness only
    multiplies, so neither is this map (the one the training augmentations and brightness-contrast use)."""
    lut = np.clip(np.arange(256, dtype=np.float32) * alpha + beta, 0, 255).astype(np.uint8)
    return cv2.LUT(np.ascontiguousarray(image), lut)


def _chw(image: np.ndarray) -> torch.Tensor:
    """(H, W, C) array as a (C, H, W) tensor sharing its memory (copied only if read-only or not contiguous)."""
    return torch.from_numpy(np.require(image, requirements=["C", "W"])).permute(2, 0, 1)


def _hwc(tensor: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.permute(1, 2, 0).numpy())


def _salt_pepper(image: np.ndarray, amount: float, salt_share: float, seed: int) -> np.ndarray:
    """Exactly int(H x W x amount) distinct pixels, the first int(n x salt_share) of them white, the rest black
    (all channels). Torchvision has no impulse noise; kornia's draws each pixel independently (no exact count)."""
    h, w = image.shape[:2]
    n = int(h * w * amount)
    n_salt = int(n * salt_share)
    hit = np.random.default_rng(seed).choice(h * w, size=n, replace=False)
    out = image.copy()
    flat = out.reshape(h * w, -1)
    flat[hit[:n_salt]] = 255
    flat[hit[n_salt:]] = 0
    return out


def _gaussian_noise(image: np.ndarray, std: float, seed: int) -> np.ndarray:
    """Additive per-pixel, per-channel N(0, (std x 255)^2) noise from a numpy generator seeded per image
    (torchvision's gaussian_noise draws from torch's global generator, which a per-image seed cannot own).
    The noise is cut to whole grey levels towards zero, as albumentations did: 0.4 grey levels under the
    nominal std (9.8 instead of 10.2 at severity 1), the strength the suite has always had."""
    noise = np.trunc(np.random.default_rng(seed).normal(0.0, std * 255.0, image.shape))
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def _motion_kernel(size: int, angle: float) -> np.ndarray:
    """A centred line `size` px long at `angle` degrees, normalised to sum 1 (albumentations' MotionBlur kernel)."""
    kernel = np.zeros((size, size), np.float32)
    t = np.linspace(-(size // 2), size // 2, size)
    rad = np.deg2rad(angle)
    x = np.clip(np.round(size // 2 + np.cos(rad) * t), 0, size - 1).astype(int)
    y = np.clip(np.round(size // 2 + np.sin(rad) * t), 0, size - 1).astype(int)
    kernel[y, x] = 1
    return kernel / kernel.sum()


def _motion_blur(image: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Line-kernel blur in a direction drawn from `seed` (cv2.filter2D, reflected borders). Torchvision has no
    motion blur and kornia's anti-aliased kernel is a different one; this is the kernel the suite always used."""
    angle = random.Random(seed).uniform(0, 360)  # the draw albumentations made from the same seed
    return cv2.filter2D(image, -1, _motion_kernel(size, angle), borderType=cv2.BORDER_REFLECT_101)


def _gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    size = int(sigma * 3.5) * 2 + 1  # PIL's (and albumentations') kernel size for a sigma
    return _hwc(TF.gaussian_blur(_chw(image), [size, size], [sigma, sigma]))


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    return _hwc(TF.jpeg(_chw(image), quality))


def _crack_texture(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Thin dark crack-like random walks (with branches) darkening the image; not part of any mask."""
    from defectkd.data.draw import crack_walk as _walk  # the synthetic cracks' drawing, reused as a distractor

    h, w = image.shape[:2]
    size = max(h, w)
    coverage = np.zeros((h, w), np.float32)
    for _ in range(CRACK_LINES[severity - 1]):
        start = (rng.uniform(0, w), rng.uniform(0, h))
        _walk(rng, start, rng.uniform(0, 2 * math.pi), rng.uniform(0.3, 0.8) * size, rng.uniform(1.2, 2.2), size,
              coverage, 0, 1)
    soft = np.clip(cv2.GaussianBlur(coverage, (0, 0), 0.6), 0, 1)
    darkened = image.astype(np.float32) * (1 - CRACK_DARKENING[severity - 1] * soft)[..., None]
    return np.clip(np.round(darkened), 0, 255).astype(np.uint8)


def corrupt(image: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """`image` (RGB uint8, H x W x 3) corrupted by `name` at `severity` (1..5); deterministic given `seed`."""
    _check(name, severity)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise DataError(f"corrupt: expected an RGB uint8 H x W x 3 image, got {image.dtype} {image.shape}")
    k = severity - 1
    if name in SALT_SHARE:
        return _salt_pepper(image, NOISE_AMOUNT[k], SALT_SHARE[name], seed)
    if name == "gaussian-noise":
        return _gaussian_noise(image, NOISE_STD[k], seed)
    if name == "gaussian-blur":
        return _gaussian_blur(image, BLUR_SIGMA[k])
    if name == "motion-blur":
        return _motion_blur(image, MOTION_KERNEL[k], seed)
    if name == "jpeg":
        return _jpeg(image, JPEG_QUALITY[k])
    if name == "brightness-contrast":
        sign = 1.0 if np.random.default_rng(seed).random() < 0.5 else -1.0
        c, b = CONTRAST_DROP[k], sign * BRIGHTNESS_SHIFT[k]
        # img x (1 - c) + (b + c / 2) x 255 = (img - 127.5) x (1 - c) + 127.5 + b x 255
        return brightness_contrast(image, 1.0 - c, (b + c / 2) * 255)
    return _crack_texture(image, severity, np.random.default_rng(seed))


def corruption_seed(seed: int, key: str, name: str, severity: int) -> int:
    """Seed for one image (`key`, e.g. its file stem) and cell: the same on every machine and run, so every
    model (and `defectkd corrupt`) sees the very same corrupted image."""
    return zlib.crc32(f"{seed}/{key}/{name}/{severity}".encode())


def _names(value: str | Iterable[str] | None, default: Sequence[str]) -> list[str]:
    if value is None:
        return list(default)
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(v).strip() for v in items if str(v).strip()]


def select(corruptions: str | Iterable[str] | None = None,
           severities: str | Iterable[int] | None = None) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Validated (corruptions, severities) from lists or comma-separated text; None means all."""
    names = _names(corruptions, CORRUPTIONS)
    bad = [n for n in names if n not in CORRUPTIONS]
    if bad or not names:
        raise ConfigError(f"unknown corruption {(bad or [''])[0]!r} (valid: {', '.join(CORRUPTIONS)})")
    levels = []
    for s in _names(severities, [str(s) for s in SEVERITIES]):
        try:
            level = int(s)
        except ValueError:
            level = None
        if level not in SEVERITIES:
            raise ConfigError(f"corruption severity {s!r} not in {', '.join(map(str, SEVERITIES))}")
        levels.append(level)
    if not levels:
        raise ConfigError(f"no corruption severity given (valid: {', '.join(map(str, SEVERITIES))})")
    return tuple(dict.fromkeys(names)), tuple(dict.fromkeys(levels))


class NoisyMix:
    """Corrupts a training image with probability `p` (default 1/3: clean:noisy 2:1), with a corruption
    drawn uniformly from `corruptions` (default the RFKD four) and a severity uniformly from `severities`.

    It keeps its own numpy generator: `set_random_seed(seed)` reseeds it (call it in each DataLoader
    worker, e.g. with `torch.initial_seed() % 2**32`, so workers do not repeat each other).

        mix = NoisyMix(seed=0)
        image = mix(image)          # RGB uint8 H x W x 3 in, same out (a new array when corrupted)
    """

    def __init__(self, p: float = 1 / 3, corruptions: Sequence[str] = RFKD_CORRUPTIONS,
                 severities: Sequence[int] = SEVERITIES, seed: int = 0) -> None:
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"NoisyMix: p must lie in [0, 1], got {p}")
        self.p = p
        self.corruptions, self.severities = select(corruptions, severities)
        self.set_random_seed(seed)

    def set_random_seed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        if self.rng.random() >= self.p:
            return image
        name = self.corruptions[int(self.rng.integers(len(self.corruptions)))]
        severity = self.severities[int(self.rng.integers(len(self.severities)))]
        return corrupt(image, name, severity, seed=int(self.rng.integers(2**32)))
