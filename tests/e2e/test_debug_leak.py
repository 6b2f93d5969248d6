"""E2E: every roleops command run with --debug, signing with session-token credentials, prints no secret.

--debug logs botocore's requests (signed headers, X-Amz-Security-Token among them), canonical requests and
response bodies: the one output that carries raw secrets, and one the suite never produced before (issue 11:
`verify --debug --assume` printed the instance role's session token). Each command here runs the way an operator
or code on the instance runs it: setup, associate, teardown and doctor with an assumed admin role's session (keys
and a token, as SSO gives), verify and creds on a sandbox instance with the instance role's session. Checked per
command: the exit code, that the debug log really ran (botocore's request lines on stderr, the session token's
header among them, redacted), and that no secret the sandbox issued (sandbox.secrets() after the command: keys,
session tokens, IMDS tokens) is in stdout or stderr. `creds` alone may print secrets, on stdout only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import leakcheck
import pytest
from conftest import (
    REPO,
    START_TIMEOUT,
    SandboxProcess,
    allow_assume,
    assumed_admin_env,
    read_lines,
    role_arn,
    stop_process,
    trust_for,
)

from roleops.cli import build_parser

INSTANCE_ROLE = "ExampleRole"
ASSUMED_ROLE = "ExampleAssumedRole"
ASSUMED_ARN = role_arn(ASSUMED_ROLE)
TIMEOUT = 120
# botocore.endpoint's line for every API request it sends: present only when the debug log is on.
SENT = "Sending http request"
# The session token's header, redacted in one of the forms botocore prints it (b'...' or '...').
TOKEN_HEADER_REDACTED = re.compile(r"'X-Amz-Security-Token': b?'?\*\*\*REDACTED\*\*\*'?[,}]")

# Every command of the parser, and the test below that runs it with --debug.
COVERED = {
    "setup": "test_setup_with_debug",
    "associate": "test_associate_with_debug",
    "teardown": "test_teardown_with_debug",
    "verify": "test_verify_on_the_instance_with_debug",
    "creds": "test_creds_on_the_instance_with_debug",
    "doctor": "test_doctor_with_debug",
    "export": "test_export_with_debug",
    "smoke": "test_smoke_with_debug",
    "demo": "test_demo_with_debug",
    "sandbox": "test_sandbox_with_debug",
}


def roleops_debug(
    record: Callable[..., None], env: dict[str, str], *args: str, stdout_secrets: bool = False
) -> subprocess.CompletedProcess:
    """`python -m roleops --debug ARGS`; stdout and stderr go to the leak checks (stderr never may hold one)."""
    proc = subprocess.run(
        [sys.executable, "-m", "roleops", "--debug", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=REPO,
        check=False,
    )
    label = "roleops --debug " + " ".join(args)
    record(f"{label} [stdout]", proc.stdout, secrets_allowed=stdout_secrets)
    record(f"{label} [stderr]", proc.stderr)
    return proc


def leaks(secrets: set[str], **streams: str) -> list[str]:
    """The streams holding a secret (or a sandbox token's shape); names only, never the secret."""
    return [name for name, text in streams.items() if leakcheck.holds_secret(text, secrets)]


def shown(text: str, secrets: set[str]) -> str:
    """The end of `text` for a failure message, secrets masked: a failing test must not print them either.
    (Assertions below test booleans for the same reason: pytest would show the operands.)"""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "<SECRET>")
    for shape in leakcheck.SHAPES:
        text = shape.sub("<SECRET>", text)
    return text[-3000:]


def assert_debug_clean(
    sb: SandboxProcess, proc: subprocess.CompletedProcess, *, code: int, token: str, stdout_secrets: bool = False
) -> None:
    """Exit `code`; the debug log ran and signed with the session whose token is `token`; nothing leaked."""
    secrets = sb.secrets()
    exited, logged = proc.returncode == code, SENT in proc.stderr
    assert exited, f"exit {proc.returncode}, not {code}: {shown(proc.stderr, secrets)}"
    assert logged, f"no botocore request in the log, --debug did not log: {shown(proc.stderr, secrets)}"
    signed = TOKEN_HEADER_REDACTED.search(proc.stderr) is not None
    assert signed, f"no request signed with a session token was logged: {shown(proc.stderr, secrets)}"
    reported = token in secrets
    assert reported, "the sandbox does not report the session token it issued: the check would be blind"
    streams = {"stderr": proc.stderr} if stdout_secrets else {"stdout": proc.stdout, "stderr": proc.stderr}
    found = leaks(secrets, **streams)
    assert not found, f"secrets in {found}"


def admin_env_and_token(sb: SandboxProcess) -> tuple[dict[str, str], str]:
    env = assumed_admin_env(sb)
    return env, env["AWS_SESSION_TOKEN"]


