"""Pack a run's student into the model zoo: its deploy file without the training machine's data path, optionally in
float16 (half the bytes; `load_state_dict` casts the tensors back to the model's float32 when it loads them).

    python benchmarks/zoo_pack.py runs/detect/s0-mgd-mnv3/weights/deploy.pt --name retinanet-mnv3-neu --half

writes src/defectkd/core/zoo/retinanet-mnv3-neu.pt and prints its size. The card (index.json, docs/zoo.md) is
written from `defectkd val --weights <name> --split test` on the packed file, so its figures are the shipped ones.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from defectkd.core.checkpoint import DEPLOY_FORMAT, safe_load
from defectkd.core.zoo import folder


def pack(deploy_file: str | Path, out: str | Path, half: bool = False) -> Path:
    """Copy a deploy file to `out` without its "data" path, floating tensors in float16 when `half`."""
    deploy = safe_load(deploy_file)
    if not isinstance(deploy, dict) or deploy.get("format") != DEPLOY_FORMAT:
        raise SystemExit(f"{deploy_file}: not a deploy file (weights/deploy.pt of a run)")
    deploy.pop("data", None)
    if half:
        deploy["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in deploy["state_dict"].items()}
    torch.save(deploy, out)
    return Path(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("deploy", help="a run's weights/deploy.pt")
    ap.add_argument("--name", required=True, help="zoo name: the file becomes <name>.pt in the zoo folder")
    ap.add_argument("--half", action="store_true", help="store float tensors in float16 (half the size)")
    ap.add_argument("--out-dir", default=str(folder()), help="default: the package's zoo folder")
    args = ap.parse_args(argv)
    out = pack(args.deploy, Path(args.out_dir) / f"{args.name}.pt", args.half)
    print(f"{out} ({out.stat().st_size / 1e6:.1f} MB); now add its card to index.json and docs/zoo.md")


if __name__ == "__main__":
    main()
