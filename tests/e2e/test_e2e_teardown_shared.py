"""E2E: teardown takes back only what its own setup added, on the sandbox over HTTP (issue: shared roles).

Two setups may share an assumable role, and someone may add their own principal to a roleops role's trust; a
teardown then removes its own instance role's principal and keeps the role (row `update`, naming who still
trusts it) instead of deleting it from under the other chain.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from typing import Any

import pytest
from conftest import ACCOUNT, SandboxProcess, role_arn
from test_reliability_interrupt import converge, killed_at_hold, run_roleops, snapshot

SHARED = "ExampleAssumedRole"
FIRST, SECOND = "ExampleRole", "OtherRole"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"


def setup(sb: SandboxProcess, rec: Callable[..., None], instance_role: str, instance_id: str) -> None:
    converge(sb, rec, ["setup", "--instance-role", instance_role, "--assumable-role", SHARED,
                       "--instance-id", instance_id, "--wait"])  # fmt: skip


def teardown_args(instance_role: str, instance_id: str | None = None, *extra: str) -> list[str]:
    args = ["teardown", "--instance-role", instance_role, "--assumable-role", SHARED]
    return args + (["--instance-id", instance_id] if instance_id else []) + list(extra)


def teardown_rows(sb: SandboxProcess, rec: Callable[..., None], *args: str) -> dict[str, tuple[str, str]]:
    proc = converge(sb, rec, [*args, "--output", "json"])
    report = json.loads(proc.stdout)
    return {c["resource"]: (c["action"], c["detail"]) for c in report["changes"]}


def trust_principals(sb: SandboxProcess, name: str) -> list[Any]:
    doc = sb.client("iam").get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"]
    doc = json.loads(doc) if isinstance(doc, str) else doc
    return [s["Principal"] for s in doc["Statement"]]


def verify_passes(sb: SandboxProcess, rec: Callable[..., None], instance_id: str) -> None:
    proc = run_roleops(
        rec, sb.env(instance_id), "verify", "--assume", role_arn(SHARED), "--expect-role", FIRST, "--output", "json"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["ok"] is True


@pytest.fixture
def two_setups(sb: SandboxProcess, record: Callable[..., None]) -> tuple[str, str]:
    """The issue's reproduction: ExampleRole on instance 0 and OtherRole on instance 1 share ExampleAssumedRole."""
    i0, i1 = sb.instance_id, sb.new_instance()["instance_id"]
    setup(sb, record, FIRST, i0)
    setup(sb, record, SECOND, i1)
    assert trust_principals(sb, SHARED) == [{"AWS": role_arn(FIRST)}, {"AWS": role_arn(SECOND)}]
    verify_passes(sb, record, i0)
    return i0, i1


def test_teardown_beside_a_second_setup_keeps_the_shared_role(sb, record, two_setups):
    i0, i1 = two_setups
    mark = len(sb.control("GET", "calls")["mutating"])

    planned = teardown_rows(sb, record, *teardown_args(SECOND, i1, "--dry-run"))
    assert sb.control("GET", "calls")["mutating"][mark:] == []  # --dry-run: reads only
    action, detail = planned[f"role {SHARED}"]
    assert action == "update"
    assert f"remove AWS={role_arn(SECOND)}" in detail and f"still trusted by AWS={role_arn(FIRST)}" in detail

    rows = teardown_rows(sb, record, *teardown_args(SECOND, i1))
    assert rows == planned  # the dry run showed exactly what happened
    assert {r: a for r, (a, _d) in rows.items()} == {
        f"association {i1}": "delete",
        f"role {SHARED}": "update",
        f"instance-profile {SECOND}": "delete",
        f"role {SECOND}": "delete",
    }
    assert trust_principals(sb, SHARED) == [{"AWS": role_arn(FIRST)}]
    state = snapshot(sb)
    assert set(state["roles"]) == {FIRST, SHARED} and set(state["profiles"]) == {FIRST}
    verify_passes(sb, record, i0)  # instance 0's chain still holds

    # The re-run is a no-op: every row unchanged, no mutating call.
    mark = len(sb.control("GET", "calls")["mutating"])
    again = teardown_rows(sb, record, *teardown_args(SECOND, i1))
    assert {a for a, _d in again.values()} == {"unchanged"}
    assert sb.control("GET", "calls")["mutating"][mark:] == []

    # The first setup's own teardown then removes the rest: nothing else trusts the shared role any more.
    rows = teardown_rows(sb, record, *teardown_args(FIRST, i0))
    assert rows[f"role {SHARED}"][0] == "delete" and rows[f"role {FIRST}"][0] == "delete"
    assert snapshot(sb)["roles"] == {}


