"""Inside a long epoch a log gets a step line after `first` seconds, then every `every` seconds, and no more."""

import logging
from types import SimpleNamespace

import torch

from defectkd.engine import callbacks
from defectkd.engine.callbacks import StepProgress


def test_step_lines_come_at_the_first_mark_then_every_interval(monkeypatch, caplog):
    clock = [100.0]
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: clock[0])
    trainer = SimpleNamespace(current_epoch=1, max_epochs=20, is_global_zero=True, num_training_batches=135,
                              callback_metrics={"train/loss_step": torch.tensor(0.75)})
    bar = StepProgress(first=10, every=30)
    bar.on_train_epoch_start(trainer, None)
    with caplog.at_level(logging.INFO, logger="defectkd"):
        for step, t in enumerate([105, 111, 120, 140, 141, 175]):  # lines due at 110, then 141, then 171
            clock[0] = t
            bar.on_train_batch_end(trainer, None, None, None, step)
    lines = [r.message for r in caplog.records]
    assert lines == ["epoch 2/20  step 2/135  loss 0.7500", "epoch 2/20  step 5/135  loss 0.7500",
                     "epoch 2/20  step 6/135  loss 0.7500"]
