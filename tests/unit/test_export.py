"""roleops export (pure): the template is setup's plan of an empty account, and cfn-lint finds nothing in it."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from typing import Any

import pytest
from templatelint import lint

from roleops import INLINE_POLICY_NAME, export
from roleops.cli import main
from roleops.errors import UsageError

HOME, OTHER = "123456789012", "234567890123"
OPS_ARN = f"arn:aws:iam::{OTHER}:role/Ops"
# setup's tag, and the stack that owns the role (teardown leaves a stack's roles to the stack)
TAGS = [{"Key": "roleops:managed", "Value": "true"}, {"Key": "roleops:stack", "Value": {"Ref": "AWS::StackName"}}]


def instance_template(*roles: str, **kwargs: Any) -> dict[str, Any]:
    req = export.export_request(instance_role="BuildBox", assumable_roles=list(roles), **kwargs)
    return export.instance_account_template(req, account=HOME, partition="aws")


def test_instance_account_template_declares_what_setup_converges() -> None:
    t = instance_template("Reader", "Writer", OPS_ARN, max_session_duration=7200)
    assert lint(t) == []
    res = t["Resources"]
    assert {k: v["Type"] for k, v in res.items()} == {
        "InstanceRole": "AWS::IAM::Role",
        "InstanceProfile": "AWS::IAM::InstanceProfile",
        "AssumableRoleReader": "AWS::IAM::Role",
        "AssumableRoleWriter": "AWS::IAM::Role",
        "AssumeRolesPolicy": "AWS::IAM::Policy",
    }  # Ops lives in another account: not this stack's
    role = res["InstanceRole"]["Properties"]
    assert role["RoleName"] == "BuildBox"
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]
    assert role["Tags"] == TAGS
    assert "MaxSessionDuration" not in role  # setup sets it on the assumable roles only
    assert res["InstanceProfile"]["Properties"] == {
        "InstanceProfileName": "BuildBox",
        "Roles": [{"Ref": "InstanceRole"}],
    }
    reader = res["AssumableRoleReader"]["Properties"]
    assert reader["MaxSessionDuration"] == 7200
    assert reader["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "AWS": {"Fn::GetAtt": ["InstanceRole", "Arn"]}  # also orders it after the instance role
    }
    policy = res["AssumeRolesPolicy"]["Properties"]
    assert policy["PolicyName"] == INLINE_POLICY_NAME and policy["Roles"] == [{"Ref": "InstanceRole"}]
    assert policy["PolicyDocument"]["Statement"][0]["Resource"] == [
        {"Fn::GetAtt": ["AssumableRoleReader", "Arn"]},
        {"Fn::GetAtt": ["AssumableRoleWriter", "Arn"]},
        {"Fn::Sub": f"arn:${{AWS::Partition}}:iam::{OTHER}:role/Ops"},
    ]
    assert set(t["Outputs"]) == {
        "InstanceRoleArn",
        "InstanceProfileName",
        "InstanceProfileArn",
        "AssumableRoleReaderArn",
        "AssumableRoleWriterArn",
    }
    assert OTHER in t["Description"] and "--target-account" in t["Description"]
    # the same roles imperatively: setup with a profile for the other account
    setup = t["Metadata"]["roleops"]["setup"]
    assert f"--assumable-role {OPS_ARN}" in setup and f"--target-profile {OTHER}=PROFILE" in setup


def test_an_arn_of_the_home_account_is_declared_like_its_name() -> None:
    by_name = instance_template("Reader")
    by_arn = instance_template(f"arn:aws:iam::{HOME}:role/Reader")
    assert by_arn["Resources"] == by_name["Resources"]


def test_names_that_differ_only_in_punctuation_get_their_own_logical_ids() -> None:
    t = instance_template("app-reader", "app.reader", "appreader")
    assert lint(t) == []
    assert {r for r in t["Resources"] if r.startswith("AssumableRole")} == {
        "AssumableRoleappreader",
        "AssumableRoleappreader2",
        "AssumableRoleappreader3",
    }


def test_target_account_template_trusts_the_parameter() -> None:
    req = export.export_request(
        instance_role="BuildBox", assumable_roles=["Deploy", OPS_ARN], target_account=OTHER, max_session_duration=3600
    )
    t = export.target_account_template(req, instance_role_arn=f"arn:aws:iam::{HOME}:role/BuildBox")
    assert lint(t) == []
    assert set(t["Resources"]) == {"AssumableRoleDeploy", "AssumableRoleOps"}
    param = t["Parameters"]["InstanceRoleArn"]
    assert param["Default"] == f"arn:aws:iam::{HOME}:role/BuildBox"
    for res in t["Resources"].values():
        statement = res["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
        assert statement["Principal"] == {"AWS": {"Ref": "InstanceRoleArn"}}
        assert res["Properties"]["Tags"] == TAGS


def test_require_imdsv2_is_said_not_declared() -> None:
    t = instance_template("Reader", require_imdsv2=True)
    assert lint(t) == []
    assert "--launch-template" in t["Description"] and "metadata options" in t["Description"]
    assert len(t["Description"]) <= 1024  # CloudFormation's limit


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["--target-account", "12345"], "--target-account"),
        (["--target-account", "12345678901a"], "--target-account"),
        (["--assumable-role", OPS_ARN, "--target-account", "345678901234"], "--assumable-role"),
        (["--format", "terraform"], "--format"),
    ],
)
def test_bad_input_is_exit_2_and_prints_nothing_on_stdout(argv: list[str], field: str) -> None:
    base = ["export", "--instance-role", "BuildBox", "--assumable-role", "Reader", "--format", "cloudformation"]
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([*base, *argv])
    assert code == 2
    assert out.getvalue() == ""
    assert err.getvalue().count("\n") == 1 and field in err.getvalue()


def test_target_account_equal_to_the_instance_account_is_refused() -> None:
    req = export.export_request(instance_role="BuildBox", assumable_roles=["Deploy"], target_account=HOME)
    with pytest.raises(UsageError, match="instance role's own account") as err:
        export.check_target_account(req, HOME)
    assert err.value.exit_code == 2


def test_the_cli_offers_exactly_the_formats_export_writes() -> None:
    from roleops.cli import FORMATS_EXPORT  # repeated there so that --help imports nothing heavy

    assert FORMATS_EXPORT == export.FORMATS
