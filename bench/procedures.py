"""Benchmark procedures: what each side runs — the roleops commands, and the walkthrough's curl + aws commands.

Also the tools they run (found next to this interpreter, else on PATH), the environments they run in, and the
one way any step runs: a whole process, bounded, its exit code checked, its wall time kept (`timed`). Each side's
output is checked outside the timed region, so the bench never compares a failure path with a success path.
The fleet metrics use a FleetBench, on a sandbox started without instances: `fresh_fleet(n)` launches n tagged
instances in a fresh account (what POST /_roleops/instances does, in process).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

ACCOUNT = "123456789012"
INSTANCE_ROLE = "ExampleRole"
ASSUMED_ROLE = "ExampleAssumedRole"
ASSUMED_ARN = f"arn:aws:iam::{ACCOUNT}:role/{ASSUMED_ROLE}"
SESSION_NAME = "MySession"  # the walkthrough's
FLEET_TAG = ("app", "bench")  # the tag every fleet instance carries: `--instances-tagged app=bench`
STEP_TIMEOUT = 120.0  # seconds; every process the bench starts is bounded
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


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port bound but not listening: connections are refused, and no one else can take it meanwhile."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
    finally:
        sock.close()


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


@contextlib.contextmanager
def environ(env: dict[str, str]) -> Iterator[None]:
    """os.environ is `env` for the duration (an in-process roleops run reads its settings from there)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def roleops_in_process(argv: Sequence[str], env: dict[str, str], *, step: str) -> str:
    """`roleops.cli.main(argv)` in this process, for untimed preparations (no interpreter to start); its stdout."""
    import io

    from roleops.cli import main

    out, err = io.StringIO(), io.StringIO()
    with environ(env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    if code != 0:
        raise BenchError(f"{step}: exit {code}: {_redact(err.getvalue().strip())[-600:]}")
    return out.getvalue()


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

    # --- 3. re-run on a converged account (roleops's side is counted in-process: measure.roleops_rerun) ---

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


# --- fleets: many instances per command (a Bench on a sandbox started with no instances) ------------------------


@dataclass(frozen=True)
class Fleet:
    instance_ids: list[str]
    instances: list[Envs]  # per instance: its own metadata endpoint in `instance`
    admin: dict[str, str]  # the operator's environment (the sandbox admin's keys)


class FleetBench(Bench):
    """The fleet metrics' two sides. The sandbox is started with `instances=0`, so that a fresh account holds
    exactly the n tagged instances `fresh_fleet(n)` launches (the sandbox runs at most 200)."""

    tag_filter = f"{FLEET_TAG[0]}={FLEET_TAG[1]}"

    def __init__(self, sandbox: Any, tools: Tools, empty_dir: Path) -> None:
        super().__init__(sandbox, tools, empty_dir)
        self._ec2: Any = None

    # --- account state (never timed) ---

    def fresh_fleet(self, count: int) -> Fleet:
        """A fresh account with `count` instances tagged app=bench, each with an SSM agent and roleops installed."""
        from roleops.sandbox.server import InstanceOptions

        self.sandbox.reset()
        options = InstanceOptions(ssm_agent=True, roleops=True, tags=(FLEET_TAG,))
        launched = [self.sandbox.add_instance(options) for _ in range(count)]
        envs = [Envs.build(self.sandbox, self.empty_dir, i.metadata_endpoint) for i in launched]
        admin = envs[0].admin if envs else Envs.build(self.sandbox, self.empty_dir, "").admin
        return Fleet([i.instance_id for i in launched], envs, admin)

    def iam_argv(self) -> list[str]:
        """`roleops setup` with no instance: the IAM part only (roles, inline policy, instance profile)."""
        return [self.tools.roleops, "setup", "--instance-role", INSTANCE_ROLE, "--assumable-role", ASSUMED_ROLE]

    def fleet_setup_argv(self) -> list[str]:
        return [*self.iam_argv(), "--instances-tagged", self.tag_filter]

    def smoke_argv(self) -> list[str]:
        return [self.tools.roleops, "smoke", "--instances-tagged", self.tag_filter, "--assume", ASSUMED_ARN]

    def prepare_iam(self, fleet: Fleet) -> None:
        """The IAM part, untimed (in-process: the preparations of a full bench would otherwise add ~0.5 s each)."""
        argv = [*self.iam_argv()[1:], "--output", "json"]
        roleops_in_process(argv, fleet.admin, step="roleops setup (IAM part, untimed)")

    def prepare_smoke(self, count: int) -> Fleet:
        """A converged fleet: the IAM part and every association, untimed."""
        fleet = self.fresh_fleet(count)
        argv = [*self.fleet_setup_argv()[1:], "--output", "json"]
        roleops_in_process(argv, fleet.admin, step="roleops setup --instances-tagged (untimed)")
        return fleet

    # --- smoke over a fleet ---

    def roleops_smoke(self, fleet: Fleet) -> float:
        """`roleops smoke --remote auto` from the operator's machine: SSM runs `roleops verify` on every instance."""
        argv = [*self.smoke_argv(), "--remote", "auto", "--output", "json"]
        run = timed(argv, fleet.admin, step="roleops smoke")
        check_smoke(run.stdout, len(fleet.instance_ids))
        return run.seconds

    def walkthrough_smoke(self, fleet: Fleet) -> float:
        """The walkthrough's curl + aws sequence on each instance in turn, with that instance's metadata endpoint."""
        return sum(self.walkthrough_verify(envs) for envs in fleet.instances)

    # --- setup of a fleet: the associations (the IAM part exists on both sides, made untimed beforehand) ---

    def roleops_fleet_setup(self, fleet: Fleet) -> float:
        run = timed(self.fleet_setup_argv(), fleet.admin, step="roleops setup (fleet)")
        return run.seconds

    def check_fleet_setup(self, fleet: Fleet) -> None:
        """After a side's run (untimed): every instance holds the profile, as EC2 tells it
        (DescribeIamInstanceProfileAssociations, the same question whoever associated)."""
        if self._ec2 is None:  # one client for every check: the admin keys survive the sandbox's resets
            import botocore.session

            self._ec2 = botocore.session.Session().create_client(
                "ec2",
                region_name=self.sandbox.region,
                endpoint_url=self.sandbox.endpoint_url,
                aws_access_key_id=self.sandbox.access_key_id,
                aws_secret_access_key=self.sandbox.secret_access_key,
            )
        held = set()
        for page in self._ec2.get_paginator("describe_iam_instance_profile_associations").paginate():
            for assoc in page["IamInstanceProfileAssociations"]:
                if assoc["State"] == "associated" and assoc["IamInstanceProfile"]["Arn"].endswith("/" + INSTANCE_ROLE):
                    held.add(assoc["InstanceId"])
        missing = [iid for iid in fleet.instance_ids if iid not in held]
        if missing:
            raise BenchError(f"{len(missing)} of {len(fleet.instance_ids)} instances hold no {INSTANCE_ROLE} profile")

    def associate_argv(self, instance_id: str) -> list[str]:
        profile = f"Name={INSTANCE_ROLE}"
        return [
            *(self.tools.aws, "ec2", "associate-iam-instance-profile"),
            *("--instance-id", instance_id, "--iam-instance-profile", profile),
        ]

    def walkthrough_fleet_setup(self, fleet: Fleet) -> float:
        """One `aws ec2 associate-iam-instance-profile` process per instance, one after another (a shell loop)."""
        total = 0.0
        for instance_id in fleet.instance_ids:
            run = self._walk("aws ec2 associate-iam-instance-profile", self.associate_argv(instance_id), fleet.admin)
            if json.loads(run.stdout)["IamInstanceProfileAssociation"]["InstanceId"] != instance_id:
                raise BenchError(f"aws ec2 associate-iam-instance-profile did not associate {instance_id}")
            total += run.seconds
        return total

    def walkthrough_fleet_rerun(self, fleet: Fleet, sample: int) -> dict[str, Any]:
        """The loop again on a fleet it associated: each process sends AssociateIamInstanceProfile again. Run on
        the first `sample` instances only (every instance's outcome is the same call's)."""
        outcomes = []
        for instance_id in fleet.instance_ids[:sample]:
            run = timed(self.associate_argv(instance_id), fleet.admin, step="aws ec2 associate (re-run)", expect=None)
            match = re.search(r"An error occurred \((\w+)\)", run.stderr)
            outcomes.append({"instance": instance_id, "exit": run.code, "error": match.group(1) if match else None})
        return {
            "instances": len(fleet.instance_ids),
            "mutating_sent": len(fleet.instance_ids),
            "sampled": len(outcomes),
            "refused": [o for o in outcomes if o["exit"] != 0],
        }


def check_smoke(stdout: str, count: int) -> dict[str, Any]:
    """roleops smoke's JSON: every one of the `count` instances passed (its exit code is checked by `timed`)."""
    report = json.loads(stdout)
    if not report["ok"] or report["counts"] != {"pass": count}:
        raise BenchError(f"roleops smoke over {count} instances: {report['counts']}, not {count} pass")
    return report
