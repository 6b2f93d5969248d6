"""Pure diffs of setup / teardown (plan layer): rows and operations from what was read, no AWS."""

from __future__ import annotations

from typing import Any

import pytest

from roleops import INLINE_POLICY_NAME
from roleops.converge import Op, diff_delete_profile, diff_disassociate, diff_release_role
from roleops.errors import UsageError
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
    assert op.kind == "update_trust"
    return op.args[1]["Statement"]


# --- diff_release_role ---------------------------------------------------------------------------------


def test_release_absent_role_is_unchanged() -> None:
    diff = diff_release_role("ExampleAssumedRole", None, [], [], principal=("AWS", OTHER))
    assert (diff.change.action, diff.change.detail, diff.ops) == (Action.UNCHANGED, "absent", ())


def test_release_untagged_role_is_left_alone_even_when_it_names_us() -> None:
    role = _role("ExampleAssumedRole", _stmt({"AWS": OTHER}), tags=[])
    diff = diff_release_role("ExampleAssumedRole", role, [], [], principal=("AWS", OTHER))
    assert diff.change.action is Action.UNCHANGED and diff.ops == ()
    assert "left alone" in diff.change.detail


def test_release_role_trusting_only_us_deletes_it() -> None:
    role = _role("ExampleAssumedRole", _stmt({"AWS": OTHER}))
    diff = diff_release_role("ExampleAssumedRole", role, [], [], principal=("AWS", OTHER))
    assert diff.change.action is Action.DELETE
    assert diff.ops == (Op("delete_role", ("ExampleAssumedRole",)),)


def test_release_shared_role_keeps_it_for_the_other_instance_role() -> None:
    """Two setups share ExampleAssumedRole; tearing down OtherRole's leaves ExampleRole's trust in place."""
    role = _role("ExampleAssumedRole", _stmt({"AWS": ROLE}), _stmt({"AWS": OTHER}))
    diff = diff_release_role("ExampleAssumedRole", role, [], [], principal=("AWS", OTHER))
    assert diff.change.action is Action.UPDATE
    assert [op.kind for op in diff.ops] == ["update_trust"]
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
        Op("delete_role_policy", ("ExampleRole", INLINE_POLICY_NAME)),
        Op("delete_role", ("ExampleRole",)),
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
    assert [op.kind for op in diff.ops] == ["update_trust", "delete_role_policy"]
    assert _trust_of(diff.ops[0]) == [_stmt({"AWS": ROOT})]
    assert diff.ops[1].args == ("ExampleRole", INLINE_POLICY_NAME)
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
        (_assoc(), True, Action.DELETE, (Op("disassociate", ("iip-assoc-1",)),)),
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
        Op("remove_role_from_instance_profile", ("ExampleRole", "ExampleRole")),
        Op("delete_instance_profile", ("ExampleRole",)),
    )
    with pytest.raises(UsageError, match="still associated with i-1"):
        diff_delete_profile("ExampleRole", profile, ["i-1"])
