"""Unit tests for roleops.doctor.diagnose: hand-built Gathered in, findings and runnable fixes out."""

from __future__ import annotations

import json
import shlex
from typing import Any

import pytest

from roleops.doctor import Gathered, Target, diagnose
from roleops.evaluator import NamedPolicy
from roleops.results import DoctorReport, Finding, Status

ACCT = "123456789012"
IID = "i-0123456789abcdef0"
ROLE = "ExampleRole"
ROLE_ARN = f"arn:aws:iam::{ACCT}:role/{ROLE}"
TARGET = "ExampleAssumedRole"
TARGET_ARN = f"arn:aws:iam::{ACCT}:role/{TARGET}"
PROFILE_ARN = f"arn:aws:iam::{ACCT}:instance-profile/{ROLE}"
MANAGED = [{"Key": "roleops:managed", "Value": "true"}]
EC2_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


def trust(*principals: str, effect: str = "Allow") -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": effect, "Principal": {"AWS": list(principals)}, "Action": "sts:AssumeRole"}],
    }


def allow(*arns: str, effect: str = "Allow") -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": effect, "Action": "sts:AssumeRole", "Resource": list(arns)}],
    }


def role(name: str, doc: dict[str, Any], *, managed: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "RoleName": name,
        "Arn": f"arn:aws:iam::{ACCT}:role/{name}",
        "RoleId": "AROANEWROLEID0000001",
        "AssumeRolePolicyDocument": doc,
        "MaxSessionDuration": 3600,
        "Tags": MANAGED if managed else [],
        **extra,
    }


def target(name: str = TARGET, doc: dict[str, Any] | None = None, **kw: Any) -> Target:
    return Target(
        arn=f"arn:aws:iam::{ACCT}:role/{name}", name=name, account=ACCT, role=role(name, doc or trust(ROLE_ARN), **kw)
    )


def gathered(**overrides: Any) -> Gathered:
    """A healthy chain: IMDSv2 required, profile and role named alike, the target allowed both ways."""
    base: dict[str, Any] = {
        "instance_id": IID,
        "instance": {
            "State": {"Name": "running"},
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1},
        },
        "association": {
            "AssociationId": "iip-assoc-1",
            "IamInstanceProfile": {"Arn": PROFILE_ARN, "Id": "AIPAPROFILE1"},
            "State": "associated",
        },
        "profile": {
            "InstanceProfileName": ROLE,
            "InstanceProfileId": "AIPAPROFILE1",
            "Roles": [{"RoleName": ROLE}],
            "Tags": MANAGED,
        },
        "role": role(ROLE, EC2_TRUST),
        "identity_policies": (NamedPolicy(name="inline:roleops-assume-roles", document=allow(TARGET_ARN)),),
        "targets": (target(),),
    }
    base.update(overrides)
    return Gathered(**base)


def find(report: DoctorReport, check: str) -> Finding:
    return next(f for f in report.findings if f.check == check)


def failed(report: DoctorReport) -> list[str]:
    return [f.check for f in report.findings if f.status is Status.FAIL]


def policy_arg(command: str, option: str = "--policy-document") -> dict[str, Any]:
    words = shlex.split(command)
    return json.loads(words[words.index(option) + 1])


# --- the whole chain ---------------------------------------------------------------------------------


def test_healthy_chain_is_ok_with_nothing_to_fix():
    report = diagnose(gathered())
    assert report.ok
    assert {f.status for f in report.findings} == {Status.PASS}
    assert all(not f.fix and not f.fix_aws for f in report.findings)


def test_every_failing_finding_has_a_runnable_fix_and_an_aws_one():
    broken = gathered(
        role=role(ROLE, trust(ROLE_ARN)),  # no EC2 in the trust
        identity_policies=(),
        targets=(target(doc=trust(f"arn:aws:iam::{ACCT}:role/Other")),),
    )
    report = diagnose(broken)
    assert failed(report) == ["ec2-trust", f"permission:{TARGET}", f"trust:{TARGET}"]
    for f in report.findings:
        if f.status is Status.FAIL:
            assert shlex.split(f.fix)[0] in ("roleops", "aws")
            assert shlex.split(f.fix_aws)[0] == "aws"


