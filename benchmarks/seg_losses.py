"""Which class-imbalance loss trains the best crack segmenter? Same data, model, budget and seed.

Trains one model per loss spec and evaluates it on a held-out split; prints a Markdown table.
Default data: built-in synthetic cracks (train/test written under --work); any labelled set with
train/test splits can be given with --data (e.g. ../shared/datasets/deepcrack).

    python benchmarks/seg_losses.py --epochs 12 --imgsz 128 [--data PATH] [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from defectkd import api
from defectkd.tasks.segment.synthetic import write_synthetic_segment

# "loss@key=value,key=value" adds config overrides to one run (e.g. the crack weight of ce).
SPECS = ["ce", "ce+dice", "ce+dice@pos_weight=3", "ce+dice@pos_weight=1", "dice", "focal+dice", "tversky", "mcff"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--work", default="runs/bench-losses")
    ap.add_argument("--model", default="mcff-l")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--imgsz", type=int, default=128)
    ap.add_argument("--n-train", type=int, default=128)
    ap.add_argument("--losses", nargs="*", default=SPECS)
    ap.add_argument("--extra", nargs="*", default=[], help="config overrides for every run, key=value")
    ap.add_argument("--quick", action="store_true", help="2 losses, 1 epoch, 64 px: checks the script runs")
    args = ap.parse_args(argv)
    if args.quick:
        args.epochs, args.imgsz, args.n_train, args.losses = 1, 64, 16, ["ce", "ce+dice"]
    work = Path(args.work)
    data = Path(args.data) if args.data else work / "data"
    if not args.data and not (data / "train").is_dir():
        write_synthetic_segment(data / "train", args.n_train, args.imgsz, seed=0)
        write_synthetic_segment(data / "test", max(8, args.n_train // 4), args.imgsz, seed=1)
    rows = []
    for spec in args.losses:
        t0 = time.perf_counter()
        loss, _, params = spec.partition("@")
        extra = [p for p in params.split(",") if p]
        name = spec.replace("+", "_").replace("@", "_").replace("=", "").replace(",", "_")
        summary = api.train("segment", data=str(data), model=args.model, epochs=args.epochs, imgsz=args.imgsz,
                            project=str(work), name=name, overrides=[f"loss={loss}", *extra, *args.extra])
        result = api.val(summary["best"], data, split="test", tolerant=False, save_dir=Path(summary["run"]) / "test")
        m = result["metrics"]
        rows.append({"loss": spec, "f1": m["f1"], "iou": m["iou"], "precision": m["precision"],
                     "recall": m["recall"], "ods_f1": m["ods_f1"], "ods_threshold": m["ods_threshold"],
                     "minutes": round((time.perf_counter() - t0) / 60, 1)})
    print(f"{args.model}, {args.epochs} epochs at {args.imgsz} px, data {data}, test split")
    print("| loss | F1@0.5 | IoU@0.5 | P | R | ODS F1 | ODS thr | minutes |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['loss']} | {r['f1']:.4f} | {r['iou']:.4f} | {r['precision']:.4f} | {r['recall']:.4f} | "
              f"{r['ods_f1']:.4f} | {r['ods_threshold']:.2f} | {r['minutes']} |")
    (work / "losses.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
