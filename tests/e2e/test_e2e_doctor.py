"""E2E: `roleops doctor` names the broken link, agrees with STS and `roleops verify`, and its fix mends it.

Every test starts from a fresh sandbox account (the `sb` fixture resets it), breaks one link the way an
operator would, and then checks three things over real HTTP: doctor fails on exactly that link; the
sandbox's STS and `roleops verify` run on the instance fail too; and after running the command doctor
printed in `fix` (a `roleops ...` or `aws ...` command, run as printed), doctor and verify both pass.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import EC2_TRUST, REPO, allow_assume, role_arn, trust_for

ROLE = "ExampleRole"
TARGET = "ExampleAssumedRole"
TIMEOUT = 60


# --- running the CLI the way an operator does -------------------------------------------------------


def run(sb: Any, record_output: Any, argv: list[str], *, instance: str | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        argv, env=sb.env(instance), capture_output=True, text=True, timeout=TIMEOUT, cwd=REPO, check=False
    )
    source = " ".join(argv[2:] if argv[0] == sys.executable else argv)
    record_output(f"{source} [stdout]", proc.stdout)
    record_output(f"{source} [stderr]", proc.stderr)
    return proc


def roleops(sb: Any, record_output: Any, *args: str, instance: str | None = None) -> subprocess.CompletedProcess:
    return run(sb, record_output, [sys.executable, "-m", "roleops", *args], instance=instance)


def assume_args(targets: tuple[str, ...]) -> list[str]:
    return [word for t in targets for word in ("--assume", role_arn(t))]


def doctor(sb: Any, record_output: Any, *targets: str, extra: tuple[str, ...] = ()) -> tuple[int, dict]:
    proc = roleops(
        sb, record_output, "doctor", "--instance-id", sb.instance_id, *assume_args(targets), *extra, "--output", "json"
    )
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is (proc.returncode == 0)
    for finding in report["findings"]:
        assert set(finding) == {"check", "status", "detail", "fix", "fix_aws"}
    return proc.returncode, report


def failing(report: dict) -> list[dict]:
    return [f for f in report["findings"] if f["status"] == "fail"]


def verify(sb: Any, record_output: Any, *targets: str) -> tuple[int, dict]:
    """`roleops verify` on the instance: only its metadata endpoint, no keys."""
    proc = roleops(sb, record_output, "verify", *assume_args(targets), "--output", "json", instance=sb.instance_id)
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is (proc.returncode == 0)
    return proc.returncode, report


def failed_steps(report: dict) -> list[str]:
    return [s["step"] for s in report["steps"] if s["status"] == "fail"]


def instance_credentials(sb: Any) -> dict | None:
    """The instance role's credential document from IMDS, or None when IMDS serves none."""
    imds = sb.imds()
    status, role = imds.get("meta-data/iam/security-credentials/")
    if status != 200 or not role:
        return None
    status, body = imds.get(f"meta-data/iam/security-credentials/{role}")
    document = json.loads(body) if status == 200 else {}
    return document if document.get("Code") == "Success" else None


def sts_assume(sb: Any, target: str) -> str:
    """What the sandbox's STS says to AssumeRole with the instance's own credentials: "ok" or the error code."""
    document = instance_credentials(sb)
    assert document is not None, "the instance has no credentials"
    sts = sb.client_from_document("sts", document, attempts=1)
    try:
        sts.assume_role(RoleArn=role_arn(target), RoleSessionName="doctor-e2e")
    except ClientError as err:
        return err.response["Error"]["Code"]
    return "ok"


def run_fix(sb: Any, record_output: Any, command: str) -> None:
    """Run a fix exactly as doctor printed it (commands joined by `&&` in order), with the admin's keys."""
    words = shlex.split(command)
    commands: list[list[str]] = [[]]
    for word in words:
        if word == "&&":
            commands.append([])
        else:
            commands[-1].append(word)
    for argv in commands:
        assert argv and argv[0] in ("roleops", "aws"), command
        module = "roleops" if argv[0] == "roleops" else "awscli"
        proc = run(sb, record_output, [sys.executable, "-m", module, *argv[1:]])
        assert proc.returncode == 0, f"{command}\n{proc.stderr}"


