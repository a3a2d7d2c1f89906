"""Parameters, GMACs and PyTorch CPU speed of the segmentation models, measured in one run.

Rounds are interleaved (every model once per round) so that load changes on a shared machine hit
all models alike; the table reports medians over rounds.

    python benchmarks/seg_models.py --imgsz 448 --rounds 5 --threads 2 [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

import torch

from defectkd.models import build_deployed, list_models, model_spec
from defectkd.models.info import count_macs, count_parameters, measure_latency


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--imgsz", type=int, default=448)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", nargs="*", default=None)
    ap.add_argument("--quick", action="store_true", help="64 px, 1 round: checks the script runs")
    ap.add_argument("--json", default=None, help="also write the rows to this file")
    args = ap.parse_args(argv)
    if args.quick:
        args.imgsz, args.rounds = 64, 1
    names = args.models or list_models("segment")
    models = {n: build_deployed(n) for n in names}  # -rep students as deployed
    times: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(args.rounds):
        for name, model in models.items():
            times[name].append(statistics.median(measure_latency(model, args.imgsz, repeats=3, warmup=1,
                                                                 threads=args.threads)))
    rows = []
    for name, model in models.items():
        median = statistics.median(times[name])
        rows.append({"model": name, "role": model_spec(name).role, "params_m": round(count_parameters(model) / 1e6, 3),
                     "gmacs": round(count_macs(model, args.imgsz) / 1e9, 2), "ms": round(median * 1e3, 1),
                     "fps": round(1 / median, 2)})
    base = next((r for r in rows if r["model"] == "mcff-l"), rows[0])
    print(f"imgsz {args.imgsz}, {args.threads} threads, PyTorch {torch.__version__} eager fp32, batch 1, "
          f"median of {args.rounds} rounds x 3 runs")
    print("| model | role | params (M) | GMACs | ms/image | FPS | FPS vs mcff-l |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['role']} | {r['params_m']} | {r['gmacs']} | {r['ms']} | {r['fps']} | "
              f"{r['fps'] / base['fps']:.2f}x |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"imgsz": args.imgsz, "threads": args.threads, "rounds": args.rounds, "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
