"""Distillation fields shared by every task's distillation schema, and the recipe that fills them.

`method` names a recipe (defectkd.distill.recipes) that fills T, alpha, hard_weight and the loss terms with the
method's published defaults; anything set explicitly wins."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class LossTerm(BaseModel):
    """One weighted distillation term: a registered method on logits (every head) or on features
    (every `feat` pair, or this term's own)."""

    model_config = ConfigDict(extra="forbid")

    method: str = Field(description="a method of defectkd.distill.list_methods()")
    on: Literal["logits", "features"] = Field(
        "logits", description="logits (every head) or features (the `feat` pairs)")
    weight: float = Field(
        1.0, ge=0, description="config-level weight of this term (the loss keeps its own coefficients)")
    share: float | None = Field(None, gt=0, le=1, description="with balance=loss: this term's share of the "
                                "weighted task loss (default 0.5 logits, 0.25 features)")
    params: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of build_loss")
    feat: list[str] | None = Field(None, description="this term's student.path:teacher.path pairs")


class DistillFields(BaseModel):
    """Mixin of a task's distillation schema: the teacher, the recipe and explicit terms."""

    teacher: str | None = Field(None, description="teacher run folder or weights (several joined by commas: an "
                                "ensemble)")
    method: str = Field("kd", description="recipe (see `defectkd methods`)")
    T: float | None = Field(None, gt=0, description="temperature (default: the recipe's)")
    hard_weight: float | None = Field(None, ge=0, description="weight of the task loss on hard labels "
                                      "(default: recipe)")
    losses: list[LossTerm] | None = Field(None, description="explicit weighted terms instead of the recipe's")
    feat: list[str] = Field(default_factory=list, description="feature pairs student.path:teacher.path "
                            "(default: each model's `feature_layer`)")
    balance: Literal["loss", "none"] | None = Field(
        None, description="loss: weight each term from its measured size on the first batches (a share of the task "
        "loss); none: the recipe's or your weights as they are (default: loss, none when you give losses, "
        "hard_weight or alpha)")
    balance_steps: int = Field(20, ge=1, le=1000, description="batches the balance is measured on")
    dominant: Literal["rescale", "warn"] = Field(
        "rescale", description="a term above 10x the weighted task loss at an epoch's end: rescale lowers it to its "
        "balanced share for the rest of the run; warn only reports it")
    teacher_check: bool = Field(True, description="score the teacher on the validation split first and refuse one "
                                "that finds nothing")

    def resolve_recipe(self, alpha: float | None = None, recipes: dict | None = None) -> dict:
        """Fill T, hard_weight and losses from the task's recipe table (None: segmentation's); returns the expanded
        recipe (alpha, noisy_fraction)."""
        from defectkd.distill.recipes import expand

        given = [t.model_dump() for t in self.losses] if self.losses is not None else None
        kwargs = {"recipes": recipes} if recipes is not None else {}
        r = expand(self.method, self.T, alpha, given, epochs=self.epochs, **kwargs)
        self.T = r["T"]
        if self.balance is None:  # explicit weights are kept as given; otherwise the terms are measured
            self.balance = "none" if given is not None or self.hard_weight is not None or alpha is not None else "loss"
        if self.hard_weight is None:  # balanced: the task loss keeps full weight, the terms a share of it
            self.hard_weight = 1.0 if self.balance == "loss" else r["hard_weight"]
        self.losses = [LossTerm(**t, feat=(g or {}).get("feat"), share=(g or {}).get("share")) for t, g in
                       zip(r["losses"], given or [None] * len(r["losses"]), strict=True)]
        return r
