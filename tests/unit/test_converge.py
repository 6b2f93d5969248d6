"""Pure diffs of setup / teardown (plan layer): rows and operations from what was read, no AWS."""

from __future__ import annotations

from typing import Any

import pytest

from roleops import INLINE_POLICY_NAME
from roleops.converge import (
    diff_association,
    diff_delete_profile,
    diff_disassociate,
    diff_inline_policy,
    diff_launch_template,
    diff_metadata_options,
    diff_profile,
    diff_release_role,
    diff_role,
)
from roleops.errors import NotManagedError, UsageError
from roleops.operations import (
    AddRoleToInstanceProfile,
    Associate,
    CreateInstanceProfile,
    CreateRole,
    DeleteInstanceProfile,
    DeleteRole,
    DeleteRolePolicy,
    Disassociate,
    NewDefaultTemplateVersion,
    Op,
    PutRolePolicy,
    RemoveRoleFromInstanceProfile,
    Replace,
    RequireImdsv2,
    UpdateMaxSessionDuration,
    UpdateTrust,
    WaitAssociated,
)
from roleops.results import Action

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/ExampleRole"
OTHER = f"arn:aws:iam::{ACCOUNT}:role/OtherRole"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
MANAGED = [{"Key": "roleops:managed", "Value": "true"}]
PROFILE_ARN = f"arn:aws:iam::{ACCOUNT}:instance-profile/ExampleRole"


def _stmt(principal: Any, **extra: Any) -> dict:
    return {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole", **extra}


def _role(name: str, *statements: dict, tags: list | None = None) -> dict:
    return {
        "RoleName": name,
        "Arn": f"arn:aws:iam::{ACCOUNT}:role/{name}",
        "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": list(statements)},
        "Tags": MANAGED if tags is None else tags,
    }


def _trust_of(op: Op) -> list:
    assert isinstance(op, UpdateTrust)
    return op.trust["Statement"]


# --- diff_release_role ---------------------------------------------------------------------------------


def test_release_absent_role_is_unchanged() -> None:
    diff = diff_release_role("ExampleAssumedRole", None, [], [], principal=("AWS", OTHER))
    assert (diff.change.action, diff.change.detail, diff.ops) == (Action.UNCHANGED, "absent", ())


def test_release_untagged_role_is_left_alone_even_when_it_names_us() -> None:
    role = _role("ExampleAssumedRole", _stmt({"AWS": OTHER}), tags=[])
    diff = diff_release_role("ExampleAssumedRole", role, [], [], principal=("AWS", OTHER))
    assert diff.change.action is Action.UNCHANGED and diff.ops == ()
    assert "left alone" in diff.change.detail


def test_release_role_of_an_exported_stack_is_left_to_the_stack() -> None:
    tags = [*MANAGED, {"Key": "roleops:stack", "Value": "roleops-buildbox"}]
    role = _role("ExampleAssumedRole", _stmt({"AWS": OTHER}), tags=tags)
    diff = diff_release_role("ExampleAssumedRole", role, ["roleops-assume-roles"], [], principal=("AWS", OTHER))
    assert diff.change.action is Action.UNCHANGED and diff.ops == ()
    assert "CloudFormation stack roleops-buildbox" in diff.change.detail


def test_release_role_trusting_only_us_deletes_it() -> None:
    role = _role("ExampleAssumedRole", _stmt({"AWS": OTHER}))
    diff = diff_release_role("ExampleAssumedRole", role, [], [], principal=("AWS", OTHER))
    assert diff.change.action is Action.DELETE
    assert diff.ops == (DeleteRole(name="ExampleAssumedRole"),)


def test_release_shared_role_keeps_it_for_the_other_instance_role() -> None:
    """Two setups share ExampleAssumedRole; tearing down OtherRole's leaves ExampleRole's trust in place."""
    role = _role("ExampleAssumedRole", _stmt({"AWS": ROLE}), _stmt({"AWS": OTHER}))
    diff = diff_release_role("ExampleAssumedRole", role, [], [], principal=("AWS", OTHER))
    assert diff.change.action is Action.UPDATE
    assert [type(op) for op in diff.ops] == [UpdateTrust]
    assert _trust_of(diff.ops[0]) == [_stmt({"AWS": ROLE})]
    assert f"remove AWS={OTHER}" in diff.change.detail
    assert f"still trusted by AWS={ROLE}" in diff.change.detail


