"""Benchmark report: one row per metric with its goal, the Markdown table, the machine line, the JSON document."""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from measure import fleet_rerun_metric, fleet_setup_metric, fleet_smoke_metric, median
from procedures import Tools


def fmt_s(seconds: float) -> str:
    return f"{seconds:.3f} s"


@dataclass
class Row:
    metric: str
    roleops: str
    walkthrough: str
    ratio: str
    goal: str
    met: bool
    data: dict[str, Any] = field(default_factory=dict)

    def cells(self) -> list[str]:
        return [self.metric, self.roleops, self.walkthrough, self.ratio, self.goal, "yes" if self.met else "**no**"]


def _speed_row(
    samples: dict[str, dict[str, list[float]]],
    metric: str,
    walk_label: str,
    goal_ratio: float,
    data: dict[str, Any] | None = None,
) -> Row:
    """A "roleops is N× faster than the walkthrough" row from the two sides' medians."""
    r, w = median(samples[metric]["roleops"]), median(samples[metric]["walkthrough"])
    ratio = w / r if r > 0 else float("inf")
    return Row(
        metric,
        fmt_s(r),
        f"{fmt_s(w)} ({walk_label})",
        f"{ratio:.2f}× faster",
        f"≥ {goal_ratio:g}× faster",
        ratio >= goal_ratio,
        data or {},
    )


def build_rows(
    samples: dict[str, dict[str, list[float]]],
    reruns: list[dict[str, Any]],
    script_reruns: list[dict[str, Any]],
    ff_codes: dict[str, list[int]],
    tools: Tools,
) -> list[Row]:
    def speed_row(metric: str, walk_label: str, goal_ratio: float) -> Row:
        return _speed_row(samples, metric, walk_label, goal_ratio)

    def bound_row(metric: str, walk_label: str, bound: float, extra: str = "") -> Row:
        r, w = median(samples[metric]["roleops"]), median(samples[metric]["walkthrough"])
        ratio = w / r if r > 0 else float("inf")
        return Row(
            metric, fmt_s(r) + extra, f"{fmt_s(w)} ({walk_label})", f"{ratio:.2f}×", f"≤ {bound:g} s", r <= bound
        )

    curl = "curl" if tools.curl else "python-urllib"
    rows = [
        speed_row("verify", f"3 {curl} + 3 aws processes", 4),
        speed_row("setup (fresh account)", "6 aws processes", 6),
    ]
    mutating = max((len(r["mutating"]) for r in reruns), default=-1)
    api_calls = max((r["api_calls"] for r in reruns), default=0)
    http = max((r["http_requests"] for r in reruns), default=0)
    unchanged = all(r["actions"] == ["unchanged"] for r in reruns)
    rerun_wall = median([r["seconds"] for r in reruns])
    script = script_reruns[0] if script_reruns else {"mutating_sent": 0, "refused": []}
    refused = ", ".join(sorted({o["error"] or f"exit {o['exit']}" for o in script["refused"]}))
    rows.append(
        Row(
            "setup re-run: mutating calls",
            f"{mutating} mutating of {api_calls} API calls ({http} HTTP requests), "
            f"{'all unchanged' if unchanged else 'CHANGES'}, {fmt_s(rerun_wall)}",
            f"{script['mutating_sent']} mutating sent, {len(script['refused'])} refused ({refused or 'none'})",
            "—",
            "0 mutating",
            mutating == 0 and bool(reruns) and unchanged,
            {"mutating": mutating, "api_calls": api_calls, "http_requests": http},
        )
    )
    codes = sorted(set(ff_codes["roleops"]))
    rows.append(
        bound_row(
            "verify fail-fast (no IMDS)",
            "aws sts get-caller-identity",
            1.5,
            f" (exit {'/'.join(map(str, codes))})",
        )
    )
    rows.append(bound_row("roleops --help start-up", "aws --version", 0.3))
    return rows


# The fleet goals (issue 13), for the full sizes: smoke over 24 instances, setup of 100.
FLEET_GOALS = {"smoke": 5.0, "setup": 20.0, "rerun_calls": 15}


