"""Bad input through the CLI: exit 2, one line on stderr naming the field, no traceback, no AWS call at all."""

from __future__ import annotations

from typing import Any

import pytest

from roleops.cli import main

GOOD_ARN = "arn:aws:iam::123456789012:role/ExampleAssumedRole"
IID = "i-0123456789abcdef0"

CASES: list[tuple[str, list[str], str]] = [
    # setup: names
    ("role name with space", ["setup", "--instance-role", "bad name", "--assumable-role", "T"], "--instance-role"),
    ("role name too long", ["setup", "--instance-role", "x" * 65, "--assumable-role", "T"], "--instance-role"),
    ("role name empty", ["setup", "--instance-role", "", "--assumable-role", "T"], "--instance-role"),
    ("role name slash", ["setup", "--instance-role", "a/b", "--assumable-role", "T"], "--instance-role"),
    ("assumable role bad", ["setup", "--instance-role", "R", "--assumable-role", "no*pe"], "--assumable-role"),
    (
        "assumable role twice",
        ["setup", "--instance-role", "R", "--assumable-role", "T", "--assumable-role", "t"],
        "--assumable-role",
    ),
    ("assumable is instance role", ["setup", "--instance-role", "R", "--assumable-role", "R"], "--assumable-role"),
    ("missing assumable", ["setup", "--instance-role", "R"], "--assumable-role"),
    # setup / teardown / doctor: other accounts
    (
        "assumable ARN with a short account id",
        ["setup", "--instance-role", "R", "--assumable-role", "arn:aws:iam::12345:role/T"],
        "--assumable-role",
    ),
    (
        "assumable ARN of a user",
        ["setup", "--instance-role", "R", "--assumable-role", "arn:aws:iam::123456789012:user/T"],
        "--assumable-role",
    ),
    (
        "assumable ARN of an unknown partition",
        ["teardown", "--instance-role", "R", "--assumable-role", "arn:aws-xx:iam::123456789012:role/T"],
        "--assumable-role",
    ),
    (
        "target profile with a malformed account id",
        ["setup", "--instance-role", "R", "--assumable-role", "T", "--target-profile", "1234=prod"],
        "--target-profile",
    ),
    (
        "target profile empty",
        ["teardown", "--instance-role", "R", "--target-profile", ""],
        "--target-profile",
    ),
    (
        "target profile with a bad name",
        ["doctor", "--instance-id", IID, "--target-profile", "234567890123=bad name"],
        "--target-profile",
    ),
    # setup: instance ids
    (
        "instance id no prefix",
        ["setup", "--instance-role", "R", "--assumable-role", "T", "--instance-id", "0123"],
        "--instance-id",
    ),
    (
        "instance id uppercase",
        ["setup", "--instance-role", "R", "--assumable-role", "T", "--instance-id", "i-0123456789ABCDEF0"],
        "--instance-id",
    ),
    (
        "instance id short",
        ["setup", "--instance-role", "R", "--assumable-role", "T", "--instance-id", "i-123"],
        "--instance-id",
    ),
    # setup: durations
    (
        "duration too low",
        ["setup", "--instance-role", "R", "--assumable-role", "T", "--max-session-duration", "3599"],
        "--max-session-duration",
    ),
    (
        "duration too high",
        ["setup", "--instance-role", "R", "--assumable-role", "T", "--max-session-duration", "43201"],
        "--max-session-duration",
    ),
    (
        "duration not a number",
        ["setup", "--instance-role", "R", "--assumable-role", "T", "--max-session-duration", "1h"],
        "--max-session-duration",
    ),
    (
        "imdsv2 without instance",
        ["setup", "--instance-role", "R", "--assumable-role", "T", "--require-imdsv2"],
        "--instance-id",
    ),
    # globals
    ("bad region", ["setup", "--instance-role", "R", "--assumable-role", "T", "--region", "mars"], "--region"),
    (
        "bad endpoint",
        ["setup", "--instance-role", "R", "--assumable-role", "T", "--endpoint-url", "ftp://x"],
        "--endpoint-url",
    ),
    ("bad output", ["setup", "--instance-role", "R", "--assumable-role", "T", "--output", "yaml"], "--output"),
    ("unknown command", ["frobnicate"], "frobnicate"),
    # associate / teardown
    ("associate bad id", ["associate", "--instance-id", "x", "--instance-profile", "P"], "--instance-id"),
    ("associate bad profile", ["associate", "--instance-id", IID, "--instance-profile", "p q"], "--instance-profile"),
    ("teardown bad role", ["teardown", "--instance-role", "r!"], "--instance-role"),
    # verify / creds: ARNs, session names, external ids, durations, endpoints
    ("verify arn wrong service", ["verify", "--assume", "arn:aws:s3:::bucket"], "--assume"),
    ("verify arn bad partition", ["verify", "--assume", "arn:aws-xx:iam::123456789012:role/R"], "--assume"),
    ("verify arn short account", ["verify", "--assume", "arn:aws:iam::1234:role/R"], "--assume"),
    ("verify arn user", ["verify", "--assume", "arn:aws:iam::123456789012:user/R"], "--assume"),
    ("verify session name short", ["verify", "--assume", GOOD_ARN, "--session-name", "a"], "--session-name"),
    ("verify session name bad char", ["verify", "--session-name", "my session"], "--session-name"),
    ("verify session name long", ["verify", "--session-name", "s" * 65], "--session-name"),
    ("verify external id short", ["verify", "--external-id", "x"], "--external-id"),
    ("verify external id bad char", ["verify", "--external-id", "a b c"], "--external-id"),
    ("verify duration low", ["verify", "--duration", "899"], "--duration"),
    ("verify duration high", ["verify", "--duration", "43201"], "--duration"),
    ("verify bad imds endpoint", ["verify", "--imds-endpoint", "not a url"], "--imds-endpoint"),
    ("verify expect role bad", ["verify", "--expect-role", "a b"], "--expect-role"),
    ("creds bad format", ["creds", "--format", "yaml"], "--format"),
    ("creds two assumes", ["creds", "--assume", GOOD_ARN, "--assume", GOOD_ARN], "--assume"),
    ("creds bad arn", ["creds", "--assume", "ExampleAssumedRole"], "--assume"),
    # doctor / sandbox
    ("doctor bad id", ["doctor", "--instance-id", "i-zz"], "--instance-id"),
    ("doctor bad arn", ["doctor", "--instance-id", IID, "--assume", "arn:aws:iam::123456789012:role/"], "--assume"),
    (
        "setup malformed tag filter",
        ["setup", "--instance-role", "R", "--assumable-role", "T", "--instances-tagged", "novalue"],
        "--instances-tagged",
    ),
    (
        "setup concurrency over 32",
        [
            "setup",
            "--instance-role",
            "R",
            "--assumable-role",
            "T",
            "--instance-id",
            "i-0123456789abcdef0",
            "--concurrency",
            "33",
        ],
        "--concurrency",
    ),
    (
        "setup same instance twice",
        [
            "setup",
            "--instance-role",
            "R",
            "--assumable-role",
            "T",
            "--instance-id",
            "i-0123456789abcdef0",
            "--instance-id",
            "i-0123456789abcdef0",
        ],
        "--instance-id",
    ),
    (
        "setup bad launch template",
        ["setup", "--instance-role", "R", "--assumable-role", "T", "--launch-template", "x"],
        "--launch-template",
    ),
    ("smoke bad rate", ["smoke", "--instance-id", "i-0123456789abcdef0", "--max-errors", "lots"], "--max-errors"),
    (
        "creds profile bad name",
        ["creds", "--format", "profile", "--assume", "arn:aws:iam::123456789012:role/R", "--profile-name", "a b"],
        "--profile-name",
    ),
    ("sandbox bad port", ["sandbox", "--port", "70000"], "--port"),
    ("sandbox bad throttle", ["sandbox", "--throttle", "1.5"], "--throttle"),
]


@pytest.fixture
def no_aws_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record (and refuse) any API call botocore would make, and any IMDS request."""
    import botocore.client

    made: list[str] = []

    def refuse(self: Any, operation_name: str, api_params: Any) -> Any:
        made.append(operation_name)
        raise AssertionError(f"AWS call {operation_name} made on bad input")

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", refuse)
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9/")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return made


@pytest.mark.parametrize(("name", "argv", "field"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_exit_2_one_line_no_call(
    name: str, argv: list[str], field: str, no_aws_calls: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2, captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("roleops: error: ")
    assert field in lines[0]
    assert "Traceback" not in captured.err
    assert captured.out == ""
    assert no_aws_calls == []


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "setup" in capsys.readouterr().out


def test_global_options_after_command(no_aws_calls: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    # --region given after the sub-command is validated just like before it
    assert main(["setup", "--instance-role", "R", "--assumable-role", "T", "--region", "nowhere"]) == 2
    assert main(["--region", "nowhere", "setup", "--instance-role", "R", "--assumable-role", "T"]) == 2
    assert "--region" in capsys.readouterr().err
