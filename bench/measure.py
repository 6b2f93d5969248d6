"""Benchmark measurement: the runs of each metric, sides alternated; medians; call counting; profiling.

Each timed sample is the wall time of whole processes (procedures.timed); sandbox resets and assertions sit
outside the timed region. The two sides alternate run by run (roleops first on even runs, the walkthrough first
on odd ones) so that a drift of the machine hits both. What roleops sends is counted in-process with
roleops.aws.CallCounter hooked into every botocore session; the roleops commands behind missed goals (or all,
with --profile) are profiled with `python -X importtime` and `python -m cProfile`.
"""

from __future__ import annotations

import contextlib
import io
import json
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from procedures import (
    ASSUMED_ARN,
    Bench,
    BenchError,
    Envs,
    FleetBench,
    base_env,
    check_smoke,
    closed_port,
    environ,
    timed,
)

if TYPE_CHECKING:
    from roleops.aws import CallCounter

METRICS = (
    "verify",
    "setup (fresh account)",
    "setup re-run: mutating calls",
    "verify fail-fast (no IMDS)",
    "roleops --help start-up",
)

Samples = dict[str, dict[str, list[float]]]


# The fleet metrics' names carry their sizes: --quick runs them on a few instances, where the goals (set for 24
# and 100 instances) are not judged.
def fleet_smoke_metric(count: int) -> str:
    return f"fleet smoke, {count} instances"


def fleet_setup_metric(count: int) -> str:
    return f"fleet setup, {count} instances"


def fleet_rerun_metric(count: int) -> str:
    return f"fleet setup re-run, {count} instances: API calls"


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples) if samples else float("nan")


def alternate(i: int, first: Callable[[], Any], second: Callable[[], Any]) -> tuple[Any, Any]:
    """Run both sides, roleops first on even runs and the walkthrough first on odd ones."""
    if i % 2 == 0:
        a = first()
        return a, second()
    b = second()
    return first(), b


# --- counting what roleops sends (in-process, botocore event hooks) ----------------------------------------


def run_counted(argv: Sequence[str], env: dict[str, str]) -> tuple[int, str, CallCounter]:
    """`roleops.cli.main(argv)` in this process; every botocore session it creates gets the counting hooks.

    Every session, boto3's included, is a botocore.session.Session, and clients copy the session's handlers when
    they are made, so a hook on each new session sees every call of every client.
    """
    import botocore.session

    from roleops.aws import CallCounter
    from roleops.cli import main

    counter = CallCounter()
    session_class = botocore.session.Session
    original = session_class.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.register("before-call", counter)  # once per API operation, before any retry
        self.register("before-send", counter.on_send)  # once per HTTP attempt: retries show up here

    out, err = io.StringIO(), io.StringIO()
    session_class.__init__ = init  # type: ignore[method-assign]
    try:
        with environ(env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(argv))
    finally:
        session_class.__init__ = original  # type: ignore[method-assign]
    return code, out.getvalue(), counter


def counted_rerun(argv: Sequence[str], env: dict[str, str], process_argv: Sequence[str]) -> dict[str, Any]:
    """Converge in-process (counted: proves the hooks see mutating calls), then re-run twice: as a process
    (`process_argv`, timed) and in-process with the botocore hooks (counted). `argv` is a setup command with
    `--output json`, without the leading `roleops`."""
    code, _, first = run_counted(argv, env)
    if code != 0 or not first.mutating:
        raise BenchError(f"in-process roleops setup on a fresh account: exit {code}, {first.calls} counted")
    wall = timed(process_argv, env, step="roleops setup (re-run)").seconds
    code, stdout, counter = run_counted(argv, env)
    if code != 0:
        raise BenchError(f"in-process roleops setup re-run: exit {code}")
    actions = sorted({c["action"] for c in json.loads(stdout)["changes"]})
    return {
        "seconds": wall,
        "api_calls": len(counter.calls),
        "http_requests": counter.sends,
        "mutating": counter.mutating,
        "actions": actions,
        "calls": counter.calls,
        "converge": {"api_calls": len(first.calls), "mutating": first.mutating},
    }


