"""`python -m defectkd.serve receive|keys ...`: the receiver and key maker where only pyzmq is installed (no torch,
typer or pydantic). Same options as `defectkd receive` and `defectkd keys`. Errors: one line, exit status 2."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from defectkd.serve.protocol import DEFAULT_MAX_PIXELS, KeyFileError, create_keys
from defectkd.serve.receiver import DEFAULT_MAX_BYTES, Receiver, ReceiverError


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m defectkd.serve", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="verb", required=True)
    r = sub.add_parser("receive", help="store results from `predict --sink` senders; serve the web view")
    r.add_argument("--bind", default="tcp://127.0.0.1:5555")
    r.add_argument("--store", type=Path, default=Path("results"))
    r.add_argument("--http", default=None, help="PORT or HOST:PORT")
    r.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES)
    r.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS)
    r.add_argument("--curve-keys", type=Path, default=None)
    r.add_argument("--http-token", default=None, help="required by the web view (default: $DEFECTKD_HTTP_TOKEN)")
    r.add_argument("--duration", type=float, default=None)
    k = sub.add_parser("keys", help="make a CURVE key pair OUT/NAME.key + OUT/NAME.key_secret")
    k.add_argument("--out", type=Path, required=True)
    k.add_argument("--name", required=True)
    k.add_argument("--devices", default=None, help="comma-separated device ids the key may speak for (default: NAME)")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.verb == "keys":
            devices = [d.strip() for d in args.devices.split(",") if d.strip()] if args.devices else None
            public, secret = create_keys(args.out, args.name, devices)
            print(f"public key {public}, secret key {secret}")
            return 0
        rx = Receiver(args.bind, args.store, max_bytes=args.max_bytes, curve_keys=args.curve_keys, http=args.http,
                      max_pixels=args.max_pixels,
                      http_token=args.http_token or os.environ.get("DEFECTKD_HTTP_TOKEN")).start()
    except (KeyFileError, ReceiverError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    web = f", web view at {rx.http_url}" if rx.http_url else ""
    print(f"receiving on {rx.endpoint}, storing in {rx.store_dir}{web}; Ctrl-C or SIGTERM stops", file=sys.stderr)
    for warning in rx.warnings():
        print(f"warning: {warning}", file=sys.stderr)
    print(json.dumps(rx.serve(args.duration), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
