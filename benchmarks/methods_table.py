"""Distillation methods side by side: clean crack F1 / IoU and mean Dice over corruptions (mDS).

Same student, epochs, crop size and seed for every method; the teacher is fixed (trained once, passed
with --teacher). Each run is `method:student` ("alone" = hard labels only). A run whose folder already
holds results.json is reused, so the table can be built over several sessions:

    python benchmarks/methods_table.py --data ../shared/datasets/deepcrack \
        --teacher runs/segment/deepcrack-unet-r50 --epochs 20 --imgsz 256 --batch 8 \
        --runs alone:mcff-l kd:mcff-l fitnet:mcff-l at:mcff-l cwd:mcff-l mgd:mcff-l rfkd:mcff-l \
               alone:pct-tiny kd:pct-tiny rfkd:pct-tiny --robust-limit 60

Without --data it writes synthetic cracks under --work and trains a teacher there (--quick checks
that the script runs, in seconds).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # campaign beside this script, however it is run

from campaign import train_or_reuse  # noqa: E402

from defectkd import api  # noqa: E402
from defectkd.tasks.segment.synthetic import write_synthetic_segment  # noqa: E402

RUNS = ["alone:mcff-l", "kd:mcff-l", "fitnet:mcff-l", "at:mcff-l", "cwd:mcff-l", "mgd:mcff-l", "rfkd:mcff-l",
        "alone:pct-tiny", "kd:pct-tiny", "rfkd:pct-tiny"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--work", default="runs/bench-methods", help="project folder of the runs")
    ap.add_argument("--teacher", default=None, help="teacher run folder or weights (trained here if absent)")
    ap.add_argument("--teacher-model", default="unet-r50")
    ap.add_argument("--runs", nargs="*", default=RUNS, help="method:student pairs")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--imgsz", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--n-train", type=int, default=96)
    ap.add_argument("--prefix", default="m", help="run names are PREFIX-METHOD-STUDENT")
    ap.add_argument("--corruptions", default="pepper,salt,crack-texture,gaussian-blur,gaussian-noise,jpeg")
    ap.add_argument("--severities", default="1,3,5")
    ap.add_argument("--robust-limit", type=int, default=None, help="first N test images for mDS")
    ap.add_argument("--extra", nargs="*", default=["workers=1"], help="config overrides for every run")
    ap.add_argument("--quick", action="store_true", help="3 runs, 1 epoch, 64 px: checks the script runs")
    args = ap.parse_args(argv)
    if args.quick:
        args.epochs, args.imgsz, args.n_train, args.teacher_model = 1, 64, 12, "mcff-l"
        args.runs, args.extra = ["alone:mcff-l", "mgd:mcff-l", "rfkd:pct-tiny"], ["workers=0"]
        args.corruptions, args.severities, args.robust_limit = "pepper,gaussian-blur", "1", 2
    work = Path(args.work)
    data = Path(args.data) if args.data else work / "data"
    if not args.data and not (data / "train").is_dir():
        write_synthetic_segment(data / "train", args.n_train, args.imgsz, seed=0)
        write_synthetic_segment(data / "test", max(4, args.n_train // 3), args.imgsz, seed=1)
    common = {"data": str(data), "imgsz": args.imgsz, "epochs": args.epochs, "batch": args.batch,
              "project": str(work)}
    teacher = args.teacher
    if teacher is None:
        teacher = train_or_reuse("segment", "alone", args.teacher_model, None, "teacher", common, args.extra)["best"]
    rows = []
    for spec in args.runs:
        method, _, student = spec.partition(":")
        t0 = time.perf_counter()
        summary = train_or_reuse("segment", method, student, teacher, f"{args.prefix}-{method}-{student}", common,
                                 args.extra, ["teacher_check=false"] if args.quick else None)
        test = api.val(summary["best"], data, split="test", tolerant=False)["metrics"]
        rows.append({"method": method, "student": student, "parameters": summary.get("parameters"),
                     "weights": summary["best"], "f1": test["f1"], "iou": test["iou"], "ods_f1": test["ods_f1"],
                     "ois_f1": test["ois_f1"], "test": test,
                     "minutes": None if summary.get("reused") else round((time.perf_counter() - t0) / 60, 1)})
    report = api.robustness([r["weights"] for r in rows], data, corruptions=args.corruptions,
                            severities=args.severities, limit=args.robust_limit, project=work, name="robustness")
    for row, model in zip(rows, report["models"], strict=True):
        row["mDS"], row["clean_dice_subset"] = model["mDS"], model["clean_dice"]
        row["per_corruption"] = model["per_corruption"]
    print(f"teacher {teacher}; {args.epochs} epochs at {args.imgsz} px, data {data}, test split; mDS over "
          f"{args.corruptions} x severities {args.severities} on {report['images']} test images")
    print("| method | student | params | F1@0.5 | IoU@0.5 | ODS F1 | OIS F1 | mDS | minutes |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        params = f"{r['parameters'] / 1e6:.2f} M" if r["parameters"] else "-"
        print(f"| {r['method']} | {r['student']} | {params} | {r['f1']:.4f} | {r['iou']:.4f} | {r['ods_f1']:.4f} | "
              f"{r['ois_f1']:.4f} | "
              f"{r['mDS']:.4f} | {r['minutes'] if r['minutes'] is not None else 'reused'} |")
    robust = {"corruptions": args.corruptions, "severities": args.severities, "images": report["images"]}
    (work / "methods_table.json").write_text(json.dumps({
        "teacher": str(teacher), "data": str(data), "epochs": args.epochs, "imgsz": args.imgsz, "batch": args.batch,
        "rows": rows, "robustness": {**robust, "save_dir": report["save_dir"]}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