def roleops_rerun(bench: Bench, instance_id: str, envs: Envs) -> dict[str, Any]:
    """The one-instance setup, converged then re-run (see counted_rerun)."""
    argv = bench.setup_argv(instance_id)
    return counted_rerun([*argv[1:], "--output", "json"], envs.admin, argv)


# --- the runs of each metric ----------------------------------------------------------------------------


def measure_verify(bench: Bench, runs: int, warmup: int, samples: Samples, log: Callable[[str], None]) -> None:
    """One converged account serves every verify run (verify changes nothing)."""
    instance_id, envs = bench.fresh_account()
    timed(bench.setup_argv(instance_id), envs.admin, step="roleops setup (for verify)")
    for i in range(warmup + runs):
        r, w = alternate(i, lambda: bench.roleops_verify(envs), lambda: bench.walkthrough_verify(envs))
        if i < warmup:
            bench.step_samples.clear()  # per-step medians: measured runs only
            continue
        samples["verify"]["roleops"].append(r)
        samples["verify"]["walkthrough"].append(w)
        log(f"verify run {i - warmup + 1}: roleops {r:.3f} s, walkthrough {w:.3f} s")


def measure_setup(bench: Bench, runs: int, warmup: int, samples: Samples, log: Callable[[str], None]) -> None:
    """Each side on a fresh account every time; the reset is outside the timed region."""

    def roleops() -> float:
        instance_id, envs = bench.fresh_account()
        return bench.roleops_setup(instance_id, envs)

    def script() -> float:
        instance_id, envs = bench.fresh_account()
        return bench.walkthrough_setup(instance_id, envs)

    for i in range(warmup + runs):
        r, w = alternate(i, roleops, script)
        if i < warmup:
            bench.step_samples.clear()
            continue
        samples["setup (fresh account)"]["roleops"].append(r)
        samples["setup (fresh account)"]["walkthrough"].append(w)
        log(f"setup run {i - warmup + 1}: roleops {r:.3f} s, script {w:.3f} s")


def measure_rerun(bench: Bench, runs: int, log: Callable[[str], None]) -> dict[str, list[dict[str, Any]]]:
    """roleops counted on every run; the script re-run once, for contrast (its outcome does not vary)."""
    roleops = []
    for i in range(runs):
        roleops.append(roleops_rerun(bench, *bench.fresh_account()))
        log(f"re-run {i + 1}: {roleops[-1]['api_calls']} API calls, {len(roleops[-1]['mutating'])} mutating")
    return {"roleops": roleops, "walkthrough": [bench.walkthrough_rerun(*bench.fresh_account())]}


def measure_fail_fast(bench: Bench, runs: int, warmup: int, samples: Samples) -> dict[str, list[int]]:
    """verify against a loopback port that refuses connections, beside the aws CLI's own try."""
    codes: dict[str, list[int]] = {"roleops": [], "walkthrough": []}
    with closed_port() as port:
        dead = f"http://127.0.0.1:{port}/"
        for i in range(warmup + runs):
            ro, aw = alternate(i, lambda: bench.roleops_fail_fast(dead), lambda: bench.aws_fail_fast(dead))
            if i < warmup:
                continue
            samples["verify fail-fast (no IMDS)"]["roleops"].append(ro.seconds)
            samples["verify fail-fast (no IMDS)"]["walkthrough"].append(aw.seconds)
            codes["roleops"].append(ro.code)
            codes["walkthrough"].append(aw.code)
    return codes


def measure_startup(bench: Bench, runs: int, warmup: int, samples: Samples) -> None:
    """`roleops --help` beside `aws --version` (the aws CLI's own start-up)."""
    env = base_env(bench.empty_dir)
    for i in range(warmup + runs):
        r, w = alternate(
            i,
            lambda: timed([bench.tools.roleops, "--help"], env, step="roleops --help").seconds,
            lambda: timed([bench.tools.aws, "--version"], env, step="aws --version").seconds,
        )
        if i >= warmup:
            samples["roleops --help start-up"]["roleops"].append(r)
            samples["roleops --help start-up"]["walkthrough"].append(w)