def build_fleet_rows(
    samples: dict[str, dict[str, list[float]]],
    sizes: dict[str, int],
    reruns: dict[str, list[dict[str, Any]]],
    tools: Tools,
    *,
    judged: bool,
) -> list[Row]:
    """The fleet rows. Not `judged` (--quick, a few instances): the goals, set for the full sizes, are shown
    but not applied, and the rows stay out of the table (report_text lists them apart)."""
    curl = "curl" if tools.curl else "python-urllib"
    smoke_n, setup_n = sizes["smoke"], sizes["setup"]

    def speed_row(metric: str, walk_label: str, goal_ratio: float) -> Row:
        return _speed_row(samples, metric, walk_label, goal_ratio, {"judged": judged})

    rows = [
        speed_row(
            fleet_smoke_metric(smoke_n),
            f"{smoke_n} × (3 {curl} + 3 aws processes), one instance after another",
            FLEET_GOALS["smoke"],
        ),
        speed_row(
            fleet_setup_metric(setup_n),
            f"{setup_n} aws ec2 associate-iam-instance-profile processes, one after another",
            FLEET_GOALS["setup"],
        ),
    ]
    ours = reruns["roleops"]
    mutating = max((len(r["mutating"]) for r in ours), default=-1)
    api_calls = max((r["api_calls"] for r in ours), default=0)
    http = max((r["http_requests"] for r in ours), default=0)
    unchanged = all(r["actions"] == ["unchanged"] for r in ours)
    converge = max((r["converge"]["api_calls"] for r in ours), default=0)
    script = reruns["walkthrough"][0] if reruns["walkthrough"] else {"mutating_sent": 0, "sampled": 0, "refused": []}
    refused = ", ".join(sorted({o["error"] or f"exit {o['exit']}" for o in script["refused"]}))
    limit = FLEET_GOALS["rerun_calls"]
    rows.append(
        Row(
            fleet_rerun_metric(setup_n),
            f"{mutating} mutating of {api_calls} API calls ({http} HTTP requests), "
            f"{'all unchanged' if unchanged else 'CHANGES'}, {fmt_s(median([r['seconds'] for r in ours]))} "
            f"(converging: {converge} API calls)",
            f"{script['mutating_sent']} mutating sent (one per process); {len(script['refused'])} of "
            f"{script['sampled']} re-run refused ({refused or 'none'})",
            "—",
            f"≤ {limit} API calls, 0 mutating",
            mutating == 0 and 0 < api_calls <= limit and bool(ours) and unchanged,
            {"mutating": mutating, "api_calls": api_calls, "http_requests": http, "judged": judged},
        )
    )
    return rows


