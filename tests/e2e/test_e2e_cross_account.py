"""E2E: a secondary role in another account, on a two-account sandbox over real HTTP, through the CLI.

The operator's credentials act in the instance role's account (the sandbox's first); `--target-profile prod`
names a shared-credentials profile of the second account. The instance stays in the first account, and its
verify assumes the role in the second, as a build box in a tools account deploys into production.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import SandboxProcess, admin_keys, admin_session
from test_reliability_interrupt import killed_at_hold, run_roleops

HOME, OTHER = "123456789012", "234567890123"
INSTANCE_ROLE, TARGET = "BuildBox", "Deploy"
TARGET_ARN = f"arn:aws:iam::{OTHER}:role/{TARGET}"
INSTANCE_ROLE_ARN = f"arn:aws:iam::{HOME}:role/{INSTANCE_ROLE}"
TIMEOUT = 120


def roleops(record, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    proc = run_roleops(record, env, *args, timeout=TIMEOUT)
    assert "Traceback" not in proc.stderr
    return proc


def setup_args(sb: SandboxProcess, *extra: str) -> list[str]:
    return [
        "setup",
        "--instance-role",
        INSTANCE_ROLE,
        "--assumable-role",
        TARGET_ARN,
        "--target-profile",
        "prod",
        "--instance-id",
        sb.instance_id,
        "--wait",
        *extra,
    ]


def verify(record, sb: SandboxProcess) -> tuple[int, dict]:
    proc = roleops(record, sb.env(sb.instance_id), "verify", "--assume", TARGET_ARN, "--output", "json")
    return proc.returncode, json.loads(proc.stdout)


def other_iam(sb: SandboxProcess):
    return sb.client("iam", **admin_keys(sb, 1))


def test_setup_verify_break_doctor_mend_teardown_across_accounts(sb2, operator, record):
    # setup: each side in its own account, the table says which
    proc = roleops(record, operator, *setup_args(sb2), "--output", "json")
    assert proc.returncode == 0, proc.stderr
    rows = {c["resource"]: (c["action"], c["account"]) for c in json.loads(proc.stdout)["changes"]}
    assert rows[f"role {TARGET}"] == ("create", OTHER)
    assert rows[f"role {INSTANCE_ROLE}"] == ("create", HOME)
    assert rows[f"association {sb2.instance_id}"] == ("create", HOME)
    table = roleops(record, operator, *setup_args(sb2))  # the re-run, as a table: an account column
    assert table.returncode == 0 and "account" in table.stdout and OTHER in table.stdout
    assert "unchanged" in table.stdout and "create" not in table.stdout

    # verify on the instance: the assumed identity is in the second account
    code, report = verify(record, sb2)
    assert code == 0, report
    assumed = [s for s in report["steps"] if s["step"].startswith("assumed-caller:")]
    assert assumed and assumed[0]["account"] == OTHER
    assert assumed[0]["arn"].startswith(f"arn:aws:sts::{OTHER}:assumed-role/{TARGET}/")

    # break the target's trust in the second account: verify and doctor fail at that link
    other_iam(sb2).update_assume_role_policy(
        RoleName=TARGET,
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{OTHER}:root"}, "Action": "sts:AssumeRole"}
                ],
            }
        ),
    )
    code, report = verify(record, sb2)
    assert code == 1
    failed = next(s for s in report["steps"] if s["status"] == "fail")
    assert failed["step"].startswith("assume:")
    assert f"account {HOME}" in failed["hint"] and f"account {OTHER}" in failed["hint"]
    assert f"--target-profile {OTHER}=PROFILE" in failed["hint"]

    doctor = ["doctor", "--instance-id", sb2.instance_id, "--assume", TARGET_ARN, "--output", "json"]
    proc = roleops(record, operator, *doctor, "--target-profile", "prod")
    assert proc.returncode == 1
    findings = {f["check"]: f for f in json.loads(proc.stdout)["findings"]}
    assert findings[f"permission:{TARGET}"]["status"] == "pass"
    trust = findings[f"trust:{TARGET}"]
    assert trust["status"] == "fail" and f"in account {OTHER}" in trust["detail"]
    assert f"--target-profile {OTHER}=prod" in trust["fix"] and trust["fix_aws"].endswith("--profile prod")
    # without the target's profile doctor cannot read that side: a warning, never a pass
    proc = roleops(record, operator, *doctor)
    findings = {f["check"]: f for f in json.loads(proc.stdout)["findings"]}
    assert findings[f"target:{TARGET}"]["status"] == "warn"
    assert f"not readable from account {HOME}" in findings[f"target:{TARGET}"]["detail"]
    assert f"trust:{TARGET}" not in findings

    # the fix doctor printed mends it (setup only adds the statement back; the root principal stays)
    proc = roleops(record, operator, *setup_args(sb2), "--output", "json")
    rows = {c["resource"]: c["action"] for c in json.loads(proc.stdout)["changes"]}
    assert proc.returncode == 0 and rows[f"role {TARGET}"] == "update"
    assert verify(record, sb2)[0] == 0

    # teardown: each side removed in its own account, the other principal kept
    down = ["teardown", "--instance-role", INSTANCE_ROLE, "--assumable-role", TARGET_ARN, "--target-profile", "prod"]
    proc = roleops(record, operator, *down, "--instance-id", sb2.instance_id, "--output", "json")
    assert proc.returncode == 0, proc.stderr
    rows = {c["resource"]: (c["action"], c["account"]) for c in json.loads(proc.stdout)["changes"]}
    assert rows[f"role {TARGET}"] == ("update", OTHER)  # still trusted by the second account's root
    assert rows[f"role {INSTANCE_ROLE}"] == ("delete", HOME)
    statements = other_iam(sb2).get_role(RoleName=TARGET)["Role"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in statements] == [{"AWS": f"arn:aws:iam::{OTHER}:root"}]
    assert sb2.client("iam").list_roles()["Roles"] == []


def test_setup_then_teardown_leaves_neither_account_anything(sb2, operator, record):
    assert roleops(record, operator, *setup_args(sb2)).returncode == 0
    down = ["teardown", "--instance-role", INSTANCE_ROLE, "--assumable-role", TARGET_ARN, "--target-profile", "prod"]
    assert roleops(record, operator, *down, "--instance-id", sb2.instance_id).returncode == 0
    assert other_iam(sb2).list_roles()["Roles"] == []
    assert sb2.client("iam").list_roles()["Roles"] == []


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--target-profile", f"{OTHER}=home"], f"reaches account {HOME}, not {OTHER}"),
        (["--target-profile", "home"], f"is in account {OTHER}, which no --target-profile reaches"),
        ([], f"is in account {OTHER}, which no --target-profile reaches"),
        (["--target-profile", "nosuch"], "profile 'nosuch' not found"),
    ],
)
def test_a_profile_that_does_not_reach_the_target_is_exit_2_and_nothing_changes(sb2, operator, record, flags, message):
    args = ["setup", "--instance-role", INSTANCE_ROLE, "--assumable-role", TARGET_ARN, *flags]
    before = sb2.control("GET", "calls")["mutating"]
    proc = roleops(record, operator, *args, "--instance-id", sb2.instance_id)
    assert proc.returncode == 2
    assert message in proc.stderr and proc.stderr.count("\n") == 1
    assert sb2.control("GET", "calls")["mutating"] == before
    assert sb2.client("iam").list_roles()["Roles"] == [] and other_iam(sb2).list_roles()["Roles"] == []


def test_a_half_done_setup_converges_on_rerun(sb2, operator, record):
    """Killed after the target side was made (its CreateRole is the 4th mutating call), before the instance
    side's policy: the re-run converges, and the chain works."""
    held = killed_at_hold(sb2, record, 4, setup_args(sb2), env=operator)
    assert held["exit"] != 0
    assert other_iam(sb2).get_role(RoleName=TARGET)  # the target side is there
    assert sb2.client("iam").list_role_policies(RoleName=INSTANCE_ROLE)["PolicyNames"] == []  # not the policy
    assert roleops(record, operator, *setup_args(sb2)).returncode == 0
    assert verify(record, sb2)[0] == 0


