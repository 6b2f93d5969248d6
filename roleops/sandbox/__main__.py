"""Sandbox (product, offline): `python -m roleops.sandbox`, the same foreground run as `roleops sandbox`."""

from __future__ import annotations

import argparse
import sys

from . import Faults, run_forever


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m roleops.sandbox", description="Run the local AWS sandbox.")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 picks a free one)")
    parser.add_argument("--instances", type=int, default=1, help="sandbox instances to launch (default 1)")
    parser.add_argument("--output", choices=("table", "json"), default="table")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault dice")
    for name in Faults.field_names():
        flag = "--" + name.replace("_", "-")
        if name == "imds_malformed":
            parser.add_argument(flag, action="store_true", help="serve broken JSON credential documents")
        else:
            parser.add_argument(flag, type=float, default=0.0, metavar="N")
    args = parser.parse_args(argv)
    try:
        faults = Faults(**{name: getattr(args, name) for name in Faults.field_names()})
    except ValueError as exc:
        parser.error(str(exc))
    return run_forever(
        port=args.port,
        instances=args.instances,
        output=args.output,
        faults=faults,
        stdout=sys.stdout,
        stderr=sys.stderr,
        seed=args.seed,
    )


if __name__ == "__main__":
    sys.exit(main())
