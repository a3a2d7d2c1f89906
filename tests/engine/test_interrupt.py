"""Ctrl-C during training: one line that says where the last finished epoch is and how to resume, exit 130,
and Ctrl-C works again afterwards (Lightning leaves SIGINT ignored)."""

import signal

from defectkd.engine import callbacks


def test_ctrl_c_says_how_to_resume_and_exits_130(cli, tmp_path, tiny_seg, monkeypatch):
    original = callbacks.EpochSummary.on_train_epoch_start

    def ctrl_c(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            raise KeyboardInterrupt
        original(self, trainer, pl_module)

    monkeypatch.setattr(callbacks.EpochSummary, "on_train_epoch_start", ctrl_c)
    r = cli("train", "segment", "--data", tiny_seg, "--model", "mcff-edge-n", "--epochs", "3", "--imgsz", "32",
            "--batch", "4", "--name", "cut", "workers=0", f"project={tmp_path}")
    run = tmp_path / "segment" / "cut"
    assert r.code == 130, r.err
    last = [line for line in r.err.strip().splitlines() if line.strip()][-1]
    weights = run / "weights" / "last.pt"
    assert last == f"interrupted; {weights} holds the last finished epoch: continue with --resume {run}"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
