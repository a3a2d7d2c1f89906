"""Cost of a distillation training step against a student-alone step, in one run with interleaved rounds.

Three ways to train the same student on the same batches: alone (hard labels), online KD (teacher
forward every step) and offline KD (teacher's soft labels read from the float16 cache). Each
iteration is timed whole: data (augmentation, soft-label decoding and augmentation) + forward +
backward + optimiser step, with the precision `precision=auto` picks. Ratios are what to read.

    python benchmarks/distill_speed.py --teacher unet-r50 --student mcff-l --imgsz 256 --batch 8 [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from contextlib import nullcontext
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from defectkd.core.checkpoint import DEPLOY_FORMAT
from defectkd.data.layouts import discover
from defectkd.models import build_model
from defectkd.models.loading import load_checkpoint_model
from defectkd.tasks.segment.config import DistillSegmentConfig, SegmentTrainConfig
from defectkd.tasks.segment.dataset import SegmentationDataset, train_transform
from defectkd.tasks.segment.distill_module import DistillModule
from defectkd.tasks.segment.module import SegmentModule
from defectkd.tasks.segment.soft_dataset import SoftLabelDataset
from defectkd.tasks.segment.soft_labels import SoftLabelCache, write_soft_labels
from defectkd.tasks.segment.synthetic import write_synthetic_segment


def _teacher_file(name: str, folder: Path) -> Path:
    model = build_model(name)
    path = folder / f"{name}.pt"
    torch.save({"format": DEPLOY_FORMAT, "model_name": name, "model_kwargs": {"classes": 2}, "threshold": 0.5,
                "state_dict": model.state_dict()}, path)
    return path


class Runner:
    """One way of training: a module, its optimiser and an endless iterator over its loader."""

    def __init__(self, module, loader, bf16: bool) -> None:
        self.module = module.train().to(memory_format=torch.channels_last)
        if getattr(module, "teacher", None) is not None:
            module.teacher.to(memory_format=torch.channels_last)
        self.opt = torch.optim.AdamW(module.model.parameters(), lr=1e-4)
        self.loader, self.it = loader, iter(loader)
        self.bf16 = bf16
        self.times: list[float] = []

    def _batch(self):
        try:
            return next(self.it)
        except StopIteration:
            self.it = iter(self.loader)
            return next(self.it)

    def step(self, record: bool = True) -> None:
        t0 = time.perf_counter()
        batch = self._batch()
        with torch.autocast("cpu", dtype=torch.bfloat16) if self.bf16 else nullcontext():
            loss = self.module.training_step(batch, 0)
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        if record:
            self.times.append(time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", default="unet-r50")
    ap.add_argument("--student", default="mcff-l")
    ap.add_argument("--imgsz", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--images", type=int, default=32, help="synthetic training images (size 1.5 x imgsz)")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--T", type=float, default=10.0)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.teacher, args.imgsz, args.batch, args.images, args.rounds = "mcff-l", 48, 2, 4, 1
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)() and not args.quick
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = write_synthetic_segment(tmp / "data", args.images, int(args.imgsz * 1.5), seed=0)
        teacher_file = _teacher_file(args.teacher, tmp)
        write_soft_labels(teacher_file, data, args.T, tmp / "soft")
        samples = discover(data).labelled("all")
        base = {"data": str(data), "model": args.student, "imgsz": args.imgsz, "batch": args.batch}
        cfg = SegmentTrainConfig(**base).model_dump()
        dcfg = DistillSegmentConfig(**base, teacher=str(teacher_file), method="kd", T=args.T).model_dump()

        def loader(ds):
            return DataLoader(ds, batch_size=args.batch, shuffle=True, drop_last=True, num_workers=0)

        teacher, _ = load_checkpoint_model(teacher_file)
        cache = SoftLabelCache(tmp / "soft", args.T, data, samples)
        heads = list(cache.heads)
        runners = {
            "student alone": Runner(SegmentModule(args.student, {"classes": 2}, cfg),
                                    loader(SegmentationDataset(samples, train_transform(args.imgsz))), bf16),
            "distilled offline (cache)": Runner(
                DistillModule(args.student, {"classes": 2}, dcfg, teacher=None, teacher_heads=heads,
                              teacher_main=cache.main_head),
                loader(SoftLabelDataset(samples, cache, train_transform(args.imgsz, soft_targets=True))), bf16),
            "distilled online (teacher)": Runner(
                DistillModule(args.student, {"classes": 2}, dcfg, teacher=teacher, teacher_heads=heads,
                              teacher_main=cache.main_head),
                loader(SegmentationDataset(samples, train_transform(args.imgsz))), bf16),
        }
        per_epoch = max(1, args.images // args.batch)
        for runner in runners.values():  # warm-up: one pass fills the image and soft-label caches
            for _ in range(per_epoch):
                runner.step(record=False)
        for _ in range(args.rounds):
            for runner in runners.values():
                runner.step()
    alone = statistics.median(runners["student alone"].times)
    print(f"{args.student} from {args.teacher}, batch {args.batch} x {args.imgsz}px, {args.threads} threads, "
          f"{'bf16 autocast' if bf16 else 'fp32'}, median of {args.rounds} interleaved steps (data + step)")
    print("| training | s/step | images/s | step time / alone |")
    print("|---|---|---|---|")
    for name, runner in runners.items():
        med = statistics.median(runner.times)
        print(f"| {name} | {med:.3f} | {args.batch / med:.2f} | {med / alone:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
