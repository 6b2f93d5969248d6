"""Benchmark (tooling): roleops against the walkthrough's own curl + aws CLI procedure, side by side.

Usage: .venv/bin/python bench/run_bench.py [--runs N] [--quick] [--json FILE] [--profile DIR] [--strict]

Everything runs against an in-process roleops sandbox on 127.0.0.1. Each timed sample is the wall time of
whole processes (start to exit), as a user would see it; sandbox resets and assertions sit outside the timed
region. The two sides alternate run by run (roleops first on even runs, the walkthrough first on odd ones) so
that a drift of the machine hits both. See bench/README.md for what each metric means.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import pstats
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python bench/run_bench.py` from a checkout without an install
    sys.path.insert(0, str(REPO))

ACCOUNT = "123456789012"
INSTANCE_ROLE = "ExampleRole"
ASSUMED_ROLE = "ExampleAssumedRole"
ASSUMED_ARN = f"arn:aws:iam::{ACCOUNT}:role/{ASSUMED_ROLE}"
SESSION_NAME = "MySession"  # the walkthrough's
STEP_TIMEOUT = 120.0  # seconds; every process the bench starts is bounded
MAX_RUNS = 100
IMDS_TOKEN_TTL = "21600"

# The walkthrough's three policy documents, verbatim.
EC2_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
ASSUMED_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/{INSTANCE_ROLE}"},
            "Action": "sts:AssumeRole",
        }
    ],
}
ALLOW_ASSUME = {
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "Stmt1512947264000", "Effect": "Allow", "Action": ["sts:AssumeRole"], "Resource": [ASSUMED_ARN]}
    ],
}


# When curl is missing: one tiny python process per call, like curl (method, URL, "Header: value"...).
_URLLIB_CURL = (
    "import sys,urllib.request as u\n"
    "m,url,*h=sys.argv[1:]\n"
    "r=u.Request(url,method=m,headers=dict(x.split(': ',1) for x in h))\n"
    "sys.stdout.write(u.urlopen(r,timeout=5).read().decode())\n"
)

METRICS = (
    "verify",
    "setup (fresh account)",
    "setup re-run: mutating calls",
    "verify fail-fast (no IMDS)",
    "roleops --help start-up",
)


class BenchError(Exception):
    """The bench could not measure something (a tool missing, a step that did not do what it should)."""


# --- tools and environments ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Tools:
    roleops: str
    aws: str
    curl: str | None  # None: the python urllib fallback

    def curl_argv(self, method: str, url: str, headers: Sequence[str] = ()) -> list[str]:
        if self.curl is None:
            return [sys.executable, "-c", _URLLIB_CURL, method, url, *headers]
        argv = [self.curl, "-sS", "-f", "--noproxy", "*", "--max-time", "5", "-X", method]
        for header in headers:
            argv += ["-H", header]
        return [*argv, url]

    @property
    def curl_label(self) -> str:
        return "curl" if self.curl is not None else "python urllib (curl not installed)"


def find_tools() -> Tools:
    """The venv's console scripts (next to this interpreter) first, then PATH."""
    bin_dir = Path(sys.executable).parent

    def tool(name: str, hint: str) -> str:
        local = bin_dir / name
        found = str(local) if local.exists() else shutil.which(name)
        if not found:
            raise BenchError(f"{name} not found next to {sys.executable} nor on PATH: {hint}")
        return found

    return Tools(
        roleops=tool("roleops", "pip install -e ."),
        aws=tool("aws", "pip install awscli (it is in the test extra: pip install -e '.[test]')"),
        curl=shutil.which("curl"),
    )


_PROXY_VARS = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