def session_profile(sb: SandboxProcess, path: Path, name: str, index: int) -> str:
    """A profile `name` in a credentials file holding a role session of account `index` (keys and a session
    token, as SSO or an assumed admin role gives an operator); the session's token."""
    c = admin_session(sb, "OperatorSession", **admin_keys(sb, index))
    with path.open("a") as f:
        f.write(f"[{name}]\naws_access_key_id = {c['AccessKeyId']}\naws_secret_access_key = {c['SecretAccessKey']}\n")
        f.write(f"aws_session_token = {c['SessionToken']}\n\n")
    return c["SessionToken"]


def test_debug_across_accounts_with_session_tokens_leaks_nothing(sb2, record, tmp_path):
    """--debug logs both accounts' signed requests (the target profile's session included); no secret of either
    account, nor any token the sandbox issued, reaches stdout or stderr."""
    creds = tmp_path / "credentials"
    home_token = session_profile(sb2, creds, "ops", 0)
    target_token = session_profile(sb2, creds, "prod", 1)
    env = sb2.env()
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.pop(key)
    env.update(AWS_SHARED_CREDENTIALS_FILE=str(creds), AWS_CONFIG_FILE=str(tmp_path / "config"), AWS_PROFILE="ops")
    for args in (setup_args(sb2), ["doctor", "--instance-id", sb2.instance_id, "--assume", TARGET_ARN,
                                   "--target-profile", "prod"]):  # fmt: skip
        proc = roleops(record, env, "--debug", *args)
        assert proc.returncode == 0, f"exit {proc.returncode}"  # not the log: a failing test must not print secrets
        secrets = sb2.secrets()
        assert {home_token, target_token} <= secrets  # the check below is not blind
        assert "Sending http request" in proc.stderr and "***REDACTED***" in proc.stderr
        assert not [s for s in secrets if s in proc.stdout or s in proc.stderr], "a secret in the output"
    assert other_iam(sb2).get_role(RoleName=TARGET)["Role"]["Arn"] == TARGET_ARN


