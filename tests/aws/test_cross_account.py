"""Setup and teardown with a secondary role in another account (moto: each access key acts in its own account)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from roleops import INLINE_POLICY_NAME
from roleops.accounts import TargetAccess
from roleops.aws import CallCounter
from roleops.clients import Clients
from roleops.converge import Context, run_setup, run_teardown, setup_request, teardown_request
from roleops.errors import UsageError
from roleops.results import Action

HOME, OTHER, THIRD = "123456789012", "234567890123", "345678901234"
DEPLOY_ARN = f"arn:aws:iam::{OTHER}:role/Deploy"
INSTANCE_ROLE_ARN = f"arn:aws:iam::{HOME}:role/BuildBox"


def _keys_of(account: str) -> dict[str, str]:
    """An admin user's access key in `account` (moto maps every key to the account that issued it)."""
    from moto.iam.models import iam_backends

    iam = iam_backends[account]["aws"]
    iam.create_user("us-east-1", "admin")
    key = iam.create_access_key("admin")
    return {"aws_access_key_id": key.access_key_id, "aws_secret_access_key": key.secret_access_key}


@pytest.fixture
def other_calls() -> CallCounter:
    return CallCounter()


@pytest.fixture
def access(ctx: Context, other_calls: CallCounter) -> TargetAccess:
    """`--target-profile prod` (account OTHER) and `--target-profile 345678901234=third`."""
    keys = {"prod": _keys_of(OTHER), "third": _keys_of(THIRD)}

    def make(profile: str) -> Clients:
        return Clients(
            boto3.Session(region_name="us-east-1"),
            credentials=keys[profile],
            event_hooks=[("before-call.*.*", other_calls)],
        )

    return TargetAccess(profiles=((None, "prod"),), make_clients=make)


def _other_iam() -> Any:
    """IAM of account OTHER, with the admin key `access` made there."""
    from moto.iam.models import iam_backends

    key = iam_backends[OTHER]["aws"].get_user("admin").access_keys[0]
    return boto3.client(
        "iam", region_name="us-east-1", aws_access_key_id=key.access_key_id, aws_secret_access_key=key.secret_access_key
    )


def _rows(report: Any) -> dict[str, tuple[str, str | None]]:
    return {c.resource: (c.action.value, c.account) for c in report.changes}


