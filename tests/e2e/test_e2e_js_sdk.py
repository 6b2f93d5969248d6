"""E2E: a client of the chain that is not botocore: the AWS SDK for JavaScript v3 on a sandbox instance."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import ACCOUNT, SandboxProcess, allow_assume, role_arn, trust_for

JS_DIR = Path(__file__).resolve().parent / "js"
CHAIN_SCRIPT = JS_DIR / "chain.mjs"
NPM_CI_TIMEOUT = 300.0
NODE_TIMEOUT = 60.0
INSTANCE_ROLE = "ExampleRole"
ASSUMED_ROLE = "ExampleAssumedRole"
SESSION = "MySession"


@pytest.fixture(scope="session")
def node() -> str:
    """The node binary, with tests/e2e/js's locked dependencies installed (`npm ci` when they are missing)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("the JavaScript SDK tests need node and npm on PATH")
    if not (JS_DIR / "node_modules" / "@aws-sdk" / "client-sts").is_dir():
        started = time.monotonic()
        try:
            # --prefer-offline: a warm npm cache installs without the registry.
            proc = subprocess.run(
                [npm, "ci", "--prefer-offline", "--no-audit", "--no-fund"],
                cwd=JS_DIR,
                capture_output=True,
                text=True,
                timeout=NPM_CI_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"npm ci in {JS_DIR} took more than {NPM_CI_TIMEOUT:g}s")
        if proc.returncode != 0:
            pytest.fail(f"npm ci in {JS_DIR} failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
        print(f"npm ci: {time.monotonic() - started:.1f}s")
    return node


def node_env(sb: SandboxProcess, instance: str | dict | None, aws_dir: Path, **extra: str) -> dict[str, str]:
    """What a program on the instance has: its metadata endpoint and the sandbox's API endpoint, no keys,
    and config/credentials files of the test's own (as SandboxProcess.env(instance) gives botocore)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_ENDPOINT_URL"] = sb.endpoint_url
    env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = sb.info["region"]
    env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = sb.metadata_endpoint(instance)
    env["AWS_CONFIG_FILE"] = str(aws_dir / "config")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(aws_dir / "credentials")
    env.update(extra)
    return env


def run_chain(node: str, record: Callable[..., None], env: dict[str, str], *args: str) -> dict[str, str]:
    """`node chain.mjs ARGS`: its output to the leak check, and {label: ARN} from its lines."""
    proc = subprocess.run(
        [node, str(CHAIN_SCRIPT), *args], env=env, capture_output=True, text=True, timeout=NODE_TIMEOUT, cwd=JS_DIR
    )
    label = "node chain.mjs " + " ".join(args)
    record(f"{label} [stdout]", proc.stdout)
    record(f"{label} [stderr]", proc.stderr)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr}"
    return dict(line.split(" ", 1) for line in proc.stdout.splitlines())


def setup_chain(sb: SandboxProcess, instance: str | dict | None = None) -> str:
    """The walkthrough's set-up with the sandbox admin's keys, on an instance that answers IMDSv2 only
    (so success also proves the SDK's token flow). Returns the instance id."""
    instance_id = instance["instance_id"] if isinstance(instance, dict) else (instance or sb.instance_id)
    sb.create_instance_role(INSTANCE_ROLE)
    iam = sb.client("iam")
    iam.create_role(RoleName=ASSUMED_ROLE, AssumeRolePolicyDocument=json.dumps(trust_for(INSTANCE_ROLE)))
    iam.put_role_policy(
        RoleName=INSTANCE_ROLE, PolicyName="assume", PolicyDocument=json.dumps(allow_assume(ASSUMED_ROLE))
    )
    sb.associate(INSTANCE_ROLE, instance_id)
    sb.client("ec2").modify_instance_metadata_options(InstanceId=instance_id, HttpTokens="required")
    return instance_id


def test_default_chain_and_assume_role(sb, node, record, tmp_path):
    instance_id = setup_chain(sb)
    env = node_env(sb, instance_id, tmp_path)
    arns = run_chain(node, record, env, "default", role_arn(ASSUMED_ROLE), SESSION)
    assert arns == {
        "default-chain": f"arn:aws:sts::{ACCOUNT}:assumed-role/{INSTANCE_ROLE}/{instance_id}",
        "assume-role": f"arn:aws:sts::{ACCOUNT}:assumed-role/{ASSUMED_ROLE}/{SESSION}",
        "assumed-caller": f"arn:aws:sts::{ACCOUNT}:assumed-role/{ASSUMED_ROLE}/{SESSION}",
    }


def test_default_chain_on_a_launched_instance(sb, node, record, tmp_path):
    """An instance from POST /_roleops/instances: the SDK reaches it, not the first one, at its own endpoint."""
    instance_id = setup_chain(sb, sb.new_instance())
    assert instance_id != sb.instance_id
    arns = run_chain(node, record, node_env(sb, instance_id, tmp_path), "default", role_arn(ASSUMED_ROLE), SESSION)
    assert arns["default-chain"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/{INSTANCE_ROLE}/{instance_id}"


def test_credential_source_profile(sb, node, record, tmp_path):
    """A config profile that assumes a role with the instance's credentials (credential_source), the way the
    walkthrough's `aws --profile` step works, resolved by fromIni and by the default chain."""
    setup_chain(sb)
    session = "js-profile"
    (tmp_path / "config").write_text(
        "[profile assumed]\n"
        f"role_arn = {role_arn(ASSUMED_ROLE)}\n"
        "credential_source = Ec2InstanceMetadata\n"
        f"role_session_name = {session}\n"
        f"region = {sb.info['region']}\n"
    )
    env = node_env(sb, sb.instance_id, tmp_path, AWS_PROFILE="assumed")
    expected = f"arn:aws:sts::{ACCOUNT}:assumed-role/{ASSUMED_ROLE}/{session}"
    assert run_chain(node, record, env, "profile") == {"from-ini": expected, "default-chain": expected}
