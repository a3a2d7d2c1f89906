"""Train the NEU-DET runs of one task (a teacher, then students alone and distilled, same budget and seed) and
tabulate them with neu_table.py: the whole NEU-DET benchmark in one command.

    python benchmarks/neu_runs.py --task classify --data ../shared/datasets/neu_det \
        --teacher-model resnet50 --teacher-epochs 30 --teacher-extra label_smoothing=0.1 \
        --runs alone:cmi kd:cmi dkd:cmi --epochs 15 --imgsz 128 --batch 32 --prefix neu \
        --method-extra kd:T=6 kd:alpha=0.7 --records benchmarks/results/neu
    python benchmarks/neu_runs.py --task detect --data ../shared/datasets/neu_det \
        --teacher-model retinanet-r18 --teacher-epochs 12 --runs alone:retinanet-mnv3 mgd:retinanet-mnv3 \
        --epochs 20 --imgsz 160 --batch 8 --prefix neu --records benchmarks/results/neu

A run whose folder already holds results.json is reused (runs are named PREFIX-METHOD-STUDENT, the teacher
PREFIX-teacher-MODEL), so an interrupted campaign continues where it stopped; --teacher takes a finished teacher
run instead. Without --data it writes synthetic data under --work (--quick: 1 epoch, tiny images, seconds).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # neu_table beside this script, however it is run

import neu_table  # noqa: E402
from campaign import train_or_reuse  # noqa: E402

QUICK_MODELS = {"classify": ("mobilenetv2", ["alone:cmi", "kd:cmi"]),
                "detect": ("retinanet-mnv3", ["alone:retinanet-mnv3", "mgd:retinanet-mnv3"])}


def synthetic(task: str, folder: Path, size: int) -> Path:
    if task == "classify":
        from defectkd.tasks.classify.synthetic import write_synthetic_classify

        write_synthetic_classify(folder / "train", 36, size, seed=0)
        write_synthetic_classify(folder / "test", 12, size, seed=1)
        return folder
    from defectkd.tasks.detect.synthetic import write_synthetic_detect

    return write_synthetic_detect(folder, 20, size, seed=0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=("classify", "detect"), required=True)
    ap.add_argument("--data", default=None, help="NEU-DET (or another data set of the task); default synthetic")
    ap.add_argument("--work", default="runs/bench-neu", help="project folder of the runs")
    ap.add_argument("--teacher", default=None, help="a finished teacher run (else trained here)")
    ap.add_argument("--teacher-model", default=None, help="classify: resnet50; detect: retinanet-r18")
    ap.add_argument("--teacher-epochs", type=int, default=None, help="default: --epochs")
    ap.add_argument("--teacher-extra", nargs="*", default=[], help="config overrides of the teacher run")
    ap.add_argument("--runs", nargs="*", default=None, help="method:student pairs (alone = hard labels only)")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--imgsz", type=int, default=None, help="classify: 128; detect: 160")
    ap.add_argument("--batch", type=int, default=None, help="classify: 32; detect: 8")
    ap.add_argument("--prefix", default="neu", help="run names are PREFIX-METHOD-STUDENT")
    ap.add_argument("--extra", nargs="*", default=["workers=1"], help="config overrides of every run")
    ap.add_argument("--method-extra", nargs="*", default=[], help="METHOD:key=value overrides of one method's runs")
    ap.add_argument("--records", default=None, help="passed to neu_table.py")
    ap.add_argument("--quick", action="store_true", help="synthetic data, tiny models, 1 epoch: checks it runs")
    args = ap.parse_args(argv)
    classify = args.task == "classify"
    args.teacher_model = args.teacher_model or ("resnet50" if classify else "retinanet-r18")
    args.imgsz = args.imgsz or (128 if classify else 160)
    args.batch = args.batch or (32 if classify else 8)
    args.runs = args.runs or (["alone:cmi", "kd:cmi", "dkd:cmi"] if classify else
                              ["alone:retinanet-mnv3", "mgd:retinanet-mnv3"])
    table = []
    if args.quick:
        args.teacher_model, args.runs = QUICK_MODELS[args.task]
        args.epochs, args.imgsz, args.batch, args.extra = 1, 48 if classify else 64, 4, ["workers=0"]
        table = ["--imgsz", "64", "--bench-limit", "4", "--rounds", "1", "--reps", "1", "--threads", "1"]
    work = Path(args.work)
    data = Path(args.data) if args.data else synthetic(args.task, work / f"data-{args.task}", args.imgsz)
    common = {"data": str(data), "imgsz": args.imgsz, "batch": args.batch, "project": str(work)}
    teacher = args.teacher or train_or_reuse(
        args.task, "alone", args.teacher_model, None, f"{args.prefix}-teacher-{args.teacher_model}",
        {**common, "epochs": args.teacher_epochs or args.epochs}, args.extra + args.teacher_extra)["run"]
    runs = [teacher]
    for spec in args.runs:
        method, _, student = spec.partition(":")
        own = [kv.partition(":")[2] for kv in args.method_extra if kv.partition(":")[0] == method]
        runs.append(train_or_reuse(args.task, method, student, teacher, f"{args.prefix}-{method}-{student}",
                                   {**common, "epochs": args.epochs}, args.extra + own,
                                   ["teacher_check=false"] if args.quick else None)["run"])
    (work / f"neu_runs-{args.task}.json").write_text(json.dumps({"data": str(data), "runs": runs}, indent=1))
    records = ["--records", args.records] if args.records else []
    return neu_table.main(["--data", str(data), "--work", str(work), "--runs", *runs, *records, *table])


if __name__ == "__main__":
    sys.exit(main())