def mend(sb: Any, record_output: Any, report: dict, check: str, *targets: str) -> None:
    """The only failing finding is `check`; its fix makes doctor and verify pass."""
    broken = failing(report)
    assert [f["check"] for f in broken] == [check], broken
    assert broken[0]["fix"] and broken[0]["fix_aws"].startswith("aws "), broken[0]
    run_fix(sb, record_output, broken[0]["fix"])
    code, after = doctor(sb, record_output, *targets)
    assert (code, failing(after)) == (0, []), after
    code, checked = verify(sb, record_output, *targets)
    assert code == 0, checked


# --- set-ups -----------------------------------------------------------------------------------------


def by_hand(sb: Any, *, role: str = ROLE, target: str = TARGET, associate: bool = True) -> None:
    """The walkthrough's console steps with the admin's keys: nothing carries roleops' tag."""
    sb.create_instance_role(role)
    iam = sb.client("iam")
    iam.create_role(RoleName=target, AssumeRolePolicyDocument=json.dumps(trust_for(role)))
    iam.put_role_policy(RoleName=role, PolicyName="assume-target", PolicyDocument=json.dumps(allow_assume(target)))
    if associate:
        sb.associate(role)


def with_setup(sb: Any, record_output: Any, *targets: str, extra: tuple[str, ...] = ()) -> None:
    args = [word for t in targets for word in ("--assumable-role", t)]
    proc = roleops(
        sb, record_output, "setup", "--instance-role", ROLE, *args, "--instance-id", sb.instance_id, *extra, "--wait"
    )
    assert proc.returncode == 0, proc.stderr


# --- healthy ------------------------------------------------------------------------------------------


def test_healthy_chain_passes_every_check(sb, record_output):
    with_setup(sb, record_output, TARGET, extra=("--require-imdsv2",))
    code, report = doctor(sb, record_output, TARGET)
    assert code == 0
    statuses = {f["check"]: f["status"] for f in report["findings"]}
    assert set(statuses.values()) == {"pass"}, report
    for check in ("association", "profile-role", "ec2-trust", f"permission:{TARGET}", f"trust:{TARGET}", "imdsv2"):
        assert statuses[check] == "pass"
    assert verify(sb, record_output, TARGET)[0] == 0
    assert sts_assume(sb, TARGET) == "ok"

    table = roleops(sb, record_output, "doctor", "--instance-id", sb.instance_id, *assume_args((TARGET,)))
    assert table.returncode == 0, table.stderr
    assert "no broken link found" in table.stdout


def test_optional_tokens_only_warn_and_the_warning_fix_requires_them(sb, record_output):
    with_setup(sb, record_output, TARGET)  # no --require-imdsv2
    code, report = doctor(sb, record_output, TARGET)
    assert code == 0 and failing(report) == []
    warning = next(f for f in report["findings"] if f["check"] == "imdsv2")
    assert warning["status"] == "warn"
    assert warning["fix"].startswith("roleops setup ") and "--require-imdsv2" in warning["fix"]
    assert verify(sb, record_output, TARGET)[0] == 0  # IMDSv1 still on is not a broken link

    run_fix(sb, record_output, warning["fix"])
    code, report = doctor(sb, record_output, TARGET)
    assert code == 0
    assert next(f for f in report["findings"] if f["check"] == "imdsv2")["status"] == "pass"
    options = sb.client("ec2").describe_instances(InstanceIds=[sb.instance_id])["Reservations"][0]["Instances"][0]
    assert options["MetadataOptions"]["HttpTokens"] == "required"
    assert sb.imds().get("meta-data/instance-id", v2=False)[0] == 401  # IMDSv1 is really off
    assert verify(sb, record_output, TARGET)[0] == 0


# --- one test per broken link ------------------------------------------------------------------------


def test_no_profile_associated(sb, record_output):
    by_hand(sb, associate=False)
    code, report = doctor(sb, record_output, TARGET)
    assert code == 1
    (broken,) = failing(report)
    assert broken["check"] == "association"
    # doctor found which profile the target's trust points at
    assert broken["fix"] == f"roleops associate --instance-id {sb.instance_id} --instance-profile {ROLE}"
    assert instance_credentials(sb) is None
    code, checked = verify(sb, record_output, TARGET)
    assert code == 1 and "imds" in failed_steps(checked)

    mend(sb, record_output, report, "association", TARGET)