@pytest.mark.parametrize(
    ("statements", "kept"),
    [
        ([_stmt({"AWS": [OTHER, ROOT]})], [_stmt({"AWS": [ROOT]})]),  # the list form
        ([_stmt({"AWS": OTHER}), _stmt({"AWS": ROOT})], [_stmt({"AWS": ROOT})]),  # the root in its own statement
    ],
)
def test_release_keeps_a_principal_someone_else_added(statements: list, kept: list) -> None:
    role = _role("ExampleAssumedRole", *statements)
    diff = diff_release_role("ExampleAssumedRole", role, [], [], principal=("AWS", OTHER))
    assert diff.change.action is Action.UPDATE
    assert _trust_of(diff.ops[0]) == kept
    assert f"still trusted by AWS={ROOT}" in diff.change.detail


def test_release_role_that_no_longer_names_us_is_unchanged_and_kept() -> None:
    """The re-run after a teardown that already took our principal out (or a role set up for someone else)."""
    role = _role("ExampleAssumedRole", _stmt({"AWS": ROLE}))
    diff = diff_release_role("ExampleAssumedRole", role, [], [], principal=("AWS", OTHER))
    assert diff.change.action is Action.UNCHANGED and diff.ops == ()
    assert f"still trusted by AWS={ROLE}" in diff.change.detail


def test_release_instance_role_drops_our_inline_policy_and_deletes_it() -> None:
    role = _role("ExampleRole", _stmt({"Service": "ec2.amazonaws.com"}))
    diff = diff_release_role(
        "ExampleRole",
        role,
        [INLINE_POLICY_NAME],
        [],
        principal=("Service", "ec2.amazonaws.com"),
        ours=(INLINE_POLICY_NAME,),
    )
    assert diff.change.action is Action.DELETE
    assert diff.ops == (
        DeleteRolePolicy(role="ExampleRole", policy=INLINE_POLICY_NAME),
        DeleteRole(name="ExampleRole"),
    )


def test_release_instance_role_someone_else_also_trusts_keeps_it_without_our_parts() -> None:
    role = _role("ExampleRole", _stmt({"Service": "ec2.amazonaws.com", "AWS": ROOT}))
    diff = diff_release_role(
        "ExampleRole",
        role,
        [INLINE_POLICY_NAME, "theirs"],
        [],
        principal=("Service", "ec2.amazonaws.com"),
        ours=(INLINE_POLICY_NAME,),
    )
    assert diff.change.action is Action.UPDATE
    assert [type(op) for op in diff.ops] == [UpdateTrust, DeleteRolePolicy]
    assert _trust_of(diff.ops[0]) == [_stmt({"AWS": ROOT})]
    assert diff.ops[1] == DeleteRolePolicy(role="ExampleRole", policy=INLINE_POLICY_NAME)
    assert "keeps inline theirs" in diff.change.detail and f"still trusted by AWS={ROOT}" in diff.change.detail


def test_release_refuses_a_role_that_would_keep_only_someone_elses_policies() -> None:
    role = _role("ExampleAssumedRole", _stmt({"AWS": OTHER}))
    with pytest.raises(UsageError, match="did not add"):
        diff_release_role("ExampleAssumedRole", role, ["mine"], [], principal=("AWS", OTHER))
    with pytest.raises(UsageError, match="managed arn:aws:iam::aws:policy/ReadOnlyAccess"):
        diff_release_role(
            "ExampleAssumedRole", role, [], ["arn:aws:iam::aws:policy/ReadOnlyAccess"], principal=("AWS", OTHER)
        )


def test_release_accepts_iams_string_form_of_the_trust() -> None:
    role = _role("ExampleAssumedRole")
    role["AssumeRolePolicyDocument"] = (
        "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Principal"
        f"%22%3A%7B%22AWS%22%3A%22{OTHER}%22%7D%2C%22Action%22%3A%22sts%3AAssumeRole%22%7D%5D%7D"
    )
    diff = diff_release_role("ExampleAssumedRole", role, [], [], principal=("AWS", OTHER))
    assert diff.change.action is Action.DELETE


# --- diff_disassociate / diff_delete_profile -------------------------------------------------------------


def _assoc(profile: str = "ExampleRole") -> dict:
    return {
        "AssociationId": "iip-assoc-1",
        "IamInstanceProfile": {"Arn": f"arn:aws:iam::{ACCOUNT}:instance-profile/{profile}", "Id": "AIPA1"},
        "State": "associated",
    }


