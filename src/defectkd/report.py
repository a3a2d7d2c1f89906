"""`defectkd report RUN...`: turns run folders into one Markdown and one HTML report with tables and plots.

It reads what runs already hold (results.json, config.yaml, metrics.csv and the PNGs of training runs;
metrics.json of val runs; robustness.json, kfold.json, benchmark.json) and copies the pictures beside the
report, so the folder can be mailed or published as it is. No torch: it runs wherever the runs were copied.
"""

from __future__ import annotations

import csv
import html
import json
import shutil
import time
from pathlib import Path

import yaml

from defectkd.core.errors import DataError
from defectkd.tasks import TASKS

KINDS = {"results.json": "train", "metrics.json": "val", "robustness.json": "robustness", "kfold.json": "kfold",
         "benchmark.json": "benchmark"}
PICTURES = ("curves.png", "pr_curve.png", "confusion.png", "robustness.png", "kfold.png")
SETTINGS = ("data", "epochs", "imgsz", "batch", "lr", "method", "T", "alpha", "teacher", "soft_labels", "seed")

Block = tuple  # ("h2", text) | ("p", text) | ("table", headers, rows) | ("img", file name, caption)


def run_kind(path: Path) -> str:
    for file, kind in KINDS.items():
        if (path / file).is_file():
            return kind
    raise DataError(f"{path}: not a defectkd run folder (none of {', '.join(KINDS)} in it)")


