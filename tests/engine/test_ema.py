"""EMA of the weights: the warmed-up decay by hand, the average through torch's AveragedModel, and a training run
that validates and saves the averaged weights."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from defectkd.engine.ema import EMA, warmed_decay


def test_warmed_decay_by_hand():
    assert warmed_decay(0.99, 1) == pytest.approx(2 / 11)
    assert warmed_decay(0.99, 100) == pytest.approx(101 / 110)
    assert warmed_decay(0.99, 10_000) == 0.99


def test_average_of_weights_and_buffers_by_hand():
    net = nn.Sequential(nn.Linear(1, 1, bias=False), nn.BatchNorm1d(1))
    avg = AveragedModel(net, use_buffers=True, multi_avg_fn=EMA(0.5)._kwargs["multi_avg_fn"])
    expected = None
    for step, w in enumerate([1.0, 3.0, -2.0]):
        with torch.no_grad():
            net[0].weight.fill_(w)
        net[1].num_batches_tracked.fill_(step + 5)
        avg.update_parameters(net)
        d = warmed_decay(0.5, step)  # update n (n >= 1) averages with the decay of n; update 0 copies
        expected = w if expected is None else d * expected + (1 - d) * w
    # by hand: copy 1; n=1: d=min(.5, 2/11): 2/11*1 + 9/11*3 = 29/11; n=2: d=min(.5, 3/12)=.25: .25*29/11 - .75*2
    assert expected == pytest.approx(0.25 * 29 / 11 - 1.5)
    assert avg.module[0].weight.item() == pytest.approx(expected)
    assert avg.module[1].num_batches_tracked.item() == 7  # integer buffers are copied, not averaged


@pytest.mark.slow
def test_training_validates_and_saves_the_average(tmp_path, tiny_seg):
    from defectkd import api
    from defectkd.data.layouts import Sample
    from defectkd.tasks.segment.evaluate import evaluate_weights

    api.train("segment", data=str(tiny_seg), model="mcff-edge-n", epochs=2, imgsz=48, batch=4, project=str(tmp_path),
              name="ema", overrides=["workers=0", "ema=0.9", "patience=0"])
    run = tmp_path / "segment" / "ema"
    last = torch.load(run / "weights" / "last.pt", weights_only=False)
    raw, averaged = last["current_model_state"], last["state_dict"]
    assert raw.keys() == averaged.keys()
    assert any(not torch.equal(raw[k], averaged[k]) for k in raw if raw[k].is_floating_point())
    deploy = torch.load(run / "weights" / "deploy.pt", weights_only=True)["state_dict"]
    best = torch.load(run / "weights" / "best.pt", weights_only=False)["state_dict"]
    assert all(torch.equal(v, best[f"model.{k}"]) for k, v in deploy.items())
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    samples = [Sample(Path(p), Path(p).parent.parent / "masks" / Path(p).name)
               for p in json.loads((run / "data.json").read_text())["val_images"]]
    again = evaluate_weights(run / "weights" / "best.pt", samples, tolerant=False)
    assert again["f1"] == pytest.approx(max(float(r["val/f1"]) for r in rows), abs=1e-6)