def base_env(empty_dir: Path) -> dict[str, str]:
    """The caller's environment without any AWS_ setting or proxy, and AWS config files that do not exist."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k.lower() not in _PROXY_VARS}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["AWS_CONFIG_FILE"] = str(empty_dir / "no-config")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(empty_dir / "no-credentials")
    return env


@dataclass
class Envs:
    admin: dict[str, str]  # an operator's machine: the sandbox admin's keys
    instance: dict[str, str]  # on the instance: IMDS endpoint, endpoint URL and region, no keys

    @classmethod
    def build(cls, sandbox: Any, empty_dir: Path, metadata_endpoint: str) -> Envs:
        base = base_env(empty_dir)
        admin = {**base, **sandbox.env()}
        instance = {
            **base,
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": metadata_endpoint,
            "AWS_ENDPOINT_URL": sandbox.endpoint_url,
            "AWS_DEFAULT_REGION": sandbox.region,
        }
        return cls(admin, instance)


# --- running processes --------------------------------------------------------------------------------


def _redact(text: str) -> str:
    from roleops.redact import redact

    return redact(text)


@dataclass(frozen=True)
class Run:
    seconds: float
    code: int
    stdout: str
    stderr: str


def timed(argv: Sequence[str], env: dict[str, str], *, step: str, expect: Sequence[int] | None = (0,)) -> Run:
    """Run one process to completion; the sample is its wall time. `expect=None` accepts any exit code."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(list(argv), env=env, capture_output=True, text=True, timeout=STEP_TIMEOUT, cwd=REPO)
    except subprocess.TimeoutExpired as err:
        raise BenchError(f"{step}: no exit within {STEP_TIMEOUT:g}s") from err
    seconds = time.perf_counter() - start
    if expect is not None and proc.returncode not in expect:
        # stderr only (stdout may hold credentials), redacted all the same.
        tail = _redact(proc.stderr.strip())[-600:]
        raise BenchError(f"{step}: exit {proc.returncode} (expected {'/'.join(map(str, expect))}): {tail}")
    return Run(seconds, proc.returncode, proc.stdout, proc.stderr)


# --- the two sides of each metric ------------------------------------------------------------------------


