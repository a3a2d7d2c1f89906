#!/usr/bin/env bash
# Run HERE (the CPU machine) before a GPU session's one device call: packs what benchmarks/gpu_campaign.sh needs
# and the device machine lacks, into two git-ignored folders that the call carries (64 MiB in all with the repo).
#   .whl/            cp312 wheels of the packages the device image has not got (pydantic, segmentation-models-pytorch)
#   .gpu/deepcrack/  DeepCrack's train split only (28 MB): the campaign trains there; test scoring happens here
# Usage: bash benchmarks/gpu_prepare.sh [path/to/deepcrack]      (default ../shared/datasets/deepcrack)
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
SRC=${1:-../shared/datasets/deepcrack}
for p in /.whl/ /.gpu/; do grep -qxF "$p" .git/info/exclude 2>/dev/null || echo "$p" >> .git/info/exclude; done
mkdir -p .whl .gpu/deepcrack
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    "pydantic==2.14.4" "pydantic-core==2.50.5" "annotated-types==0.8.0" "typing-inspection==0.4.5" \
    "segmentation-models-pytorch==0.6.0" "typing-extensions==4.16.0"  # pydantic-core needs typing-extensions>=4.16
rm -rf .gpu/deepcrack/train && cp -r "$SRC/train" .gpu/deepcrack/train
du -sh .whl .gpu
echo "ready: run benchmarks/gpu_campaign.sh through the device tool with carry [\".whl\", \".gpu\"]"
