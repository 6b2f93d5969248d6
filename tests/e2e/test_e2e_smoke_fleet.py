"""E2E: `roleops smoke` checks a fleet through SSM Run Command on the sandbox, which really runs the script on each
"instance" (a subprocess with that instance's metadata endpoint and no keys).

roleops where the instance has it, the walkthrough's curl + aws commands where it does not, an instance without an
SSM agent reported without sending; the broken link of each instance reaches the operator's table and JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from conftest import SandboxProcess, allow_assume, role_arn
from test_reliability_interrupt import run_roleops

ROLE, TARGET = "ExampleRole", "ExampleAssumedRole"
TARGET_ARN = role_arn(TARGET)


def launch(sb: SandboxProcess, **options: object) -> str:
    instance = sb.control("POST", "instances", dict(options))
    sb.info["instances"].append(instance)
    return instance["instance_id"]


def setup(sb: SandboxProcess, rec: Callable[..., None], *ids: str) -> None:
    args = [a for iid in ids for a in ("--instance-id", iid)]
    proc = run_roleops(rec, sb.env(), "setup", "--instance-role", ROLE, "--assumable-role", TARGET, *args, "--wait")
    assert proc.returncode == 0, proc.stderr


def smoke(sb: SandboxProcess, rec: Callable[..., None], *args: str) -> tuple[int, dict]:
    proc = run_roleops(rec, sb.env(), "smoke", *args, "--output", "json", "--timeout", "60")
    assert "Traceback" not in proc.stderr
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else {}


def by_id(report: dict) -> dict[str, dict]:
    return {i["instance_id"]: i for i in report["instances"]}


@pytest.fixture
def fleet(sb: SandboxProcess, record: Callable[..., None]) -> dict[str, str]:
    ids = {
        "roleops": launch(sb, tags={"app": "web"}),
        "aws-cli": launch(sb, roleops=False, tags={"app": "web"}),
        "no-agent": launch(sb, ssm_agent=False, tags={"app": "web"}),
    }
    setup(sb, record, *ids.values())
    return ids


def test_smoke_checks_each_instance_its_own_way_and_reports_the_unreachable(sb, record, fleet):
    code, report = smoke(sb, record, "--instances-tagged", "app=web", "--assume", TARGET_ARN, "--expect-role", ROLE)
    assert code == 1  # one instance could not be checked
    rows = by_id(report)
    assert rows[fleet["roleops"]]["status"] == "pass"
    assert "default-chain" in [s["step"] for s in rows[fleet["roleops"]]["steps"]]  # roleops verify ran
    assert rows[fleet["aws-cli"]]["status"] == "pass"
    assert [s["step"] for s in rows[fleet["aws-cli"]]["steps"]] == [
        "imds", "caller", f"assume:{TARGET}", f"assumed-caller:{TARGET}"]  # fmt: skip
    assert rows[fleet["no-agent"]]["status"] == "undeliverable"
    assert report["counts"] == {"pass": 2, "undeliverable": 1}
    assert report["ok"] is False and len(report["command_ids"]) == 1


def test_every_instance_passing_is_exit_0(sb, record, fleet):
    code, report = smoke(sb, record, "--instance-id", fleet["roleops"], "--instance-id", fleet["aws-cli"],
                         "--assume", TARGET_ARN)  # fmt: skip
    assert code == 0 and report["ok"] is True and report["counts"] == {"pass": 2}


def test_a_broken_link_reaches_the_operators_table(sb, record, fleet):
    # The instance role may no longer assume the target: both kinds of instance fail at the assume step.
    sb.client("iam").put_role_policy(
        RoleName=ROLE, PolicyName="no-assume", PolicyDocument=json.dumps(allow_assume(TARGET, effect="Deny"))
    )
    code, report = smoke(sb, record, "--instance-id", fleet["roleops"], "--instance-id", fleet["aws-cli"],
                         "--assume", TARGET_ARN)  # fmt: skip
    assert code == 1
    for iid in (fleet["roleops"], fleet["aws-cli"]):
        row = by_id(report)[iid]
        assert row["status"] == "fail" and row["broken_link"] == f"assume:{TARGET}", row
        assert "AccessDenied" in row["message"]

    proc = run_roleops(record, sb.env(), "smoke", "--instance-id", fleet["aws-cli"], "--assume", TARGET_ARN,
                       "--timeout", "60")  # fmt: skip
    assert proc.returncode == 1
    assert f"assume:{TARGET}" in proc.stdout and fleet["aws-cli"] in proc.stdout


def test_remote_roleops_where_roleops_is_missing_is_an_error_row(sb, record, fleet):
    code, report = smoke(sb, record, "--instance-id", fleet["aws-cli"], "--remote", "roleops")
    assert code == 1
    row = by_id(report)[fleet["aws-cli"]]
    assert row["status"] == "error" and "no report" in row["message"]


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((), "no instance given"),
        (("--instance-id", "i-0123456789abcdef0", "--max-errors", "lots"), "--max-errors"),
        (("--instance-id", "i-0123456789abcdef0", "--max-concurrency", "101%"), "--max-concurrency"),
        (("--instance-id", "i-0123456789abcdef0", "--timeout", "5"), "--timeout"),
        (("--instances-tagged", "app=nothing"), "no instance matches"),
    ],
)
def test_bad_input_is_exit_2_and_nothing_is_sent(sb, record, args, field):
    proc = run_roleops(record, sb.env(), "smoke", *args)
    assert proc.returncode == 2 and field in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert sb.client("ssm").list_commands()["Commands"] == []
