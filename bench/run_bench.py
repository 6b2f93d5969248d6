"""Benchmark (tooling): roleops against the walkthrough's own curl + aws CLI procedure, side by side.

Usage: .venv/bin/python bench/run_bench.py [--runs N] [--fleet-runs N] [--growth SIZES] [--quick] [--json FILE]
                                           [--profile DIR] [--strict]

Everything runs against in-process roleops sandboxes on 127.0.0.1 (one for the one-instance metrics, then one
for the fleets). This file is the entry point: the command line, and one run of every metric in order. What each
side runs is in procedures.py, how it is timed, counted and profiled in measure.py, the tables and the JSON in
report.py. See bench/README.md for what each metric means.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from measure import (
    METRICS,
    Samples,
    fleet_setup_metric,
    fleet_smoke_metric,
    measure_fail_fast,
    measure_fleet_rerun,
    measure_fleet_setup,
    measure_fleet_smoke,
    measure_rerun,
    measure_setup,
    measure_smoke_growth,
    measure_startup,
    measure_verify,
    profile_fleet,
    profile_metrics,
)
from procedures import REPO, Bench, BenchError, FleetBench, find_tools
from report import build_fleet_rows, build_rows, machine, report_text, to_json

if str(REPO) not in sys.path:  # `python bench/run_bench.py` from a checkout without an install
    sys.path.insert(0, str(REPO))

MAX_RUNS = 100
MAX_INSTANCES = 200  # the sandbox's limit
# Fleet sizes (issue 13): smoke over 24 instances, setup of 100, smoke's growth from 10 to 200. --quick runs them
# on a few instances; the warm-up of a fleet metric runs on a fleet of WARM_FLEET (it warms the tools, not EC2).
FLEET = {"smoke": 24, "setup": 100}
QUICK_FLEET = {"smoke": 2, "setup": 2}
GROWTH = (10, 50, 100, 200)
QUICK_GROWTH = (1, 2)
WARM_FLEET = 3
FLEET_RUNS = 3  # each walkthrough run of a fleet metric is 24-100 instances' worth of aws processes
# Instances on which the script's associate is re-run for contrast (each outcome is the same call's), full/--quick.
SCRIPT_RERUN_SAMPLE, QUICK_SCRIPT_RERUN_SAMPLE = 3, 1


def parse_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of instance counts: {text!r}") from None
    if any(not 1 <= n <= MAX_INSTANCES for n in sizes):
        raise argparse.ArgumentTypeError(f"instance counts are 1-{MAX_INSTANCES}: {text!r}")
    return sizes


def run_bench(
    runs: int,
    warmup: int,
    profile_dir: Path | None,
    auto_profile: bool,
    log: Callable[[str], None],
    *,
    fleet_runs: int = FLEET_RUNS,
    sizes: dict[str, int] = FLEET,
    growth_sizes: Sequence[int] = GROWTH,
    judged: bool = True,
) -> dict:
    from roleops.sandbox import Sandbox

    tools = find_tools()
    log(f"roleops: {tools.roleops}\naws: {tools.aws}\ncurl: {tools.curl or tools.curl_label}")
    fleet_metrics = (fleet_smoke_metric(sizes["smoke"]), fleet_setup_metric(sizes["setup"]))
    samples: Samples = {m: {"roleops": [], "walkthrough": []} for m in (*METRICS, *fleet_metrics)}
    profiles: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="roleops-bench-") as tmp:
        with Sandbox(port=0, instances=1) as sandbox:
            bench = Bench(sandbox, tools, Path(tmp))
            measure_verify(bench, runs, warmup, samples, log)
            verify_steps, bench.step_samples = bench.step_samples, {}
            measure_setup(bench, runs, warmup, samples, log)
            setup_steps, bench.step_samples = bench.step_samples, {}
            reruns = measure_rerun(bench, runs, log)
            ff_codes = measure_fail_fast(bench, runs, warmup, samples)
            measure_startup(bench, runs, warmup, samples)
            rows = build_rows(samples, reruns["roleops"], reruns["walkthrough"], ff_codes, tools)

            missed = [row.metric for row in rows if not row.met]
            if profile_dir is not None:
                profiles = profile_metrics(bench, METRICS, profile_dir)
            elif auto_profile and missed:
                profiles = profile_metrics(bench, missed, Path(tmp) / "profile")

        # The fleets: a sandbox of their own, started without instances (a fresh account then holds exactly the
        # fleet; the sandbox runs at most 200 instances).
        with Sandbox(port=0, instances=0) as fleet_sandbox:
            fb = FleetBench(fleet_sandbox, tools, Path(tmp))
            warm = min(WARM_FLEET, sizes["smoke"], sizes["setup"])
            measure_fleet_smoke(fb, sizes["smoke"], fleet_runs, warmup, warm, samples, log)
            smoke_steps, fb.step_samples = fb.step_samples, {}
            measure_fleet_setup(fb, sizes["setup"], fleet_runs, warmup, warm, samples, log)
            fleet_setup_steps, fb.step_samples = fb.step_samples, {}
            sample = SCRIPT_RERUN_SAMPLE if judged else QUICK_SCRIPT_RERUN_SAMPLE
            fleet_reruns = measure_fleet_rerun(fb, sizes["setup"], fleet_runs, sample, log)
            growth = measure_smoke_growth(fb, growth_sizes, log)
            fleet_rows = build_fleet_rows(samples, sizes, fleet_reruns, tools, judged=judged)

            wanted = [row.metric for row in fleet_rows if not row.met] if judged else []
            if profile_dir is not None:
                profiles.update(profile_fleet(fb, [r.metric for r in fleet_rows], sizes, profile_dir))
            elif auto_profile and wanted:
                profiles.update(profile_fleet(fb, wanted, sizes, Path(tmp) / "profile"))
        if profile_dir is None:
            for p in profiles.values():
                p["files"] = None  # the temporary directory goes away: do not name a dead path

    return {
        "machine": machine(),
        "runs": runs,
        "warmup": warmup,
        "curl": tools.curl_label,
        "rows": rows + (fleet_rows if judged else []),
        "samples": samples,
        "steps": {
            "verify": verify_steps,
            "setup": setup_steps,
            f"smoke ({sizes['smoke']} instances)": smoke_steps,
            f"fleet setup ({sizes['setup']} instances)": fleet_setup_steps,
        },
        "rerun": reruns,
        "fail_fast_exit_codes": ff_codes,
        "fleet": {
            "judged": judged,
            "sizes": sizes,
            "runs": fleet_runs,
            "warmup": warmup,
            "warmup_instances": warm,
            "rows": fleet_rows,
            "rerun": fleet_reruns,
            "growth": growth,
        },
        "profiles": profiles,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run_bench.py", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="measured runs per side (default 5)")
    parser.add_argument(
        "--fleet-runs",
        type=int,
        default=FLEET_RUNS,
        help=f"measured runs per side of the fleet metrics (default {FLEET_RUNS})",
    )
    parser.add_argument(
        "--growth",
        type=parse_sizes,
        default=GROWTH,
        metavar="SIZES",
        help=f"fleet sizes of smoke's growth table (default {','.join(map(str, GROWTH))})",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"1 run each, no warm-up, no profiling, fleets of {QUICK_FLEET['smoke']} (a smoke test)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    parser.add_argument("--profile", metavar="DIR", help="profile every roleops command into DIR")
    parser.add_argument("--no-profile", action="store_true", help="do not profile the commands whose goal is missed")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    if not 1 <= args.runs <= MAX_RUNS:
        parser.error(f"--runs must be 1-{MAX_RUNS}")
    if not 1 <= args.fleet_runs <= MAX_RUNS:
        parser.error(f"--fleet-runs must be 1-{MAX_RUNS}")
    runs, warmup = (1, 0) if args.quick else (args.runs, 1)
    fleet_runs = 1 if args.quick else args.fleet_runs
    growth = QUICK_GROWTH if args.quick else args.growth

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    try:
        result = run_bench(
            runs,
            warmup,
            Path(args.profile).resolve() if args.profile else None,
            auto_profile=not (args.quick or args.no_profile),
            log=log,
            fleet_runs=fleet_runs,
            sizes=QUICK_FLEET if args.quick else FLEET,
            growth_sizes=growth,
            judged=not args.quick,
        )
    except BenchError as err:
        print(f"run_bench: error: {err}", file=sys.stderr)
        return 3
    sys.stdout.write(report_text(result))
    sys.stdout.flush()
    if args.json:
        Path(args.json).write_text(json.dumps(to_json(result), indent=2, default=str) + "\n")
    return 1 if args.strict and not all(r.met for r in result["rows"]) else 0


if __name__ == "__main__":
    sys.exit(main())
