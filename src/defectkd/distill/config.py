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

    def resolve_recipe(self, alpha: float | None = None, recipes: dict | None = None) -> dict:
        """Fill T, hard_weight and losses from the task's recipe table (None: segmentation's); returns the expanded
        recipe (alpha, noisy_fraction)."""
        from defectkd.distill.recipes import expand

        given = [t.model_dump() for t in self.losses] if self.losses is not None else None
        kwargs = {"recipes": recipes} if recipes is not None else {}
        r = expand(self.method, self.T, alpha, given, epochs=self.epochs, **kwargs)
        self.T = r["T"]
        if self.hard_weight is None:
            self.hard_weight = r["hard_weight"]
        self.losses = [LossTerm(**t, feat=(g or {}).get("feat")) for t, g in
                       zip(r["losses"], given or [None] * len(r["losses"]), strict=True)]
        return r