def test_a_target_profile_that_assumes_a_role_into_the_target_account(sb2, operator, record, tmp_path):
    """The usual way into production: `prod` is a `role_arn` + `source_profile` profile (the SDKs' documented
    shape) that assumes an operator role in the target account from the tools account's keys; botocore assumes it,
    and roleops checks the session's account like any other."""
    home_admin = sb2.client("iam").get_user()["User"]["Arn"]
    trust = {"Effect": "Allow", "Principal": {"AWS": home_admin}, "Action": "sts:AssumeRole"}
    everything = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    iam = other_iam(sb2)
    iam.create_role(RoleName="Operator", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17",
                                                                             "Statement": [trust]}))  # fmt: skip
    iam.put_role_policy(RoleName="Operator", PolicyName="admin", PolicyDocument=json.dumps(everything))
    config = tmp_path / "assume-config"
    config.write_text(
        f"[profile via-role]\nrole_arn = arn:aws:iam::{OTHER}:role/Operator\nsource_profile = home\n"
        "role_session_name = roleops-operator\n"
    )
    env = dict(operator, AWS_CONFIG_FILE=str(config))
    args = ["setup", "--instance-role", INSTANCE_ROLE, "--assumable-role", TARGET_ARN, "--target-profile", "via-role"]
    proc = roleops(record, env, *args, "--output", "json")
    assert proc.returncode == 0, proc.stderr
    rows = {c["resource"]: (c["action"], c["account"]) for c in json.loads(proc.stdout)["changes"]}
    assert rows[f"role {TARGET}"] == ("create", OTHER)
    assert iam.get_role(RoleName=TARGET)["Role"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "AWS": INSTANCE_ROLE_ARN
    }
