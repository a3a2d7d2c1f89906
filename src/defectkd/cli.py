"""The `defectkd` command line: parses, calls defectkd.api, prints tables; holds no logic of its own.

Known errors (DefectKDError) become one line on stderr and exit status 2, without a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from . import __version__
from .errors import DefectKDError

app = typer.Typer(help="defectkd: distil defect-inspection models into fast edge students.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
data_app = typer.Typer(help="Create and check data sets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
_WIDTH = None if sys.stdout.isatty() else 140  # logs and pipes get full tables, not 80 columns
out = Console(width=_WIDTH)
err = Console(stderr=True, width=_WIDTH)


def _version(value: bool) -> None:
    if value:
        print(f"defectkd {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    """defectkd: distil defect-inspection models into fast edge students."""


def _table(title: str, rows: list[dict], columns: list[str]) -> Table:
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*[_fmt(row.get(col)) for col in columns])
    return table


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    if isinstance(v, int) and v >= 10_000:
        return f"{v / 1e6:.3f} M"
    return "-" if v is None else str(v)


def _progress(total: int, what: str):
    from rich.progress import Progress

    progress = Progress(console=err, transient=True)
    task = progress.add_task(what, total=total)
    return progress, lambda: progress.advance(task)


@app.command("models")
def models_cmd(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List registered models: name, task, role, parameters, output form."""
    from .api import models

    rows = models()
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    out.print(_table("defectkd models", rows, ["name", "task", "role", "parameters", "output"]))


