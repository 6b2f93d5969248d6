"""E2E: `roleops export` templates deployed on a two-account sandbox: a stack in the instance account, a
self-managed StackSet into the second, and the chain verified on the instance; and the template of a setup
compared with what that setup makes. Every template is linted with cfn-lint."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

from conftest import SandboxProcess, admin_keys, deploy_stack_set
from templatelint import lint
from test_reliability_interrupt import run_roleops

HOME, OTHER = "123456789012", "234567890123"
INSTANCE_ROLE, READER, TARGET = "BuildBox", "Reader", "Deploy"
TARGET_ARN = f"arn:aws:iam::{OTHER}:role/{TARGET}"
READER_ARN = f"arn:aws:iam::{HOME}:role/{READER}"
TIMEOUT = 120
WAIT_SECONDS = 30.0


def roleops(record, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    proc = run_roleops(record, env, *args, timeout=TIMEOUT)
    assert "Traceback" not in proc.stderr
    return proc


def exported(record, env: dict[str, str], *args: str) -> str:
    """`roleops export ARGS --format cloudformation`: the template's text, cfn-lint clean."""
    proc = roleops(record, env, "export", "--instance-role", INSTANCE_ROLE, *args, "--format", "cloudformation")
    assert proc.returncode == 0, proc.stderr
    assert lint(proc.stdout) == []
    return proc.stdout


def deploy_stack(sb: SandboxProcess, name: str, body: str) -> dict[str, str]:
    """create-stack --capabilities CAPABILITY_NAMED_IAM in the first account; its outputs."""
    cfn = sb.client("cloudformation")
    cfn.create_stack(StackName=name, TemplateBody=body, Capabilities=["CAPABILITY_NAMED_IAM"])
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
        if not stack["StackStatus"].endswith("IN_PROGRESS"):
            break
        assert time.monotonic() < deadline, stack["StackStatus"]
        time.sleep(0.2)
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def state(sb: SandboxProcess) -> dict[str, Any]:
    """The roles (trust, MaxSessionDuration, roleops tag, inline policies) of both accounts and the profile."""
    found: dict[str, Any] = {}
    for index in (0, 1):
        iam = sb.client("iam", **admin_keys(sb, index))
        for role in iam.list_roles()["Roles"]:
            name = role["RoleName"]
            full = iam.get_role(RoleName=name)["Role"]
            inline = {
                p: iam.get_role_policy(RoleName=name, PolicyName=p)["PolicyDocument"]
                for p in iam.list_role_policies(RoleName=name)["PolicyNames"]
            }
            for doc in inline.values():
                for statement in doc["Statement"]:
                    statement["Resource"] = sorted(statement["Resource"])
            tags = full.get("Tags", [])
            found[f"{index}:{name}"] = {
                "arn": full["Arn"],
                "trust": full["AssumeRolePolicyDocument"],
                "max_session_duration": full.get("MaxSessionDuration"),
                # setup's tag; the stack's own (roleops:stack) is compared apart
                "tags": [t for t in tags if t["Key"] != "roleops:stack"],
                "stack": next((t["Value"] for t in tags if t["Key"] == "roleops:stack"), None),
                "inline": inline,
            }
        for profile in iam.list_instance_profiles()["InstanceProfiles"]:
            found[f"{index}:profile:{profile['InstanceProfileName']}"] = [r["RoleName"] for r in profile["Roles"]]
    return found


