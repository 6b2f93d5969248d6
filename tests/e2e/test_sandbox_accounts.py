"""E2E: the sandbox's accounts (`--accounts N`) — each admin acting in its own account, and cross-account
sts:AssumeRole decided as AWS decides it (the caller account's identity policy and the target account's trust),
over real HTTP against a sandbox process of this module's own."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from botocore.exceptions import ClientError
from conftest import EC2_TRUST, REPO, SandboxProcess, admin_keys

from roleops.sandbox.cli import MAX_ACCOUNTS
from roleops.sandbox.foreground import render_table
from roleops.sandbox.state import ACCOUNT_IDS

FIRST, SECOND = "123456789012", "234567890123"
HOP, TARGET = "Hop", "CrossTarget"


def arn_in(account: str, role: str) -> str:
    return f"arn:aws:iam::{account}:role/{role}"


def trusting(principal: str) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"}],
    }


def allowing_assume(resource: str) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": resource}],
    }


def client_of(sb: SandboxProcess, service: str, account: int) -> object:
    return sb.client(service, attempts=1, **admin_keys(sb, account))


def session_client(sb: SandboxProcess, service: str, credentials: dict) -> object:
    return sb.client(
        service,
        attempts=1,
        access_key_id=credentials["AccessKeyId"],
        secret_access_key=credentials["SecretAccessKey"],
        session_token=credentials["SessionToken"],
    )


def hop_session(sb: SandboxProcess, *, allow: str | None) -> object:
    """An STS client of a role session in the first account (Hop, assumed by that account's admin), whose
    identity policy allows sts:AssumeRole on `allow` (None: no identity policy at all)."""
    iam = client_of(sb, "iam", 0)
    admin_arn = iam.get_user()["User"]["Arn"]
    iam.create_role(RoleName=HOP, AssumeRolePolicyDocument=json.dumps(trusting(admin_arn)))
    if allow is not None:
        iam.put_role_policy(RoleName=HOP, PolicyName="assume", PolicyDocument=json.dumps(allowing_assume(allow)))
    sts = client_of(sb, "sts", 0)
    credentials = sts.assume_role(RoleArn=arn_in(FIRST, HOP), RoleSessionName="hop")["Credentials"]
    return session_client(sb, "sts", credentials)


def create_target(sb: SandboxProcess, trust: dict, *, account: int = 1) -> None:
    client_of(sb, "iam", account).create_role(RoleName=TARGET, AssumeRolePolicyDocument=json.dumps(trust))


def denied(sts: object, role_arn: str) -> dict:
    with pytest.raises(ClientError) as info:
        sts.assume_role(RoleArn=role_arn, RoleSessionName="cross")
    return info.value.response["Error"]


def denied_message(target_arn: str) -> str:
    return (
        f"User: arn:aws:sts::{FIRST}:assumed-role/{HOP}/hop is not authorized to perform: sts:AssumeRole "
        f"on resource: {target_arn}"
    )


# --- the accounts ------------------------------------------------------------------------------------------------


def test_the_json_line_lists_every_account_with_its_admin_keys(sandbox2):
    info = sandbox2.info
    accounts = info["accounts"]
    assert [a["account_id"] for a in accounts] == [FIRST, SECOND]
    assert set(accounts[0]) == {"account_id", "access_key_id", "secret_access_key"}
    assert info["account_id"] == FIRST
    assert (accounts[0]["access_key_id"], accounts[0]["secret_access_key"]) == (
        info["access_key_id"],
        info["secret_access_key"],
    )
    assert accounts[1]["access_key_id"] != accounts[0]["access_key_id"]
    assert accounts[1]["secret_access_key"] != accounts[0]["secret_access_key"]
    assert len(info["instances"]) == 1
    assert ACCOUNT_IDS[:2] == (FIRST, SECOND) and len(ACCOUNT_IDS) == MAX_ACCOUNTS == len(set(ACCOUNT_IDS))


def test_each_admin_key_acts_in_its_own_account(sb2):
    for index, account in enumerate((FIRST, SECOND)):
        user = client_of(sb2, "iam", index).get_user()["User"]
        assert user["Arn"] == f"arn:aws:iam::{account}:user/sandbox-admin"
        assert client_of(sb2, "sts", index).get_caller_identity()["Account"] == account
    create_target(sb2, EC2_TRUST, account=1)
    with pytest.raises(ClientError) as info:
        client_of(sb2, "iam", 0).get_role(RoleName=TARGET)
    assert info.value.response["Error"]["Code"] == "NoSuchEntity"
    assert client_of(sb2, "iam", 1).get_role(RoleName=TARGET)["Role"]["Arn"] == arn_in(SECOND, TARGET)


def test_reset_keeps_every_admin_key_and_empties_every_account(sb2):
    before = [dict(a) for a in sb2.info["accounts"]]
    create_target(sb2, EC2_TRUST, account=1)
    sb2.reset()
    assert sb2.info["accounts"] == before
    iam2 = client_of(sb2, "iam", 1)
    assert iam2.get_user()["User"]["Arn"] == f"arn:aws:iam::{SECOND}:user/sandbox-admin"
    assert iam2.list_roles()["Roles"] == []
    assert client_of(sb2, "sts", 1).get_caller_identity()["Account"] == SECOND
    assert client_of(sb2, "sts", 0).get_caller_identity()["Account"] == FIRST


# --- cross-account sts:AssumeRole ------------------------------------------------------------------------------


def test_cross_account_assume_role_with_identity_policy_and_trust(sb2):
    target = arn_in(SECOND, TARGET)
    create_target(sb2, trusting(arn_in(FIRST, HOP)))
    sts = hop_session(sb2, allow=target)
    result = sts.assume_role(RoleArn=target, RoleSessionName="cross")
    session_arn = f"arn:aws:sts::{SECOND}:assumed-role/{TARGET}/cross"
    assert result["AssumedRoleUser"]["Arn"] == session_arn
    assumed = session_client(sb2, "sts", result["Credentials"]).get_caller_identity()
    assert (assumed["Account"], assumed["Arn"]) == (SECOND, session_arn)
    # The session acts in the target account: its IAM is the second account's.
    roles = session_client(sb2, "iam", result["Credentials"]).list_roles()["Roles"]
    assert [r["Arn"] for r in roles] == [target]
    assert result["Credentials"]["SecretAccessKey"] in sb2.secrets()


def test_cross_account_denied_without_the_callers_identity_policy(sb2):
    target = arn_in(SECOND, TARGET)
    create_target(sb2, trusting(arn_in(FIRST, HOP)))
    error = denied(hop_session(sb2, allow=None), target)
    assert error == {"Type": "Sender", "Code": "AccessDenied", "Message": denied_message(target)}


def test_cross_account_denied_without_the_targets_trust(sb2):
    target = arn_in(SECOND, TARGET)
    create_target(sb2, trusting(arn_in(FIRST, "SomeOtherRole")))
    error = denied(hop_session(sb2, allow=target), target)
    assert error == {"Type": "Sender", "Code": "AccessDenied", "Message": denied_message(target)}


def test_cross_account_denied_when_the_role_exists_only_in_the_callers_account(sb2):
    target = arn_in(SECOND, TARGET)
    create_target(sb2, trusting(arn_in(FIRST, HOP)), account=0)  # same name, wrong account
    error = denied(hop_session(sb2, allow="*"), target)
    assert error["Code"] == "AccessDenied" and error["Message"] == denied_message(target)


def test_cross_account_trust_naming_the_callers_account_root(sb2):
    target = arn_in(SECOND, TARGET)
    create_target(sb2, trusting(f"arn:aws:iam::{FIRST}:root"))
    result = hop_session(sb2, allow=target).assume_role(RoleArn=target, RoleSessionName="cross")
    assert result["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{SECOND}:assumed-role/{TARGET}/cross"


def test_cross_account_trust_propagation_is_recorded_in_the_targets_account(sb2):
    target = arn_in(SECOND, TARGET)
    sts = hop_session(sb2, allow=target)
    sb2.set_faults(trust_propagation_delay=60)
    create_target(sb2, trusting(arn_in(FIRST, HOP)))  # a new role: STS has not seen its trust yet
    assert denied(sts, target)["Code"] == "AccessDenied"
    sb2.set_faults(trust_propagation_delay=0)
    assert sts.assume_role(RoleArn=target, RoleSessionName="cross")["AssumedRoleUser"]["Arn"].startswith(
        f"arn:aws:sts::{SECOND}:"
    )


def test_an_instance_role_from_imds_assumes_into_the_second_account(sb2):
    target = arn_in(SECOND, TARGET)
    sb2.create_instance_role("ExampleRole")  # the default (first) account's admin
    client_of(sb2, "iam", 0).put_role_policy(
        RoleName="ExampleRole", PolicyName="assume", PolicyDocument=json.dumps(allowing_assume(target))
    )
    sb2.associate("ExampleRole")
    create_target(sb2, trusting(arn_in(FIRST, "ExampleRole")))
    document = sb2.imds().credentials("ExampleRole")
    instance_sts = sb2.client_from_document("sts", document, attempts=1)
    assert instance_sts.get_caller_identity()["Arn"] == f"arn:aws:sts::{FIRST}:assumed-role/ExampleRole/" + (
        sb2.instance_id
    )
    result = instance_sts.assume_role(RoleArn=target, RoleSessionName="from-instance")
    assumed = session_client(sb2, "sts", result["Credentials"]).get_caller_identity()
    assert assumed["Arn"] == f"arn:aws:sts::{SECOND}:assumed-role/{TARGET}/from-instance"


# --- the flag and the table ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", ["0", "6"])
def test_accounts_out_of_range_is_a_usage_error_and_starts_nothing(count, record_output):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    refused = subprocess.run(
        [sys.executable, "-m", "roleops.sandbox", "--port", "0", "--accounts", count],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=env,
    )
    record_output(f"sandbox --accounts {count}", refused.stdout + refused.stderr)
    assert refused.returncode == 2 and not refused.stdout
    lines = refused.stderr.splitlines()
    assert len(lines) == 1 and f"--accounts {count}" in lines[0] and "1-5" in lines[0], refused.stderr


def test_sandbox_refuses_accounts_out_of_range_in_process():
    from roleops.sandbox import Sandbox

    for bad in (0, 6, True, "2"):
        with pytest.raises(ValueError, match="accounts must be 1-5"):
            Sandbox(accounts=bad)


def test_the_table_names_the_other_accounts_keys_in_comments():
    info = {
        "endpoint_url": "http://127.0.0.1:1",
        "region": "us-east-1",
        "account_id": FIRST,
        "access_key_id": "AKIAFIRST",
        "secret_access_key": "first-secret",
        "instances": [],
        "accounts": [
            {"account_id": FIRST, "access_key_id": "AKIAFIRST", "secret_access_key": "first-secret"},
            {"account_id": SECOND, "access_key_id": "AKIASECOND", "secret_access_key": "second-secret"},
        ],
    }
    table = render_table(info)
    exported = [line for line in table.splitlines() if not line.startswith("#")]
    assert exported == render_table({**info, "accounts": info["accounts"][:1]}).splitlines()
    assert f"# account {SECOND}" in table
    assert "# export AWS_ACCESS_KEY_ID=AKIASECOND AWS_SECRET_ACCESS_KEY=second-secret" in table
    assert "AKIAFIRST" in exported[2] and "# account " + FIRST not in table
