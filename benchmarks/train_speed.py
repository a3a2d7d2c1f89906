"""Training throughput (images/s) of a model on CPU under the precision / memory-format choices
that `precision=auto` and `channels_last` make, measured in one run with interleaved rounds.

    python benchmarks/train_speed.py --model mcff-l --imgsz 256 --batch 4 --rounds 5 [--quick]
    python benchmarks/train_speed.py --model mcff-teacher --settings "bf16 autocast + channels_last" --batch 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import nullcontext

import torch

from defectkd.models import build_model

SETTINGS = {
    "fp32": (False, False),
    "fp32 + channels_last": (False, True),
    "bf16 autocast + channels_last": (True, True),
}


def _step_time(model, x, opt, bf16: bool) -> float:
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()
    t0 = time.perf_counter()
    with ctx:
        heads = model.forward_heads(x)
    loss = sum(h.float().mean() for h in heads.values())
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mcff-l")
    ap.add_argument("--imgsz", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--settings", default=",".join(SETTINGS),
                    help="comma-separated subset of: " + ", ".join(SETTINGS) + " (a huge model: time only bf16)")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    wanted = [w.strip() for w in args.settings.split(",")]
    unknown = [w for w in wanted if w not in SETTINGS]
    if unknown:
        ap.error(f"--settings: unknown {unknown}; choose from {list(SETTINGS)}")
    if args.quick:
        args.imgsz, args.rounds, args.batch = 64, 1, 2
    torch.set_num_threads(args.threads)
    bf16_ok = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
    runs = {}
    for name, (bf16, channels_last) in SETTINGS.items():
        if name not in wanted:
            continue
        if bf16 and not bf16_ok and not args.quick:
            continue
        model = build_model(args.model).train()
        x = torch.rand(args.batch, 3, args.imgsz, args.imgsz)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        opt = torch.optim.AdamW(model.parameters())
        _step_time(model, x, opt, bf16)  # warm-up
        runs[name] = (model, x, opt, bf16, [])
    for _ in range(args.rounds):
        for model, x, opt, bf16, times in runs.values():
            times.append(_step_time(model, x, opt, bf16))
    base = None
    print(f"{args.model}, batch {args.batch} x {args.imgsz}px, {args.threads} threads, median of {args.rounds} steps")
    print("| setting | s/step | images/s | speed-up |")
    print("|---|---|---|---|")
    for name, (*_, times) in runs.items():
        med = statistics.median(times)
        base = base or med
        print(f"| {name} | {med:.3f} | {args.batch / med:.2f} | {base / med:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
