"""EMA of the student's weights: the warmed-up decay by hand, the average through torch's AveragedModel, the
callback on a toy Lightning module (validation sees the average, the teacher is left alone, checkpoints hold both),
and a defectkd training run that deploys the average."""

from __future__ import annotations

import pickle

import lightning as L
import pytest
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from defectkd.engine.ema import EMA, WarmedEMA, warmed_decay


def test_warmed_decay_by_hand():
    assert warmed_decay(0.99, 1) == pytest.approx(2 / 11)
    assert warmed_decay(0.99, 100) == pytest.approx(101 / 110)
    assert warmed_decay(0.99, 10_000) == 0.99


def test_average_of_weights_and_buffers_by_hand():
    net = nn.Sequential(nn.Linear(1, 1, bias=False), nn.BatchNorm1d(1))
    avg = AveragedModel(net, use_buffers=True, multi_avg_fn=WarmedEMA(0.5))
    for step, w in enumerate([1.0, 3.0, -2.0]):
        with torch.no_grad():
            net[0].weight.fill_(w)
        net[1].num_batches_tracked.fill_(step + 5)
        avg.update_parameters(net)
    # copy 1; n=1: d = min(.5, 2/11): 2/11 * 1 + 9/11 * 3 = 29/11; n=2: d = min(.5, 3/12) = .25: .25 * 29/11 - .75 * 2
    assert avg.module[0].weight.item() == pytest.approx(0.25 * 29 / 11 - 1.5)
    assert avg.module[1].num_batches_tracked.item() == 7  # integer buffers are copied, not averaged


def test_the_callback_pickles_for_ddp_spawn():
    assert pickle.loads(pickle.dumps(EMA(0.9))).decay == 0.9


class Toy(L.LightningModule):
    """A student `model` and a frozen `teacher`; records the raw student weight after every step and the weight
    validation sees."""

    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Linear(1, 1, bias=False)
        self.teacher = nn.Linear(1, 1, bias=False).requires_grad_(False)
        self.raw, self.validated = [], []

    def training_step(self, batch, batch_idx):
        x, y = batch
        return ((self.model(x) - y) ** 2).mean()

    def on_train_batch_end(self, *args) -> None:
        self.raw.append(self.model.weight.item())

    def validation_step(self, batch, batch_idx):
        self.validated.append(self.model.weight.item())

    def configure_optimizers(self):
        return torch.optim.SGD(self.model.parameters(), lr=0.3)


def test_validation_checkpoints_and_the_end_see_the_average(tmp_path):
    torch.manual_seed(0)
    x = torch.linspace(-1, 1, 8)[:, None]
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, 2 * x), batch_size=2)
    module, ema = Toy(), EMA(0.6)
    teacher_before = module.teacher.weight.item()
    trainer = L.Trainer(max_epochs=2, callbacks=[ema], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        limit_val_batches=1, default_root_dir=tmp_path)
    trainer.fit(module, data, data)
    expected, averages = None, []
    for n, w in enumerate(module.raw):  # the average after each step, by hand
        expected = w if expected is None else warmed_decay(0.6, n) * expected + (1 - warmed_decay(0.6, n)) * w
        averages.append(expected)
    assert len(module.raw) == 8 and module.raw[-1] != pytest.approx(averages[-1])
    assert module.validated == pytest.approx([averages[3], averages[7]])  # after each epoch's 4 steps
    assert module.model.weight.item() == pytest.approx(averages[-1])  # training ends with the average
    assert module.teacher.weight.item() == teacher_before and not hasattr(ema.average.module, "teacher")
    trainer.save_checkpoint(tmp_path / "c.pt")
    saved = torch.load(tmp_path / "c.pt", weights_only=False)
    assert saved["state_dict"]["model.weight"].item() == pytest.approx(averages[-1])
    assert saved["ema"]["updates"] == 8 and "teacher.weight" not in saved["current_model_state"]


@pytest.mark.slow
def test_training_run_deploys_the_average(tmp_path, tiny_seg):
    from defectkd import api

    api.train("segment", data=str(tiny_seg), model="mcff-edge-n", epochs=2, imgsz=48, batch=4, project=str(tmp_path),
              name="ema", overrides=["workers=0", "ema=0.9", "patience=0"])
    weights = tmp_path / "segment" / "ema" / "weights"
    last = torch.load(weights / "last.pt", weights_only=False)
    raw, state = last["current_model_state"], last["state_dict"]
    assert last["ema"]["updates"] == last["global_step"] > 0
    assert any(not torch.equal(raw[k], state[k]) for k in raw if raw[k].is_floating_point())
    deploy = torch.load(weights / "deploy.pt", weights_only=True)["state_dict"]
    best = torch.load(weights / "best.pt", weights_only=False)["state_dict"]
    assert all(torch.equal(v, best[f"model.{k}"]) for k, v in deploy.items())