@data_app.command("synth")
def synth_cmd(
    task: Annotated[str, typer.Argument(help="segment")],
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder (images/ + masks/).")],
    n: Annotated[int, typer.Option("--n", help="Number of images.")] = 64,
    size: Annotated[int, typer.Option("--size", help="Image side in pixels.")] = 256,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Write synthetic crack images with masks, deterministic by seed."""
    from .api import synth

    path = synth(out_dir, n=n, size=size, seed=seed, task=task)
    out.print(f"wrote {n} image/mask pairs of {size}x{size} to {path}", highlight=False)


@data_app.command("check")
def check_cmd(
    path: Annotated[Path, typer.Argument(help="Data set folder.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Detect the layout, validate every pair, print counts, sizes, crack fraction and problems."""
    from .api import check

    report = check(path)
    if as_json:
        print(json.dumps(report, indent=1))
        return
    out.print(f"[bold]{report['path']}[/]  layout: {report['layout']}")
    rows = [{"split": k, **v} for k, v in report["splits"].items()]
    out.print(_table("pairs", rows, ["split", "pairs", "unlabelled"]))
    out.print(f"image sizes: {report['image_sizes']}", highlight=False)
    cf = report["crack_fraction"]
    out.print(f"crack-pixel fraction: mean {cf['mean']:.4f}, min {cf['min']:.4f}, max {cf['max']:.4f}")
    problems = report["problems"]
    out.print(f"problems: {len(problems)}" + ("" if problems else " (all pairs valid)"))
    for p in problems:
        out.print(f"  {p['file']}: {p['message']}", highlight=False)


@app.command("train")
def train_cmd(
    task: Annotated[str, typer.Argument(help="segment")],
    overrides: Annotated[list[str] | None, typer.Argument(help="Config overrides key=value.")] = None,
    data: Annotated[str | None, typer.Option("--data", help="Data set folder.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Model name (see `defectkd models`).")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs")] = None,
    imgsz: Annotated[int | None, typer.Option("--imgsz", help="Training crop size.")] = None,
    batch: Annotated[int | None, typer.Option("--batch")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML config file.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Run name (runs/<task>/<name>).")] = None,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    device: Annotated[str | None, typer.Option("--device", help="auto, cpu or gpu.")] = None,
    pretrained: Annotated[str | None, typer.Option("--pretrained", help="Local weights to start from.")] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Drop bad pairs instead of refusing.")] = False,
    resume: Annotated[Path | None, typer.Option("--resume", help="Run folder or last.pt to continue.")] = None,
) -> None:
    """Train a model; writes runs/<task>/<name>/ (config, weights/best.pt + last.pt, metrics.csv, curves)."""
    from .api import train

    options = {"data": data, "model": model, "epochs": epochs, "imgsz": imgsz, "batch": batch, "name": name,
               "seed": seed, "device": device, "pretrained": pretrained, "skip_bad": skip_bad or None}
    summary = train(task, config=config, overrides=overrides, resume=resume, **options)
    m = summary["val"]
    row = {"model": summary["model"], "epochs": summary["epochs_run"], **m}
    out.print(_table("validation (best.pt, crack class)", [row],
                     ["model", "epochs", "precision", "recall", "f1", "iou", "ods_f1", "ois_f1", "f1_tol"]))
    out.print(f"run saved to {summary['run']}", highlight=False)


@app.command("val")
def val_cmd(
    weights: Annotated[Path, typer.Option("--weights", help="Checkpoint (.pt) to evaluate.")],
    data: Annotated[Path, typer.Option("--data", help="Data set folder.")],
    split: Annotated[str, typer.Option("--split", help="Split to evaluate.")] = "test",
    threshold: Annotated[float | None, typer.Option("--threshold")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print metrics as JSON.")] = False,
) -> None:
    """Evaluate weights on a labelled split: metrics JSON and overlay images."""
    from .api import val
    from .data.dataset import eval_samples
    from .data.layouts import discover

    total = len(eval_samples(discover(data), split))
    progress, tick = _progress(total, f"val {split}")
    with progress:
        result = val(weights, data, split=split, threshold=threshold, progress=tick)
    if as_json:
        print(json.dumps(result, indent=1))
        return
    m = result["metrics"]
    out.print(_table(f"{result['model']} on {data} [{split}], threshold {result['threshold']}", [m],
                     ["images", "precision", "recall", "f1", "iou", "f1_mean_img", "miou_2class", "ods_f1",
                      "ois_f1", "ods_f1_tol", "ois_f1_tol"]))
    out.print(f"metrics and overlays saved to {result['save_dir']}", highlight=False)


@app.command("info")
def info_cmd(
    model: Annotated[str, typer.Option("--model", help="Model name.")],
    imgsz: Annotated[int, typer.Option("--imgsz")] = 448,
    repeats: Annotated[int, typer.Option("--repeats", help="Timed runs (median reported).")] = 10,
    threads: Annotated[int | None, typer.Option("--threads", help="CPU threads (default: torch's).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Parameters, GMACs, CPU latency and FPS of a model."""
    from .api import info

    result = info(model, imgsz, repeats=repeats, threads=threads)
    if as_json:
        print(json.dumps(result, indent=1))
        return
    columns = ["model", "role", "parameters", "gmacs", "gflops", "latency_ms_median", "fps", "threads", "runtime"]
    out.print(_table(f"{model} at {imgsz}x{imgsz}", [result], columns))


@app.command("demo")
def demo_cmd(
    epochs: Annotated[int, typer.Option("--epochs")] = 15,
    model: Annotated[str, typer.Option("--model")] = "mcff-l",
) -> None:
    """Quick-start job on built-in synthetic cracks: synth, train, evaluate on a held-out split."""
    from .api import demo

    result = demo(epochs=epochs, model=model)
    m = result["test"]["metrics"]
    out.print(_table("demo: held-out synthetic test split (crack class)", [{"model": model, **m}],
                     ["model", "images", "precision", "recall", "f1", "iou", "miou_2class", "ods_f1", "ois_f1"]))
    out.print(f"data, run, weights, curves and overlays in {result['root']}", highlight=False)


def main() -> None:
    """Entry point: known errors become one line and exit status 2."""
    try:
        app()
    except DefectKDError as exc:
        err.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted", highlight=False)
        sys.exit(130)


if __name__ == "__main__":
    main()
