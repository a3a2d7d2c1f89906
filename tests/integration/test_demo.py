"""The quick-start job, shrunk: synth -> train -> val on a held-out split, all under one new folder."""

import json
from pathlib import Path


def test_demo_small(tmp_path):
    from defectkd.api import demo

    result = demo(project=tmp_path, n_train=12, n_test=4, size=64, epochs=1)
    root = Path(result["root"])
    assert root == tmp_path / "demo" / "demo"
    assert len(list((root / "data" / "train" / "images").iterdir())) == 12
    assert (root / "segment" / "mcff-l" / "weights" / "best.pt").is_file()
    metrics = json.loads((root / "val" / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["metrics"]["images"] == 4
    again = demo(project=tmp_path, n_train=4, n_test=2, size=32, epochs=1)
    assert Path(again["root"]).name == "demo2"  # the first demo is kept
