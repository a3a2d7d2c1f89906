"""A teacher that finds nothing is refused before training; a collapsing student is stopped with the dominant term
named; a term 10x the task loss is lowered to its balanced share (or, with dominant=warn, reported)."""

import logging
from types import SimpleNamespace

import lightning as L
import pytest
import torch

from defectkd.core.errors import ConfigError, TrainingError
from defectkd.distill.terms import DistillTerms
from defectkd.engine.guards import CollapseGuard, check_teacher, term_ratios
from defectkd.tasks import TASKS


def test_degenerate_levels_per_task():
    seg, cls, det = TASKS["segment"], TASKS["classify"], TASKS["detect"]
    assert seg.degenerate({"f1": 0.004}) == "F1 0.0040" and seg.degenerate({"val/f1": 0.3}) is None
    # a constant "crack" answer: recall 1 at the crack fraction (5 %), F1 2p / (1 + p) = 0.095, above the F1 floor
    everywhere = {"val/f1": 0.095, "val/recall": 1.0, "val/precision": 0.05}
    assert seg.degenerate(everywhere) == "crack everywhere (recall 1.000, precision 0.050: a constant answer)"
    assert seg.degenerate({"f1": 0.42, "recall": 0.93, "precision": 0.27}) is None  # an early epoch of a real run
    assert cls.degenerate({"accuracy": 0.17}, classes=6) == "accuracy 0.1700 (chance 0.1667)"
    assert cls.degenerate({"accuracy": 0.5}, classes=6) is None
    assert det.degenerate({"map_50": 0.0}) == "mAP50 0.0000" and det.degenerate({}) is None


def test_a_teacher_that_finds_nothing_is_refused_in_one_line():
    with pytest.raises(ConfigError, match=r"teacher runs/t/weights/best.pt: F1 0.0000 on the validation split"):
        check_teacher(TASKS["segment"], {"weights": "runs/t/weights/best.pt", "val": {"f1": 0.0}}, 2)
    check_teacher(TASKS["segment"], {"weights": "t.pt", "val": {"f1": 0.62}}, 2)  # a working teacher passes


def test_term_ratios_weigh_each_term_against_the_weighted_task_loss():
    metrics = {"train/hard_epoch": 0.5, "train/term0_kd_epoch": 8.0, "train/term1_pairwise_epoch": 0.02}
    # kd: 0.9 * 8 / (0.1 * 0.5) = 144; pairwise: 1 * 0.02 / 0.05 = 0.4 (by hand)
    ratios = term_ratios(metrics, [0.9, 1.0], 0.1)
    assert ratios.keys() == {0, 1} and ratios[0][0] == "kd" and ratios[1][0] == "pairwise"
    assert [r for _, r in ratios.values()] == pytest.approx([144.0, 0.4])


class _Terms(DistillTerms, L.LightningModule):
    """The real mixin of every task's distillation module, with one logits kd term at weight 0.9 (hard weight 0.1)."""

    def __init__(self, balance: str = "none", share: float | None = None) -> None:
        super().__init__()
        self.model = torch.nn.Identity()
        term = {"method": "kd", "on": "logits", "weight": 0.9, "params": {}, "share": share}
        self.setup_terms({"hard_weight": 0.1, "losses": [term], "balance": balance, "balance_steps": 2}, None)


def _epoch(guard, epoch: int, f1: float, module=None, kd: float = 8.0):
    trainer = SimpleNamespace(current_epoch=epoch - 1, is_global_zero=True, strategy=SimpleNamespace(
        broadcast=lambda obj, src=0: obj), callback_metrics={
        "val/f1": torch.tensor(f1), "train/hard_epoch": torch.tensor(0.5), "train/term0_kd_epoch": torch.tensor(kd)})
    guard.on_train_epoch_end(trainer, module if module is not None else _Terms())


