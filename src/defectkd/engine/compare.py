"""Is a distilled student better than the same student trained alone? The difference of the task's metric on the
same images, with a paired bootstrap 95 % interval (the images are resampled together for both models). A task
gives one row of numbers per image (`Task.image_rows`) and the metric of any set of rows (`Task.rows_metric`), so
a pooled metric (crack F1 over all pixels) is recomputed on every resample instead of averaged per image."""

from __future__ import annotations

import numpy as np

RESAMPLES = 2000


def paired_bootstrap(task, a: np.ndarray, b: np.ndarray, n: int = RESAMPLES, seed: int = 0) -> dict:
    """A - B of `task.rows_metric` with the 2.5th and 97.5th percentiles of the difference over `n` paired
    resamples of the images; the verdict is "within noise" when the interval holds 0."""
    if len(a) != len(b):
        raise ValueError(f"the two models were scored on {len(a)} and {len(b)} images")
    idx = np.random.default_rng(seed).integers(0, len(a), (n, len(a)))
    diff = task.rows_metric(a[idx]) - task.rows_metric(b[idx])
    low, high = (float(v) for v in np.percentile(diff, [2.5, 97.5]))
    gain = float(task.rows_metric(a) - task.rows_metric(b))
    return {"images": len(a), "a": float(task.rows_metric(a)), "b": float(task.rows_metric(b)), "gain": gain,
            "low": low, "high": high,
            "verdict": "within noise" if low <= 0 <= high else ("better" if low > 0 else "worse")}


def student_gain(task, distilled, alone, samples: list, split: str) -> dict:
    """The distilled student against the same student alone on `samples` (of `split`): what `distill --baseline`
    and the demo report, in the words `describe_gain` reads."""
    from pathlib import Path

    r = paired_bootstrap(task, task.image_rows(Path(distilled), samples), task.image_rows(Path(alone), samples))
    return {"metric": task.metric_name, "split": split, "distilled": r.pop("a"), "alone": r.pop("b"), **r}


def describe_gain(b: dict) -> str:
    """A `distill --baseline` result in words: both figures, the gain, its interval and the verdict; an interval
    that holds 0 is "within noise", never a win."""
    verdict = {"better": "distillation helps", "worse": "distillation hurts"}.get(b["verdict"], "within noise")
    return (f"{b['metric']} {b['distilled']:.4f} vs {b['alone']:.4f}, {b['gain']:+.4f} (95 % paired bootstrap "
            f"[{b['low']:+.4f}, {b['high']:+.4f}] on {b['images']} {b['split']} images): {verdict}")