# --- fleets: many instances per command -----------------------------------------------------------------


def measure_fleet_smoke(
    fb: FleetBench, count: int, runs: int, warmup: int, warm_count: int, samples: Samples, log: Callable[[str], None]
) -> None:
    """`roleops smoke` over `count` instances against the walkthrough on each in turn. One converged fleet serves
    every measured run (smoke changes nothing); the warm-up runs on a fleet of `warm_count`."""
    metric = fleet_smoke_metric(count)
    warm = fb.prepare_smoke(warm_count) if warmup else None
    measured = None
    for i in range(warmup + runs):
        if i == warmup:
            measured = fb.prepare_smoke(count)
        fleet = warm if i < warmup else measured
        assert fleet is not None
        r, w = alternate(i, partial(fb.roleops_smoke, fleet), partial(fb.walkthrough_smoke, fleet))
        if i < warmup:
            fb.step_samples.clear()
            continue
        samples[metric]["roleops"].append(r)
        samples[metric]["walkthrough"].append(w)
        log(f"fleet smoke run {i - warmup + 1} ({count} instances): roleops {r:.3f} s, walkthrough {w:.3f} s")


def measure_fleet_setup(
    fb: FleetBench, count: int, runs: int, warmup: int, warm_count: int, samples: Samples, log: Callable[[str], None]
) -> None:
    """`roleops setup --instances-tagged` against one `aws ec2 associate-iam-instance-profile` per instance, each
    side on a fresh fleet whose IAM part exists already (made untimed, by `roleops setup` without instances, the
    same for both sides): the associations are compared. Every instance must hold the profile afterwards."""
    metric = fleet_setup_metric(count)

    def side(run: Callable[[Any], float], n: int) -> Callable[[], float]:
        def go() -> float:
            fleet = fb.fresh_fleet(n)
            fb.prepare_iam(fleet)
            seconds = run(fleet)
            fb.check_fleet_setup(fleet)
            return seconds

        return go

    for i in range(warmup + runs):
        n = warm_count if i < warmup else count
        r, w = alternate(i, side(fb.roleops_fleet_setup, n), side(fb.walkthrough_fleet_setup, n))
        if i < warmup:
            fb.step_samples.clear()
            continue
        samples[metric]["roleops"].append(r)
        samples[metric]["walkthrough"].append(w)
        log(f"fleet setup run {i - warmup + 1} ({count} instances): roleops {r:.3f} s, script {w:.3f} s")


def measure_fleet_rerun(
    fb: FleetBench, count: int, runs: int, script_sample: int, log: Callable[[str], None]
) -> dict[str, list[dict[str, Any]]]:
    """`roleops setup --instances-tagged` converged in-process and re-run (counted_rerun) on a fresh fleet each run;
    the converging run must have sent one AssociateIamInstanceProfile per instance. The script's loop is re-run
    once, on `script_sample` instances of the last converged fleet, for contrast."""
    roleops = []
    fleet = None
    for i in range(runs):
        fleet = fb.fresh_fleet(count)
        argv = fb.fleet_setup_argv()
        rerun = counted_rerun([*argv[1:], "--output", "json"], fleet.admin, argv)
        associations = rerun["converge"]["mutating"].count("AssociateIamInstanceProfile")
        if associations != count:
            raise BenchError(f"converging {count} instances sent {associations} AssociateIamInstanceProfile calls")
        roleops.append(rerun)
        calls, mutating = rerun["api_calls"], len(rerun["mutating"])
        log(f"fleet re-run {i + 1} ({count} instances): {calls} API calls, {mutating} mutating")
    assert fleet is not None
    return {"roleops": roleops, "walkthrough": [fb.walkthrough_fleet_rerun(fleet, script_sample)]}