def setup_chain(sb: SandboxProcess, *, associate: bool = True) -> None:
    """The walkthrough's chain through the admin's API (not under test here)."""
    sb.create_instance_role(INSTANCE_ROLE)
    iam = sb.client("iam")
    iam.create_role(RoleName=ASSUMED_ROLE, AssumeRolePolicyDocument=json.dumps(trust_for(INSTANCE_ROLE)))
    iam.put_role_policy(
        RoleName=INSTANCE_ROLE, PolicyName="assume", PolicyDocument=json.dumps(allow_assume(ASSUMED_ROLE))
    )
    if associate:
        sb.associate(INSTANCE_ROLE)


def instance_token(sb: SandboxProcess) -> str:
    """The instance role session's token, as IMDS serves it (the one roleops signs with on the instance)."""
    return sb.imds().credentials(INSTANCE_ROLE)["Token"]


# --- the commands run from an operator's machine, with an assumed admin role's session ----------------------


def test_setup_with_debug(sb, record):
    env, token = admin_env_and_token(sb)
    args = ["setup", "--instance-role", INSTANCE_ROLE, "--assumable-role", ASSUMED_ROLE]
    proc = roleops_debug(record, env, *args, "--instance-id", sb.instance_id, "--wait")
    assert_debug_clean(sb, proc, code=0, token=token)


def test_associate_with_debug(sb, record):
    sb.create_instance_role(INSTANCE_ROLE)
    env, token = admin_env_and_token(sb)
    args = ["associate", "--instance-id", sb.instance_id, "--instance-profile", INSTANCE_ROLE, "--wait"]
    proc = roleops_debug(record, env, *args)
    assert_debug_clean(sb, proc, code=0, token=token)


def test_doctor_with_debug(sb, record):
    setup_chain(sb)
    env, token = admin_env_and_token(sb)
    proc = roleops_debug(record, env, "doctor", "--instance-id", sb.instance_id, "--assume", ASSUMED_ARN)
    assert_debug_clean(sb, proc, code=0, token=token)


def test_smoke_with_debug(sb, record):
    """smoke signs DescribeInstances, DescribeInstanceInformation, SendCommand and the polling with a session token;
    the instance's own run (verify, on the sandbox instance) prints its report, which comes back: nothing leaks."""
    setup_chain(sb)
    env, token = admin_env_and_token(sb)
    proc = roleops_debug(record, env, "smoke", "--instance-id", sb.instance_id, "--assume", ASSUMED_ARN)
    assert_debug_clean(sb, proc, code=0, token=token)


def test_teardown_with_debug(sb, record):
    setup_chain(sb)
    env, token = admin_env_and_token(sb)
    args = ["teardown", "--instance-role", INSTANCE_ROLE, "--assumable-role", ASSUMED_ROLE]
    proc = roleops_debug(record, env, *args, "--instance-id", sb.instance_id)
    assert_debug_clean(sb, proc, code=0, token=token)


def test_export_with_debug(sb, record):
    """export asks STS for the instance role's account (the StackSet parameter's default) with a session."""
    env, token = admin_env_and_token(sb)
    target = "234567890123"
    args = ["export", "--instance-role", INSTANCE_ROLE, "--assumable-role", f"arn:aws:iam::{target}:role/Deploy"]
    proc = roleops_debug(record, env, *args, "--target-account", target, "--format", "cloudformation")
    assert_debug_clean(sb, proc, code=0, token=token)
    assert json.loads(proc.stdout)["Parameters"]["InstanceRoleArn"]["Default"].endswith(f":role/{INSTANCE_ROLE}")


# --- the commands run on the instance, with the instance role's session ------------------------------------


@pytest.mark.parametrize("output", ["table", "json"])
def test_verify_on_the_instance_with_debug(sb, record, output):
    """The issue's command: the instance session signs GetCallerIdentity and AssumeRole, the assumed one signs
    GetCallerIdentity; both tokens were printed in full after the redaction marker."""
    setup_chain(sb)
    token = instance_token(sb)
    proc = roleops_debug(record, sb.env(sb.instance_id), "--output", output, "verify", "--assume", ASSUMED_ARN)
    assert_debug_clean(sb, proc, code=0, token=token)
    assert len(TOKEN_HEADER_REDACTED.findall(proc.stderr)) >= 3  # instance session x2, assumed session x1


@pytest.mark.parametrize("assume", [False, True], ids=["instance-role", "assumed-role"])
def test_creds_on_the_instance_with_debug(sb, record, assume):
    """`creds` prints secrets on stdout by contract; its --debug log on stderr must hold none."""
    setup_chain(sb)
    token = instance_token(sb)
    extra = ["--assume", ASSUMED_ARN] if assume else []
    proc = roleops_debug(record, sb.env(sb.instance_id), "creds", "--format", "json", *extra, stdout_secrets=True)
    secrets = sb.secrets()
    ok = proc.returncode == 0
    assert ok, f"exit {proc.returncode}: {shown(proc.stderr, secrets)}"
    printed = json.loads(proc.stdout)["SessionToken"] in secrets
    assert printed, "creds printed a session token the sandbox did not issue"
    if assume:
        assert_debug_clean(sb, proc, code=0, token=token, stdout_secrets=True)
    else:  # without --assume creds makes no AWS call: only IMDS and botocore's set-up are logged
        found = leaks(secrets, stderr=proc.stderr)
        assert " DEBUG " in proc.stderr and not found