@pytest.mark.parametrize(
    ("association", "managed", "action", "ops"),
    [
        (None, True, Action.UNCHANGED, ()),
        (_assoc("Theirs"), True, Action.UNCHANGED, ()),
        (_assoc(), False, Action.UNCHANGED, ()),
        (_assoc(), True, Action.DELETE, (Disassociate(association_id="iip-assoc-1"),)),
    ],
)
def test_disassociate_only_from_our_own_profile(association: Any, managed: bool, action: Action, ops: tuple) -> None:
    diff = diff_disassociate("i-0123456789abcdef0", association, "ExampleRole", profile_managed=managed)
    assert (diff.change.action, diff.ops) == (action, ops)


def test_delete_profile_rows() -> None:
    profile = {"Arn": PROFILE_ARN, "Roles": [{"RoleName": "ExampleRole"}], "Tags": MANAGED}
    assert diff_delete_profile("ExampleRole", None, []).change.action is Action.UNCHANGED
    assert diff_delete_profile("ExampleRole", {**profile, "Tags": []}, []).ops == ()
    diff = diff_delete_profile("ExampleRole", profile, [])
    assert diff.change.action is Action.DELETE
    assert diff.ops == (
        RemoveRoleFromInstanceProfile(profile="ExampleRole", role="ExampleRole"),
        DeleteInstanceProfile(name="ExampleRole"),
    )
    with pytest.raises(UsageError, match="still associated with i-1"):
        diff_delete_profile("ExampleRole", profile, ["i-1"])


# --- setup diffs -----------------------------------------------------------------------------------------

EC2_TRUST = _stmt({"Service": "ec2.amazonaws.com"})


def test_diff_role_creates_a_missing_role_with_exactly_the_wanted_trust() -> None:
    diff = diff_role("ExampleRole", None, EC2_TRUST, adopt=False, purpose="instance role")
    assert diff.change.action is Action.CREATE
    assert diff.change.detail == "instance role; trust: Allow Service=ec2.amazonaws.com sts:AssumeRole"
    assert diff.ops == (CreateRole(name="ExampleRole", trust={"Version": "2012-10-17", "Statement": [EC2_TRUST]}),)


@pytest.mark.parametrize(
    ("statements", "max_duration", "current_duration", "action", "op_types"),
    [
        ([EC2_TRUST], None, 3600, Action.UNCHANGED, []),
        ([_stmt({"Service": ["ec2.amazonaws.com", "lambda.amazonaws.com"]})], None, 3600, Action.UNCHANGED, []),
        ([_stmt({"AWS": ROOT})], None, 3600, Action.UPDATE, [UpdateTrust]),
        ([EC2_TRUST], 7200, 3600, Action.UPDATE, [UpdateMaxSessionDuration]),
        ([_stmt({"AWS": ROOT})], 7200, 3600, Action.UPDATE, [UpdateTrust, UpdateMaxSessionDuration]),
        ([EC2_TRUST], 7200, 7200, Action.UNCHANGED, []),
        # a conditional statement does not count as ours: ours is added beside it
        ([_stmt({"Service": "ec2.amazonaws.com"}, Condition={"Bool": {"aws:SecureTransport": "true"}})], None, 3600,
         Action.UPDATE, [UpdateTrust]),
    ],
)  # fmt: skip
def test_diff_role_adds_only_what_is_missing(
    statements: list, max_duration: int | None, current_duration: int, action: Action, op_types: list
) -> None:
    role = {**_role("ExampleRole", *statements), "MaxSessionDuration": current_duration}
    diff = diff_role("ExampleRole", role, EC2_TRUST, adopt=False, max_session_duration=max_duration)
    assert diff.change.action is action
    assert [type(op) for op in diff.ops] == op_types
    for op in diff.ops:
        if isinstance(op, UpdateTrust):  # never removes: every statement that was there is still there
            assert op.trust["Statement"][: len(statements)] == statements
            assert op.trust["Statement"][-1] == EC2_TRUST


