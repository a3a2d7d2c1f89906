"""`python -m defectkd.serve receive|keys ...`: the receiver and key maker where only pyzmq is installed (no torch,
typer or pydantic). Same options as `defectkd receive` and `defectkd keys`. Errors: one line, exit status 2."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from defectkd.serve.protocol import KeyFileError, create_keys
from defectkd.serve.receiver import DEFAULT_MAX_BYTES, Receiver, ReceiverError


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m defectkd.serve", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="verb", required=True)
    r = sub.add_parser("receive", help="store results from `predict --sink` senders; serve the web view")
    r.add_argument("--bind", default="tcp://127.0.0.1:5555")
    r.add_argument("--store", type=Path, default=Path("results"))
    r.add_argument("--http", default=None, help="PORT or HOST:PORT")
    r.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES)
    r.add_argument("--curve-keys", type=Path, default=None)
    r.add_argument("--duration", type=float, default=None)
    k = sub.add_parser("keys", help="make a CURVE key pair OUT/NAME.key + OUT/NAME.key_secret")
    k.add_argument("--out", type=Path, required=True)
    k.add_argument("--name", required=True)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.verb == "keys":
            public, secret = create_keys(args.out, args.name)
            print(f"public key {public}, secret key {secret}")
            return 0
        rx = Receiver(args.bind, args.store, max_bytes=args.max_bytes, curve_keys=args.curve_keys,
                      http=args.http).start()
    except (KeyFileError, ReceiverError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    web = f", web view at {rx.http_url}" if rx.http_url else ""
    print(f"receiving on {rx.endpoint}, storing in {rx.store_dir}{web}; Ctrl-C stops", file=sys.stderr)
    if rx.insecure:
        print("warning: listening beyond this machine without --curve-keys", file=sys.stderr)
    with contextlib.suppress(KeyboardInterrupt):
        rx.wait(args.duration)
    print(json.dumps(rx.stop(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