# --- association and profile --------------------------------------------------------------------------


def test_no_association_names_the_profile_the_target_trusts():
    report = diagnose(gathered(association=None, guessed_profile=ROLE))
    assert failed(report) == ["association"]
    f = find(report, "association")
    assert f.fix == f"roleops associate --instance-id {IID} --instance-profile {ROLE}"
    assert f.fix_aws == f"aws ec2 associate-iam-instance-profile --instance-id {IID} --iam-instance-profile Name={ROLE}"


def test_recreated_profile_is_mended_by_replacing_the_association():
    report = diagnose(gathered(profile={**gathered().profile, "InstanceProfileId": "AIPAPROFILE2"}))
    f = find(report, "instance-profile")
    assert f.status is Status.FAIL and "re-created" in f.detail
    assert shlex.split(f.fix)[:3] == ["aws", "ec2", "replace-iam-instance-profile-association"]
    assert "iip-assoc-1" in f.fix


def test_profile_without_role_adopts_a_hand_made_profile():
    hand_made = {**gathered().profile, "Roles": [], "Tags": []}
    report = diagnose(gathered(profile=hand_made, role=None))
    assert failed(report) == ["profile-role"]
    words = shlex.split(find(report, "profile-role").fix)
    assert words[:4] == ["roleops", "setup", "--instance-role", ROLE] and "--adopt" in words


# --- the instance role -----------------------------------------------------------------------------


def test_ec2_trust_fix_aws_adds_ec2_and_keeps_the_other_statements():
    lambda_trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    report = diagnose(gathered(role=role(ROLE, lambda_trust)))
    f = find(report, "ec2-trust")
    assert f.status is Status.FAIL and f.fix.startswith("roleops setup ")
    services = [s["Principal"]["Service"] for s in policy_arg(f.fix_aws)["Statement"]]
    assert services == ["lambda.amazonaws.com", "ec2.amazonaws.com"]


def test_setup_fix_keeps_roles_the_policy_already_allows_and_adopts_only_when_needed():
    other = target("ReportsRole")
    policy = NamedPolicy(name="inline:roleops-assume-roles", document=allow(other.arn))
    report = diagnose(gathered(identity_policies=(policy,), kept_targets=(other,)))
    fix = shlex.split(find(report, f"permission:{TARGET}").fix)
    assert fix == [
        "roleops",
        "setup",
        "--instance-role",
        ROLE,
        "--assumable-role",
        TARGET,
        "--assumable-role",
        "ReportsRole",
    ]
    # the aws equivalent keeps ReportsRole too
    resources = policy_arg(find(report, f"permission:{TARGET}").fix_aws)["Statement"][0]["Resource"]
    assert sorted(resources) == sorted([TARGET_ARN, other.arn])

    unmanaged_kept = target("ReportsRole", managed=False)
    report = diagnose(gathered(identity_policies=(policy,), kept_targets=(unmanaged_kept,)))
    assert "--adopt" in shlex.split(find(report, f"permission:{TARGET}").fix)


# --- identity side ---------------------------------------------------------------------------------


def test_explicit_deny_in_a_managed_policy_is_detached():
    arn = f"arn:aws:iam::{ACCT}:policy/no-sts"
    deny = NamedPolicy(name=f"managed:{arn}", document=allow(TARGET_ARN, effect="Deny"))
    report = diagnose(gathered(identity_policies=(*gathered().identity_policies, deny)))
    f = find(report, f"permission:{TARGET}")
    assert f.status is Status.FAIL and "explicitly denied" in f.detail
    assert f.fix == f.fix_aws == f"aws iam detach-role-policy --role-name {ROLE} --policy-arn {arn}"