@pytest.mark.parametrize("form", ["own-statement", "same-statement-list"])
def test_teardown_keeps_a_principal_someone_else_added(sb, record, form):
    setup(sb, record, FIRST, sb.instance_id)
    iam = sb.client("iam")
    ours = {"Effect": "Allow", "Principal": {"AWS": role_arn(FIRST)}, "Action": "sts:AssumeRole"}
    if form == "own-statement":
        statements = [ours, {"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "sts:AssumeRole"}]
        expected = [{"AWS": ROOT}]
    else:
        statements = [{**ours, "Principal": {"AWS": [role_arn(FIRST), ROOT]}}]
        expected = [{"AWS": [ROOT]}]
    iam.update_assume_role_policy(
        RoleName=SHARED, PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements})
    )
    # The same for the instance role's own trust: someone lets the account assume it too.
    ec2_trust = {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
    root_trust = {"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "sts:AssumeRole"}
    iam.update_assume_role_policy(
        RoleName=FIRST, PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [ec2_trust, root_trust]})
    )

    rows = teardown_rows(sb, record, *teardown_args(FIRST, sb.instance_id))
    assert rows[f"role {SHARED}"][0] == "update" and f"still trusted by AWS={ROOT}" in rows[f"role {SHARED}"][1]
    assert rows[f"role {FIRST}"][0] == "update" and f"still trusted by AWS={ROOT}" in rows[f"role {FIRST}"][1]
    assert trust_principals(sb, SHARED) == expected
    assert trust_principals(sb, FIRST) == [{"AWS": ROOT}]
    state = snapshot(sb)
    assert state["roles"][FIRST]["inline"] == {}  # roleops' inline policy went with the rest of what it added
    assert state["profiles"] == {}

    mark = len(sb.control("GET", "calls")["mutating"])
    again = teardown_rows(sb, record, *teardown_args(FIRST, sb.instance_id))
    assert {a for a, _d in again.values()} == {"unchanged"}
    assert sb.control("GET", "calls")["mutating"][mark:] == []


# The mutating calls of the shared-role teardown of OtherRole, in order: the trust change comes before the
# instance role's deletion, the two changes an interruption can fall between.
SHARED_TEARDOWN = [
    "ec2:DisassociateIamInstanceProfile",
    "iam:UpdateAssumeRolePolicy",
    "iam:RemoveRoleFromInstanceProfile",
    "iam:DeleteInstanceProfile",
    "iam:DeleteRolePolicy",
    "iam:DeleteRole",
]


@pytest.mark.parametrize("k", range(len(SHARED_TEARDOWN)), ids=lambda k: f"after-{k}")
def test_shared_teardown_killed_after_step_k_then_rerun_converges(sb, record, two_setups, k):
    i0, i1 = two_setups
    try:
        mark = len(sb.control("GET", "calls")["mutating"])
        held = killed_at_hold(sb, record, k, teardown_args(SECOND, i1), signal.SIGKILL)
        assert held["held_action"] == SHARED_TEARDOWN[k]
        assert sb.control("GET", "calls")["mutating"][mark:] == SHARED_TEARDOWN[: k + 1]
    finally:
        sb.control("POST", "hold", {"after_mutations": None})
    converge(sb, record, teardown_args(SECOND, i1))
    assert trust_principals(sb, SHARED) == [{"AWS": role_arn(FIRST)}]
    state = snapshot(sb)
    assert set(state["roles"]) == {FIRST, SHARED} and set(state["profiles"]) == {FIRST}
    verify_passes(sb, record, i0)