def test_profile_without_role(sb, record_output):
    by_hand(sb)
    sb.client("iam").remove_role_from_instance_profile(InstanceProfileName=ROLE, RoleName=ROLE)
    code, report = doctor(sb, record_output, TARGET)
    assert code == 1
    (broken,) = failing(report)
    assert broken["check"] == "profile-role"
    # the profile was made by hand: setup must be told it may adopt it, or it would refuse
    assert broken["fix"].startswith(f"roleops setup --instance-role {ROLE} ") and "--adopt" in broken["fix"]
    assert instance_credentials(sb) is None
    code, checked = verify(sb, record_output, TARGET)
    assert code == 1 and "imds" in failed_steps(checked)

    mend(sb, record_output, report, "profile-role", TARGET)


def test_instance_role_does_not_trust_ec2(sb, record_output):
    lambda_trust = {
        **EC2_TRUST,
        "Statement": [{**EC2_TRUST["Statement"][0], "Principal": {"Service": "lambda.amazonaws.com"}}],
    }
    by_hand(sb)
    sb.client("iam").update_assume_role_policy(RoleName=ROLE, PolicyDocument=json.dumps(lambda_trust))
    code, report = doctor(sb, record_output, TARGET)
    assert code == 1
    (broken,) = failing(report)
    assert broken["check"] == "ec2-trust"
    assert "AssumeRoleUnauthorizedAccess" in broken["detail"]
    status, body = sb.imds().get(f"meta-data/iam/security-credentials/{ROLE}")
    assert status == 200 and json.loads(body)["Code"] == "AssumeRoleUnauthorizedAccess"
    code, checked = verify(sb, record_output, TARGET)
    assert code == 1 and "imds" in failed_steps(checked)

    mend(sb, record_output, report, "ec2-trust", TARGET)
    # setup only added a statement: the Lambda principal is still there
    trust = sb.client("iam").get_role(RoleName=ROLE)["Role"]["AssumeRolePolicyDocument"]
    assert {"lambda.amazonaws.com", "ec2.amazonaws.com"} <= {s["Principal"].get("Service") for s in trust["Statement"]}


def test_permission_missing_fix_keeps_other_targets(sb, record_output):
    """The instance role may assume two roles; someone narrowed roleops' policy to one. Doctor's setup fix
    must name both, because setup sets that policy to exactly the roles it is given."""
    other = "ReportsRole"
    with_setup(sb, record_output, TARGET, other)
    sb.client("iam").put_role_policy(
        RoleName=ROLE, PolicyName="roleops-assume-roles", PolicyDocument=json.dumps(allow_assume(other))
    )
    code, report = doctor(sb, record_output, TARGET)
    assert code == 1
    (broken,) = failing(report)
    assert broken["check"] == f"permission:{TARGET}"
    assert f"--assumable-role {TARGET}" in broken["fix"] and f"--assumable-role {other}" in broken["fix"]
    assert sts_assume(sb, TARGET) == "AccessDenied"
    code, checked = verify(sb, record_output, TARGET)
    assert code == 1 and failed_steps(checked) == [f"assume:{TARGET}"]

    mend(sb, record_output, report, f"permission:{TARGET}", TARGET)
    code, both = doctor(sb, record_output, TARGET, other)
    assert code == 0, failing(both)
    assert verify(sb, record_output, TARGET, other)[0] == 0


def test_explicit_deny_in_an_identity_policy(sb, record_output):
    by_hand(sb)
    sb.client("iam").put_role_policy(
        RoleName=ROLE, PolicyName="no-assume", PolicyDocument=json.dumps(allow_assume(TARGET, effect="Deny"))
    )
    code, report = doctor(sb, record_output, TARGET)
    assert code == 1
    (broken,) = failing(report)
    assert broken["check"] == f"permission:{TARGET}"
    assert "explicitly denies" in broken["detail"] and "inline:no-assume" in broken["detail"]
    # roleops never removes statements: the fix is the aws command that removes exactly that Deny
    assert (
        broken["fix"] == broken["fix_aws"] == f"aws iam delete-role-policy --role-name {ROLE} --policy-name no-assume"
    )
    assert sts_assume(sb, TARGET) == "AccessDenied"
    code, checked = verify(sb, record_output, TARGET)
    assert code == 1 and failed_steps(checked) == [f"assume:{TARGET}"]

    mend(sb, record_output, report, f"permission:{TARGET}", TARGET)
    assert "assume-target" in sb.client("iam").list_role_policies(RoleName=ROLE)["PolicyNames"]


