"""E2E: CloudFormation through the sandbox (moto's) — a stack with an instance role and its profile, and a
self-managed StackSet deploying a role into the second account — over real HTTP against a `--accounts 2` sandbox
process of this module's own; STS decides AssumeRole into the roles CloudFormation made."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import EC2_TRUST, SandboxProcess, admin_keys, deploy_stack_set

FIRST, SECOND = "123456789012", "234567890123"
REGION = "us-east-1"
MANAGED_TAG = {"Key": "roleops:managed", "Value": "true"}
ALLOW_DESCRIBE = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*"}],
}

INSTANCE_ROLE_TEMPLATE = {
    "AWSTemplateFormatVersion": "2010-09-09",
    "Resources": {
        "Role": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "RoleName": "CfnInstanceRole",
                "AssumeRolePolicyDocument": EC2_TRUST,
                "MaxSessionDuration": 7200,
                "Tags": [MANAGED_TAG],
                "Policies": [{"PolicyName": "describe", "PolicyDocument": ALLOW_DESCRIBE}],
            },
        },
        "Profile": {
            "Type": "AWS::IAM::InstanceProfile",
            "Properties": {"InstanceProfileName": "CfnInstanceProfile", "Roles": [{"Ref": "Role"}]},
        },
    },
    "Outputs": {
        "RoleArn": {"Value": {"Fn::GetAtt": ["Role", "Arn"]}},
        "ProfileArn": {"Value": {"Fn::GetAtt": ["Profile", "Arn"]}},
        "BuiltProfileArn": {
            "Value": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:instance-profile/CfnInstanceProfile"}
        },
    },
}

CROSS_ROLE_TEMPLATE = {
    "AWSTemplateFormatVersion": "2010-09-09",
    "Parameters": {"InstanceRoleArn": {"Type": "String"}},
    "Resources": {
        "Cross": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "RoleName": "CfnCrossRole",
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"AWS": {"Ref": "InstanceRoleArn"}},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                },
            },
        }
    },
}


def client_of(sb: SandboxProcess, service: str, account: int = 0) -> Any:
    return sb.client(service, attempts=1, **admin_keys(sb, account))


def create_instance_role_stack(sb: SandboxProcess) -> dict:
    cfn = client_of(sb, "cloudformation")
    cfn.create_stack(
        StackName="roleops-instance-role",
        TemplateBody=json.dumps(INSTANCE_ROLE_TEMPLATE),
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    return cfn.describe_stacks(StackName="roleops-instance-role")["Stacks"][0]


def deploy_cross_role(sb: SandboxProcess, instance_role_arn: str) -> dict:
    """A self-managed StackSet in the first account, its stack instance in the second; the finished operation."""
    body = json.dumps(CROSS_ROLE_TEMPLATE)
    return deploy_stack_set(sb, "roleops-cross", body, SECOND, {"InstanceRoleArn": instance_role_arn})


def test_a_stack_creates_the_instance_role_and_its_profile(sb2):
    stack = create_instance_role_stack(sb2)
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    role_arn = f"arn:aws:iam::{FIRST}:role/CfnInstanceRole"
    profile_arn = f"arn:aws:iam::{FIRST}:instance-profile/CfnInstanceProfile"
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    assert outputs == {"RoleArn": role_arn, "ProfileArn": profile_arn, "BuiltProfileArn": profile_arn}

    iam = client_of(sb2, "iam")
    role = iam.get_role(RoleName="CfnInstanceRole")["Role"]
    assert role["Arn"] == role_arn
    assert role["AssumeRolePolicyDocument"] == EC2_TRUST
    assert role["MaxSessionDuration"] == 7200
    assert role["Tags"] == [MANAGED_TAG]
    assert iam.list_role_tags(RoleName="CfnInstanceRole")["Tags"] == [MANAGED_TAG]
    assert iam.list_role_policies(RoleName="CfnInstanceRole")["PolicyNames"] == ["describe"]
    policy = iam.get_role_policy(RoleName="CfnInstanceRole", PolicyName="describe")["PolicyDocument"]
    assert policy == ALLOW_DESCRIBE
    profile = iam.get_instance_profile(InstanceProfileName="CfnInstanceProfile")["InstanceProfile"]
    assert profile["Arn"] == profile_arn
    assert [r["RoleName"] for r in profile["Roles"]] == ["CfnInstanceRole"]


def test_an_instance_gets_the_stacks_role_from_imds(sb2):
    create_instance_role_stack(sb2)
    sb2.associate("CfnInstanceProfile")
    document = sb2.imds().credentials("CfnInstanceRole")
    identity = sb2.client_from_document("sts", document, attempts=1).get_caller_identity()
    assert identity["Arn"] == f"arn:aws:sts::{FIRST}:assumed-role/CfnInstanceRole/{sb2.instance_id}"


def test_a_self_managed_stack_set_deploys_a_role_into_the_second_account(sb2):
    instance_role_arn = f"arn:aws:iam::{FIRST}:role/ExampleRole"
    operation = deploy_cross_role(sb2, instance_role_arn)
    assert operation["Status"] == "SUCCEEDED" and operation["Action"] == "CREATE"

    cfn = client_of(sb2, "cloudformation")
    instances = cfn.list_stack_instances(StackSetName="roleops-cross")["Summaries"]
    assert [(i["Account"], i["Region"], i["Status"]) for i in instances] == [(SECOND, REGION, "CURRENT")]
    role = client_of(sb2, "iam", 1).get_role(RoleName="CfnCrossRole")["Role"]
    assert role["Arn"] == f"arn:aws:iam::{SECOND}:role/CfnCrossRole"
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"AWS": instance_role_arn}
    with pytest.raises(ClientError) as info:
        client_of(sb2, "iam", 0).get_role(RoleName="CfnCrossRole")  # the StackSet's own account has none
    assert info.value.response["Error"]["Code"] == "NoSuchEntity"
    stacks = client_of(sb2, "cloudformation", 1).describe_stacks()["Stacks"]
    assert [s["StackStatus"] for s in stacks] == ["CREATE_COMPLETE"]


def test_assume_role_into_roles_cloudformation_made_is_decided_by_their_trust(sb2):
    """The whole chain on CloudFormation's roles: the stack's instance role from IMDS, then the StackSet's role
    in the second account, which trusts it; STS reads the trust moto holds for roles made past IAM's API."""
    instance_role_arn = f"arn:aws:iam::{FIRST}:role/CfnInstanceRole"
    target = f"arn:aws:iam::{SECOND}:role/CfnCrossRole"
    create_instance_role_stack(sb2)
    allow = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": target}],
    }
    client_of(sb2, "iam").put_role_policy(
        RoleName="CfnInstanceRole", PolicyName="assume", PolicyDocument=json.dumps(allow)
    )
    sb2.associate("CfnInstanceProfile")
    sts = sb2.client_from_document("sts", sb2.imds().credentials("CfnInstanceRole"), attempts=1)

    deploy_cross_role(sb2, f"arn:aws:iam::{FIRST}:role/SomeoneElse")  # trusts another role: denied
    with pytest.raises(ClientError) as info:
        sts.assume_role(RoleArn=target, RoleSessionName="cfn")
    assert info.value.response["Error"]["Code"] == "AccessDenied"

    sb2.reset()
    create_instance_role_stack(sb2)
    client_of(sb2, "iam").put_role_policy(
        RoleName="CfnInstanceRole", PolicyName="assume", PolicyDocument=json.dumps(allow)
    )
    sb2.associate("CfnInstanceProfile")
    sts = sb2.client_from_document("sts", sb2.imds().credentials("CfnInstanceRole"), attempts=1)
    deploy_cross_role(sb2, instance_role_arn)
    result = sts.assume_role(RoleArn=target, RoleSessionName="cfn")
    assert result["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{SECOND}:assumed-role/CfnCrossRole/cfn"


def test_the_trust_delay_applies_to_roles_cloudformation_made(sb2):
    """CloudFormation makes roles inside moto, past IAM's API: the sandbox records their trust all the same, so a
    trust propagation delay holds for them as for roles made with CreateRole."""
    iam = client_of(sb2, "iam")
    admin_arn = iam.get_user()["User"]["Arn"]
    target = f"arn:aws:iam::{SECOND}:role/CfnCrossRole"
    allow = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": target}],
    }
    iam.put_user_policy(UserName="sandbox-admin", PolicyName="assume", PolicyDocument=json.dumps(allow))
    sts = client_of(sb2, "sts")
    sb2.set_faults(trust_propagation_delay=60)
    deploy_cross_role(sb2, admin_arn)
    with pytest.raises(ClientError) as info:
        sts.assume_role(RoleArn=target, RoleSessionName="early")
    assert info.value.response["Error"]["Code"] == "AccessDenied"
    sb2.set_faults(trust_propagation_delay=0)
    result = sts.assume_role(RoleArn=target, RoleSessionName="later")
    assert result["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{SECOND}:assumed-role/CfnCrossRole/later"


def test_a_template_moto_cannot_build_answers_an_aws_shaped_refusal(sb2):
    """moto crashes on a role without AssumeRolePolicyDocument (AWS rolls such a stack back); the sandbox answers
    the query protocol's error document, one an SDK reads and does not retry, not a body it cannot parse."""
    broken = {"Resources": {"Role": {"Type": "AWS::IAM::Role", "Properties": {"RoleName": "Broken"}}}}
    cfn = sb2.client("cloudformation", **admin_keys(sb2, 0))  # retries on: a refusal must not be retried
    try:
        cfn.create_stack(StackName="broken", TemplateBody=json.dumps(broken))
    except ClientError as err:
        error = err.response["Error"]
        assert error["Code"] == "ValidationError" and "AssumeRolePolicyDocument" in error["Message"], error
        assert err.response["ResponseMetadata"]["RetryAttempts"] == 0
    else:  # a moto that fails the stack as AWS does
        status = cfn.describe_stacks(StackName="broken")["Stacks"][0]["StackStatus"]
        assert status in {"CREATE_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED"}