def measure_smoke_growth(fb: FleetBench, sizes: Sequence[int], log: Callable[[str], None]) -> list[dict[str, Any]]:
    """`roleops smoke` once per fleet size, in-process (run_counted): its wall time and the API calls it sent in
    the same run (the number of polls, hence of ListCommandInvocations calls, depends on how long the fleet takes).
    In-process, the interpreter's start-up (~0.1-0.3 s) is not in the wall time."""
    growth = []
    argv = [*fb.smoke_argv()[1:], "--remote", "auto", "--output", "json"]
    for count in sizes:
        fleet = fb.prepare_smoke(count)
        start = time.perf_counter()
        code, stdout, counter = run_counted(argv, fleet.admin)
        seconds = time.perf_counter() - start
        if code != 0:
            raise BenchError(f"in-process roleops smoke over {count} instances: exit {code}")
        report = check_smoke(stdout, count)
        by_operation: dict[str, int] = {}
        for operation in counter.calls:
            by_operation[operation] = by_operation.get(operation, 0) + 1
        growth.append(
            {
                "instances": count,
                "seconds": seconds,
                "api_calls": len(counter.calls),
                "http_requests": counter.sends,
                "mutating": counter.mutating,
                "by_operation": by_operation,
                "ssm_commands": len(report["command_ids"]),
            }
        )
        log(f"smoke growth: {count} instances, {seconds:.3f} s, {len(counter.calls)} API calls")
    return growth


# --- profiling (where a goal is missed, or on request) ----------------------------------------------------------

# (label, file suffix, function name, "module:Qualname" to pin the line when the name is not unique in the file)
# picked out of a cProfile run: where botocore's fixed costs go.
_PROFILE_KEYS = (
    ("botocore sessions created", "botocore/session.py", "__init__", "botocore.session:Session.__init__"),
    ("clients created (Session.create_client)", "botocore/session.py", "create_client", None),
    ("service models loaded (Loader.load_service_model)", "botocore/loaders.py", "load_service_model", None),
    ("endpoint resolvers built (create_default_resolver)", "botocore/session.py", "create_default_resolver", None),
    ("JSON documents decoded (json raw_decode)", "json/decoder.py", "raw_decode", None),
    ("TCP connections opened (urllib3 _new_conn)", "urllib3/connectionpool.py", "_new_conn", None),
    ("HTTP requests sent (urllib3 _make_request)", "urllib3/connectionpool.py", "_make_request", None),
    ("waiting (time.sleep: smoke's polls)", "~", "<built-in method time.sleep>", None),
)
_TOP_IMPORTS = ("boto3", "botocore.session", "botocore.utils", "botocore.client", "rich.console", "rich.table")