def test_a_dominating_term_is_lowered_to_its_share_and_said_so(caplog):
    module = _Terms()
    with caplog.at_level(logging.WARNING, logger="defectkd"):
        _epoch(CollapseGuard(TASKS["segment"], classes=2), 1, 0.4, module)
    # 144x (by hand above) -> weight 0.9 * 0.5 / 144 = 0.003125, so that 0.003125 * 8 / 0.05 = 0.5x the task loss
    assert module.term_weights() == pytest.approx([0.003125])
    assert "the kd term stood at 144x the task loss" in caplog.text and "from 0.9 to 0.0031" in caplog.text
    shared = _Terms(share=0.2)  # a term's own share is where it goes: 0.9 * 0.2 / 144
    _epoch(CollapseGuard(TASKS["segment"], classes=2), 1, 0.4, shared)
    assert shared.term_weights() == pytest.approx([0.00125])


def test_no_rescale_from_a_non_finite_epoch_or_while_the_balancer_still_measures():
    module = _Terms()
    for kd in (float("nan"), float("inf")):  # a skipped non-finite step poisons the epoch mean: nothing is judged
        _epoch(CollapseGuard(TASKS["segment"], classes=2), 1, 0.4, module, kd=kd)
    assert module.term_weights() == [0.9]
    measuring = _Terms(balance="loss")  # 0 of its 2 batches seen: the balancer sets the weights, not the guard
    _epoch(CollapseGuard(TASKS["segment"], classes=2), 1, 0.4, measuring, kd=1e6)
    assert measuring.term_scale.tolist() == [1.0]


def test_collapse_guard_stops_after_two_dead_epochs_and_names_the_term(caplog):
    guard = CollapseGuard(TASKS["segment"], classes=2, rescale=False)
    with caplog.at_level(logging.WARNING, logger="defectkd"):
        _epoch(guard, 1, 0.0)  # the first epochs are not judged
        _epoch(guard, 2, 0.0)
        _epoch(guard, 3, 0.0)  # one dead epoch: not yet
    assert sum("kd term is 144x the task loss" in r.message for r in caplog.records) == 1  # warned once
    stop = r"collapsed: validation F1 0.0000 for 2 epochs.*kd, stood at up to 1.4e\+02x"
    with pytest.raises(TrainingError, match=stop):
        _epoch(guard, 4, 0.0)


def test_collapse_guard_forgives_a_recovered_epoch():
    guard = CollapseGuard(TASKS["segment"], classes=2, rescale=False)
    for epoch, f1 in [(3, 0.0), (4, 0.4), (5, 0.0), (6, 0.5)]:
        _epoch(guard, epoch, f1)  # never two dead epochs in a row: no stop


@pytest.mark.slow
def test_a_real_run_that_collapses_stops_in_one_line_and_keeps_its_last_weights(cli, tmp_path):
    """A one-epoch teacher on 16 synthetic 64-px pairs teaches a student that stays at F1 0: the guard stops it at
    epoch 4 (two dead epochs from epoch 3) with one line, exit 2, and weights/last.pt of the previous epoch."""
    from defectkd.tasks.segment.synthetic import write_synthetic_segment

    data = write_synthetic_segment(tmp_path / "s", 16, 64, seed=0)
    common = ["--data", data, "--imgsz", 64, "--batch", 4, "workers=0", f"project={tmp_path / 'p'}"]
    assert cli("train", "segment", "--model", "mcff-edge-n", "--epochs", 1, "--name", "t", *common).code == 0
    r = cli("distill", "segment", "--teacher", tmp_path / "p" / "segment" / "t", "--student", "mcff-edge-n",
            "--epochs", 5, *common, "teacher_check=false")
    lines = r.err.strip().splitlines()  # the epoch lines, then the one error line
    assert r.code == 2 and "Traceback" not in r.err and [x for x in lines if x.startswith("error")] == lines[-1:]
    assert lines[-1].startswith("error: distillation collapsed: validation F1 0.0000 for 2 epochs in a row (epoch 4)")
    run = tmp_path / "p" / "segment" / "mcff-edge-n-rfkd"
    assert (run / "weights" / "last.pt").is_file() and not (run / "results.json").exists()