def test_deny_sharing_a_policy_with_allows_removes_only_the_deny(sb, record_output):
    by_hand(sb)
    both = allow_assume(TARGET)
    both["Statement"].append({"Sid": "NoTarget", **allow_assume(TARGET, effect="Deny")["Statement"][0]})
    sb.client("iam").put_role_policy(RoleName=ROLE, PolicyName="assume-target", PolicyDocument=json.dumps(both))
    code, report = doctor(sb, record_output, TARGET)
    assert code == 1
    assert sts_assume(sb, TARGET) == "AccessDenied"
    assert verify(sb, record_output, TARGET)[0] == 1
    assert failing(report)[0]["fix"].startswith(
        f"aws iam put-role-policy --role-name {ROLE} --policy-name assume-target"
    )

    mend(sb, record_output, report, f"permission:{TARGET}", TARGET)
    kept = sb.client("iam").get_role_policy(RoleName=ROLE, PolicyName="assume-target")["PolicyDocument"]
    assert [s["Effect"] for s in kept["Statement"]] == ["Allow"]


def test_target_trust_missing(sb, record_output):
    by_hand(sb)
    iam = sb.client("iam")
    iam.create_role(RoleName="Auditor", AssumeRolePolicyDocument=json.dumps(EC2_TRUST))
    iam.update_assume_role_policy(RoleName=TARGET, PolicyDocument=json.dumps(trust_for("Auditor")))
    code, report = doctor(sb, record_output, TARGET)
    assert code == 1
    (broken,) = failing(report)
    assert broken["check"] == f"trust:{TARGET}"
    assert broken["fix"].startswith("roleops setup ") and "--adopt" in broken["fix"]
    assert sts_assume(sb, TARGET) == "AccessDenied"
    code, checked = verify(sb, record_output, TARGET)
    assert code == 1 and failed_steps(checked) == [f"assume:{TARGET}"]

    mend(sb, record_output, report, f"trust:{TARGET}", TARGET)
    trust = iam.get_role(RoleName=TARGET)["Role"]["AssumeRolePolicyDocument"]
    assert role_arn("Auditor") in json.dumps(trust)  # another principal is never removed


def test_trust_names_the_unique_id_of_a_deleted_role(sb, record_output):
    """The instance role is deleted and re-created; the target's trust named it by ARN.

    Real IAM then shows the old role's unique id (AROA...) in the trust, which the new role does not match.
    moto keeps the ARN instead (and the sandbox's STS then lets the new role in, unlike AWS). In that case this
    test writes the old role's real unique id into the trust with update-assume-role-policy, which is exactly
    what IAM would show.
    """
    with_setup(sb, record_output, TARGET)
    iam = sb.client("iam")
    old_id = iam.get_role(RoleName=ROLE)["Role"]["RoleId"]
    iam.remove_role_from_instance_profile(InstanceProfileName=ROLE, RoleName=ROLE)
    iam.delete_role_policy(RoleName=ROLE, PolicyName="roleops-assume-roles")
    iam.delete_role(RoleName=ROLE)
    with_setup(sb, record_output, TARGET)  # re-creates the role under the same name
    assert iam.get_role(RoleName=ROLE)["Role"]["RoleId"] != old_id
    shown = json.dumps(iam.get_role(RoleName=TARGET)["Role"]["AssumeRolePolicyDocument"])
    if old_id not in shown:
        assert role_arn(ROLE) in shown  # moto kept the ARN...
        assert sts_assume(sb, TARGET) == "ok"  # ...so the sandbox lets the new role in, where AWS would not
        stale = {**trust_for(ROLE), "Statement": [{**trust_for(ROLE)["Statement"][0], "Principal": {"AWS": old_id}}]}
        iam.update_assume_role_policy(RoleName=TARGET, PolicyDocument=json.dumps(stale))

    code, report = doctor(sb, record_output, TARGET)
    assert code == 1
    (broken,) = failing(report)
    assert broken["check"] == f"trust:{TARGET}"
    assert old_id in broken["detail"] and "deleted" in broken["detail"]
    assert broken["fix"].startswith("roleops setup ")
    assert sts_assume(sb, TARGET) == "AccessDenied"
    code, checked = verify(sb, record_output, TARGET)
    assert code == 1 and failed_steps(checked) == [f"assume:{TARGET}"]

    mend(sb, record_output, report, f"trust:{TARGET}", TARGET)
    # the dangling id is still there (roleops never removes principals): a warning with its clean-up command
    _, report = doctor(sb, record_output, TARGET)
    stale_warning = next(f for f in report["findings"] if f["check"] == f"stale-principal:{TARGET}")
    assert stale_warning["status"] == "warn" and old_id in stale_warning["detail"]
    run_fix(sb, record_output, stale_warning["fix"])
    code, report = doctor(sb, record_output, TARGET)
    assert code == 0 and not [f for f in report["findings"] if f["check"].startswith("stale-principal")]
    assert verify(sb, record_output, TARGET)[0] == 0


