"""setup / associate / teardown against moto: the walkthrough's documents, idempotency, refusals."""

from __future__ import annotations

import json
from typing import Any

import pytest
from awshelpers import example, launch

from roleops import INLINE_POLICY_NAME, MANAGED_TAG_KEY
from roleops.aws import CallCounter
from roleops.cli import main
from roleops.converge import Context, run_associate, run_setup, run_teardown, setup_request, teardown_request
from roleops.errors import NotManagedError, UsageError
from roleops.policies import documents_equal, principals
from roleops.results import Action

ACCOUNT = "123456789012"


def req(**kw: Any):
    base = {"instance_role": "ExampleRole", "assumable_roles": ["ExampleAssumedRole"]}
    base.update(kw)
    return setup_request(**base)


def actions(report) -> dict[str, str]:
    return {c.resource: c.action.value for c in report.changes}


def test_first_run_creates_exactly_the_walkthrough_documents(ctx: Context, iam: Any, ec2: Any) -> None:
    instance = launch(ec2)
    report = run_setup(ctx, req(instance_id=instance))

    assert set(actions(report).values()) == {"create"}
    role = iam.get_role(RoleName="ExampleRole")["Role"]
    assert documents_equal(role["AssumeRolePolicyDocument"], example("ec2-trust-policy.json"))
    assumed = iam.get_role(RoleName="ExampleAssumedRole")["Role"]
    assert documents_equal(assumed["AssumeRolePolicyDocument"], example("secondary-role-trust-policy.json"))
    inline = iam.get_role_policy(RoleName="ExampleRole", PolicyName=INLINE_POLICY_NAME)["PolicyDocument"]
    assert documents_equal(inline, example("assume-role-permission.json"))
    # exactly the assumable role ARN, nothing wider
    assert inline["Statement"][0]["Resource"] == [f"arn:aws:iam::{ACCOUNT}:role/ExampleAssumedRole"]

    profile = iam.get_instance_profile(InstanceProfileName="ExampleRole")["InstanceProfile"]
    assert [r["RoleName"] for r in profile["Roles"]] == ["ExampleRole"]
    for tags in (role["Tags"], assumed["Tags"], profile["Tags"]):
        assert {"Key": MANAGED_TAG_KEY, "Value": "true"} in tags
    assoc = ec2.describe_iam_instance_profile_associations()["IamInstanceProfileAssociations"]
    assert [(a["InstanceId"], a["IamInstanceProfile"]["Arn"]) for a in assoc] == [
        (instance, f"arn:aws:iam::{ACCOUNT}:instance-profile/ExampleRole")
    ]


def test_second_run_is_unchanged_with_zero_mutating_calls(ctx: Context, calls: CallCounter, ec2: Any) -> None:
    instance = launch(ec2)
    run_setup(ctx, req(instance_id=instance, require_imdsv2=True))
    calls.clear()

    report = run_setup(ctx, req(instance_id=instance, require_imdsv2=True))

    assert set(actions(report).values()) == {"unchanged"}
    assert calls.calls, "the re-run must still read the account"
    assert calls.mutating == []


def test_dry_run_sends_no_mutating_call_and_plans_creates(ctx: Context, calls: CallCounter, iam: Any, ec2: Any) -> None:
    instance = launch(ec2)
    calls.clear()
    report = run_setup(ctx, req(instance_id=instance), dry_run=True)

    assert report.dry_run
    assert actions(report)["role ExampleRole"] == "create"
    assert actions(report)[f"association {instance}"] == "create"
    assert calls.mutating == []
    assert iam.list_roles()["Roles"] == []


def test_require_imdsv2_sets_http_tokens_required(ctx: Context, ec2: Any) -> None:
    instance = launch(ec2)
    report = run_setup(ctx, req(instance_id=instance, require_imdsv2=True))
    assert actions(report)[f"metadata-options {instance}"] == "update"
    desc = ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]
    assert desc["MetadataOptions"]["HttpTokens"] == "required"


def _untagged_role(iam: Any, name: str, principal: dict[str, Any]) -> None:
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}],
    }
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))


def test_untagged_existing_role_is_refused_without_adopt_and_nothing_is_created(
    ctx: Context, calls: CallCounter, iam: Any
) -> None:
    _untagged_role(iam, "ExampleAssumedRole", {"AWS": f"arn:aws:iam::{ACCOUNT}:root"})
    calls.clear()
    with pytest.raises(NotManagedError) as info:
        run_setup(ctx, req())
    assert "--adopt" in str(info.value)
    assert info.value.exit_code == 2
    assert calls.mutating == []
    assert [r["RoleName"] for r in iam.list_roles()["Roles"]] == ["ExampleAssumedRole"]


