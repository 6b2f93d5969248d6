"""Benchmark (tooling): roleops against the walkthrough's own curl + aws CLI procedure, side by side.

Usage: .venv/bin/python bench/run_bench.py [--runs N] [--quick] [--json FILE] [--profile DIR] [--strict]

Everything runs against an in-process roleops sandbox on 127.0.0.1. This file is the entry point: the command
line, and one run of every metric in order. What each side runs is in procedures.py, how it is timed, counted
and profiled in measure.py, the table and the JSON in report.py. See bench/README.md for what each metric means.
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
    measure_fail_fast,
    measure_rerun,
    measure_setup,
    measure_startup,
    measure_verify,
    profile_metrics,
)
from procedures import REPO, Bench, BenchError, find_tools
from report import build_rows, machine, report_text, to_json

if str(REPO) not in sys.path:  # `python bench/run_bench.py` from a checkout without an install
    sys.path.insert(0, str(REPO))

MAX_RUNS = 100


def run_bench(runs: int, warmup: int, profile_dir: Path | None, auto_profile: bool, log: Callable[[str], None]) -> dict:
    from roleops.sandbox import Sandbox

    tools = find_tools()
    log(f"roleops: {tools.roleops}\naws: {tools.aws}\ncurl: {tools.curl or tools.curl_label}")
    with tempfile.TemporaryDirectory(prefix="roleops-bench-") as tmp, Sandbox(port=0, instances=1) as sandbox:
        bench = Bench(sandbox, tools, Path(tmp))
        samples: Samples = {m: {"roleops": [], "walkthrough": []} for m in METRICS}

        measure_verify(bench, runs, warmup, samples, log)
        verify_steps, bench.step_samples = bench.step_samples, {}
        measure_setup(bench, runs, warmup, samples, log)
        setup_steps, bench.step_samples = bench.step_samples, {}
        reruns = measure_rerun(bench, runs, log)
        ff_codes = measure_fail_fast(bench, runs, warmup, samples)
        measure_startup(bench, runs, warmup, samples)
        rows = build_rows(samples, reruns["roleops"], reruns["walkthrough"], ff_codes, tools)

        profiles: dict[str, dict[str, Any]] = {}
        missed = [row.metric for row in rows if not row.met]
        if profile_dir is not None:
            profiles = profile_metrics(bench, METRICS, profile_dir)
        elif auto_profile and missed:
            profiles = profile_metrics(bench, missed, Path(tmp) / "profile")
            for p in profiles.values():
                p["files"] = None  # the temporary directory goes away: do not name a dead path

    return {
        "machine": machine(),
        "runs": runs,
        "warmup": warmup,
        "curl": tools.curl_label,
        "rows": rows,
        "samples": samples,
        "steps": {"verify": verify_steps, "setup": setup_steps},
        "rerun": reruns,
        "fail_fast_exit_codes": ff_codes,
        "profiles": profiles,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run_bench.py", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="measured runs per side (default 5)")
    parser.add_argument("--quick", action="store_true", help="1 run each, no warm-up, no profiling (a smoke test)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    parser.add_argument("--profile", metavar="DIR", help="profile every roleops command into DIR")
    parser.add_argument("--no-profile", action="store_true", help="do not profile the commands whose goal is missed")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    if not 1 <= args.runs <= MAX_RUNS:
        parser.error(f"--runs must be 1-{MAX_RUNS}")
    runs, warmup = (1, 0) if args.quick else (args.runs, 1)

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    try:
        result = run_bench(
            runs,
            warmup,
            Path(args.profile).resolve() if args.profile else None,
            auto_profile=not (args.quick or args.no_profile),
            log=log,
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