def test_diff_role_refuses_an_untagged_role_unless_adopted() -> None:
    role = _role("ExampleRole", _stmt({"AWS": ROOT}), tags=[])
    with pytest.raises(NotManagedError, match="--adopt"):
        diff_role("ExampleRole", role, EC2_TRUST, adopt=False)
    diff = diff_role("ExampleRole", role, EC2_TRUST, adopt=True)
    assert [type(op) for op in diff.ops] == [UpdateTrust]
    unchanged = diff_role("ExampleRole", _role("ExampleRole", EC2_TRUST, tags=[]), EC2_TRUST, adopt=True)
    assert unchanged.change.action is Action.UNCHANGED and "(adopted, untagged)" in unchanged.change.detail


def test_diff_profile_rows() -> None:
    created = diff_profile("ExampleRole", "ExampleRole", None, adopt=False)
    assert created.change.action is Action.CREATE
    assert created.ops == (
        CreateInstanceProfile(name="ExampleRole"),
        AddRoleToInstanceProfile(profile="ExampleRole", role="ExampleRole"),
    )
    empty = {"Roles": [], "Tags": MANAGED}
    assert diff_profile("ExampleRole", "ExampleRole", empty, adopt=False).ops == (
        AddRoleToInstanceProfile(profile="ExampleRole", role="ExampleRole"),
    )
    holding = {"Roles": [{"RoleName": "ExampleRole"}], "Tags": MANAGED}
    assert diff_profile("ExampleRole", "ExampleRole", holding, adopt=False).change.action is Action.UNCHANGED
    with pytest.raises(UsageError, match="holds role Other"):
        diff_profile("ExampleRole", "ExampleRole", {"Roles": [{"RoleName": "Other"}], "Tags": MANAGED}, adopt=False)
    with pytest.raises(NotManagedError):
        diff_profile("ExampleRole", "ExampleRole", {**holding, "Tags": []}, adopt=False)


TARGET = f"arn:aws:iam::{ACCOUNT}:role/ExampleAssumedRole"
SECOND = f"arn:aws:iam::{ACCOUNT}:role/Second"


@pytest.mark.parametrize(
    ("current", "targets", "action"),
    [
        (None, [TARGET], Action.CREATE),
        ({"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": TARGET}]}, [TARGET],
         Action.UNCHANGED),
        ({"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": [TARGET, SECOND]}]}, [TARGET],
         Action.UPDATE),  # a later run with fewer roles narrows the policy
        ({"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": TARGET}]}, [TARGET, SECOND],
         Action.UPDATE),
    ],
)  # fmt: skip
def test_diff_inline_policy_names_exactly_the_targets(current: dict | None, targets: list, action: Action) -> None:
    diff = diff_inline_policy("ExampleRole", current, targets)
    assert diff.change.action is action
    if action is Action.UNCHANGED:
        assert diff.ops == ()
    else:
        (op,) = diff.ops
        assert isinstance(op, PutRolePolicy) and op.policy == INLINE_POLICY_NAME
        assert op.document["Statement"][0]["Resource"] == sorted(targets)


INSTANCE = "i-0123456789abcdef0"


def _instance(state: str = "running", **options: str) -> dict:
    return {"InstanceId": INSTANCE, "State": {"Name": state}, "MetadataOptions": options}


def _live(profile: str = "ExampleRole", state: str = "associated", profile_id: str = "AIPA1") -> dict:
    return {
        "AssociationId": "iip-assoc-1",
        "State": state,
        "IamInstanceProfile": {"Arn": f"arn:aws:iam::{ACCOUNT}:instance-profile/{profile}", "Id": profile_id},
    }


@pytest.mark.parametrize(
    ("instance", "association", "wait", "profile_id", "action", "ops"),
    [
        (_instance(), None, False, "AIPA1", Action.CREATE, (Associate(instance_id=INSTANCE, profile="ExampleRole"),)),
        (_instance(), None, True, "AIPA1", Action.CREATE,
         (Associate(instance_id=INSTANCE, profile="ExampleRole"),
          WaitAssociated(instance_id=INSTANCE, profile="ExampleRole"))),
        (_instance(), _live(), False, "AIPA1", Action.UNCHANGED, ()),
        (_instance(), _live(state="associating"), True, "AIPA1", Action.UNCHANGED,
         (WaitAssociated(instance_id=INSTANCE, profile="ExampleRole"),)),
        (_instance(), _live("Other"), False, "AIPA1", Action.REPLACE,
         (Replace(association_id="iip-assoc-1", profile="ExampleRole", instance_id=INSTANCE),)),
        # EC2 replaces only on a running instance: disassociate, then associate
        (_instance("stopped"), _live("Other"), False, "AIPA1", Action.REPLACE,
         (Disassociate(association_id="iip-assoc-1"), Associate(instance_id=INSTANCE, profile="ExampleRole"))),
        # the profile was deleted and re-created since: the old association serves no role
        (_instance(), _live(profile_id="AIPAOLD"), False, "AIPA1", Action.REPLACE,
         (Replace(association_id="iip-assoc-1", profile="ExampleRole", instance_id=INSTANCE),)),
    ],
)  # fmt: skip
def test_diff_association_rows(
    instance: dict, association: dict | None, wait: bool, profile_id: str, action: Action, ops: tuple
) -> None:
    diff = diff_association(INSTANCE, instance, association, "ExampleRole", wait=wait, profile_id=profile_id)
    assert (diff.change.action, diff.ops) == (action, ops)


