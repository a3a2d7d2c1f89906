"""Edge students against MCFF-L: parameters, GMACs, PyTorch eager and ONNX Runtime FP32 speed, in one run.

    python benchmarks/edge_speed.py --imgsz 448 --threads 2 --rounds 3 [--repeats 3] [--json out.json] [--quick]

Every model is exported to ONNX (static, opset 17, as `defectkd export` does) with seeded random weights.
Rounds are interleaved (every model, PyTorch then ONNX Runtime, once per round, each timed as the median of
--repeats runs), so load changes on a shared machine hit all models alike; the table reports the median over
rounds. Both runtimes get --threads threads and a batch-1 image. The speed-up is mcff-l's ORT latency over the
model's, measured in the same run. INT8 is the static QDQ model `defectkd export --format onnx-int8` writes,
calibrated here on 8 synthetic crack images (speed only: the weights are random), timed in the same rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from defectkd.export.quantize import quantize_int8
from defectkd.models import build_deployed
from defectkd.models.info import count_macs_meta, count_parameters, export_onnx_model, onnx_session

MODELS = ("mcff-l", "pct-tiny", "mcff-edge-n", "mcff-edge-s", "mcff-edge-m")


def _median_time(fn, repeats: int) -> float:
    """Median of REPEATS timed calls after a pause and one untimed call: the previous runtime's worker threads
    spin for a while after its last run and would slow this one's first calls on two cores."""
    time.sleep(0.05)
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--imgsz", type=int, default=448)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per model and runtime in each round")
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    ap.add_argument("--quick", action="store_true", help="64 px, 1 round of 1 run: checks the script runs")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows to this file")
    args = ap.parse_args(argv)
    if args.quick:
        args.imgsz, args.rounds, args.repeats = 64, 1, 1
    previous = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        rows = _measure(args)
    finally:
        torch.set_num_threads(previous)
    base = next((r for r in rows if r["model"] == "mcff-l"), rows[0])
    for r in rows:
        r["speedup_vs_mcff_l_ort"] = round(base["ort_ms"] / r["ort_ms"], 2)
    print(f"imgsz {args.imgsz}, batch 1, {args.threads} threads, FP32; PyTorch {torch.__version__} eager and ONNX "
          f"Runtime {rows[0]['ort_version']} (static export, opset 17); median of {args.rounds} interleaved rounds "
          f"x {args.repeats} runs")
    print(f"| model | params (M) | GMACs | PyTorch FPS | ORT ms | ORT FPS | speed-up vs {base['model']} (ORT) "
          "| INT8 ORT FPS | INT8 / FP32 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['params_m']} | {r['gmacs']} | {r['torch_fps']} | {r['ort_ms']} | {r['ort_fps']} | "
              f"{r['speedup_vs_mcff_l_ort']:.2f}x | {r['int8_ort_fps']} | {r['int8_speedup']:.2f}x |")
    if args.json:
        args.json.write_text(json.dumps({"imgsz": args.imgsz, "threads": args.threads, "rounds": args.rounds,
                                         "repeats": args.repeats, "rows": rows}, indent=1))
    return 0


def _measure(args) -> list[dict]:
    import onnxruntime as ort

    x = torch.rand(1, 3, args.imgsz, args.imgsz, generator=torch.Generator().manual_seed(0))
    feed = {"images": x.numpy()}
    models, sessions, int8, facts = {}, {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        calibration = _calibration_images(Path(tmp), args.imgsz)
        for name in args.models:
            torch.manual_seed(0)
            model = build_deployed(name)  # a -rep student as deployed
            models[name] = model
            facts[name] = {"params_m": round(count_parameters(model) / 1e6, 3),
                           "gmacs": round(count_macs_meta(build_deployed(name), args.imgsz) / 1e9, 2)}
            path = export_onnx_model(model, Path(tmp) / f"{name}.onnx", args.imgsz)
            sessions[name] = onnx_session(path, args.threads)
            quantize_int8(path, Path(tmp) / f"{name}.int8.onnx", calibration, _prepare)
            int8[name] = onnx_session(Path(tmp) / f"{name}.int8.onnx", args.threads)
    torch_times: dict[str, list[float]] = {n: [] for n in models}
    ort_times: dict[str, list[float]] = {n: [] for n in models}
    int8_times: dict[str, list[float]] = {n: [] for n in models}
    with torch.no_grad():
        for name in models:  # warm-up, and the parity of the two runtimes on this image
            reference = models[name](x).numpy()
            facts[name]["max_abs_diff"] = float(np.abs(sessions[name].run(None, feed)[0] - reference).max())
            int8[name].run(None, feed)
        for _ in range(args.rounds):
            for name, model in models.items():
                torch_times[name].append(_median_time(lambda m=model: m(x), args.repeats))
                ort_times[name].append(_median_time(lambda s=sessions[name]: s.run(None, feed), args.repeats))
                int8_times[name].append(_median_time(lambda s=int8[name]: s.run(None, feed), args.repeats))
    rows = []
    for name in models:
        t, o = statistics.median(torch_times[name]), statistics.median(ort_times[name])
        q = statistics.median(int8_times[name])
        rows.append({"model": name, **facts[name], "torch_ms": round(t * 1e3, 1), "torch_fps": round(1 / t, 2),
                     "ort_ms": round(o * 1e3, 1), "ort_fps": round(1 / o, 2), "int8_ort_ms": round(q * 1e3, 1),
                     "int8_ort_fps": round(1 / q, 2), "int8_speedup": round(o / q, 2), "ort_version": ort.__version__})
    return rows


def _calibration_images(folder: Path, imgsz: int, n: int = 8) -> list[Path]:
    import cv2

    from defectkd.tasks.segment.synthetic import synth_crack_sample

    files = []
    for i in range(n):
        rgb = synth_crack_sample(seed=i, size=imgsz)[0]
        files.append(folder / f"calib{i}.png")
        cv2.imwrite(str(files[-1]), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return files


def _prepare(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(255)


if __name__ == "__main__":
    sys.exit(main())