def _first_line(owner: str) -> int | None:
    """The first line of a function's code object, as cProfile records it (the same interpreter runs both)."""
    import importlib
    import inspect

    module_name, qualname = owner.split(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        return inspect.unwrap(obj).__code__.co_firstlineno
    except (ImportError, AttributeError):
        return None


def profile_command(
    name: str, prepare: Callable[[], tuple[list[str], dict[str, str]]], out_dir: Path
) -> dict[str, Any]:
    """`python -X importtime` and `python -m cProfile` of one roleops command; a summary of both.

    `prepare()` runs before each of the two and returns (argv after `roleops`, environment): a command that
    changes the account (setup) needs a fresh one each time, or the second run would profile a re-run.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    py = [sys.executable]
    argv, env = prepare()
    imp = timed([*py, "-X", "importtime", "-m", "roleops", *argv], env, step=f"{name} (importtime)", expect=None)
    import_lines = [line for line in imp.stderr.splitlines() if line.startswith("import time:")]
    (out_dir / f"{name}.importtime.txt").write_text("\n".join(import_lines) + "\n")
    imports: dict[str, float] = {}
    total_import = 0.0
    for line in import_lines[1:]:  # the first line is the header
        parts = line[len("import time:") :].split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        cumulative, mod = int(parts[1]) / 1e6, parts[2]
        if not mod.startswith("  "):  # top level: these sum to the whole import time
            total_import += cumulative
        if mod.strip() in _TOP_IMPORTS:
            imports[mod.strip()] = max(imports.get(mod.strip(), 0.0), cumulative)

    prof_file = out_dir / f"{name}.prof"
    argv, env = prepare()
    timed(
        [*py, "-m", "cProfile", "-o", str(prof_file), "-m", "roleops", *argv],
        env,
        step=f"{name} (cProfile)",
        expect=None,
    )
    text = io.StringIO()
    stats = pstats.Stats(str(prof_file), stream=text)
    stats.sort_stats("cumulative").print_stats(40)
    (out_dir / f"{name}.cprofile.txt").write_text(text.getvalue())
    picked: dict[str, dict[str, float]] = {}
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = max((v[3] for v in raw.values()), default=0.0)
    for label, suffix, func, owner in _PROFILE_KEYS:
        line = _first_line(owner) if owner else None
        calls, cumulative = 0, 0.0
        for (filename, lineno, fname), (_cc, nc, _tt, ct, _callers) in raw.items():
            if fname == func and filename.replace("\\", "/").endswith(suffix) and line in (None, lineno):
                calls += nc
                cumulative += ct
        picked[label] = {"calls": calls, "seconds": round(cumulative, 4)}
    return {
        "command": "roleops " + " ".join(argv),
        "exit": imp.code,  # cProfile's own exit status does not carry the command's
        "profiled_seconds": round(total, 4),
        "import_seconds": round(total_import, 4),
        "imports": {k: round(v, 4) for k, v in imports.items()},
        "hot": picked,
        "files": str(out_dir),
    }


def profile_metrics(bench: Bench, wanted: Sequence[str], out_dir: Path) -> dict[str, dict[str, Any]]:
    """Profile the roleops command behind each wanted metric (see profile_command)."""
    profiles: dict[str, dict[str, Any]] = {}
    instance_id, envs = bench.fresh_account()
    timed(bench.setup_argv(instance_id), envs.admin, step="roleops setup (for the profile)")
    verify_argv = ["verify", "--assume", ASSUMED_ARN]
    if "verify" in wanted:
        profiles["verify"] = profile_command("verify", lambda: (verify_argv, envs.instance), out_dir)
    if "roleops --help start-up" in wanted:
        base = base_env(bench.empty_dir)
        profiles["help"] = profile_command("help", lambda: (["--help"], base), out_dir)
    if "verify fail-fast (no IMDS)" in wanted:
        with closed_port() as port:
            dead_env = bench.dead_imds_env(f"http://127.0.0.1:{port}/")
            profiles["fail-fast"] = profile_command("fail-fast", lambda: (verify_argv, dead_env), out_dir)
    if "setup (fresh account)" in wanted:

        def fresh_setup() -> tuple[list[str], dict[str, str]]:
            iid, fresh = bench.fresh_account()
            return bench.setup_argv(iid)[1:], fresh.admin

        profiles["setup"] = profile_command("setup", fresh_setup, out_dir)
    return profiles


def profile_fleet(
    fb: FleetBench, wanted: Sequence[str], sizes: dict[str, int], out_dir: Path
) -> dict[str, dict[str, Any]]:
    """Profile the roleops command behind each wanted fleet metric, on a fleet of the metric's size."""
    profiles: dict[str, dict[str, Any]] = {}
    smoke, setup = sizes["smoke"], sizes["setup"]
    if fleet_smoke_metric(smoke) in wanted:
        fleet = fb.prepare_smoke(smoke)
        argv = [*fb.smoke_argv()[1:], "--remote", "auto"]
        profiles["fleet-smoke"] = profile_command("fleet-smoke", lambda: (argv, fleet.admin), out_dir)
    if fleet_setup_metric(setup) in wanted or fleet_rerun_metric(setup) in wanted:

        def fresh() -> tuple[list[str], dict[str, str]]:
            fleet = fb.fresh_fleet(setup)
            fb.prepare_iam(fleet)
            return fb.fleet_setup_argv()[1:], fleet.admin

        profiles["fleet-setup"] = profile_command("fleet-setup", fresh, out_dir)
    return profiles
