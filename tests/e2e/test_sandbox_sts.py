"""E2E: sts:AssumeRole from an instance-role session, decided over HTTP as AWS decides it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from botocore.exceptions import ClientError
from conftest import ACCOUNT, REPO, allow_assume, role_arn, trust_for

TARGET = "ExampleAssumedRole"


def denied_message(instance_id: str, target: str = TARGET) -> str:
    return (
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/ExampleRole/{instance_id} is not authorized to perform: "
        f"sts:AssumeRole on resource: {role_arn(target)}"
    )


@pytest.fixture
def chain(sb):
    """The walkthrough's first half: ExampleRole delivered to the instance; its session's STS client."""
    sb.create_instance_role("ExampleRole")
    sb.associate("ExampleRole")
    document = sb.imds().credentials("ExampleRole")
    return sb.client_from_document("sts", document, attempts=1, validate=False)


def create_target(sb, trust: dict, name: str = TARGET, **kwargs) -> None:
    sb.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust), **kwargs)


def allow_on_instance_role(sb, *targets: str, effect: str = "Allow", name: str = "assume") -> None:
    document = json.dumps(allow_assume(*targets, effect=effect))
    sb.client("iam").put_role_policy(RoleName="ExampleRole", PolicyName=name, PolicyDocument=document)


def assume_error(sts, **kwargs) -> dict:
    params = {"RoleArn": role_arn(TARGET), "RoleSessionName": "MySession", **kwargs}
    with pytest.raises(ClientError) as info:
        sts.assume_role(**params)
    return {**info.value.response["Error"], "Status": info.value.response["ResponseMetadata"]["HTTPStatusCode"]}


def test_passes_with_identity_permission_and_trust(sb, chain):
    create_target(sb, trust_for("ExampleRole"))  # moto alone denies this trust (it compares session ARNs)
    allow_on_instance_role(sb, TARGET)
    result = chain.assume_role(RoleArn=role_arn(TARGET), RoleSessionName="MySession")
    assert result["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/{TARGET}/MySession"
    assert result["AssumedRoleUser"]["AssumedRoleId"].endswith(":MySession")
    credentials = result["Credentials"]
    assumed = sb.client(
        "sts",
        access_key_id=credentials["AccessKeyId"],
        secret_access_key=credentials["SecretAccessKey"],
        session_token=credentials["SessionToken"],
    )
    assert assumed.get_caller_identity()["Arn"] == result["AssumedRoleUser"]["Arn"]
    assert {credentials["SecretAccessKey"], credentials["SessionToken"]} <= sb.secrets()


def test_denied_without_identity_permission(sb, chain):
    create_target(sb, trust_for("ExampleRole"))
    error = assume_error(chain)
    assert error == {
        "Type": "Sender",
        "Code": "AccessDenied",
        "Message": denied_message(sb.instance_id),
        "Status": 403,
    }


def test_denied_without_trust(sb, chain):
    sb.create_instance_role("Other")
    create_target(sb, trust_for("Other"))  # trusts a role, not the instance's
    allow_on_instance_role(sb, TARGET)
    error = assume_error(chain)
    assert (error["Code"], error["Status"], error["Message"]) == ("AccessDenied", 403, denied_message(sb.instance_id))


def test_denied_under_an_explicit_deny(sb, chain):
    create_target(sb, trust_for("ExampleRole"))
    allow_on_instance_role(sb, TARGET)
    allow_on_instance_role(sb, TARGET, effect="Deny", name="deny")
    assert assume_error(chain)["Code"] == "AccessDenied"


def test_denied_by_a_permissions_boundary(sb, chain):
    create_target(sb, trust_for("ExampleRole"))
    allow_on_instance_role(sb, TARGET)
    iam = sb.client("iam")
    arn = iam.create_policy(PolicyName="NoAssume", PolicyDocument=json.dumps(allow_assume("SomethingElse")))["Policy"][
        "Arn"
    ]
    iam.put_role_permissions_boundary(RoleName="ExampleRole", PermissionsBoundary=arn)
    assert assume_error(chain)["Code"] == "AccessDenied"


def test_attached_managed_policy_counts(sb, chain):
    create_target(sb, trust_for("ExampleRole"))
    iam = sb.client("iam")
    arn = iam.create_policy(PolicyName="MayAssume", PolicyDocument=json.dumps(allow_assume(TARGET)))["Policy"]["Arn"]
    iam.attach_role_policy(RoleName="ExampleRole", PolicyArn=arn)
    assert chain.assume_role(RoleArn=role_arn(TARGET), RoleSessionName="MySession")["Credentials"]


def test_missing_target_is_access_denied(sb, chain):
    allow_on_instance_role(sb, TARGET)
    error = assume_error(chain)
    assert (error["Code"], error["Status"]) == ("AccessDenied", 403)


def test_role_chaining_is_capped_at_one_hour(sb, chain):
    create_target(sb, trust_for("ExampleRole"), MaxSessionDuration=43200)
    allow_on_instance_role(sb, TARGET)
    error = assume_error(chain, DurationSeconds=7200)
    assert error["Code"] == "ValidationError"
    assert error["Message"] == (
        "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining."
    )
    assert chain.assume_role(RoleArn=role_arn(TARGET), RoleSessionName="MySession", DurationSeconds=3600)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"RoleSessionName": "a"}, "at 'roleSessionName' failed to satisfy constraint"),
        ({"RoleSessionName": "bad name!"}, "regular expression pattern"),
        ({"RoleSessionName": "x" * 65}, "less than or equal to 64"),
        ({"DurationSeconds": 899}, "greater than or equal to 900"),
        ({"DurationSeconds": 43201}, "less than or equal to 43200"),
    ],
)
def test_bad_input_is_a_validation_error(sb, chain, kwargs, fragment):
    create_target(sb, trust_for("ExampleRole"))
    allow_on_instance_role(sb, TARGET)
    error = assume_error(chain, **kwargs)
    assert (error["Code"], error["Status"]) == ("ValidationError", 400)
    assert fragment in error["Message"]


def test_duration_above_max_session_duration_for_a_user(sb):
    create_target(sb, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}
    ]})  # fmt: skip
    sts = sb.client("sts", attempts=1)
    error = assume_error(sts, DurationSeconds=7200)
    assert error["Code"] == "ValidationError"
    assert "MaxSessionDuration" in error["Message"]
    # The admin user (Allow * on *) into a role trusting the account: allowed, not chaining.
    assert sts.assume_role(RoleArn=role_arn(TARGET), RoleSessionName="admin")["AssumedRoleUser"]


def test_external_id_condition(sb, chain):
    create_target(sb, trust_for("ExampleRole", Condition={"StringEquals": {"sts:ExternalId": "opensesame"}}))
    allow_on_instance_role(sb, TARGET)
    assert assume_error(chain)["Code"] == "AccessDenied"
    assert assume_error(chain, ExternalId="wrong-id")["Code"] == "AccessDenied"
    assert chain.assume_role(RoleArn=role_arn(TARGET), RoleSessionName="MySession", ExternalId="opensesame")


def test_unknown_keys_are_refused(sb):
    sb.create_instance_role("ExampleRole")
    create_target(sb, trust_for("ExampleRole"))
    sts = sb.client("sts", attempts=1, access_key_id="AKIAIOSFODNN7EXAMPLE", secret_access_key="x" * 40)
    assert assume_error(sts)["Code"] == "InvalidClientTokenId"


def test_walkthrough_assume_role_with_the_aws_cli_on_the_instance(sb):
    sb.create_instance_role("ExampleRole")
    sb.associate("ExampleRole")
    create_target(sb, trust_for("ExampleRole"))
    allow_on_instance_role(sb, TARGET)
    result = subprocess.run(
        [sys.executable, "-m", "awscli", "sts", "assume-role", "--role-arn", role_arn(TARGET),
         "--role-session-name", "MySession", "--output", "json"],
        env=sb.env(sb.instance_id), capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/{TARGET}/MySession"
    assert set(output["Credentials"]) == {"AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"}