def test_creds_refused_with_debug_prints_a_clean_traceback(sb, record):
    """An error under --debug prints a traceback, outside logging: it goes through the redaction too."""
    setup_chain(sb)
    token = instance_token(sb)
    sb.client("iam").delete_role_policy(RoleName=INSTANCE_ROLE, PolicyName="assume")
    proc = roleops_debug(record, sb.env(sb.instance_id), "creds", "--assume", ASSUMED_ARN, stdout_secrets=True)
    traced = "Traceback" in proc.stderr and "AccessDenied" in proc.stderr
    assert traced, shown(proc.stderr, sb.secrets())
    assert proc.stdout == ""
    assert_debug_clean(sb, proc, code=3, token=token)


# --- the commands that bring their own sandbox --------------------------------------------------------------

# The demo's sandbox lives inside the demo's process (moto's state is process-global): this child runs
# `roleops --debug demo` through the CLI's main() and writes the secrets that sandbox issued to a file, never to
# a stream.
DEMO_PROBE = """
import json, sys
import roleops.demo
from roleops.cli import main

secrets = set()
run_demo = roleops.demo.run_demo

def run_and_keep_secrets(**kwargs):
    return run_demo(**kwargs, before_stop=lambda sb: secrets.update(sb.issued_secrets()))

roleops.demo.run_demo = run_and_keep_secrets
code = main(["--debug", "demo"])
with open(sys.argv[1], "w") as f:
    json.dump({"code": code, "secrets": sorted(secrets)}, f)
"""


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PYTHONPATH"] = str(REPO)
    return env


def test_demo_with_debug(record, tmp_path: Path):
    result = tmp_path / "demo-secrets.json"
    proc = subprocess.run(
        [sys.executable, "-c", DEMO_PROBE, str(result)],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=REPO,
        check=False,
    )
    record("roleops --debug demo [stdout]", proc.stdout)
    record("roleops --debug demo [stderr]", proc.stderr)
    ran = proc.returncode == 0 and result.exists()
    assert ran, f"exit {proc.returncode}: {shown(proc.stderr, set())}"
    probe = json.loads(result.read_text())
    secrets = set(probe["secrets"])
    leakcheck.SECRETS.update(secrets)  # the suite-wide check searches for them too
    passed = probe["code"] == 0
    assert passed, f"demo exit {probe['code']}: {shown(proc.stderr, secrets)}"
    # the admin's secret, the instance and assumed sessions' secrets and tokens, at least one IMDS token
    assert len(secrets) >= 6
    logged = SENT in proc.stderr and TOKEN_HEADER_REDACTED.search(proc.stderr) is not None
    assert logged, f"the demo's --debug log shows no request signed with a session token: {shown(proc.stderr, secrets)}"
    found = leaks(secrets, stdout=proc.stdout, stderr=proc.stderr)
    assert not found, f"secrets in {found}"


def test_sandbox_with_debug(sb, record, tmp_path: Path):
    """`roleops --debug sandbox` serving a whole walk (roleops verify --debug on its instance): its own log holds
    no secret it issued; its stdout prints the admin's keys by contract, so only the admin's secret may be there."""
    stderr_path = tmp_path / "sandbox-stderr.log"
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "roleops", "--debug", "sandbox", "--port", "0", "--output", "json"],
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=clean_env(),
            cwd=REPO,
        )
    try:
        lines = read_lines(proc, START_TIMEOUT, until=bool)
        started = bool(lines)
        assert started, f"the sandbox printed nothing within {START_TIMEOUT:g}s: {stderr_path.read_text()[-2000:]}"
        own = SandboxProcess(proc, json.loads(lines[0]), stderr_path)
        setup_chain(own)
        token = instance_token(own)
        walk = roleops_debug(record, own.env(own.instance_id), "verify", "--assume", ASSUMED_ARN)
        assert_debug_clean(own, walk, code=0, token=token)
        secrets = own.secrets()
    finally:
        stop_process(proc)
        if proc.stdout is not None:
            proc.stdout.close()
    log = stderr_path.read_text(errors="replace")
    record("roleops --debug sandbox [stdout]", lines[0], secrets_allowed=True)
    record("roleops --debug sandbox [stderr]", log)
    admin_secret = own.info["secret_access_key"]
    leakcheck.SECRETS.update(secrets - {admin_secret})
    logged = " DEBUG " in log
    assert logged, "the sandbox's --debug log is empty"
    found = leaks(secrets, stderr=log) + leaks(secrets - {admin_secret}, stdout=lines[0])
    assert not found, f"secrets in the sandbox's {found}"


def test_every_command_runs_with_debug_here():
    """A command added to the CLI must be added here: the leak check sees only the output tests produce."""
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(sub.choices) == set(COVERED)
    defined = {name for name in globals() if name.startswith("test_")}
    assert set(COVERED.values()) <= defined