def test_adopt_keeps_other_trust_principals(ctx: Context, iam: Any) -> None:
    other = f"arn:aws:iam::{ACCOUNT}:root"
    _untagged_role(iam, "ExampleAssumedRole", {"AWS": other})

    report = run_setup(ctx, req(adopt=True))

    assert actions(report)["role ExampleAssumedRole"] == "update"
    trust = iam.get_role(RoleName="ExampleAssumedRole")["Role"]["AssumeRolePolicyDocument"]
    aws_principals = principals(trust)
    assert other in aws_principals
    assert f"arn:aws:iam::{ACCOUNT}:role/ExampleRole" in aws_principals
    # adoption does not claim the role: teardown must still leave it alone
    assert not any(
        t["Key"] == MANAGED_TAG_KEY for t in iam.get_role(RoleName="ExampleAssumedRole")["Role"].get("Tags", [])
    )
    again = run_setup(ctx, req(adopt=True))
    assert actions(again)["role ExampleAssumedRole"] == "unchanged"


def test_instance_with_another_profile_gets_it_replaced(ctx: Context, iam: Any, ec2: Any) -> None:
    instance = launch(ec2)
    iam.create_role(RoleName="Other", AssumeRolePolicyDocument=json.dumps(example("ec2-trust-policy.json")))
    iam.create_instance_profile(InstanceProfileName="Other")
    iam.add_role_to_instance_profile(InstanceProfileName="Other", RoleName="Other")
    ec2.associate_iam_instance_profile(InstanceId=instance, IamInstanceProfile={"Name": "Other"})

    report = run_setup(ctx, req(instance_id=instance))

    assert actions(report)[f"association {instance}"] == "replace"
    live = [
        a
        for a in ec2.describe_iam_instance_profile_associations()["IamInstanceProfileAssociations"]
        if a["State"] in ("associating", "associated")
    ]
    assert [a["IamInstanceProfile"]["Arn"].rsplit("/", 1)[1] for a in live] == ["ExampleRole"]


def test_associate_same_profile_is_unchanged(ctx: Context, calls: CallCounter, ec2: Any) -> None:
    instance = launch(ec2)
    run_setup(ctx, req(instance_id=instance))
    calls.clear()
    report = run_associate(ctx, instance_id=instance, profile="ExampleRole", wait=True)
    assert actions(report) == {f"association {instance}": "unchanged"}
    assert calls.mutating == []


def test_associate_unknown_profile_is_bad_input(ctx: Context, calls: CallCounter, ec2: Any) -> None:
    instance = launch(ec2)
    with pytest.raises(UsageError):
        run_associate(ctx, instance_id=instance, profile="Nope")
    assert calls.mutating == []


def test_teardown_removes_exactly_what_setup_made(ctx: Context, calls: CallCounter, iam: Any, ec2: Any) -> None:
    instance = launch(ec2)
    _untagged_role(iam, "Bystander", {"Service": "ec2.amazonaws.com"})
    run_setup(ctx, req(instance_id=instance))

    td = teardown_request(
        instance_role="ExampleRole", assumable_roles=["ExampleAssumedRole", "Bystander"], instance_id=instance
    )
    report = run_teardown(ctx, td)

    assert actions(report)[f"association {instance}"] == "delete"
    assert actions(report)["role Bystander"] == "unchanged"
    assert [r["RoleName"] for r in iam.list_roles()["Roles"]] == ["Bystander"]
    assert iam.list_instance_profiles()["InstanceProfiles"] == []
    live = [
        a
        for a in ec2.describe_iam_instance_profile_associations()["IamInstanceProfileAssociations"]
        if a["State"] in ("associating", "associated")
    ]
    assert live == []

    calls.clear()
    second = run_teardown(ctx, td)
    assert set(actions(second).values()) == {"unchanged"}
    assert calls.mutating == []


def test_teardown_dry_run_changes_nothing(ctx: Context, calls: CallCounter, iam: Any) -> None:
    run_setup(ctx, req())
    calls.clear()
    report = run_teardown(
        ctx, teardown_request(instance_role="ExampleRole", assumable_roles=["ExampleAssumedRole"]), dry_run=True
    )
    assert actions(report)["role ExampleRole"] == "delete"
    assert calls.mutating == []
    assert len(iam.list_roles()["Roles"]) == 2


def test_teardown_refuses_role_with_foreign_policy(ctx: Context, calls: CallCounter, iam: Any) -> None:
    run_setup(ctx, req())
    iam.put_role_policy(
        RoleName="ExampleAssumedRole",
        PolicyName="mine",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]}
        ),
    )
    calls.clear()
    with pytest.raises(UsageError, match="did not add"):
        run_teardown(ctx, teardown_request(instance_role="ExampleRole", assumable_roles=["ExampleAssumedRole"]))
    assert calls.mutating == []


