"""Which distillation settings make the student beat itself trained alone? Same data, budget and seed.

Offline KD from one teacher's cached soft labels (one cache per temperature), one student run per
setting, plus the student alone; each evaluated on a held-out test split. Default data: the demo's
synthetic cracks (written under --work); any set with train/test splits via --data.

    python benchmarks/kd_settings.py --teacher-weights runs/demo/demo/segment/teacher/weights/best.pt \
        --data runs/demo/demo/data --epochs 12 --imgsz 128 --settings alone T=10,alpha=0.9 T=4,alpha=0.5
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from defectkd import api
from defectkd.tasks.segment.synthetic import write_synthetic_segment

SETTINGS = ["alone", "T=10,alpha=0.9", "T=10,alpha=0.5", "T=4,alpha=0.5", "T=10,alpha=0.9,kd_pos_weight=3",
            "T=1,alpha=0.5"]


def _parse(setting: str) -> dict[str, str]:
    return dict(p.split("=", 1) for p in setting.split(",") if p and p != "alone")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--work", default="runs/bench-kd")
    ap.add_argument("--teacher", default="unet-r50", help="teacher model, trained here unless --teacher-weights")
    ap.add_argument("--teacher-weights", default=None)
    ap.add_argument("--teacher-epochs", type=int, default=15)
    ap.add_argument("--student", default="mcff-l")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--imgsz", type=int, default=128)
    ap.add_argument("--n-train", type=int, default=96)
    ap.add_argument("--settings", nargs="*", default=SETTINGS)
    ap.add_argument("--extra", nargs="*", default=["workers=1"], help="config overrides for every run")
    ap.add_argument("--quick", action="store_true", help="2 settings, 1 epoch, 64 px: checks the script runs")
    args = ap.parse_args(argv)
    if args.quick:
        args.epochs, args.teacher_epochs, args.imgsz, args.n_train = 1, 1, 64, 12
        args.teacher, args.settings = "mcff-l", ["alone", "T=4,alpha=0.5"]
        args.extra = ["workers=0"]
    work = Path(args.work)
    data = Path(args.data) if args.data else work / "data"
    if not args.data and not (data / "train").is_dir():
        write_synthetic_segment(data / "train", args.n_train, args.imgsz, seed=0)
        write_synthetic_segment(data / "test", max(4, args.n_train // 3), args.imgsz, seed=1)
    common = {"data": str(data), "imgsz": args.imgsz, "project": str(work), "overrides": args.extra}
    teacher = args.teacher_weights
    rows = []
    if teacher is None:
        t_run = api.train("segment", model=args.teacher, epochs=args.teacher_epochs, name="teacher", **common)
        teacher = t_run["best"]
    t_test = api.val(teacher, data, split="test", tolerant=False, save_dir=work / "teacher-test")["metrics"]
    rows.append({"setting": f"teacher ({Path(teacher).parent.parent.name})", **t_test, "minutes": None})
    caches: dict[float, Path] = {}
    for setting in args.settings:
        t0 = time.perf_counter()
        params = _parse(setting)
        name = "alone" if setting == "alone" else setting.replace(",", "_").replace("=", "")
        if setting == "alone":
            summary = api.train("segment", model=args.student, epochs=args.epochs, name=name, **common)
        else:
            T = float(params.pop("T", 10))
            if T not in caches:
                caches[T] = work / f"soft_T{T:g}"
                if not (caches[T] / "manifest.json").is_file():
                    api.soft_labels(teacher, data, caches[T], T=T)
            summary = api.distill("segment", model=args.student, epochs=args.epochs, name=name, T=T,
                                  soft_labels=str(caches[T]), **{**common, "overrides": [
                                      *args.extra, *(f"{k}={v}" for k, v in params.items()),
                                      *(["teacher_check=false"] if args.quick else [])]})  # 1-epoch teacher
        m = api.val(summary["best"], data, split="test", tolerant=False, save_dir=Path(summary["run"]) / "test")
        rows.append({"setting": setting, **m["metrics"], "minutes": round((time.perf_counter() - t0) / 60, 1)})
    print(f"{args.student} from {Path(teacher)}, {args.epochs} epochs at {args.imgsz} px, data {data}, test split")
    print("| setting | F1@0.5 | IoU@0.5 | P | R | ODS F1 | ODS thr | minutes |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['setting']} | {r['f1']:.4f} | {r['iou']:.4f} | {r['precision']:.4f} | {r['recall']:.4f} | "
              f"{r['ods_f1']:.4f} | {r['ods_threshold']:.2f} | {r['minutes'] if r['minutes'] is not None else '-'} |")
    (work / "kd_settings.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