class Bench:
    def __init__(self, sandbox: Any, tools: Tools, empty_dir: Path) -> None:
        self.sandbox = sandbox
        self.tools = tools
        self.empty_dir = empty_dir
        self.step_samples: dict[str, list[float]] = {}

    # --- account state (never timed) ---

    def fresh_account(self) -> tuple[str, Envs]:
        """A fresh sandbox account; its instance id and the environments that point at it."""
        self.sandbox.reset()
        instance = self.sandbox.instances[0]  # reset launches new instances, with new ids
        return instance.instance_id, Envs.build(self.sandbox, self.empty_dir, instance.metadata_endpoint)

    def setup_argv(self, instance_id: str) -> list[str]:
        return [
            self.tools.roleops,
            "setup",
            "--instance-role",
            INSTANCE_ROLE,
            "--assumable-role",
            ASSUMED_ROLE,
            "--instance-id",
            instance_id,
        ]

    # --- 1. verify ---

    def roleops_verify(self, envs: Envs) -> float:
        run = timed([self.tools.roleops, "verify", "--assume", ASSUMED_ARN], envs.instance, step="roleops verify")
        return run.seconds

    def _walk(self, name: str, argv: Sequence[str], env: dict[str, str]) -> Run:
        """One timed step of the walkthrough; its time also goes to the per-step breakdown."""
        run = timed(argv, env, step=name)
        self.step_samples.setdefault(name, []).append(run.seconds)
        return run

    def walkthrough_verify(self, envs: Envs) -> float:
        """curl the token, the role name and its keys; aws get-caller-identity; assume-role; get-caller-identity."""
        curl, aws, env = self.tools.curl_argv, self.tools.aws, envs.instance
        md = env["AWS_EC2_METADATA_SERVICE_ENDPOINT"]
        creds_url = md + "latest/meta-data/iam/security-credentials/"
        ttl = [f"X-aws-ec2-metadata-token-ttl-seconds: {IMDS_TOKEN_TTL}"]

        token = self._walk("curl PUT api/token", curl("PUT", md + "latest/api/token", ttl), env)
        with_token = [f"X-aws-ec2-metadata-token: {token.stdout.strip()}"]
        listing = self._walk("curl security-credentials/", curl("GET", creds_url, with_token), env)
        if listing.stdout.strip() != INSTANCE_ROLE:
            raise BenchError(f"IMDS lists role {listing.stdout.strip()!r}, not {INSTANCE_ROLE}")
        keys = self._walk("curl security-credentials/ROLE", curl("GET", creds_url + INSTANCE_ROLE, with_token), env)
        if json.loads(keys.stdout).get("Code") != "Success":  # the document holds secrets: never shown
            raise BenchError("the IMDS credential document's Code is not Success")

        caller = self._walk("aws sts get-caller-identity (IMDS)", [aws, "sts", "get-caller-identity"], env)
        if f":assumed-role/{INSTANCE_ROLE}/" not in json.loads(caller.stdout)["Arn"]:
            raise BenchError("aws sts get-caller-identity did not resolve to the instance role")
        assume_argv = [aws, "sts", "assume-role", "--role-arn", ASSUMED_ARN, "--role-session-name", SESSION_NAME]
        assumed = self._walk("aws sts assume-role", assume_argv, env)
        creds = json.loads(assumed.stdout)["Credentials"]
        # "export" the three keys, as the walkthrough says; parsing the JSON is not timed (a shell would use jq).
        exported = {
            **env,
            "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
            "AWS_SESSION_TOKEN": creds["SessionToken"],
        }
        final = self._walk("aws sts get-caller-identity (exported keys)", [aws, "sts", "get-caller-identity"], exported)
        if json.loads(final.stdout)["Arn"] != f"arn:aws:sts::{ACCOUNT}:assumed-role/{ASSUMED_ROLE}/{SESSION_NAME}":
            raise BenchError("the exported keys are not the assumed role's session")
        return sum(r.seconds for r in (token, listing, keys, caller, assumed, final))

    # --- 2. setup ---

    def roleops_setup(self, instance_id: str, envs: Envs) -> float:
        return timed(self.setup_argv(instance_id), envs.admin, step="roleops setup").seconds

    def script_steps(self, instance_id: str) -> list[tuple[str, list[str]]]:
        """The walkthrough's set-up, one aws command per step, with its policy documents."""
        steps = [
            ("iam create-role --role-name ExampleRole --assume-role-policy-document", json.dumps(EC2_TRUST)),
            ("iam create-role --role-name ExampleAssumedRole --assume-role-policy-document", json.dumps(ASSUMED_TRUST)),
            ("iam put-role-policy --role-name ExampleRole --policy-name AssumeExampleAssumedRole --policy-document",
             json.dumps(ALLOW_ASSUME)),
            ("iam create-instance-profile --instance-profile-name ExampleRole", None),
            ("iam add-role-to-instance-profile --instance-profile-name ExampleRole --role-name ExampleRole", None),
            (f"ec2 associate-iam-instance-profile --instance-id {instance_id} --iam-instance-profile",
             f"Name={INSTANCE_ROLE}"),
        ]  # fmt: skip
        result = []
        for words, last in steps:
            argv = [self.tools.aws, *words.split(), *([last] if last is not None else [])]
            name = " ".join(["aws", *argv[1:3], *(argv[4:5] if argv[2] == "create-role" else [])])
            result.append((name, argv))
        return result

    def walkthrough_setup(self, instance_id: str, envs: Envs) -> float:
        """The walkthrough's steps as a `set -e` script: one aws process per step, each must succeed."""
        total = 0.0
        for name, argv in self.script_steps(instance_id):
            total += self._walk(name, argv, envs.admin).seconds
        return total

    # --- 3. re-run on a converged account ---

    def roleops_rerun(self, instance_id: str, envs: Envs) -> dict[str, Any]:
        """Converge in-process (counted: proves the hooks see mutating calls), then re-run twice: as a process
        (timed) and in-process with the botocore hooks (counted)."""
        argv = [*self.setup_argv(instance_id)[1:], "--output", "json"]
        code, _, first = run_counted(argv, envs.admin)
        if code != 0 or not first.mutating:
            raise BenchError(f"in-process roleops setup on a fresh account: exit {code}, {first.calls} counted")
        wall = timed(self.setup_argv(instance_id), envs.admin, step="roleops setup (re-run)").seconds
        code, stdout, log = run_counted(argv, envs.admin)
        if code != 0:
            raise BenchError(f"in-process roleops setup re-run: exit {code}")
        actions = sorted({c["action"] for c in json.loads(stdout)["changes"]})
        return {
            "seconds": wall,
            "api_calls": len(log.calls),
            "http_requests": log.sends,
            "mutating": log.mutating,
            "actions": actions,
            "calls": log.calls,
            "converge": {"api_calls": len(first.calls), "mutating": first.mutating},
        }

    def walkthrough_rerun(self, instance_id: str, envs: Envs) -> dict[str, Any]:
        """Run the script on a fresh account, then again: every step sends its mutating call again."""
        self.walkthrough_setup(instance_id, envs)
        outcomes = []
        for name, argv in self.script_steps(instance_id):
            run = timed(argv, envs.admin, step=name + " (re-run)", expect=None)
            match = re.search(r"An error occurred \((\w+)\)", run.stderr)
            outcomes.append({"step": name, "exit": run.code, "error": match.group(1) if match else None})
        return {"mutating_sent": len(outcomes), "refused": [o for o in outcomes if o["exit"] != 0]}

    # --- 4. fail-fast ---

    def dead_imds_env(self, dead_endpoint: str) -> dict[str, str]:
        return {
            **base_env(self.empty_dir),
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": dead_endpoint,
            "AWS_ENDPOINT_URL": self.sandbox.endpoint_url,
            "AWS_DEFAULT_REGION": self.sandbox.region,
        }

    def roleops_fail_fast(self, dead_endpoint: str) -> Run:
        argv = [self.tools.roleops, "verify", "--assume", ASSUMED_ARN]
        run = timed(argv, self.dead_imds_env(dead_endpoint), step="roleops verify (no IMDS)", expect=None)
        if run.code == 0:
            raise BenchError("roleops verify passed with no metadata service answering")
        return run

    def aws_fail_fast(self, dead_endpoint: str) -> Run:
        argv = [self.tools.aws, "sts", "get-caller-identity"]
        return timed(argv, self.dead_imds_env(dead_endpoint), step="aws (no IMDS)", expect=None)


