"""Sandbox (product, offline): the `roleops sandbox` command — its flags, their ranges, and its run.

Light to import (argparse only): `roleops --help` builds this parser without loading moto or werkzeug. Fault
ranges are `Faults`' own; this module owns the rest (port, instance and account counts) and maps each fault field
to its flag.
`roleops sandbox ...` (roleops.cli) and `python -m roleops.sandbox ...` (main below) share it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from roleops.errors import RoleOpsError, UsageError

MAX_PORT = 65535
MAX_INSTANCES = 200  # instances the sandbox launches at start or on POST /_roleops/instances (the contract: 0-200)
# Accounts the sandbox serves (the contract: 1-5). len(state.ACCOUNT_IDS), written out here so that building this
# parser loads no moto; a test holds the two equal.
MAX_ACCOUNTS = 5


@dataclass(frozen=True)
class FaultFlag:
    """A Faults field and the flag that sets it."""

    field: str
    flag: str
    metavar: str | None
    help: str


FAULT_FLAGS = (
    FaultFlag("throttle_fraction", "--throttle", "FRACTION", "fault: throttle this share of calls"),
    FaultFlag(
        "profile_propagation_delay", "--profile-delay", "SECONDS", "fault: new instance profiles invisible to EC2"
    ),
    FaultFlag("trust_propagation_delay", "--trust-delay", "SECONDS", "fault: new trust policies not honoured by STS"),
    FaultFlag("credentials_delay", "--credentials-delay", "SECONDS", "fault: IMDS serves the role this long after"),
    FaultFlag("imds_latency", "--imds-latency", "SECONDS", "fault: slow IMDS answers (0-30)"),
    FaultFlag("imds_error_rate", "--imds-error-rate", "FRACTION", "fault: IMDS 500s"),
    FaultFlag("imds_malformed", "--imds-malformed", None, "fault: malformed credential documents"),
)


def _dest(flag: str) -> str:
    return flag[2:].replace("-", "_")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The sandbox's own options, on roleops' sub-parser or on main()'s parser."""
    parser.add_argument("--port", type=int, default=0, help="port (0 picks a free one)")
    parser.add_argument(
        "--instances", type=int, default=1, help=f"how many sandbox instances to launch (0-{MAX_INSTANCES})"
    )
    parser.add_argument(
        "--accounts",
        type=int,
        default=1,
        help=f"how many AWS accounts, each with its own admin keys (1-{MAX_ACCOUNTS}; the first is the default)",
    )
    for f in FAULT_FLAGS:
        if f.metavar is None:  # a switch
            parser.add_argument(f.flag, action="store_true", help=f.help)
        else:
            parser.add_argument(f.flag, type=float, default=0.0, metavar=f.metavar, help=f.help)
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault dice")


def run(args: argparse.Namespace, *, stdout: TextIO, stderr: TextIO) -> int:
    """Check the flags (UsageError, exit 2, nothing started), then serve until interrupted."""
    if not 0 <= args.port <= MAX_PORT:
        raise UsageError(f"invalid --port {args.port}", f"a port is 0-{MAX_PORT} (0 picks a free one)")
    if not 0 <= args.instances <= MAX_INSTANCES:
        raise UsageError(f"invalid --instances {args.instances}", f"the sandbox launches 0-{MAX_INSTANCES} instances")
    if not 1 <= args.accounts <= MAX_ACCOUNTS:
        raise UsageError(f"invalid --accounts {args.accounts}", f"the sandbox serves 1-{MAX_ACCOUNTS} accounts")
    from .faults import Faults

    values = {f.field: getattr(args, _dest(f.flag)) for f in FAULT_FLAGS}
    for f in FAULT_FLAGS:
        try:  # Faults owns the ranges; check one at a time to name the flag
            Faults().replace(**{f.field: values[f.field]})
        except ValueError as err:
            raise UsageError(f"invalid {f.flag} {values[f.field]}", str(err)) from err
    from .foreground import run_forever

    return run_forever(
        port=args.port,
        instances=args.instances,
        accounts=args.accounts,
        output=args.output,
        faults=Faults(**values),
        seed=args.seed,
        stdout=stdout,
        stderr=stderr,
    )


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message, "", f"see `{self.prog} --help`")


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m roleops.sandbox`: the same flags and exit codes as `roleops sandbox`."""
    parser = _Parser(prog="python -m roleops.sandbox", description="run the roleops sandbox on 127.0.0.1")
    parser.add_argument("--output", choices=("table", "json"), default="table", help="table (default) or json")
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv), stdout=sys.stdout, stderr=sys.stderr)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except RoleOpsError as err:
        sys.stderr.write(f"roleops: error: {err.one_line()}\n")
        return err.exit_code