def test_unreadable_cross_account_target_warns_and_the_setup_fix_names_its_arn_and_account():
    remote_arn = "arn:aws:iam::210987654321:role/Remote"
    remote = Target(arn=remote_arn, name="Remote", account="210987654321", role=None, readable=False)
    report = diagnose(gathered(targets=(remote,)))
    warn = find(report, "target:Remote")
    assert warn.status is Status.WARN  # never a pass: the trust side is unknown
    assert f"not readable from account {ACCT}" in warn.detail and "--target-profile" in warn.detail
    assert not any(f.check == "trust:Remote" for f in report.findings)
    f = find(report, "permission:Remote")
    assert f.status is Status.FAIL
    assert shlex.split(f.fix) == [
        "roleops", "setup", "--instance-role", ROLE, "--assumable-role", remote_arn,
        "--target-profile", "210987654321=PROFILE",
    ]  # fmt: skip
    assert f.fix_aws.startswith("aws iam put-role-policy ")


def test_readable_cross_account_trust_failure_names_the_account_and_fixes_with_its_profile():
    remote_arn = "arn:aws:iam::210987654321:role/Remote"
    role = {
        "RoleName": "Remote",
        "Arn": remote_arn,
        "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": []},
        "Tags": [{"Key": "roleops:managed", "Value": "true"}],
    }
    remote = Target(arn=remote_arn, name="Remote", account="210987654321", role=role, profile="prod")
    policy = NamedPolicy(name="inline:roleops-assume-roles", document=allow(remote_arn))
    report = diagnose(gathered(identity_policies=(policy,), targets=(remote,)))
    assert find(report, "permission:Remote").status is Status.PASS
    trust = find(report, "trust:Remote")
    assert trust.status is Status.FAIL and "in account 210987654321" in trust.detail
    assert shlex.split(trust.fix)[-4:] == ["--assumable-role", remote_arn, "--target-profile", "210987654321=prod"]
    assert shlex.split(trust.fix_aws)[-2:] == ["--profile", "prod"]  # the aws fix runs in the target's account


