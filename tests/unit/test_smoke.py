"""Smoke check (pure parts): the script each instance runs, and reading its output into verify's steps."""

from __future__ import annotations

import json

import pytest

from roleops.smoke import (
    END,
    MARK,
    SmokeRequest,
    SmokeStatus,
    check_from_invocation,
    check_from_output,
    remote_commands,
)

TARGET = "arn:aws:iam::123456789012:role/ExampleAssumedRole"
IID = "i-0123456789abcdef0"
REQ = SmokeRequest(assume=(TARGET,), expect_role="ExampleRole")


def aws_cli_output(*, token: int = 0, role: str = "ExampleRole", caller_arn: str | None = None, assume_rc: int = 0,
                   assumed_arn: str | None = None) -> str:  # fmt: skip
    caller_arn = caller_arn or f"arn:aws:sts::123456789012:assumed-role/{role}/{IID}"
    assumed_arn = assumed_arn or "arn:aws:sts::123456789012:assumed-role/ExampleAssumedRole/roleops-smoke"
    lines = [
        f"{MARK} mode=aws-cli",
        f"{MARK} step imds-token rc={token}",
        f"{MARK} step instance-id rc=0 id={IID}",
        f"{MARK} step imds-role rc=0 role={role}",
        f"{MARK} step caller rc=0",
        json.dumps({"Arn": caller_arn, "Account": "123456789012"}),
        f"{MARK} step assume:ExampleAssumedRole rc={assume_rc}",
    ]
    if assume_rc:
        lines.append("An error occurred (AccessDenied) when calling the AssumeRole operation: User: ... not authorized")
    else:
        lines += [f"{MARK} step assumed-caller:ExampleAssumedRole rc=0", json.dumps({"Arn": assumed_arn})]
    return "\n".join([*lines, END]) + "\n"


def statuses(check) -> list[tuple[str, str]]:
    return [(s["step"], s["status"]) for s in check.steps]


def test_every_mode_ends_with_the_end_mark_and_auto_decides_on_the_instance() -> None:
    for mode in ("auto", "roleops", "aws-cli"):
        commands = remote_commands(SmokeRequest(assume=(TARGET,), remote=mode))
        assert commands[-1] == f"echo '{END}'"
    auto = "\n".join(remote_commands(SmokeRequest(remote="auto")))
    assert auto.startswith("if command -v roleops") and "mode=roleops" in auto and "mode=aws-cli" in auto


def test_the_aws_cli_script_prints_assumed_keys_never() -> None:
    script = "\n".join(remote_commands(SmokeRequest(assume=(TARGET,), remote="aws-cli")))
    # the assume-role answer (the keys) is echoed only when the call failed; on success it feeds the next command
    assert '[ $RC -ne 0 ] && echo "$OUT"' in script
    assert "SecretAccessKey" in script and "--query 'Credentials." in script
    assert 'echo "$OUT"\n' not in script.replace('echo "$OUT" | head -c 1500', "")


def test_aws_cli_output_that_passes() -> None:
    check = check_from_output(IID, aws_cli_output(), REQ)
    assert check.status == SmokeStatus.PASS and check.mode == "aws-cli"
    assert statuses(check) == [("imds", "pass"), ("caller", "pass"), ("assume:ExampleAssumedRole", "pass"),
                               ("assumed-caller:ExampleAssumedRole", "pass")]  # fmt: skip


@pytest.mark.parametrize(
    ("output", "broken", "says"),
    [
        (aws_cli_output(token=22), "imds", "IMDSv2 token"),
        (aws_cli_output(role=""), "imds", "no role"),
        (aws_cli_output(role="OtherRole"), "imds", "--expect-role wants ExampleRole"),
        (aws_cli_output(caller_arn="arn:aws:iam::123456789012:user/someone"), "caller", "not the instance role"),
        (aws_cli_output(assume_rc=254), "assume:ExampleAssumedRole", "AccessDenied"),
        (aws_cli_output(assumed_arn="arn:aws:sts::123456789012:assumed-role/Other/s"),
         "assumed-caller:ExampleAssumedRole", "expected"),
    ],
)  # fmt: skip
def test_aws_cli_output_names_the_broken_link(output: str, broken: str, says: str) -> None:
    check = check_from_output(IID, output, REQ)
    assert check.status == SmokeStatus.FAIL and check.broken_link == broken and says in check.message
    names = [s["step"] for s in check.steps]
    later = check.steps[names.index(broken) + 1 :]
    assert all(s["status"] == "skip" for s in later)  # what depends on the broken link is skipped


def test_roleops_output_is_verifys_report() -> None:
    report = {"ok": False, "steps": [
        {"step": "imds", "status": "pass", "message": "ok", "hint": ""},
        {"step": "caller", "status": "fail", "message": "STS says no", "hint": "check the clock"},
    ]}  # fmt: skip
    out = f"{MARK} mode=roleops\n{json.dumps(report, indent=2)}\n{MARK} exit=1\n{END}\n"
    check = check_from_output(IID, out, REQ)
    assert (check.status, check.broken_link, check.mode) == (SmokeStatus.FAIL, "caller", "roleops")
    assert check.message == "STS says no; hint: check the clock"
    broken = check_from_output(IID, f"{MARK} mode=roleops\nTraceback...\n{MARK} exit=2\n{END}\n", REQ)
    assert broken.status == SmokeStatus.ERROR and "exit 2" in broken.message


@pytest.mark.parametrize(
    ("status", "details", "expected"),
    [
        ("Undeliverable", "Undeliverable", SmokeStatus.UNDELIVERABLE),
        ("Failed", "Undeliverable", SmokeStatus.UNDELIVERABLE),
        ("TimedOut", "ExecutionTimedOut", SmokeStatus.TIMED_OUT),
        ("Cancelled", "Cancelled", SmokeStatus.ERROR),
        ("Success", "Success", SmokeStatus.PASS),
        ("Failed", "Failed", SmokeStatus.ERROR),  # nothing readable was printed
    ],
)
def test_ssm_statuses(status: str, details: str, expected: str) -> None:
    stdout = aws_cli_output() if status == "Success" else "sh: 1: oops"
    check = check_from_invocation({"InstanceId": IID, "Status": status, "StatusDetails": details}, stdout, REQ)
    assert check.status == expected
