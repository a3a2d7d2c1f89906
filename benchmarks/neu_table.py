"""NEU-DET tables: steel-defect classification and detection runs (teachers, students alone and distilled) with
test accuracy / mAP, size, compute and the speed of their fastest export, beside the published figures.

Each row is a finished run folder (`defectkd train|distill classify|detect`); the task comes from the run:

- classification: test accuracy and macro F1 (the run's image size), confusion matrix in the val folder;
- detection: COCO mAP 0.5 and 0.5:0.95, AP small / medium / large (faster-coco-eval);
- parameters and GMACs of one image at the run's training size;
- FPS: the fastest of PyTorch and the --formats exports (ONNX Runtime FP32, INT8) on --threads threads, timed on
  --imgsz x --imgsz images (200: NEU-DET's own size; each model resizes to its training size), among those whose
  accuracy / mAP50 on --bench-limit test images stays within --max-drop of PyTorch's;
- a distilled row's gain over the row of the same student model trained alone with the same epochs and size.

    python benchmarks/neu_table.py --data ../shared/datasets/neu_det \
        --runs runs/classify/neu-resnet50-e30 runs/classify/neu-cmi-fp32 runs/classify/neu-cmi-kd-r50e30 \
        --records benchmarks/results/neu

--records keeps one JSON per measured run in the repository (see table_records.py); with --records alone the
script prints the recorded tables. --quick trains tiny synthetic runs (a classifier teacher and KD student, a
detector) for one epoch and builds their tables (checks the script runs).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # table_records beside this script, however it is run

from table_records import add_table_options, cpu_name, cpu_note, describe, fastest_format, mark_teachers, merge_records  # noqa: E402

from defectkd import api  # noqa: E402
from defectkd.models.info import count_macs  # noqa: E402

# docs/papers.md (CMI: sewer cracks, private data; NEU-DET: no official split).
PUBLISHED_CLASSIFY = [("CMI + KD over CMI alone (sewer cracks, private data)", "+1.41 accuracy, +1.12 F1")]
PUBLISHED_DETECT = [("RetinaNet-R101 teacher (MGD paper)", None, 0.413), ("RetinaNet-R50 student", None, 0.400),
                    ("RetinaNet-R50 + MGD", None, 0.415), ("YOLOv5x", 0.716, None), ("YOLOv7", 0.777, None),
                    ("YOLOv8m", 0.707, None), ("DDN-R50", 0.823, None), ("HEL-YOLO (5 M)", 0.841, None)]
CLASSIFY_KEYS = ("accuracy", "f1")
DETECT_KEYS = ("map_50", "map", "map_small", "map_medium", "map_large")


def test_metrics(row: dict, data: str, work: Path) -> dict:
    """The test-split metrics of a run (classification or detection; `defectkd val`)."""
    metrics = api.val(row["weights"], data, split="test", project=str(work))["metrics"]
    keys = CLASSIFY_KEYS if row["task"] == "classify" else DETECT_KEYS
    return {k: metrics[k] for k in keys}


def add_gains(rows: list[dict]) -> None:
    """gain = a distilled row's metrics minus those of its model alone (same task, epochs and image size)."""
    alone = {(r["task"], r["model"], r["epochs"], r["imgsz"]): r for r in rows if r["method"] == "alone"}
    for row in rows:
        base = alone.get((row["task"], row["model"], row["epochs"], row["imgsz"]))
        if row["method"] != "alone" and base is not None:
            keys = CLASSIFY_KEYS if row["task"] == "classify" else DETECT_KEYS
            row["gain"] = {k: row[k] - base[k] for k in keys}
            row["gain_over"] = base["run"]


def setting(args: argparse.Namespace) -> dict:
    """What makes two rows' speed comparable (accuracy is always the whole test split)."""
    return {k: getattr(args, k) for k in ("imgsz", "bench_limit", "threads", "max_drop")}


def _fmt(value: float | None) -> str:
    """-1 is COCO's 'no object of this size in the split'."""
    return "-" if value is None or value < 0 else f"{value:.4f}"


def _line(r: dict, cells: list[str], gain_keys: tuple[str, str]) -> str:
    """One table row: the run's description, its metric cells, the gain in points, speed."""
    gain = r.get("gain")
    g = " / ".join(f"{100 * gain[k]:+.1f}" for k in gain_keys) if gain else "-"
    return (f"| {r['run']} | {r['model']} | {r['role']} | {r['method']} | {r['params_m']:.2f} | {r['gmacs']:.3f} | "
            f"{r['imgsz']} | {r['epochs']} | {' | '.join(cells)} | {g} | {r['format']} | {r['fps']:.1f} | "
            f"{r['measured']} |")