@pytest.mark.parametrize(
    "boundary_arn, expected",
    [
        (f"arn:aws:iam::{ACCT}:policy/only-s3", "create-policy-version"),
        ("arn:aws:iam::aws:policy/AmazonS3FullAccess", "delete-role-permissions-boundary"),
    ],
)
def test_boundary_without_sts_fails_with_a_boundary_fix(boundary_arn, expected):
    boundary = NamedPolicy(
        name=f"boundary:{boundary_arn}",
        document={"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]},
    )
    report = diagnose(gathered(boundary=boundary))
    assert failed(report) == [f"boundary:{TARGET}"]
    f = find(report, f"boundary:{TARGET}")
    assert shlex.split(f.fix)[2] == expected
    if expected == "create-policy-version":
        statements = policy_arg(f.fix)["Statement"]
        assert statements[0]["Action"] == "s3:*"  # the guardrail stays
        assert statements[-1]["Resource"] == [TARGET_ARN]


# --- trust side -----------------------------------------------------------------------------------------


def test_deny_in_the_target_trust_is_removed_by_aws_not_roleops():
    doc = trust(ROLE_ARN)
    doc["Statement"].append({"Effect": "Deny", "Principal": {"AWS": ROLE_ARN}, "Action": "sts:AssumeRole"})
    report = diagnose(gathered(targets=(target(doc=doc),)))
    f = find(report, f"trust:{TARGET}")
    assert f.status is Status.FAIL and f.fix == f.fix_aws
    assert [s["Effect"] for s in policy_arg(f.fix, "--policy-document")["Statement"]] == ["Allow"]


def test_unique_id_principal_fails_the_trust_and_names_the_id():
    report = diagnose(gathered(targets=(target(doc=trust("AROAOLDROLEID0000001")),)))
    f = find(report, f"trust:{TARGET}")
    assert f.status is Status.FAIL
    assert "AROAOLDROLEID0000001" in f.detail and "AROANEWROLEID0000001" in f.detail
    assert f.fix.startswith("roleops setup ")
    mended = policy_arg(f.fix_aws)
    assert "AROAOLDROLEID0000001" not in json.dumps(mended) and ROLE_ARN in json.dumps(mended)
    # the failing trust finding already covers the id: no second finding about it
    assert not [f for f in report.findings if f.check.startswith("stale-principal")]


def test_stale_unique_id_beside_a_working_principal_only_warns():
    report = diagnose(gathered(targets=(target(doc=trust(ROLE_ARN, "AROAOLDROLEID0000001")),)))
    assert report.ok
    f = find(report, f"stale-principal:{TARGET}")
    assert f.status is Status.WARN
    assert policy_arg(f.fix)["Statement"][0]["Principal"] == {"AWS": ROLE_ARN}


def test_stale_id_clean_up_is_never_an_empty_trust():
    report = diagnose(gathered(role=role(ROLE, trust("AROAOLDROLEID0000001"))))
    assert failed(report)[0] == "ec2-trust"
    stale = find(report, f"stale-principal:{ROLE}")
    assert stale.status is Status.WARN and stale.fix == ""  # dropping the id would leave no statement at all
    assert "AROAOLDROLEID0000001" not in find(report, "ec2-trust").fix_aws


def test_session_duration_names_the_chaining_cap():
    report = diagnose(gathered(targets=(target(MaxSessionDuration=43200),)))
    detail = find(report, f"session-duration:{TARGET}").detail
    assert "43200" in detail and "3600" in detail
    assert report.ok


# --- the instance and its metadata options -----------------------------------------------------


@pytest.mark.parametrize(
    "tokens, containers, status",
    [
        ("required", True, Status.FAIL),
        ("optional", True, Status.WARN),
        ("required", False, Status.PASS),
    ],
)
def test_hop_limit_matters_only_for_containers(tokens, containers, status):
    instance = {
        "State": {"Name": "running"},
        "MetadataOptions": {"HttpTokens": tokens, "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1},
    }
    f = find(diagnose(gathered(instance=instance, containers=containers)), "hop-limit")
    assert f.status is status
    if status is not Status.PASS:
        assert f.fix.endswith("--http-put-response-hop-limit 2")


def test_optional_tokens_warn_and_the_fix_avoids_setup_when_the_profile_is_named_otherwise():
    instance = {"State": {"Name": "running"}, "MetadataOptions": {"HttpTokens": "optional"}}
    report = diagnose(gathered(instance=instance))
    assert report.ok
    f = find(report, "imdsv2")
    assert f.status is Status.WARN
    assert shlex.split(f.fix)[:2] == ["roleops", "setup"] and "--require-imdsv2" in f.fix

    other = {**gathered().association, "IamInstanceProfile": {"Arn": f"arn:aws:iam::{ACCT}:instance-profile/web"}}
    f = find(diagnose(gathered(instance=instance, association=other)), "imdsv2")
    # setup --instance-id would swap the instance over to a profile named after the role: not a tokens fix
    assert f.fix == f.fix_aws and f.fix.startswith("aws ec2 modify-instance-metadata-options")


def test_disabled_endpoint_and_terminated_instance_fail():
    instance = {"State": {"Name": "running"}, "MetadataOptions": {"HttpEndpoint": "disabled", "HttpTokens": "required"}}
    f = find(diagnose(gathered(instance=instance)), "imds-endpoint")
    assert f.status is Status.FAIL and f.fix.endswith("--http-endpoint enabled")
    gone = diagnose(gathered(instance={"State": {"Name": "terminated"}}))
    assert find(gone, "instance").status is Status.FAIL and not gone.ok
