"""Which INT8 graph? Quantization variants of one trained segmenter: val F1 and ONNX Runtime speed.

    python benchmarks/int8_variants.py runs/segment/deepcrack-edge-s-kd-offline2

Exports the run at 448x448, quantizes it several ways (QDQ or QOperator, all operators or convolutions
only, depthwise convolutions left in float), scores each on the DeepCrack validation images training
held out and times the bare graph on 2 threads (5 interleaved rounds x 5 calls, median). Writes the
variants to /tmp/q/. Results: docs/benchmarks.md, "Export formats and INT8".
"""

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from defectkd.api import export
from defectkd.data.io import read_image, read_mask
from defectkd.data.layouts import discover
from defectkd.deploy.runtime import OnnxSegmenter
from defectkd.engine.train import split_train_val
from defectkd.export.quality import pick_calibration
from defectkd.export.quantize import quantize_int8

run = sys.argv[1]
tag = Path(run).name
imgsz = 448
src = discover("../shared/datasets/deepcrack")
train, val, _ = split_train_val(src, 0.1, 0, None, None)
Path("/tmp/q").mkdir(exist_ok=True)
fp = Path(f"/tmp/q/v-{tag}.onnx")
if not fp.exists():
    export(run, imgsz=imgsz, out=fp)
base = OnnxSegmenter(fp, threads=2)
cal = pick_calibration([s.image for s in train], 0.25)
variants = {
    "fp32": None,
    "qdq-all": {},
    "qdq-conv": {"op_types": ["Conv"]},
    "qdq-conv-nodw": {"op_types": ["Conv"], "skip_depthwise": True},
    "qdq-all-nodw": {"skip_depthwise": True},
    "qop-all": {"qoperator": True},
    "qop-conv": {"qoperator": True, "op_types": ["Conv"]},
}
segs = {}
for name, kw in variants.items():
    if kw is None:
        segs[name] = base
        continue
    q = Path(f"/tmp/q/v-{tag}-{name}.onnx")
    quantize_int8(fp, q, cal, base.prepare, **kw)
    segs[name] = OnnxSegmenter(q, threads=2)


def f1(seg):
    tp = fp_ = fn = 0
    for s in val:
        p, _ = seg.segment(read_image(s.image))
        m = read_mask(s.mask) > 0
        b = p >= 0.5
        tp += np.sum(b & m)
        fp_ += np.sum(b & ~m)
        fn += np.sum(~b & m)
    return 2 * tp / (2 * tp + fp_ + fn)


x = np.random.rand(1, 3, imgsz, imgsz).astype(np.float32)
for s in segs.values():
    s.backend.run(x)
    s.backend.run(x)
med = {k: [] for k in segs}
for _round in range(5):
    for k, s in segs.items():
        ts = []
        for _ in range(5):
            t = time.perf_counter()
            s.backend.run(x)
            ts.append(time.perf_counter() - t)
        med[k].append(statistics.median(ts))
for k, s in segs.items():
    ms = statistics.median(med[k]) * 1e3
    print(
        json.dumps(
            {
                "variant": k,
                "val_f1": round(f1(s), 4),
                "ort_ms": round(ms, 2),
                "fps": round(1e3 / ms, 1),
                "vs_fp32": round(statistics.median(med["fp32"]) * 1e3 / ms, 2),
            }
        ),
        flush=True,
    )