def print_tables(rows: list[dict], args: argparse.Namespace) -> None:
    speed = f"FPS on {args.imgsz}x{args.imgsz} images, {args.threads} threads, batch 1, end to end"
    head = "| run | model | role | method | params (M) | GMACs | imgsz | epochs | "
    print(f"classification, test split; {speed}")
    print(head + "accuracy | macro F1 | gain acc / F1 | fastest format | FPS | measured |")
    print("|---" * 14 + "|")
    for r in (r for r in rows if r["task"] == "classify"):
        print(_line(r, [f"{r['accuracy']:.4f}", f"{r['f1']:.4f}"], ("accuracy", "f1")))
    print(f"\npublished: {'; '.join(f'{name}: {text}' for name, text in PUBLISHED_CLASSIFY)}\n")
    print(f"detection, test split, COCO mAP; {speed}")
    print(head + "mAP50 | mAP | AP_S | AP_M | AP_L | gain mAP50 / mAP | fastest format | FPS | measured |")
    print("|---" * 17 + "|")
    for r in (r for r in rows if r["task"] == "detect"):
        print(_line(r, [_fmt(r[k]) for k in DETECT_KEYS], ("map_50", "map")))
    print(f"\n{cpu_note(rows)}")
    print("\n| published (NEU-DET, docs/papers.md; other splits) | mAP50 | mAP |")
    print("|---|---|---|")
    for name, map50, map_ in PUBLISHED_DETECT:
        print(f"| {name} | {_fmt(map50)} | {_fmt(map_)} |")
    if not rows:
        print("\nno rows measured under this setting")


def quick_runs(work: Path) -> list[str]:
    from defectkd.tasks.classify.synthetic import write_synthetic_classify
    from defectkd.tasks.detect.synthetic import write_synthetic_detect

    cls_data = work / "cls-data"
    write_synthetic_classify(cls_data / "train", 30, 48, seed=0)
    write_synthetic_classify(cls_data / "test", 10, 48, seed=1)
    det_data = write_synthetic_detect(work / "det-data", 10, 64, seed=0)
    common = {"epochs": 1, "batch": 4, "project": str(work), "overrides": ["workers=0"]}
    teacher = api.train("classify", data=str(cls_data), model="mobilenetv2", imgsz=48, name="cls-teacher",
                        **common)["run"]
    alone = api.train("classify", data=str(cls_data), model="cmi", imgsz=48, name="cls-alone", **common)["run"]
    kd = api.distill("classify", data=str(cls_data), model="cmi", imgsz=48, teacher=teacher, method="kd",
                     name="cls-kd", **{**common, "overrides": ["workers=0", "teacher_check=false"]})["run"]
    det = api.train("detect", data=str(det_data), model="retinanet-mnv3", imgsz=64, name="det-alone",
                    **common)["run"]
    return [teacher, alone, kd, det]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="data set with a test split (default: each run's own data)")
    ap.add_argument("--runs", nargs="*", default=[], help="classify / detect run folders, one row each")
    ap.add_argument("--work", default="runs/bench-neu", help="folder for evaluations, exports and the JSON")
    ap.add_argument("--imgsz", type=int, default=200, help="side of the timing images (NEU-DET: 200)")
    add_table_options(ap, bench_limit=360, reps=5, metric="accuracy / mAP50", records="benchmarks/results/neu")
    ap.add_argument("--quick", action="store_true", help="tiny 1-epoch synthetic runs: checks the script runs")
    args = ap.parse_args(argv)
    work = Path(args.work)
    if args.quick:
        args.runs = quick_runs(work)
        args.imgsz, args.bench_limit, args.rounds, args.reps, args.threads = 64, 4, 1, 1, 1
    if not args.runs and not args.records:
        ap.error("give --runs, --records, or --quick")
    rows = []
    for run in args.runs:
        row, model = describe(Path(run))
        if row["task"] not in ("classify", "detect"):
            ap.error(f"{run}: a {row['task']} run; this table takes classify and detect runs")
        row["data"] = args.data or row["data"]
        # GMACs of one image at the training size (a detector counts its resize, heads and box decoding too)
        rows.append({**row, "gmacs": count_macs(model, row["imgsz"]) / 1e9})
    mark_teachers(rows)
    for row in rows:
        row.update(test_metrics(row, row["data"], work))
        fastest_format(row, row["data"], args, work, imgsz=args.imgsz)
        row.update(measured=time.strftime("%Y-%m-%d"), cpu=cpu_name(), setting=setting(args))
    if args.records:
        rows = merge_records(rows, Path(args.records), setting(args))
    add_gains(rows)
    print_tables(rows, args)
    work.mkdir(parents=True, exist_ok=True)
    (work / "neu_table.json").write_text(json.dumps({"settings": vars(args), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
