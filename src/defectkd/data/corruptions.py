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
import zlib
from collections.abc import Iterable, Sequence

import albumentations as A
import cv2
import numpy as np

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


def _check(name: str, severity: int) -> None:
    if name not in CORRUPTIONS:
        raise ConfigError(f"unknown corruption {name!r} (valid: {', '.join(CORRUPTIONS)})")
    if severity not in SEVERITIES:
        raise ConfigError(f"corruption severity {severity!r} not in {', '.join(map(str, SEVERITIES))}")


def _albumentations(name: str, severity: int) -> A.BasicTransform:
    """The albumentations transform of a corruption with its parameters pinned to one severity."""
    k = severity - 1
    if name in ("salt", "pepper", "salt-pepper"):
        share = {"salt": 1.0, "pepper": 0.0, "salt-pepper": 0.5}[name]
        return A.SaltAndPepper(amount=(NOISE_AMOUNT[k],) * 2, salt_vs_pepper=(share, share), p=1.0)
    if name == "gaussian-noise":
        return A.GaussNoise(std_range=(NOISE_STD[k],) * 2, per_channel=True, p=1.0)
    if name == "gaussian-blur":
        return A.GaussianBlur(blur_limit=0, sigma_limit=(BLUR_SIGMA[k],) * 2, p=1.0)
    if name == "motion-blur":
        return A.MotionBlur(blur_limit=(MOTION_KERNEL[k],) * 2, allow_shifted=False, direction_range=(0.0, 0.0),
                            p=1.0)
    if name == "jpeg":
        return A.ImageCompression(compression_type="jpeg", quality_range=(JPEG_QUALITY[k],) * 2, p=1.0)
    raise AssertionError(name)


_TRANSFORMS: dict[tuple[str, int], A.BasicTransform] = {}


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
    if name == "crack-texture":
        return _crack_texture(image, severity, np.random.default_rng(seed))
    if name == "brightness-contrast":
        k = severity - 1
        sign = 1.0 if np.random.default_rng(seed).random() < 0.5 else -1.0
        c, b = CONTRAST_DROP[k], sign * BRIGHTNESS_SHIFT[k]
        # albumentations: img x (1 + contrast) + brightness x 255; the c / 2 recentres the contrast on grey 127.5
        transform = A.RandomBrightnessContrast(brightness_limit=(b + c / 2,) * 2, contrast_limit=(-c, -c), p=1.0)
    else:
        transform = _TRANSFORMS.get((name, severity))
        if transform is None:
            transform = _TRANSFORMS[(name, severity)] = _albumentations(name, severity)
    transform.set_random_seed(seed)
    return transform(image=np.ascontiguousarray(image))["image"]


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
