"""Reading images and masks from disk, whatever the mask encoding.

Masks may be 1-bit, 0/1, 0/255 or soft grey PNG/JPEG/BMP, or CrackForest .mat files.
A mask whose largest value is 1 is read as "> 0"; otherwise as "> half of 8-bit range" (127),
so anti-aliased or JPEG-compressed 0/255 masks stay correct.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from defectkd.core.errors import DataError
from defectkd.core.imagefile import decode

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg", ".gif", ".mat")


def image_size(path: str | Path) -> tuple[tuple[int, int] | None, str]:
    """((width, height), "") of a whole, decodable image, else (None, why): what `data check` records."""
    img, why = decode(path)
    return (None, why) if img is None else ((img.shape[1], img.shape[0]), "")


def read_image(path: str | Path) -> np.ndarray:
    """RGB uint8 (H, W, 3); raises DataError naming the file when it cannot be decoded or was cut short."""
    img, why = decode(path)
    if img is None:
        raise DataError(f"{path}: {why}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def binarize_mask(raw: np.ndarray) -> np.ndarray:
    """Any mask encoding to uint8 {0, 1}."""
    if raw.ndim == 3:
        raw = raw.max(axis=2)
    if raw.dtype == bool:
        return raw.astype(np.uint8)
    top = raw.max() if raw.size else 0
    if top <= 1:
        return (raw > 0).astype(np.uint8)
    if np.issubdtype(raw.dtype, np.integer) and raw.dtype.itemsize > 1 and top > 255:
        return (raw > np.iinfo(raw.dtype).max // 2).astype(np.uint8)
    return (raw > 127).astype(np.uint8)


def _mat_segmentation(obj) -> np.ndarray | None:
    """Find the `Segmentation` array inside a CrackForest/BSDS groundTruth (struct or cell of structs)."""
    if isinstance(obj, np.ndarray) and obj.dtype.names and "Segmentation" in obj.dtype.names:
        return _mat_segmentation(obj["Segmentation"])
    if isinstance(obj, np.ndarray) and obj.dtype == object:
        for item in obj.flat:
            found = _mat_segmentation(item)
            if found is not None:
                return found
        return None
    if isinstance(obj, np.void) and obj.dtype.names and "Segmentation" in obj.dtype.names:
        return _mat_segmentation(obj["Segmentation"])
    if isinstance(obj, np.ndarray) and obj.ndim >= 2 and np.issubdtype(obj.dtype, np.number):
        return obj
    return None


def read_mask(path: str | Path) -> np.ndarray:
    """Binary crack mask uint8 {0, 1} (H, W); CrackForest .mat: crack = Segmentation == 2."""
    path = Path(path)
    if path.suffix.lower() == ".mat":
        from scipy.io import loadmat

        try:
            mat = loadmat(str(path))
        except Exception as exc:  # scipy raises several types for broken files
            raise DataError(f"{path}: unreadable .mat file ({exc})") from None
        if "groundTruth" not in mat:
            raise DataError(f"{path}: .mat file has no 'groundTruth' variable")
        seg = _mat_segmentation(mat["groundTruth"])
        if seg is None:
            raise DataError(f"{path}: groundTruth has no 'Segmentation' field")
        return (np.asarray(seg) == 2).astype(np.uint8)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise DataError(f"{path}: unreadable or corrupt mask")
    if raw.ndim == 3 and raw.shape[2] == 4:
        raw = raw[..., :3]
    return binarize_mask(raw)


def list_images(folder: Path, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
