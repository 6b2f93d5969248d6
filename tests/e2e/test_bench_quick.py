"""End-to-end: bench/run_bench.py runs in --quick mode, so the benchmark cannot rot (no timing is asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench" / "run_bench.py"
BENCH_TIMEOUT = 300.0  # --quick takes ~15 s; the bound only keeps a hung run from hanging the suite
METRICS = [
    "verify",
    "setup (fresh account)",
    "setup re-run: mutating calls",
    "verify fail-fast (no IMDS)",
    "roleops --help start-up",
]


def _table_rows(stdout: str) -> list[list[str]]:
    """The Markdown table's body rows, as lists of cells."""
    lines = [line for line in stdout.splitlines() if line.startswith("|")]
    assert len(lines) >= 2, stdout
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == ["metric", "roleops", "walkthrough procedure", "ratio", "goal", "met?"], header
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]


def test_quick_bench_reports_every_metric_and_a_rerun_without_mutating_calls(
    tmp_path: Path, record_output: Callable[..., None]
) -> None:
    out = tmp_path / "bench.json"
    # The bench builds its own environments; none of the developer's AWS settings may steer it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=BENCH_TIMEOUT,
        cwd=REPO,
        env=env,
    )
    # The bench runs roleops and the aws CLI with credentials: its output joins the suite-wide leak check.
    record_output("bench --quick stdout", proc.stdout)
    record_output("bench --quick stderr", proc.stderr)
    assert proc.returncode == 0, proc.stderr[-3000:]

    rows = _table_rows(proc.stdout)
    assert [r[0] for r in rows] == METRICS
    for row in rows:
        assert len(row) == 6 and all(row[:5]), row  # every metric has a value on both sides, a ratio and a goal
    assert "Machine: " in proc.stdout and "cores" in proc.stdout

    doc = json.loads(out.read_text())
    rerun = next(r for r in doc["rows"] if r["metric"] == "setup re-run: mutating calls")
    assert rerun["mutating"] == 0, doc["rerun"]["roleops"]
    assert rerun["met"] is True
    roleops_rerun = doc["rerun"]["roleops"][0]
    assert roleops_rerun["actions"] == ["unchanged"], roleops_rerun
    # The zero means something only if the same hooks saw the first run's mutating calls and the re-run's reads.
    assert "CreateRole" in roleops_rerun["converge"]["mutating"], roleops_rerun["converge"]
    assert "AssociateIamInstanceProfile" in roleops_rerun["converge"]["mutating"], roleops_rerun["converge"]
    assert rerun["api_calls"] > 0 and "GetRole" in roleops_rerun["calls"], roleops_rerun
    # The walkthrough's script, re-run, sends its mutating calls again and AWS refuses most of them.
    assert doc["rerun"]["walkthrough"][0]["mutating_sent"] == 6
    assert doc["rerun"]["walkthrough"][0]["refused"], doc["rerun"]["walkthrough"]

    for metric in ("verify", "setup (fresh account)", "verify fail-fast (no IMDS)", "roleops --help start-up"):
        samples = doc["samples"][metric]
        assert len(samples["roleops"]) == 1 and len(samples["walkthrough"]) == 1, (metric, samples)
    assert set(doc["fail_fast_exit_codes"]["roleops"]) == {3}  # contract: IMDS unreachable is exit 3
