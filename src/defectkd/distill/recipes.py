"""Method recipes: what `--method NAME` means as weighted loss terms, with the original papers' defaults.

A recipe is only a default: a config may list its own `losses` (several methods with weights, e.g.
MGD on features + CWD on logits) and then the recipe contributes nothing but the hard-label weight
and the noise mix. Weights here are the config-level weights the losses themselves leave out
(FitNets 100, AT 1000, CWD 3; docs/methods.md). The pair-wise term pools features to a
16x16 grid rather than Structured KD's 2x2 (scale 0.5): thin cracks vanish in 2x2 cells.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

RFKD_NOISE = ("pepper", "salt", "crack-texture", "gaussian-blur")  # the four noise types of the RFKD paper
CHANNEL_ADAPTED = ("fitnet", "mgd", "cwd")  # feature losses that take student_channels / teacher_channels


@dataclass(frozen=True)
class Recipe:
    terms: list[dict[str, Any]]  # {method, on: logits|features, weight, params}
    uses_alpha: bool = False  # hard weight 1 - alpha and the logit-KD weight alpha
    T: float | None = None  # default temperature of the recipe's T-using terms
    alpha: float | None = None
    noisy_fraction: float = 0.0  # share of training images the student sees corrupted
    description: str = ""


def _term(method: str, on: str, weight: float | str, **params: Any) -> dict[str, Any]:
    return {"method": method, "on": on, "weight": weight, "params": params}


RECIPES: dict[str, Recipe] = {
    "kd": Recipe([_term("kd", "logits", "alpha", T="T")], uses_alpha=True, T=10.0, alpha=0.9,
                 description="Hinton KD on every head: (1-alpha) hard + alpha T^2 KL"),
    "fitnet": Recipe([_term("fitnet", "features", 100.0)], description="FitNets hint: MSE of regressed features, x100"),
    "at": Recipe([_term("at", "features", 1000.0)], description="attention transfer on feature maps, x1000"),
    "cwd": Recipe([_term("cwd", "logits", 3.0, T="T")], T=4.0,
                  description="channel-wise distillation on logits, tau 4, x3"),
    "mgd": Recipe([_term("mgd", "features", 1.0, alpha=2e-5, mask_ratio=0.75, mask="spatial"),
                   _term("cwd", "logits", 3.0, T="T")], T=4.0,
                  description="masked generative distillation on features (2e-5, 0.75) + CWD on logits (x3)"),
    "dkd": Recipe([_term("dkd", "logits", 1.0, T="T", alpha=1.0, beta=8.0, warmup="auto")], T=4.0,
                  description="decoupled KD (alpha 1, beta 8, warm-up over the first 1/12 of the epochs, at most 20)"),
    "pairwise": Recipe([_term("pairwise", "features", 1.0, grid=16)],
                       description="pair-wise similarity of 16x16 pooled feature positions"),
    "rfkd": Recipe([_term("kd", "logits", "alpha", T="T"), _term("pairwise", "features", 1.0, grid=16)],
                   uses_alpha=True,
                   T=4.0, alpha=0.5, noisy_fraction=1 / 3,
                   description="RFKD: KD on logits + pair-wise features, student sees clean:noisy 2:1"),
}


# Classification (N, C) logits and one last feature map: the recipes whose terms apply. KD and DKD as above
# (CMI: high-temperature KD + ground truth); MGD's classification recipe: channel mask, alpha 7e-5, ratio 0.15,
# on the last feature map, no logit term. CWD, pairwise and RFKD are dense-prediction methods.
CLASSIFY_RECIPES: dict[str, Recipe] = {
    "kd": RECIPES["kd"],
    "dkd": RECIPES["dkd"],
    "mgd": Recipe([_term("mgd", "features", 1.0, alpha=7e-5, mask_ratio=0.15, mask="channel")],
                  description="masked generative distillation on the last feature map (7e-5, channel mask 0.15)"),
    "fitnet": RECIPES["fitnet"],
    "at": RECIPES["at"],
}


# Detection: feature terms on every FPN level (P3-P7, 256 channels on both sides, so no adapter), summed over the
# levels. MGD's one-stage (RetinaNet) preset: alpha 2e-5, spatial mask ratio 0.65; CWD's RetinaNet recipe: tau 1,
# weight 5 on the FPN outputs; FitNets: MSE per level, weight 1 (the FPN maps are already the teacher's width, and
# 100 would swamp the focal and box losses, which are about 1).
DETECT_RECIPES: dict[str, Recipe] = {
    "mgd": Recipe([_term("mgd", "features", 1.0, alpha=2e-5, mask_ratio=0.65, mask="spatial")],
                  description="masked generative distillation on every FPN level (2e-5, spatial mask 0.65)"),
    "cwd": Recipe([_term("cwd", "features", 5.0, T="T")], T=1.0,
                  description="channel-wise distillation on every FPN level, tau 1, x5"),
    "fitnet": Recipe([_term("fitnet", "features", 1.0)], description="FitNets hint (MSE) on every FPN level, x1"),
}


def dkd_warmup(epochs: int | None) -> int:
    """DKD's warm-up in epochs for a run of `epochs`: the DKD code warms up over 20 of CIFAR's 240 epochs (1/12);
    a fixed 20 would keep a 15-epoch run from ever reaching the full DKD weight. At least 1, at most 20; 20 when
    the run length is unknown."""
    return 20 if epochs is None else max(1, min(20, round(epochs / 12)))


def list_recipes() -> list[str]:
    return list(RECIPES)


def expand(method: str, T: float | None, alpha: float | None, losses: list[dict] | None,
           recipes: dict[str, Recipe] = RECIPES, epochs: int | None = None) -> dict[str, Any]:
    """Resolved loss terms for a config: {T, alpha, hard_weight, losses, noisy_fraction}; a warm-up of "auto"
    becomes `dkd_warmup(epochs)`.

    Raises ValueError (turned into a one-line config error) for an unknown method, or for alpha given
    to a recipe without a logit-KD term (it would silently do nothing)."""
    if method not in recipes:
        raise ValueError(f"unknown distillation method {method!r} (known: {', '.join(recipes)})")
    recipe = recipes[method]
    if alpha is not None and not recipe.uses_alpha and losses is None:
        raise ValueError(f"alpha weights the KD term of methods kd and rfkd; method {method!r} uses "
                         "hard_weight and per-term weights (list them under losses)")
    T = T if T is not None else (recipe.T if recipe.T is not None else 4.0)
    alpha = alpha if alpha is not None else (recipe.alpha if recipe.alpha is not None else 0.0)
    hard_weight = 1 - alpha if recipe.uses_alpha else 1.0
    terms = losses if losses is not None else recipe.terms
    resolved = []
    for term in terms:
        weight = alpha if term.get("weight") == "alpha" else float(term.get("weight", 1.0))
        params = {k: (T if v == "T" else v) for k, v in (term.get("params") or {}).items()}
        if params.get("warmup") == "auto":
            params["warmup"] = dkd_warmup(epochs)
        if term["method"] in ("kd", "cwd", "dkd"):
            params.setdefault("T", T)
        resolved.append({"method": term["method"], "on": term.get("on", "logits"), "weight": weight,
                         "params": params})
    return {"T": T, "alpha": alpha, "hard_weight": hard_weight, "losses": resolved,
            "noisy_fraction": recipe.noisy_fraction}