def test_cli_setup_json_and_exit_codes(aws: None, ec2: Any, capsys: pytest.CaptureFixture[str]) -> None:
    instance = launch(ec2)
    argv = [
        "setup",
        "--instance-role",
        "ExampleRole",
        "--assumable-role",
        "ExampleAssumedRole",
        "--instance-id",
        instance,
        "--output",
        "json",
    ]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True
    assert {c["action"] for c in doc["changes"]} == {"create"}
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {c["action"] for c in doc["changes"]} == {"unchanged"}


def test_cli_missing_instance_is_exit_2(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["setup", "--instance-role", "R", "--assumable-role", "T", "--instance-id", "i-0123456789abcdef0"])
    err = capsys.readouterr().err
    assert code == 2
    assert "i-0123456789abcdef0 not found" in err
    assert len(err.strip().splitlines()) == 1


def test_plan_reports_table_output(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["setup", "--instance-role", "ExampleRole", "--assumable-role", "ExampleAssumedRole"]) == 0
    out = capsys.readouterr().out
    assert "role ExampleRole" in out and "create" in out
    assert Action.CREATE.value in out


def test_recreated_profile_gets_the_association_replaced(ctx: Context, calls: CallCounter, iam: Any, ec2: Any) -> None:
    # An association holds the profile's id: after delete + re-create under the same name, IMDS serves no role
    # (InstanceProfileNotFound), so "same name" must not read as unchanged.
    instance = launch(ec2)
    run_setup(ctx, req(instance_id=instance))
    iam.remove_role_from_instance_profile(InstanceProfileName="ExampleRole", RoleName="ExampleRole")
    iam.delete_instance_profile(InstanceProfileName="ExampleRole")
    iam.create_instance_profile(InstanceProfileName="ExampleRole", Tags=[{"Key": MANAGED_TAG_KEY, "Value": "true"}])
    iam.add_role_to_instance_profile(InstanceProfileName="ExampleRole", RoleName="ExampleRole")

    report = run_setup(ctx, req(instance_id=instance))

    assert actions(report)[f"association {instance}"] == "replace"
    new_id = iam.get_instance_profile(InstanceProfileName="ExampleRole")["InstanceProfile"]["InstanceProfileId"]
    live = [
        a
        for a in ec2.describe_iam_instance_profile_associations()["IamInstanceProfileAssociations"]
        if a["State"] in ("associating", "associated")
    ]
    assert [a["IamInstanceProfile"]["Id"] for a in live] == [new_id]


def test_setup_with_instance_takes_the_account_from_the_instance(ctx: Context, calls: CallCounter, ec2: Any) -> None:
    # The instance's reservation names its owner: no STS client or call is needed to build the role ARNs.
    instance = launch(ec2)
    calls.clear()
    run_setup(ctx, req(instance_id=instance))
    assert "GetCallerIdentity" not in calls.calls
    calls.clear()
    run_setup(ctx, req(instance_role="OtherRole", assumable_roles=["OtherTarget"]))
    assert "GetCallerIdentity" in calls.calls  # nothing else to learn the account from


def test_require_imdsv2_also_turns_a_disabled_endpoint_back_on(ctx: Context, ec2: Any) -> None:
    instance = launch(ec2)
    ec2.modify_instance_metadata_options(InstanceId=instance, HttpTokens="required", HttpEndpoint="disabled")
    report = run_setup(ctx, req(instance_id=instance, require_imdsv2=True))
    assert (
        "HttpEndpoint disabled -> enabled"
        in {c.resource: c.detail for c in report.changes}[f"metadata-options {instance}"]
    )
    options = ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]["MetadataOptions"]
    assert (options["HttpTokens"], options["HttpEndpoint"]) == ("required", "enabled")


def test_launch_template_gets_a_new_default_version_with_the_profile(ctx: Context, calls: Any, ec2: Any) -> None:
    ec2.create_launch_template(
        LaunchTemplateName="web",
        LaunchTemplateData={"ImageId": "ami-12345678", "InstanceType": "t3.micro"},
    )
    report = run_setup(ctx, req(launch_template="web", require_imdsv2=True))
    assert actions(report)["launch-template web"] == "update"
    template = ec2.describe_launch_templates(LaunchTemplateNames=["web"])["LaunchTemplates"][0]
    assert template["DefaultVersionNumber"] == 2
    data = ec2.describe_launch_template_versions(LaunchTemplateName="web", Versions=["$Default"])[
        "LaunchTemplateVersions"
    ][0]["LaunchTemplateData"]
    assert data["IamInstanceProfile"] == {"Name": "ExampleRole"}
    assert data["MetadataOptions"]["HttpTokens"] == "required"

    calls.clear()
    again = run_setup(ctx, req(launch_template="web", require_imdsv2=True))
    assert actions(again)["launch-template web"] == "unchanged"
    assert calls.mutating == []


def test_unknown_launch_template_is_bad_input_before_any_change(ctx: Context, calls: Any) -> None:
    with pytest.raises(UsageError, match="launch template nope not found"):
        run_setup(ctx, req(launch_template="nope"))
    assert calls.mutating == []