def test_stack_and_stack_set_deployed_then_the_chain_verifies(sb2, operator, record):
    home = exported(record, operator, "--assumable-role", READER, "--assumable-role", TARGET_ARN)
    target = exported(record, operator, "--assumable-role", TARGET_ARN, "--target-account", OTHER)
    assert json.loads(target)["Parameters"]["InstanceRoleArn"]["Default"] == f"arn:aws:iam::{HOME}:role/{INSTANCE_ROLE}"

    outputs = deploy_stack(sb2, "roleops-buildbox", home)  # first: the target's trust names the instance role
    assert outputs["InstanceProfileName"] == INSTANCE_ROLE
    assert outputs["InstanceRoleArn"] == f"arn:aws:iam::{HOME}:role/{INSTANCE_ROLE}"
    assert outputs["AssumableRoleReaderArn"] == READER_ARN
    assert deploy_stack_set(sb2, "roleops-deploy-roles", target, OTHER)["Status"] == "SUCCEEDED"

    assoc = ["associate", "--instance-id", sb2.instance_id, "--instance-profile", outputs["InstanceProfileName"]]
    assert roleops(record, operator, *assoc, "--wait").returncode == 0
    verify = ["verify", "--assume", READER_ARN, "--assume", TARGET_ARN, "--output", "json"]
    proc = roleops(record, sb2.env(sb2.instance_id), *verify)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["ok"], report
    accounts = [s["account"] for s in report["steps"] if s["step"].startswith("assumed-caller:")]
    assert accounts == [HOME, OTHER]

    doctor = ["doctor", "--instance-id", sb2.instance_id, "--assume", READER_ARN, "--assume", TARGET_ARN]
    proc = roleops(record, operator, *doctor, "--target-profile", "prod", "--output", "json")
    findings = json.loads(proc.stdout)["findings"]
    assert proc.returncode == 0, findings
    assert {f["status"] for f in findings if f["check"].startswith(("trust:", "permission:"))} == {"pass"}

    # an old runbook's teardown leaves the stacks' roles (and the untagged profile) to the stacks
    down = ["teardown", "--instance-role", INSTANCE_ROLE, "--assumable-role", READER, "--assumable-role", TARGET_ARN]
    proc = roleops(record, operator, *down, "--target-profile", "prod", "--output", "json")
    assert proc.returncode == 0, proc.stderr
    rows = {c["resource"]: (c["action"], c["detail"]) for c in json.loads(proc.stdout)["changes"]}
    for role in (INSTANCE_ROLE, READER, TARGET):
        assert rows[f"role {role}"][0] == "unchanged" and "CloudFormation stack" in rows[f"role {role}"][1]
    assert rows[f"instance-profile {INSTANCE_ROLE}"][0] == "unchanged"
    assert sb2.client("iam").get_role(RoleName=INSTANCE_ROLE)


def test_the_export_of_a_setup_declares_what_that_setup_makes(sb2, operator, record):
    roles = ["--assumable-role", READER, "--assumable-role", TARGET_ARN, "--max-session-duration", "7200"]
    setup = ["setup", "--instance-role", INSTANCE_ROLE, *roles, "--target-profile", "prod"]
    assert roleops(record, operator, *setup).returncode == 0
    made = state(sb2)

    sb2.reset()  # a fresh pair of accounts: the same roles, this time from the templates
    home = exported(record, operator, *roles)
    target = exported(record, operator, "--assumable-role", TARGET_ARN, "--max-session-duration", "7200",
                      "--target-account", OTHER)  # fmt: skip
    deploy_stack(sb2, "roleops-buildbox", home)
    assert deploy_stack_set(sb2, "roleops-deploy-roles", target, OTHER)["Status"] == "SUCCEEDED"
    declared = state(sb2)

    assert (
        set(declared)
        == set(made)
        == {
            f"0:{INSTANCE_ROLE}",
            f"0:{READER}",
            f"1:{TARGET}",
            f"0:profile:{INSTANCE_ROLE}",
        }
    )
    # same trusts, policies, durations and tags, structurally; each role also names the stack that owns it
    stacks = {key: role.pop("stack") for key, role in declared.items() if key.split(":")[1] != "profile"}
    assert stacks[f"0:{INSTANCE_ROLE}"] == stacks[f"0:{READER}"] == "roleops-buildbox"
    assert stacks[f"1:{TARGET}"].startswith("StackSet")  # the stack a StackSet made in the target account
    assert {k: r.pop("stack") for k, r in made.items() if k.split(":")[1] != "profile"} == dict.fromkeys(stacks)
    assert declared == made
    # and setup, run over the deployed stacks, finds nothing to do (the profile is CloudFormation's: --adopt)
    proc = roleops(record, operator, *setup, "--adopt", "--dry-run", "--output", "json")
    assert proc.returncode == 0, proc.stderr
    assert {c["action"] for c in json.loads(proc.stdout)["changes"]} == {"unchanged"}


def test_a_target_account_equal_to_the_instance_account_prints_nothing(sb2, operator, record):
    """Which account is the instance role's is asked of STS with the operator's credentials (the sandbox's first)."""
    args = ["--assumable-role", READER, "--target-account", HOME, "--format", "cloudformation"]
    proc = roleops(record, operator, "export", "--instance-role", INSTANCE_ROLE, *args)
    assert proc.returncode == 2 and proc.stdout == ""
    assert f"--target-account {HOME} is the instance role's own account" in proc.stderr
    assert proc.stderr.count("\n") == 1
