"""E2E: the SDK-native way to assume a role from the instance role, on a sandbox instance over HTTP.

`roleops creds --format profile` prints a `credential_source = Ec2InstanceMetadata` profile; the stock AWS CLI
assumes the role through it by itself, and `roleops verify` under that profile calls it the chain working (a
role_arn profile with any other source still warns, naming that source).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import ACCOUNT, REPO, SandboxProcess, role_arn

INSTANCE_ROLE = "ExampleRole"
ASSUMED_ROLE = "ExampleAssumedRole"
ASSUMED_ARN = role_arn(ASSUMED_ROLE)


def run(record: Callable[..., None], args: list[str], env: dict[str, str], label: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, cwd=REPO)
    record(f"{label} [stdout]", proc.stdout)  # no secret allowed: the profile format holds none
    record(f"{label} [stderr]", proc.stderr)
    return proc


def roleops(record: Callable[..., None], env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return run(record, [sys.executable, "-m", "roleops", *args], env, "roleops " + " ".join(args))


@pytest.fixture
def chain(sb: SandboxProcess, record: Callable[..., None]) -> SandboxProcess:
    proc = roleops(record, sb.env(), "setup", "--instance-role", INSTANCE_ROLE, "--assumable-role", ASSUMED_ROLE,
                   "--instance-id", sb.instance_id)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return sb


def profile_env(sb: SandboxProcess, config: Path, profile: str) -> dict[str, str]:
    return sb.env(sb.instance_id) | {"AWS_CONFIG_FILE": str(config), "AWS_PROFILE": profile}


def default_chain_step(sb: SandboxProcess, record: Callable[..., None], env: dict[str, str]) -> tuple[int, dict]:
    proc = roleops(record, env, "verify", "--assume", ASSUMED_ARN, "--output", "json")
    assert proc.stdout.strip(), proc.stderr
    report = json.loads(proc.stdout)
    return proc.returncode, {s["step"]: s for s in report["steps"]}["default-chain"]


def test_profile_format_prints_the_block_without_secrets(chain, record):
    proc = roleops(record, chain.env(chain.instance_id), "creds", "--format", "profile", "--assume", ASSUMED_ARN,
                   "--profile-name", "assumed", "--external-id", "ci-42", "--duration", "1800")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.splitlines() == [
        "[profile assumed]",
        f"role_arn = {ASSUMED_ARN}",
        "credential_source = Ec2InstanceMetadata",
        f"role_session_name = {chain.instance_id}",
        f"region = {chain.info['region']}",
        "external_id = ci-42",
        "duration_seconds = 1800",
    ]
    for secret in chain.secrets():
        assert secret not in proc.stdout


def test_the_aws_cli_and_verify_assume_the_role_through_the_printed_profile(chain, record, tmp_path):
    proc = roleops(record, chain.env(chain.instance_id), "creds", "--format", "profile", "--assume", ASSUMED_ARN,
                   "--session-name", "app")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"[profile {ASSUMED_ROLE}]\n")  # named after the role by default
    config = tmp_path / "config"
    config.write_text(proc.stdout)
    # HOME of its own: the AWS CLI caches assumed-role keys under ~/.aws/cli/cache by role and session name, and a
    # cache from an earlier sandbox would hand it keys this one never issued.
    env = profile_env(chain, config, ASSUMED_ROLE) | {"HOME": str(tmp_path)}

    # The stock AWS CLI reads the instance role from this instance's metadata service and assumes the role itself.
    cli = run(record, [sys.executable, "-m", "awscli", "sts", "get-caller-identity", "--output", "json"], env, "aws")
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/{ASSUMED_ROLE}/app"

    code, step = default_chain_step(chain, record, env)
    assert code == 0
    assert step["status"] == "pass", step
    assert ASSUMED_ARN in step["message"] and f"instance role {INSTANCE_ROLE}" in step["message"]
    assert "Ec2InstanceMetadata" in step["message"] and "shadows" not in step["message"]
    assert step["arn"] == ASSUMED_ARN and step["account"] == ACCOUNT


def test_a_source_profile_chain_ending_in_the_instance_metadata_passes_too(chain, record, tmp_path):
    config = tmp_path / "config"
    config.write_text(
        "[profile base]\n"
        f"role_arn = {role_arn(ASSUMED_ROLE)}\ncredential_source = Ec2InstanceMetadata\n"
        "[profile app]\n"
        f"role_arn = {role_arn(ASSUMED_ROLE)}\nsource_profile = base\n"
    )
    # ExampleAssumedRole assuming itself: let its trust name it, and let it assume itself.
    iam = chain.client("iam")
    iam.update_assume_role_policy(
        RoleName=ASSUMED_ROLE,
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": [role_arn(INSTANCE_ROLE), role_arn(ASSUMED_ROLE)]},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )
    iam.put_role_policy(
        RoleName=ASSUMED_ROLE,
        PolicyName="self",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}
        ),
    )
    code, step = default_chain_step(chain, record, profile_env(chain, config, "app"))
    assert step["status"] == "pass", step
    assert "profile app -> profile base" in step["message"]


def test_a_role_profile_with_another_source_still_warns_naming_it(chain, record, tmp_path):
    config = tmp_path / "config"
    credentials = tmp_path / "credentials"
    # The admin's own keys as the source: a working chain that does not start from the instance role.
    credentials.write_text(
        f"[keys]\naws_access_key_id = {chain.info['access_key_id']}\n"
        f"aws_secret_access_key = {chain.info['secret_access_key']}\n"
    )
    config.write_text(f"[profile app]\nrole_arn = {role_arn('AdminTarget')}\nsource_profile = keys\n")
    root_trust = {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}
    chain.client("iam").create_role(
        RoleName="AdminTarget",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [root_trust]}),
    )
    env = profile_env(chain, config, "app") | {"AWS_SHARED_CREDENTIALS_FILE": str(credentials)}
    code, step = default_chain_step(chain, record, env)
    assert code == 0  # a warning, not a failure
    assert step["status"] == "warn", step
    assert "static keys of profile keys" in step["message"] and "not the instance role" in step["message"]
    assert "credential_source = Ec2InstanceMetadata" in step["hint"]

    # A source that cannot even work (no keys in the environment) still names it.
    config.write_text(f"[profile app]\nrole_arn = {role_arn('AdminTarget')}\ncredential_source = Environment\n")
    code, step = default_chain_step(chain, record, env)
    assert step["status"] == "warn", step
    assert "credential_source = Environment" in step["message"]


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--format", "profile"], "--assume"),
        (["--format", "profile", "--assume", ASSUMED_ARN, "--profile-name", "bad name"], "--profile-name"),
        (["--format", "profile", "--assume", ASSUMED_ARN, "--duration", "7200"], "--duration"),
        (["--format", "env", "--profile-name", "x"], "--profile-name"),
    ],
)
def test_profile_format_bad_input_is_exit_2_and_one_line(sb, record, args, field):
    proc = roleops(record, sb.env(sb.instance_id), "creds", *args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and field in proc.stderr
