"""Is model A better than model B on the same test images? The difference of their task metric with a paired
bootstrap 95 % interval over images (the images are resampled together for both models): what
`defectkd distill --baseline` reports, for any two finished runs.

    python benchmarks/paired_bootstrap.py --data ../shared/datasets/deepcrack \
        runs/bench-dc/segment/e20-rfkd-mcff-edge-n runs/bench-dc/segment/s0-e20-mcff-edge-n
    python benchmarks/paired_bootstrap.py --data ../shared/datasets/neu_det \
        runs/classify/neu-cmi-kd-r50e30 runs/classify/neu-cmi-fp32

Segmentation: crack F1 pooled over the resampled images' pixels (each model at its own threshold), as `val` reports
it. Classification: top-1 accuracy. Detection: COCO mAP50 from per-image matches (tasks/detect/compare.py).
"""

from __future__ import annotations

import argparse
import json
import sys

from defectkd.core.runs import resolve_weights
from defectkd.engine.compare import paired_bootstrap
from defectkd.models.loading import load_checkpoint_model
from defectkd.tasks import task_of_weights


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", help="weights or run folder of model A (e.g. the distilled student)")
    ap.add_argument("b", help="weights or run folder of model B (e.g. the same student alone)")
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--resamples", type=int, default=5000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    a, b = resolve_weights(args.a), resolve_weights(args.b)
    task = task_of_weights(a)
    if task is not task_of_weights(b):
        raise SystemExit(f"paired_bootstrap: {args.a} and {args.b} are models of different tasks")
    if not task.compares_per_image:
        raise SystemExit(f"paired_bootstrap: task {task.name!r} is not supported (its metric has no per-image terms)")
    samples = task.eval_images(load_checkpoint_model(a)[1], args.data, args.split).samples
    r = {"task": task.name, "split": args.split,
         **paired_bootstrap(task, task.image_rows(a, samples), task.image_rows(b, samples), args.resamples)}
    if args.json:
        print(json.dumps(r))
    else:
        print(f"{r['images']} {args.split} images, {task.metric_name}: A {r['a']:.4f}  B {r['b']:.4f}  "
              f"A - B {r['gain']:+.4f}  95 % [{r['low']:+.4f}, {r['high']:+.4f}]  {r['verdict']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