@pytest.mark.parametrize("state", ["terminated", "shutting-down"])
def test_diff_association_refuses_a_dead_instance(state: str) -> None:
    with pytest.raises(UsageError, match=state):
        diff_association(INSTANCE, _instance(state), None, "ExampleRole", wait=False)


@pytest.mark.parametrize(
    ("options", "action", "detail"),
    [
        ({"HttpTokens": "required", "HttpEndpoint": "enabled"}, Action.UNCHANGED, "HttpTokens=required (IMDSv2 only)"),
        ({"HttpTokens": "optional", "HttpEndpoint": "enabled"}, Action.UPDATE, "HttpTokens optional -> required"),
        ({"HttpTokens": "required", "HttpEndpoint": "disabled"}, Action.UPDATE, "HttpEndpoint disabled -> enabled"),
        ({}, Action.UPDATE, "HttpTokens optional -> required"),
    ],
)
def test_diff_metadata_options_rows(options: dict, action: Action, detail: str) -> None:
    diff = diff_metadata_options(INSTANCE, _instance(**options))
    assert (diff.change.action, diff.change.detail) == (action, detail)
    assert diff.ops == (() if action is Action.UNCHANGED else (RequireImdsv2(instance_id=INSTANCE),))


# --- launch templates ---------------------------------------------------------------------------------------

TEMPLATE = {"LaunchTemplateId": "lt-0123456789abcdef0", "LaunchTemplateName": "web", "DefaultVersionNumber": 3}


def _version(number: int = 3, **data: Any) -> dict:
    return {"VersionNumber": number, "LaunchTemplateData": {"ImageId": "ami-12345678", **data}}


@pytest.mark.parametrize(
    ("data", "require", "action", "wanted"),
    [
        ({}, False, Action.UPDATE, {"IamInstanceProfile": {"Name": "ExampleRole"}}),
        ({"IamInstanceProfile": {"Name": "ExampleRole"}}, False, Action.UNCHANGED, None),
        ({"IamInstanceProfile": {"Arn": f"arn:aws:iam::{ACCOUNT}:instance-profile/ExampleRole"}}, False,
         Action.UNCHANGED, None),
        ({"IamInstanceProfile": {"Name": "Other"}}, False, Action.UPDATE,
         {"IamInstanceProfile": {"Name": "ExampleRole"}}),
        # the MetadataOptions block is sent whole (it replaces the source's): its other settings are carried over
        ({"IamInstanceProfile": {"Name": "ExampleRole"}, "MetadataOptions": {"HttpTokens": "optional",
          "HttpPutResponseHopLimit": 2}}, True, Action.UPDATE,
         {"MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 2}}),
        ({"IamInstanceProfile": {"Name": "ExampleRole"}, "MetadataOptions": {"HttpTokens": "required"}}, True,
         Action.UNCHANGED, None),
        ({}, True, Action.UPDATE,
         {"IamInstanceProfile": {"Name": "ExampleRole"}, "MetadataOptions": {"HttpTokens": "required"}}),
    ],
)  # fmt: skip
def test_diff_launch_template(data: dict, require: bool, action: Action, wanted: dict | None) -> None:
    diff = diff_launch_template("web", TEMPLATE, _version(**data), "ExampleRole", require_imdsv2=require)
    assert diff.change.action is action
    if wanted is None:
        assert diff.ops == ()
    else:
        assert diff.ops == (NewDefaultTemplateVersion(template_id=TEMPLATE["LaunchTemplateId"], source_version=3,
                                                      data=wanted),)  # fmt: skip
        assert diff.change.detail.startswith("new default version from version 3: ")