def _num(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return "-" if v is None else str(v)


def _load(path: Path) -> dict:
    kind = run_kind(path)
    info = {"path": path, "name": path.name, "kind": kind, "data": json.loads((path / next(
        f for f, k in KINDS.items() if k == kind)).read_text())}
    cfg = path / "config.yaml"
    info["config"] = yaml.safe_load(cfg.read_text()) if cfg.is_file() else {}
    info["task"] = info["config"].get("task") or info["data"].get("task") or "segment"
    return info


def _training_table(task: str, runs: list[dict]) -> Block:
    metrics = list(TASKS.get(task, TASKS["segment"]).report_metrics)
    headers = ["run", "model", "method", "teacher", "parameters", "epochs", *metrics]
    rows = []
    for r in runs:
        cfg, res = r["config"], r["data"]
        method = cfg.get("method") or ("kd (offline)" if cfg.get("soft_labels") else "-")
        teacher = (res.get("teacher") or {}).get("model") or ("-" if not cfg.get("teacher") else Path(
            str(cfg["teacher"])).name)
        params = f"{res['parameters'] / 1e6:.3f} M" if res.get("parameters") else "-"
        rows.append([r["name"], res.get("model", cfg.get("model")), method, teacher, params, res.get("epochs_run"),
                     *(_num((res.get("val") or {}).get(m)) for m in metrics)])
    return ("table", headers, rows)


def _overlay(task: str, runs: list[dict], out: Path) -> Block | None:
    """The main validation metric of every run against epochs, one line each."""
    key = TASKS.get(task, TASKS["segment"]).main_metric
    series = []
    for r in runs:
        csv_file = r["path"] / "metrics.csv"
        if csv_file.is_file():
            with csv_file.open() as fh:
                rows = [row for row in csv.DictReader(fh) if row.get(key) not in (None, "")]
            if rows:
                series.append((r["name"], [int(row["epoch"]) for row in rows], [float(row[key]) for row in rows]))
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, epochs, values in series:
        ax.plot(epochs, values, marker="o", markersize=3, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(key)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    file = f"compare_{task}.png"
    fig.savefig(out / file, dpi=100)
    plt.close(fig)
    return ("img", file, f"{key} of every {task} run against epochs")


def _pictures(r: dict, out: Path) -> list[Block]:
    blocks = []
    for pic in PICTURES:
        if (r["path"] / pic).is_file():
            file = f"{r['name']}_{pic}"
            shutil.copyfile(r["path"] / pic, out / file)
            blocks.append(("img", file, f"{r['name']}: {pic[:-4].replace('_', ' ')}"))
    return blocks


def _baseline_block(b: dict | None) -> list[Block]:
    """`distill --baseline`: the gain over the same student alone; an interval that holds 0 is not a win."""
    if not b:
        return []
    from defectkd.engine.compare import describe_gain

    return [("p", f"Against the student alone ({Path(b['run']).name}, same seed and budget): {describe_gain(b)}.")]


def _terms_block(r: dict) -> list[Block]:
    """A distillation run's loss terms (metrics.csv) at its first and last epoch, each weighted as the loss used it
    (measured with balance=loss, else config `losses[i].weight`; `hard_weight`) against the weighted hard-label
    loss: a term 10x the task loss or more is the usual sign of a student that copies the teacher instead of
    learning the task."""
    csv_file = r["path"] / "metrics.csv"
    if not csv_file.is_file():
        return []
    with csv_file.open() as fh:
        rows = list(csv.DictReader(fh))
    terms = [k for k in (rows[0] if rows else {}) if k.startswith("train/term")]
    if not terms or rows[-1].get("train/hard") in (None, ""):
        return []
    losses, hard_weight = r["config"].get("losses") or [], float(r["config"].get("hard_weight") or 1.0)

    def weight(key: str, row: dict) -> float:
        """The weight the loss used: measured (balance=loss logs train/weight<i>_<method>) or the config's."""
        if key == "train/hard":
            return hard_weight
        if key not in terms:
            return 1.0
        logged = row.get(key.replace("train/term", "train/weight", 1))
        if logged not in (None, ""):
            return float(logged)
        i = int(key.removeprefix("train/term").split("_", 1)[0])
        return float(losses[i].get("weight", 1.0)) if i < len(losses) else 1.0

    hard = float(rows[-1]["train/hard"]) * hard_weight
    table = []
    for key in ["train/hard", "train/kd", *terms]:
        first, last = (float(row[key]) * weight(key, row) if row.get(key) not in (None, "") else None
                       for row in (rows[0], rows[-1]))
        ratio = last / hard if last is not None and hard else None
        note = "dominates the task loss" if key != "train/hard" and ratio is not None and ratio >= 10 else ""
        w = weight(key, rows[-1])
        table.append([key.removeprefix("train/") + (f" (x{w:.3g})" if key in terms else ""), _num(first),
                      _num(last), _num(ratio), note])
    return [("table", ["weighted loss term", f"epoch {rows[0]['epoch']}", f"epoch {rows[-1]['epoch']}",
                       "last / hard", ""], table)]


def _other_blocks(r: dict) -> list[Block]:
    d = r["data"]
    if r["kind"] == "train":
        return _baseline_block(d.get("baseline")) + _terms_block(r)
    if r["kind"] == "val":
        m = d.get("metrics", d)
        keys = [k for k in m if isinstance(m[k], float | int) and not isinstance(m[k], bool)][:10]
        return [("table", ["metric", "value"], [[k, _num(m[k])] for k in keys])]
    if r["kind"] == "robustness":
        rows = [[m.get("label"), m.get("model"), _num(m.get("clean_dice")), _num(m.get("mDS"))] for m in d["models"]]
        return [("p", f"{d.get('images')} {d.get('split')} images; corruptions {', '.join(d.get('corruptions', []))}"
                      f" at severities {d.get('severities')}; mDS = mean Dice over the corrupted cells."),
                ("table", ["weights", "model", "clean Dice", "mDS"], rows)]
    if r["kind"] == "kfold":
        keys = list(d.get("mean", {}))
        return [("table", ["metric", "mean", "std"], [[k, _num(d["mean"][k]), _num(d["std"].get(k))] for k in keys])]
    if r["kind"] == "benchmark":
        rows = d.get("rows", [])
        headers = list(rows[0]) if rows else []
        return [("p", f"{d.get('model')} ({d.get('task')}), {d.get('images')} {d.get('split')} images, "
                      f"{d.get('imgsz')} px, {d.get('threads')} threads"),
                ("table", headers, [[_num(row.get(h)) for h in headers] for row in rows])]
    return []


def load_runs(runs: list[str | Path]) -> list[dict]:
    """Every run folder read and checked (before anything is written): kind, summary JSON, config, task."""
    if not runs:
        raise DataError("report: give at least one run folder")
    for p in runs:
        if not Path(p).is_dir():
            raise DataError(f"{p}: run folder not found")
    return [_load(Path(p)) for p in runs]


def build_report(loaded: list[dict], out: Path, title: str = "defectkd report") -> dict:
    """Writes report.md, report.html and the pictures of `load_runs`' runs to `out` (an existing, empty folder)."""
    blocks: list[Block] = [("h1", title), ("p", f"{len(loaded)} runs, written {time.strftime('%Y-%m-%d %H:%M')}")]
    training = [r for r in loaded if r["kind"] == "train"]
    for task in dict.fromkeys(r["task"] for r in training):
        group = [r for r in training if r["task"] == task]
        blocks += [("h2", f"Training runs: {task} (validation metrics of best.pt)"), _training_table(task, group)]
        overlay = _overlay(task, group, out)
        blocks += [overlay] if overlay else []
    for r in loaded:
        kind = "distill" if r["kind"] == "train" and (r["config"].get("teacher") or r["config"].get("soft_labels")) \
            else r["kind"]
        blocks.append(("h2", f"{r['name']} ({kind}{', ' + r['task'] if r['kind'] == 'train' else ''})"))
        blocks.append(("p", f"folder: {r['path']}"))
        settings = [[k, _num(r["config"][k])] for k in SETTINGS if r["config"].get(k) not in (None, "")]
        if settings:
            blocks.append(("table", ["setting", "value"], settings))
        blocks += _other_blocks(r) + _pictures(r, out)
    (out / "report.md").write_text(to_markdown(blocks))
    (out / "report.html").write_text(to_html(blocks, title))
    return {"save_dir": str(out), "runs": [str(r["path"]) for r in loaded],
            "files": sorted(p.name for p in out.iterdir())}


def to_markdown(blocks: list[Block]) -> str:
    lines: list[str] = []
    for b in blocks:
        if b[0] == "h1":
            lines += [f"# {b[1]}", ""]
        elif b[0] == "h2":
            lines += [f"## {b[1]}", ""]
        elif b[0] == "p":
            lines += [b[1], ""]
        elif b[0] == "table":
            lines += ["| " + " | ".join(map(str, b[1])) + " |", "|" + "---|" * len(b[1])]
            lines += ["| " + " | ".join(map(str, row)) + " |" for row in b[2]] + [""]
        elif b[0] == "img":
            lines += [f"![{b[2]}]({b[1]})", ""]
    return "\n".join(lines)


def to_html(blocks: list[Block], title: str) -> str:
    e = html.escape
    body: list[str] = []
    for b in blocks:
        if b[0] in ("h1", "h2", "p"):
            body.append(f"<{b[0]}>{e(b[1])}</{b[0]}>")
        elif b[0] == "table":
            head = "".join(f"<th>{e(str(h))}</th>" for h in b[1])
            rows = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in b[2])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif b[0] == "img":
            body.append(f'<figure><img src="{e(b[1])}" alt="{e(b[2])}"><figcaption>{e(b[2])}</figcaption></figure>')
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;"
             "margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee}"
             "img{max-width:100%}figcaption{color:#555;font-size:90%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>{style}</style>"
            f"</head><body>{''.join(body)}</body></html>\n")
