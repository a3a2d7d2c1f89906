"""What the result tables (deepcrack_table.py, neu_table.py) share: a row per run folder, who taught whom, the
fastest export whose accuracy holds, and records that outlive a session's run folders.

Run folders do not survive a session here, so a table keeps one small JSON per measured run in the repository
(benchmarks/results/<table>/<run>.json); a later session measures its own runs and the table grows. Rows measured
under another setting (other corrupted images, threads, tolerance) are left out with a note, never mixed in.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

from defectkd import api


def add_table_options(ap, bench_limit: int, reps: int, metric: str, records: str) -> None:
    """The speed and records options every table takes (the fastest-format rule, timing, --records)."""
    ap.add_argument("--formats", default="onnx,onnx-int8", help="export formats to time beside PyTorch")
    ap.add_argument("--bench-limit", type=int, default=bench_limit, help=f"test images for each format's {metric}")
    ap.add_argument("--max-drop", type=float, default=0.005, help=f"{metric} a faster format may lose")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=reps)
    ap.add_argument("--records", default=None, help=f"folder of one JSON per run (committed, e.g. {records}): "
                    "rows measured now are written there, earlier ones of the same setting join the table")


def describe(run: Path) -> tuple[dict, object]:
    """Model, role, method, parameters, training data and image size of a run, from its checkpoint's config;
    and the loaded model, for the caller to count its MACs (it is not used again: counting may consume it)."""
    from defectkd.core.runs import resolve_weights
    from defectkd.models.info import count_parameters
    from defectkd.models.loading import load_checkpoint_model
    from defectkd.models.registry import model_spec

    weights = resolve_weights(run)
    model, hp = load_checkpoint_model(weights)
    cfg = hp.get("config", {})
    if cfg.get("soft_labels"):
        method = "kd (offline)"
    elif cfg.get("teacher"):
        method = "+".join(loss["method"] for loss in cfg.get("losses") or []) or cfg.get("method", "kd")
    else:
        method = "alone"
    name = hp["model_name"]
    teacher = cfg.get("teacher")
    teachers = [str(resolve_weights(t).resolve()) for t in teacher.split(",")] if teacher else []
    return {"run": run.name if run.is_dir() else str(run), "weights": str(weights), "model": name,
            "role": model_spec(name).role, "method": method, "params_m": count_parameters(model) / 1e6,
            "teacher": ",".join(teachers) or None, "task": cfg.get("task", "segment"), "data": cfg.get("data"),
            "imgsz": cfg.get("imgsz"), "epochs": cfg.get("epochs")}, model


def run_name(weights: str) -> str:
    """The run a weights file belongs to (RUN/weights/best.pt -> RUN), else the file's stem: the name under which
    a row and the teacher paths of its students meet, whatever folder either was measured from."""
    p = Path(weights)
    return p.parent.parent.name if p.parent.name == "weights" else p.stem


def teacher_names(row: dict) -> str:
    """The run names a distilled row learnt from ("-" for a run trained alone), for a table's teacher column."""
    return ",".join(run_name(t) for t in row["teacher"].split(",")) if row.get("teacher") else "-"


def mark_teachers(rows: list[dict]) -> None:
    """A run that taught another row is a teacher here, whatever its model's usual role. Matched by run name, so
    a teacher measured in an earlier call (a record) is found from the paths its students recorded, wherever
    the run folders were then."""
    taught = {run_name(t) for row in rows if row["teacher"] for t in row["teacher"].split(",")}
    for row in rows:
        if run_name(row["weights"]) in taught:
            row["role"] = "teacher"


def fastest_format(row: dict, data: str, args, work: Path, imgsz: int) -> None:
    """The fastest runtime whose task metric (F1 / accuracy / mAP50) on args.bench_limit test images stays within
    args.max_drop of PyTorch's (`defectkd benchmark`: interleaved rounds, median), timed on imgsz x imgsz images."""
    bench = api.benchmark(row["weights"], data=data, split="test", imgsz=imgsz, formats=args.formats.split(","),
                          threads=args.threads, rounds=args.rounds, reps=args.reps, limit=args.bench_limit,
                          project=work, name=f"bench-{row['run']}")
    ok = [r for r in bench["rows"] if r["status"] == "ok" and r.get("fps")]
    reference = next(r["metric"] for r in ok if r["format"] == "pytorch")
    good = [r for r in ok if r["metric"] >= reference - args.max_drop]
    best = max(good, key=lambda r: r["fps"])
    row.update(format=best["format"], fps=best["fps"], formats={r["format"]: [r.get("metric"), r.get("fps")]
                                                                for r in bench["rows"]})


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_note(rows: list[dict]) -> str:
    """Which CPU timed which rows: FPS of rows timed on different machines are not comparable, so the table says
    so whenever its records come from more than one."""
    by_cpu: dict[str, list[str]] = {}
    for row in rows:
        by_cpu.setdefault(row.get("cpu") or "unknown CPU", []).append(row["run"])
    if len(by_cpu) < 2:
        return f"FPS timed on {next(iter(by_cpu))}" if by_cpu else ""
    parts = [f"{cpu}: {', '.join(runs)}" for cpu, runs in by_cpu.items()]
    return "FPS timed on different CPUs (compare speed only within one): " + "; ".join(parts)


def merge_records(rows: list[dict], folder: Path, current: dict) -> list[dict]:
    """Write each row measured now to FOLDER/<run>.json; return them with the earlier records of other runs
    measured under the same setting: teachers first, then per model the student alone before its distilled
    versions."""
    folder.mkdir(parents=True, exist_ok=True)
    for row in rows:
        (folder / f"{row['run']}.json").write_text(json.dumps(row, indent=1) + "\n")
    names = {row["run"] for row in rows}
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text())
        if record["run"] in names:
            continue
        if record.get("setting") != current:
            print(f"{path}: measured under {record.get('setting')}, not {current}; left out", file=sys.stderr)
            continue
        rows.append(record)
    mark_teachers(rows)
    return sorted(rows, key=lambda r: (r["role"] != "teacher", r["model"], r["method"] != "alone", r["method"],
                                       r["run"]))