@pytest.mark.parametrize("recreate", [False, True], ids=["deleted", "re-created"])
def test_associated_profile_deleted_or_recreated(sb, record_output, recreate):
    """EC2 keeps pointing at the profile it was given; a profile deleted (or deleted and re-created under the
    same name) leaves IMDS answering InstanceProfileNotFound until the association is replaced."""
    with_setup(sb, record_output, TARGET)
    iam = sb.client("iam")
    iam.remove_role_from_instance_profile(InstanceProfileName=ROLE, RoleName=ROLE)
    iam.delete_instance_profile(InstanceProfileName=ROLE)
    if recreate:
        iam.create_instance_profile(InstanceProfileName=ROLE)
        iam.add_role_to_instance_profile(InstanceProfileName=ROLE, RoleName=ROLE)
    code, report = doctor(sb, record_output, TARGET)
    assert code == 1
    (broken,) = failing(report)
    assert broken["check"] == "instance-profile"
    assert "replace-iam-instance-profile-association" in broken["fix"]
    status, body = sb.imds().get("meta-data/iam/info")
    assert status == 200 and json.loads(body)["Code"] == "InstanceProfileNotFound"
    code, checked = verify(sb, record_output, TARGET)
    assert code == 1 and "imds" in failed_steps(checked)

    mend(sb, record_output, report, "instance-profile", TARGET)


# --- further links issue 5 lists ----------------------------------------------------------------------


def test_permissions_boundary_without_assume_role(sb, record_output):
    by_hand(sb)
    iam = sb.client("iam")
    boundary = iam.create_policy(
        PolicyName="only-s3",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        ),
    )["Policy"]["Arn"]
    iam.put_role_permissions_boundary(RoleName=ROLE, PermissionsBoundary=boundary)
    code, report = doctor(sb, record_output, TARGET)
    assert code == 1
    (broken,) = failing(report)
    assert broken["check"] == f"boundary:{TARGET}"
    assert broken["fix"].startswith("aws iam create-policy-version ")
    assert sts_assume(sb, TARGET) == "AccessDenied"
    assert verify(sb, record_output, TARGET)[0] == 1

    mend(sb, record_output, report, f"boundary:{TARGET}", TARGET)
    assert iam.get_role(RoleName=ROLE)["Role"]["PermissionsBoundary"]["PermissionsBoundaryArn"] == boundary


def test_metadata_endpoint_disabled(sb, record_output):
    by_hand(sb)
    sb.client("ec2").modify_instance_metadata_options(InstanceId=sb.instance_id, HttpEndpoint="disabled")
    code, report = doctor(sb, record_output, TARGET)
    assert code == 1
    assert [f["check"] for f in failing(report)] == ["imds-endpoint"]
    proc = roleops(sb, record_output, "verify", *assume_args((TARGET,)), "--output", "json", instance=sb.instance_id)
    assert proc.returncode != 0  # IMDS answers 403 to everything

    mend(sb, record_output, report, "imds-endpoint", TARGET)


@pytest.mark.parametrize("tokens, status", [("required", "fail"), ("optional", "warn")])
def test_hop_limit_for_containers(sb, record_output, tokens, status):
    by_hand(sb)
    sb.client("ec2").modify_instance_metadata_options(InstanceId=sb.instance_id, HttpTokens=tokens)
    code, report = doctor(sb, record_output, TARGET)
    assert next(f for f in report["findings"] if f["check"] == "hop-limit")["status"] == "pass"  # no --containers
    code, report = doctor(sb, record_output, TARGET, extra=("--containers",))
    hop = next(f for f in report["findings"] if f["check"] == "hop-limit")
    assert hop["status"] == status and code == (1 if status == "fail" else 0)
    run_fix(sb, record_output, hop["fix"])
    code, report = doctor(sb, record_output, TARGET, extra=("--containers",))
    assert code == 0 and next(f for f in report["findings"] if f["check"] == "hop-limit")["status"] == "pass"