def growth_table(growth: Sequence[dict[str, Any]]) -> str:
    header = ["instances", "wall time", "per instance", "API calls", "HTTP requests", "SSM commands", "calls"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for g in growth:
        calls = ", ".join(f"{name} {n}" for name, n in g["by_operation"].items())
        per = g["seconds"] / g["instances"] if g["instances"] else float("nan")
        cells = [
            str(g["instances"]),
            fmt_s(g["seconds"]),
            fmt_s(per),
            str(g["api_calls"]),
            str(g["http_requests"]),
            str(g["ssm_commands"]),
            calls,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_table(rows: Sequence[Row]) -> str:
    header = ["metric", "roleops", "walkthrough procedure", "ratio", "goal", "met?"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 0
    versions = {}
    for dist in ("boto3", "botocore", "awscli", "rich", "moto"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "absent"
    return {
        "cpu": cpu,
        "cores": os.cpu_count() or 0,
        "usable_cores": usable,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "os": f"{platform.system()} {platform.release()}",
        "versions": versions,
    }


def machine_line(m: dict[str, Any]) -> str:
    cores = f"{m['cores']} cores" + (f" ({m['usable_cores']} usable)" if m["usable_cores"] != m["cores"] else "")
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    return f"Machine: {m['cpu']}, {cores}, {m['implementation']} {m['python']}, {m['os']}; {versions}"


def profile_text(profiles: dict[str, dict[str, Any]]) -> str:
    lines = []
    for name, p in profiles.items():
        lines.append(f"### profile: {name} — `{p['command']}` (exit {p['exit']})")
        lines.append(
            f"- under cProfile {p['profiled_seconds']:.3f} s in all; imports {p['import_seconds']:.3f} s "
            "(python -X importtime, cumulative, top level)"
        )
        if p["imports"]:
            lines.append("- imports: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in p["imports"].items()))
        for label, v in p["hot"].items():
            if v["calls"]:
                lines.append(f"- {label}: {v['calls']}×, {v['seconds'] * 1000:.0f} ms cumulative")
        if p["files"]:
            lines.append(f"- raw output: {p['files']}/{name}.importtime.txt, {name}.cprofile.txt, {name}.prof")
        else:
            lines.append("- raw output: temporary; pass --profile DIR to keep it")
        lines.append("")
    return "\n".join(lines)


def report_text(result: dict[str, Any]) -> str:
    rows: list[Row] = result["rows"]
    lines = [
        f"## roleops vs the walkthrough: medians of {result['runs']} run(s) each"
        f" after {result['warmup']} warm-up run(s), sides alternated",
        "",
        markdown_table(rows),
        "",
        machine_line(result["machine"]),
        f"IMDS calls of the walkthrough side: {result['curl']}. Re-run counts: botocore before-call (API calls) "
        "and before-send (HTTP attempts) hooks on every session of an in-process `roleops.cli.main` run.",
        "",
    ]
    fleet = result.get("fleet")
    if fleet:
        sizes = fleet["sizes"]
        lines.append(
            f"Fleet rows: medians of {fleet['runs']} run(s) each after {fleet['warmup']} warm-up run(s) on "
            f"{fleet['warmup_instances']} instances, sides alternated. The sandbox's instances share this machine's "
            "cores (its SSM runs 8 scripts at once), where each EC2 instance has its own: that favours the "
            "walkthrough side, which runs one instance at a time. Setup: the IAM part exists on both sides "
            "beforehand (untimed); roleops uses its default --concurrency 8."
        )
        lines.append("")
        if not fleet["judged"]:
            # A few instances only (--quick): the goals are for 24 and 100 instances, so these are not table rows.
            lines.append(
                f"Fleets, scaled down for --quick ({sizes['smoke']} instances for smoke, {sizes['setup']} for setup; "
                "goals not judged):"
            )
            for row in fleet["rows"]:
                lines.append(f"- {row.metric}: roleops {row.roleops}; walkthrough {row.walkthrough}; {row.ratio}")
            lines.append("")
        growth = fleet["growth"]
        if growth:
            lines.append(
                f"roleops smoke as the fleet grows ({len(growth)} sizes, one in-process run each, "
                "wall time and the API calls it sent in that run):"
            )
            lines.append("")
            if fleet["judged"]:
                lines.append(growth_table(growth))
            else:  # no second table in --quick: its table is the metrics' only
                for g in growth:
                    lines.append(
                        f"- {g['instances']} instances: {fmt_s(g['seconds'])}, {g['api_calls']} API calls "
                        f"({g['http_requests']} HTTP requests), {g['ssm_commands']} SSM command(s)"
                    )
            lines.append("")
    for name, steps in result["steps"].items():
        if steps:
            lines.append(f"walkthrough {name}, per-step medians:")
            lines += [f"  {fmt_s(median(v))}  {step}" for step, v in steps.items()]
    ff = result["fail_fast_exit_codes"]
    lines.append(
        f"fail-fast exit codes: roleops {sorted(set(ff['roleops']))}, aws {sorted(set(ff['walkthrough']))} "
        "(contract: 3 = IMDS unreachable)"
    )
    for metric, s in result["samples"].items():
        if s["roleops"]:
            lines.append(
                f"samples {metric}: roleops {[round(x, 3) for x in s['roleops']]}, "
                f"walkthrough {[round(x, 3) for x in s['walkthrough']]}"
            )
    if result["profiles"]:
        lines += ["", profile_text(result["profiles"])]
    return "\n".join(lines) + "\n"


def _row_json(r: Row) -> dict[str, Any]:
    return {
        "metric": r.metric,
        "roleops": r.roleops,
        "walkthrough": r.walkthrough,
        "ratio": r.ratio,
        "goal": r.goal,
        "met": r.met if r.data.get("judged", True) else None,  # --quick's fleet rows: goals not judged
        **r.data,
    }


def to_json(result: dict[str, Any]) -> dict[str, Any]:
    doc = dict(result)
    doc["rows"] = [_row_json(r) for r in result["rows"]]
    if result.get("fleet"):
        doc["fleet"] = {**result["fleet"], "rows": [_row_json(r) for r in result["fleet"]["rows"]]}
    return doc