def test_setup_converges_the_role_in_its_own_account_and_names_its_arn(ctx, access, iam, calls, other_calls):
    req = setup_request(instance_role="BuildBox", assumable_roles=["Reader", DEPLOY_ARN])
    report = run_setup(ctx, req, access=access)
    rows = _rows(report)
    assert rows["role BuildBox"] == ("create", HOME)
    assert rows["role Reader"] == ("create", HOME)
    assert rows["role Deploy"] == ("create", OTHER)  # the table says which account each row is in
    # The target side is in the other account, trusting the instance role's ARN; not in the home account.
    trust = _other_iam().get_role(RoleName="Deploy")["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"AWS": INSTANCE_ROLE_ARN}
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_role(RoleName="Deploy")
    # The instance side names exactly the ARNs.
    doc = iam.get_role_policy(RoleName="BuildBox", PolicyName=INLINE_POLICY_NAME)["PolicyDocument"]
    assert sorted(doc["Statement"][0]["Resource"]) == sorted([DEPLOY_ARN, f"arn:aws:iam::{HOME}:role/Reader"])

    # The second move: a re-run changes nothing in either account.
    calls.clear()
    other_calls.clear()
    again = run_setup(ctx, req, access=access)
    assert {c.action for c in again.changes} == {Action.UNCHANGED}
    assert calls.mutating == [] and other_calls.mutating == []

    # The third: teardown removes each side in its own account.
    down = run_teardown(ctx, teardown_request(instance_role="BuildBox", assumable_roles=["Reader", DEPLOY_ARN]),
                        access=access)  # fmt: skip
    assert _rows(down)["role Deploy"] == ("delete", OTHER)
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        _other_iam().get_role(RoleName="Deploy")
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_role(RoleName="BuildBox")


def test_teardown_keeps_another_principal_in_the_target_trust(ctx, access):
    other_iam = _other_iam()
    keeper = {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{OTHER}:root"}, "Action": "sts:AssumeRole"}
    req = setup_request(instance_role="BuildBox", assumable_roles=[DEPLOY_ARN])
    run_setup(ctx, req, access=access)
    trust = other_iam.get_role(RoleName="Deploy")["Role"]["AssumeRolePolicyDocument"]
    trust["Statement"].append(keeper)
    other_iam.update_assume_role_policy(RoleName="Deploy", PolicyDocument=json.dumps(trust))
    down = run_teardown(ctx, teardown_request(instance_role="BuildBox", assumable_roles=[DEPLOY_ARN]), access=access)
    assert _rows(down)["role Deploy"] == ("update", OTHER)
    left = other_iam.get_role(RoleName="Deploy")["Role"]["AssumeRolePolicyDocument"]["Statement"]
    assert left == [keeper]


def test_a_profile_of_the_wrong_account_is_bad_input_and_nothing_changes(ctx, access, calls, other_calls):
    wrong = TargetAccess(profiles=((OTHER, "third"),), make_clients=access.make_clients)
    req = setup_request(instance_role="BuildBox", assumable_roles=[DEPLOY_ARN])
    with pytest.raises(UsageError) as err:
        run_setup(ctx, req, access=wrong)
    assert err.value.exit_code == 2
    assert f"reaches account {THIRD}, not {OTHER}" in str(err.value)
    assert calls.mutating == [] and other_calls.mutating == []


def test_an_account_no_profile_reaches_is_bad_input(ctx, access, calls):
    req = setup_request(instance_role="BuildBox", assumable_roles=[f"arn:aws:iam::{THIRD}:role/Deploy"])
    with pytest.raises(UsageError) as err:
        run_setup(ctx, req, access=access)
    text = str(err.value)
    assert f"is in account {THIRD}, which no --target-profile reaches" in text
    assert f"--target-profile prod reaches {OTHER}" in text
    assert calls.mutating == []
    with pytest.raises(UsageError):  # and with no --target-profile at all
        run_setup(ctx, req)
    assert calls.mutating == []


def test_an_arn_of_another_partition_is_bad_input(ctx, access, calls):
    req = setup_request(instance_role="BuildBox", assumable_roles=[f"arn:aws-cn:iam::{OTHER}:role/Deploy"])
    with pytest.raises(UsageError, match="partition aws-cn"):
        run_setup(ctx, req, access=access)
    assert calls.mutating == []


def test_an_unused_account_profile_is_bad_input(ctx, access, calls):
    typo = TargetAccess(profiles=((None, "prod"), ("999999999999", "prod")), make_clients=access.make_clients)
    req = setup_request(instance_role="BuildBox", assumable_roles=[DEPLOY_ARN])
    with pytest.raises(UsageError, match="no --assumable-role is in it"):
        run_setup(ctx, req, access=typo)
    assert calls.mutating == []


def test_an_arn_of_the_home_account_is_the_role_by_name(ctx, access, iam):
    req = setup_request(instance_role="BuildBox", assumable_roles=[f"arn:aws:iam::{HOME}:role/Reader"])
    report = run_setup(ctx, req, access=access)
    assert _rows(report)["role Reader"] == ("create", HOME)
    assert iam.get_role(RoleName="Reader")["Role"]["Arn"] == f"arn:aws:iam::{HOME}:role/Reader"
    twice = setup_request(instance_role="BuildBox", assumable_roles=["Reader", f"arn:aws:iam::{HOME}:role/Reader"])
    with pytest.raises(UsageError, match="names the same role"):
        run_setup(ctx, twice, access=access)


def test_dry_run_reads_the_other_account_and_changes_nothing(ctx, access, calls, other_calls):
    req = setup_request(instance_role="BuildBox", assumable_roles=[DEPLOY_ARN])
    report = run_setup(ctx, req, access=access, dry_run=True)
    assert _rows(report)["role Deploy"] == ("create", OTHER)
    assert calls.mutating == [] and other_calls.mutating == []


def test_an_untagged_role_there_is_refused_without_adopt_and_only_added_to_with_it(ctx, access, calls, other_calls):
    other_iam = _other_iam()
    keeper = {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{OTHER}:root"}, "Action": "sts:AssumeRole"}
    other_iam.create_role(
        RoleName="Deploy", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [keeper]})
    )
    req = setup_request(instance_role="BuildBox", assumable_roles=[DEPLOY_ARN])
    with pytest.raises(UsageError, match="roleops did not create it") as err:
        run_setup(ctx, req, access=access)
    assert err.value.exit_code == 2
    assert calls.mutating == [] and other_calls.mutating == []

    adopted = run_setup(ctx, setup_request(instance_role="BuildBox", assumable_roles=[DEPLOY_ARN], adopt=True),
                        access=access)  # fmt: skip
    assert _rows(adopted)["role Deploy"] == ("update", OTHER)
    statements = other_iam.get_role(RoleName="Deploy")["Role"]["AssumeRolePolicyDocument"]["Statement"]
    assert statements[0] == keeper and statements[1]["Principal"] == {"AWS": INSTANCE_ROLE_ARN}
