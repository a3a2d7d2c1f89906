"""One crack-segmentation table: teachers and students, alone and distilled, with accuracy, robustness, size,
compute and the speed of their fastest export, beside the published DeepCrack numbers (docs/papers.md).

Each row is a finished run folder (from `defectkd train` / `distill` or benchmarks/methods_table.py):

- test F1 / IoU at the run's threshold (exact, no tolerance, as the published figures), ODS and OIS F1;
- mDS: mean crack Dice over the corruptions x severities, on the first --robust-limit test images;
- parameters and GMACs of one 448x448 image;
- FPS: the fastest of PyTorch and the --formats exports (ONNX Runtime FP32, INT8) on --threads threads at
  448x448, among those whose F1 on --bench-limit test images stays within --max-drop of PyTorch's
  (`defectkd benchmark`, interleaved rounds, median).

Rows that a methods_table.json (--reuse) already measured with the same corruptions, severities and images keep
its accuracy columns (nothing is evaluated twice); speed is always measured here.

    python benchmarks/deepcrack_table.py --data ../shared/datasets/deepcrack \
        --runs runs/bench-methods/segment/teacher-edge-m runs/bench-methods/segment/l6-*-mcff-l \
        --reuse runs/bench-methods/methods_table.json --robust-limit 30 --severities 3 --bench-limit 20 \
        --records benchmarks/results/deepcrack

Run folders do not outlive a session, so --records keeps one small JSON per measured run in the repository;
a later session adds its runs and the table grows (the `measured` column and each record's `cpu` say when and
where; rows measured under another corruption/speed setting are left out with a note). With --records alone
the script only prints the recorded table.

--quick trains two one-epoch runs on synthetic cracks and builds their table (checks the script runs).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # table_records beside this script, however it is run

import table_records as tr  # noqa: E402

from defectkd import api  # noqa: E402
from defectkd.models.info import count_macs_meta  # noqa: E402
from defectkd.tasks.segment.dataset import labelled_split  # noqa: E402
from defectkd.tasks.segment.synthetic import write_synthetic_segment  # noqa: E402

# docs/papers.md: DeepCrack test set (237 images), exact F1; parameters where published.
PUBLISHED = [("DeepCrack-BN", 0.852, None), ("DeepCrack + guided filter", 0.868, None), ("U-Net", 0.830, 13.3),
             ("DeepCrack", 0.865, 14.7), ("CT-crackseg", 0.883, 22.9), ("SCSegamba (secondary report)", 0.911, 2.8),
             ("MixerCSeg (secondary report)", 0.921, 2.5)]


def reused_accuracy(paths: list[str], robust: dict) -> dict[str, dict]:
    """weights path -> accuracy columns, from methods_table.json files measured under the same corruptions."""
    found = {}
    for path in paths:
        table = json.loads(Path(path).read_text())
        setting = table.get("robustness", {})
        if any(str(setting.get(k)) != str(robust[k]) for k in ("corruptions", "severities", "images")):
            print(f"{path}: other corruption settings ({setting}); its rows are measured again", file=sys.stderr)
            continue
        for row in table["rows"]:
            if "ois_f1" in row:
                found[str(Path(row["weights"]).resolve())] = {k: row[k] for k in ("f1", "iou", "ods_f1", "ois_f1",
                                                                                  "mDS")}
    return found


def accuracy(rows: list[dict], data: str, args: argparse.Namespace, work: Path) -> None:
    """Fill f1/iou/ods_f1/ois_f1/mDS of every row, reusing what --reuse measured."""
    images = len(labelled_split(data, "test")[: args.robust_limit])
    robust = {"corruptions": args.corruptions, "severities": args.severities, "images": images}
    known = reused_accuracy(args.reuse, robust)
    todo = []
    for row in rows:
        hit = known.get(str(Path(row["weights"]).resolve()))
        if hit:
            row.update(hit, accuracy_from="reused")
        else:
            test = api.val(row["weights"], data, split="test", tolerant=False, project=str(work))["metrics"]
            row.update({k: test[k] for k in ("f1", "iou", "ods_f1", "ois_f1")}, accuracy_from="measured")
            todo.append(row)
    if todo:
        report = api.robustness([r["weights"] for r in todo], data, corruptions=args.corruptions,
                                severities=args.severities, limit=args.robust_limit, project=work, name="robustness")
        for row, model in zip(todo, report["models"], strict=True):
            row["mDS"] = model["mDS"]


def setting(args: argparse.Namespace) -> dict:
    """What makes two rows comparable: the same corrupted images and the same speed measurement."""
    return {k: getattr(args, k) for k in ("corruptions", "severities", "robust_limit", "bench_limit", "threads",
                                          "max_drop")}


def print_table(rows: list[dict], args: argparse.Namespace) -> None:
    print(f"test split; F1/IoU at each run's threshold, exact; mDS over {args.corruptions} x severities "
          f"{args.severities} on {args.robust_limit or 'all'} test images; FPS at 448x448, {args.threads} threads")
    print("| run | model | role | method | teacher | params (M) | GMACs@448 | F1 | IoU | ODS F1 | OIS F1 | mDS | "
          "fastest format | FPS | measured |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['run']} | {r['model']} | {r['role']} | {r['method']} | {tr.teacher_names(r)} | "
              f"{r['params_m']:.2f} | {r['gmacs']:.2f} | "
              f"{r['f1']:.4f} | {r['iou']:.4f} | {r['ods_f1']:.4f} | {r['ois_f1']:.4f} | {r['mDS']:.4f} | "
              f"{r['format']} | {r['fps']:.2f} | {r['measured']} |")
    print(f"\n{tr.cpu_note(rows)}\n")
    print("| published (DeepCrack test, docs/papers.md) | F1 | params (M) |")
    print("|---|---|---|")
    for name, f1, params in PUBLISHED:
        print(f"| {name} | {f1:.3f} | {params if params is not None else '-'} |")
    if not rows:
        print("\nno rows measured under this setting")
        return
    best = max(rows, key=lambda r: r["f1"])
    above = [name for name, f1, _ in PUBLISHED if best["f1"] >= f1]
    print(f"\nbest here: {best['run']} F1 {best['f1']:.3f} ({best['params_m']:.2f} M); "
          f"at or above: {', '.join(above) if above else 'none of the published models'}")


def quick_runs(work: Path) -> tuple[str, list[str]]:
    data = work / "data"
    write_synthetic_segment(data / "train", 12, 64, seed=0)
    write_synthetic_segment(data / "test", 4, 64, seed=1)
    common = {"data": str(data), "imgsz": 64, "epochs": 1, "batch": 4, "project": str(work),
              "overrides": ["workers=0"]}
    teacher = api.train("segment", model="mcff-edge-m", name="teacher", **common)["run"]
    student = api.distill("segment", model="mcff-edge-n", teacher=teacher, method="kd", name="kd-edge-n",
                          **{**common, "overrides": ["workers=0", "teacher_check=false"]})["run"]
    return str(data), [teacher, student]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="data set with a labelled test split")
    ap.add_argument("--runs", nargs="*", default=[], help="run folders (or weights files), one row each")
    ap.add_argument("--reuse", nargs="*", default=[], help="methods_table.json files whose accuracy to reuse")
    ap.add_argument("--work", default="runs/bench-table", help="folder for evaluations, exports and the JSON")
    ap.add_argument("--corruptions", default="pepper,salt,crack-texture,gaussian-blur,gaussian-noise,jpeg")
    ap.add_argument("--severities", default="1,3,5")
    ap.add_argument("--robust-limit", type=int, default=None, help="first N test images for mDS")
    tr.add_table_options(ap, bench_limit=20, reps=3, metric="F1", records="benchmarks/results/deepcrack")
    ap.add_argument("--quick", action="store_true", help="two 1-epoch synthetic runs: checks the script runs")
    args = ap.parse_args(argv)
    work = Path(args.work)
    if args.quick:
        args.data, args.runs = quick_runs(work)
        args.corruptions, args.severities, args.robust_limit = "pepper", "1", 2
        args.bench_limit, args.rounds, args.reps, args.threads = 2, 1, 1, 1
    if args.runs and not args.data:
        ap.error("--runs needs --data (the data set with the labelled test split)")
    if not args.runs and not args.records:
        ap.error("give --runs (with --data), --records, or --quick")
    rows = []
    for run in args.runs:
        row, model = tr.describe(Path(run))
        rows.append({**row, "gmacs": count_macs_meta(model, 448) / 1e9})  # the loaded model, on the meta device
    tr.mark_teachers(rows)
    if rows:
        accuracy(rows, args.data, args, work)
    for row in rows:
        tr.fastest_format(row, args.data, args, work, imgsz=448)
        row.update(measured=time.strftime("%Y-%m-%d"), cpu=tr.cpu_name(), setting=setting(args))
    if args.records:
        rows = tr.merge_records(rows, Path(args.records), setting(args))
    print_table(rows, args)
    work.mkdir(parents=True, exist_ok=True)
    (work / "deepcrack_table.json").write_text(json.dumps({"data": args.data, "settings": vars(args), "rows": rows,
                                                           "published": PUBLISHED}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
