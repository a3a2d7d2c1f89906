"""Shared fixtures: tiny synthetic data sets and a CLI runner that calls the real entry point."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

# Tiny inputs gain nothing from threads; one thread keeps the suite from starving other work.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def tiny_seg(tmp_path_factory) -> Path:
    """24 synthetic 64x64 pairs in images/ + masks/."""
    from defectkd.tasks.segment.synthetic import write_synthetic_segment

    return write_synthetic_segment(tmp_path_factory.mktemp("tiny") / "seg", 24, 64, seed=3)


class CLIResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run `defectkd ARGS...` in-process through defectkd.cli.main; returns code, stdout, stderr."""
    from defectkd.cli import main

    def run(*args: str) -> CLIResult:
        monkeypatch.setattr(sys, "argv", ["defectkd", *map(str, args)])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return CLIResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """An mcff-l deploy file with seeded random weights (no training needed to test plumbing)."""
    from defectkd.core.checkpoint import DEPLOY_FORMAT
    from defectkd.models import build_model

    torch.manual_seed(0)
    model = build_model("mcff-l")
    path = tmp_path_factory.mktemp("weights") / "mcff-l.pt"
    torch.save({"format": DEPLOY_FORMAT, "model_name": "mcff-l", "model_kwargs": {"classes": 2},
                "threshold": 0.5, "state_dict": model.state_dict()}, path)
    return path
