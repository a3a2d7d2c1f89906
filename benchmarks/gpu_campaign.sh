#!/usr/bin/env bash
# Issues 21 and 23 on a GPU, in ONE device-tool call (5-7 minutes on an H200, by estimate: never run yet): do longer-trained teachers
# (the CPU could afford 40 epochs) lift the distilled edge students past the CPU ceiling (test F1 ~0.865)?
#
#   1. two $TEACHER teachers, seeds 0 and 1, $EPOCHS_T epochs with EMA, side by side on the one GPU. The CPU has
#      already answered mcff-edge-m at 80 epochs (better on validation, not on test: docs/benchmarks.md), so run it
#      with a model the CPU cannot afford, e.g. TEACHER=unet-r50 EPOCHS_T=150 (a teacher file over 16 MiB does not
#      come back: its validation F1 does, in summary.json, and its students do);
#   2. mcff-edge-n and mcff-edge-s, seeds 0 and 1, each distilled from the two teachers averaged (rfkd, the default)
#      and trained alone, 20 epochs: the same budget as the CPU tables; eight runs side by side;
#   3. into $OUT: both teachers' deploy files, the students' deploy files (two tars), summary.json (validation F1 and
#      wall time of every run) and campaign.log. Test scoring happens back on the CPU machine (the test split does
#      not travel: 64 MiB): `python benchmarks/seed_gain.py` and `defectkd val --split test` on the unpacked files.
#
# Prepare here first: bash benchmarks/gpu_prepare.sh. Then, with the device tool:
#   run(command="TEACHER=unet-r50 EPOCHS_T=150 bash benchmarks/gpu_campaign.sh", carry=[".whl", ".gpu"], timeout_s=600)
# A CPU dry run of the plumbing (a minute): DEVICE=cpu DATA=<tiny set> EPOCHS_T=1 EPOCHS_S=1 PY=.venv/bin/python \
#   OUT=/tmp/gpu-out PROJECT=/tmp/gpu-proj DISTILL_EXTRA=teacher_check=false bash benchmarks/gpu_campaign.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs-gpu/out}; DATA=${DATA:-.gpu/deepcrack}; DEVICE=${DEVICE:-gpu}; PY=${PY:-python3}
TEACHER=${TEACHER:-mcff-edge-m}; EPOCHS_T=${EPOCHS_T:-80}; EPOCHS_S=${EPOCHS_S:-20}; TIME_T=${TIME_T:-3.5}; TIME_S=${TIME_S:-2}
PROJECT=${PROJECT:-runs-gpu}; DISTILL_EXTRA=${DISTILL_EXTRA:-}  # e.g. teacher_check=false for a 1-epoch dry run
R=$PROJECT/segment
if [ -e "$R" ]; then echo "$R exists: the campaign reads its runs by name, give PROJECT=<a new folder>"; exit 2; fi
mkdir -p "$OUT" "$PROJECT"
exec > >(tee "$OUT/campaign.log") 2>&1
tee_pid=$!
if ! "$PY" -c "import pydantic, segmentation_models_pytorch" 2>/dev/null; then  # the device image lacks them
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "wheel install failed"; exit 3; }
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  "$PY" -c "import pydantic, segmentation_models_pytorch" || { echo "carried wheels do not import"; exit 3; }
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
K=("$PY" -m defectkd)
"${K[@]}" --version || { echo "defectkd does not import here"; exit 3; }
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
common=(--imgsz 256 --batch 8 workers=2 "project=$PROJECT" "device=$DEVICE")
start=$(date +%s)

echo "== teachers: $TEACHER x2, $EPOCHS_T epochs, ema 0.99 (time limit $TIME_T min each)"
pids=()  # a bare `wait` would also wait for the tee above, which never ends
for s in 0 1; do
  "${K[@]}" train segment --data "$DATA" --model "$TEACHER" --epochs "$EPOCHS_T" --seed $s --name "gt-s$s" \
    "${common[@]}" ema=0.99 "time_limit=$TIME_T" > "$PROJECT/gt-s$s.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
tail -n 3 "$PROJECT"/gt-s*.log
T=$R/gt-s0,$R/gt-s1
[ -f "$R/gt-s0/weights/deploy.pt" ] && [ -f "$R/gt-s1/weights/deploy.pt" ] || { echo "a teacher failed"; exit 4; }
echo "== teachers done after $(( $(date +%s) - start )) s"

pids=()
echo "== students: mcff-edge-n / -s, seeds 0 and 1, rfkd from both teachers and alone, $EPOCHS_S epochs"
for st in n s; do for s in 0 1; do
  "${K[@]}" distill segment --data "$DATA" --teacher "$T" --student "mcff-edge-$st" --method rfkd --epochs "$EPOCHS_S" \
    --seed $s --name "gd-$st-s$s" "${common[@]}" "time_limit=$TIME_S" $DISTILL_EXTRA > "$PROJECT/gd-$st-s$s.log" 2>&1 &
  pids+=($!)
  "${K[@]}" train segment --data "$DATA" --model "mcff-edge-$st" --epochs "$EPOCHS_S" --seed $s --name "ga-$st-s$s" \
    "${common[@]}" "time_limit=$TIME_S" > "$PROJECT/ga-$st-s$s.log" 2>&1 &
  pids+=($!)
done; done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
echo "== students done after $(( $(date +%s) - start )) s"

for s in 0 1; do  # the device tool brings back files of at most 16 MiB
  [ "$(stat -c %s "$R/gt-s$s/weights/deploy.pt")" -le 16777216 ] && cp "$R/gt-s$s/weights/deploy.pt" "$OUT/gt-s$s.pt"
done
for st in n s; do
  files=$(cd "$R" && ls -d g[da]-$st-s*/weights/deploy.pt 2>/dev/null)
  [ -n "$files" ] && tar -cf "$OUT/students-$st.tar" -C "$R" $files
done
"$PY" - "$R" "$OUT/summary.json" <<'PY'
import json, sys
from pathlib import Path
rows = {}
names = [f"gt-s{s}" for s in (0, 1)] + [f"g{k}-{st}-s{s}" for k in "ad" for st in "ns" for s in (0, 1)]
for name in names:
    run = Path(sys.argv[1]) / name
    res = run / "results.json"
    if res.is_file():
        r = json.loads(res.read_text())
        rows[name] = {"epochs_run": r.get("epochs_run"), "val": r.get("val"), "term_weights": r.get("term_weights")}
    else:
        rows[name] = {"failed": True}
Path(sys.argv[2]).write_text(json.dumps(rows, indent=1, default=str))
print(json.dumps({k: (v.get("val") or {}).get("f1") for k, v in rows.items()}, indent=1))
PY
tail -n 2 "$PROJECT"/g[da]-*.log
ls -la "$OUT"
echo "failed student runs: $failed"
exec >&- 2>&-
wait "$tee_pid"  # the log is whole before the device tool collects $OUT
[ "$failed" = 0 ] || exit 5
