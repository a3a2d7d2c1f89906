"""Callbacks: one summary line per epoch (logged), metrics.csv (one row per epoch, a column for every value the
module logged, each distillation term included), and training-curve plots. Lightning's CSVLogger keeps the
per-step values beside it in logs/version_<n>/metrics.csv."""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path

import lightning as L

log = logging.getLogger("defectkd")

COLUMNS = ("epoch", "train/loss", "train/hard", "train/kd", "val/loss", "val/precision", "val/recall", "val/f1",
           "val/iou", "val/ods_f1", "val/miou_2class", "lr", "seconds")  # hard/kd: distillation runs only


class EpochSummary(L.Callback):
    """Appends a row to metrics.csv and logs a compact line at the end of every epoch.
    Subclasses (other tasks) set `columns` (the leading ones), `curve_keys`, `curve_title` and `describe`;
    every other epoch value the module logged (per-term losses, ...) gets a column after them."""

    columns: tuple[str, ...] = COLUMNS
    curve_keys: tuple[str, ...] = ("val/f1", "val/iou", "val/precision", "val/recall")
    curve_title = "crack class, threshold metrics"

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.csv_path = self.run_dir / "metrics.csv"
        self._start = time.perf_counter()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        m = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        row = {
            "epoch": trainer.current_epoch + 1,
            "train/loss": m.get("train/loss_epoch", m.get("train/loss")),
            **{k: m.get(f"{k}_epoch", m.get(k)) for k in self.columns
               if k.startswith("val/") or k in ("train/hard", "train/kd")},
            "lr": trainer.optimizers[0].param_groups[0]["lr"],
            "seconds": round(time.perf_counter() - self._start, 1),
        }
        extra = sorted({k.removesuffix("_epoch") for k in m if k.startswith(("train/", "val/"))
                        and not k.endswith("_step")} - set(self.columns))
        row.update({k: m.get(f"{k}_epoch", m.get(k)) for k in extra})
        append_row(self.csv_path, {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()},
                   self.columns)
        log.info(self.describe(row, trainer))
        plot_curves(self.csv_path, self.run_dir / "curves.png", self.curve_keys, self.curve_title)

    def describe(self, row: dict, trainer) -> str:
        return (f"epoch {row['epoch']}/{trainer.max_epochs}  loss {fmt(row['train/loss'])}  "
                f"val F1 {fmt(row['val/f1'])}  IoU {fmt(row['val/iou'])}  "
                f"P {fmt(row['val/precision'])}  R {fmt(row['val/recall'])}  "
                f"lr {row['lr']:.2e}  {row['seconds']}s")


class StepProgress(L.Callback):
    """Where a log (no terminal, no redrawn bar) is inside an epoch: one line after `first` seconds, then every
    `every` seconds, so a slow CPU epoch never leaves minutes without output."""

    def __init__(self, first: float = 10.0, every: float = 30.0) -> None:
        self.first, self.every = first, every
        self._next = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._next = time.perf_counter() + self.first

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if time.perf_counter() < self._next or not trainer.is_global_zero:
            return
        self._next = time.perf_counter() + self.every
        loss = trainer.callback_metrics.get("train/loss_step", trainer.callback_metrics.get("train/loss"))
        total = trainer.num_training_batches
        of = f"/{total}" if isinstance(total, int) else ""
        log.info(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}  step {batch_idx + 1}{of}"
                 + (f"  loss {float(loss):.4f}" if loss is not None else ""))


def append_row(path: Path, row: dict, leading: tuple[str, ...]) -> None:
    """Append ROW to the CSV at PATH; a key the header lacks widens the file (earlier rows get empty cells)."""
    rows: list[dict] = []
    header = list(leading)
    if path.exists():
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or leading)
            rows = list(reader)
    new = [k for k in row if k not in header]
    if rows and not new:
        with path.open("a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=header).writerow(row)
        return
    header += new
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        writer.writerows([*rows, row])


def fmt(v) -> str:
    return "-" if v is None else f"{v:.4f}"


def plot_curves(csv_path: Path, out: Path, keys: tuple[str, ...] = EpochSummary.curve_keys,
                title: str = EpochSummary.curve_title) -> None:
    """Loss and validation metrics against epochs, two panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with csv_path.open() as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return
    epochs = [int(r["epoch"]) for r in rows]

    def series(key):
        return [float(r[key]) if r.get(key) not in (None, "") else float("nan") for r in rows]

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, series("train/loss"), label="train loss")
    ax1.plot(epochs, series("val/loss"), label="val loss")
    ax1.set_xlabel("epoch")
    ax1.legend()
    for key in keys:
        ax2.plot(epochs, series(key), label=key.split("/")[1])
    ax2.set_xlabel("epoch")
    ax2.set_ylim(0, 1)
    ax2.legend()
    ax2.set_title(title)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