# --- counting what roleops sends (in-process, botocore event hooks) ----------------------------------------


@dataclass
class CallLog:
    calls: list[str] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    sends: int = 0

    def on_call(self, model: Any = None, **_: Any) -> None:
        self.calls.append(model.name)  # once per API operation, before any retry
        self.services.append(model.service_model.service_name)

    def on_send(self, **_: Any) -> None:
        self.sends += 1  # once per HTTP attempt: retries show up here

    @property
    def mutating(self) -> list[str]:
        from roleops.aws import is_mutating

        return [c for s, c in zip(self.services, self.calls, strict=True) if is_mutating(s, c)]


@contextlib.contextmanager
def _environ(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_counted(argv: Sequence[str], env: dict[str, str]) -> tuple[int, str, CallLog]:
    """`roleops.cli.main(argv)` in this process; every botocore session it creates gets the counting hooks.

    Every session, boto3's included, is a botocore.session.Session, and clients copy the session's handlers when
    they are made, so a hook on each new session sees every call of every client.
    """
    import botocore.session

    from roleops.cli import main

    log = CallLog()
    session_class = botocore.session.Session
    original = session_class.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.register("before-call", log.on_call)
        self.register("before-send", log.on_send)

    out, err = io.StringIO(), io.StringIO()
    session_class.__init__ = init  # type: ignore[method-assign]
    try:
        with _environ(env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(argv))
    finally:
        session_class.__init__ = original  # type: ignore[method-assign]
    return code, out.getvalue(), log


# --- a port nobody answers on ---------------------------------------------------------------------------------


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port bound but not listening: connections are refused, and no one else can take it meanwhile."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
    finally:
        sock.close()


# --- statistics and the report ---------------------------------------------------------------------------


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples) if samples else float("nan")


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


# --- the run -------------------------------------------------------------------------------------------


def alternate(i: int, first: Callable[[], Any], second: Callable[[], Any]) -> tuple[Any, Any]:
    """Run both sides, roleops first on even runs and the walkthrough first on odd ones."""
    if i % 2 == 0:
        a = first()
        return a, second()
    b = second()
    return first(), b


Samples = dict[str, dict[str, list[float]]]


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
        roleops.append(bench.roleops_rerun(*bench.fresh_account()))
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


def build_rows(
    samples: dict[str, dict[str, list[float]]],
    reruns: list[dict[str, Any]],
    script_reruns: list[dict[str, Any]],
    ff_codes: dict[str, list[int]],
    tools: Tools,
) -> list[Row]:
    def speed_row(metric: str, walk_label: str, goal_ratio: float) -> Row:
        r, w = median(samples[metric]["roleops"]), median(samples[metric]["walkthrough"])
        ratio = w / r if r > 0 else float("inf")
        return Row(
            metric,
            fmt_s(r),
            f"{fmt_s(w)} ({walk_label})",
            f"{ratio:.2f}× faster",
            f"≥ {goal_ratio:g}× faster",
            ratio >= goal_ratio,
        )

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


def to_json(result: dict[str, Any]) -> dict[str, Any]:
    doc = dict(result)
    doc["rows"] = [
        {
            "metric": r.metric,
            "roleops": r.roleops,
            "walkthrough": r.walkthrough,
            "ratio": r.ratio,
            "goal": r.goal,
            "met": r.met,
            **r.data,
        }
        for r in result["rows"]
    ]
    return doc


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
