"""Errors moto cannot produce, through botocore's Stubber: propagation retries and AWS error hints."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from roleops.clients import Clients
from roleops.converge import Context
from roleops.errors import AwsError, PropagationTimeout
from roleops.operations import Associate


class _Reporter:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def waiting(self, message: str) -> Any:
        import contextlib

        self.messages.append(message)
        return contextlib.nullcontext()


def _ctx(timeout: float = 60.0) -> tuple[Context, Any, list[float]]:
    session = boto3.Session(aws_access_key_id="a", aws_secret_access_key="b", region_name="us-east-1")
    clients = Clients(session)
    ec2 = clients.ec2()
    slept: list[float] = []
    clock = {"t": 0.0}

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock["t"] += seconds

    ctx = Context(
        clients=clients, reporter=_Reporter(), propagation_timeout=timeout, sleep=sleep, clock=lambda: clock["t"]
    )
    return ctx, ec2, slept


INVALID_PROFILE = (
    "InvalidParameterValue",
    "Value (ExampleRole) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name",
)
ASSOC = {
    "IamInstanceProfileAssociation": {
        "AssociationId": "iip-assoc-0123456789abcdef0",
        "InstanceId": "i-0123456789abcdef0",
        "State": "associating",
        "IamInstanceProfile": {"Arn": "arn:aws:iam::123456789012:instance-profile/ExampleRole", "Id": "AIPAEXAMPLE"},
    }
}


def test_fresh_profile_is_retried_with_backoff_then_associates() -> None:
    ctx, ec2, slept = _ctx()
    with Stubber(ec2) as stub:
        for _ in range(3):
            stub.add_client_error("associate_iam_instance_profile", *INVALID_PROFILE, http_status_code=400)
        stub.add_response("associate_iam_instance_profile", ASSOC)
        Associate(instance_id="i-0123456789abcdef0", profile="ExampleRole").apply(ctx)
        stub.assert_no_pending_responses()
    assert slept == [0.5, 1.0, 2.0]  # bounded, doubling backoff
    assert ctx.reporter.messages == ["waiting for IAM to propagate: profile ExampleRole for i-0123456789abcdef0"]


def test_propagation_gives_up_at_the_timeout_with_exit_3() -> None:
    ctx, ec2, slept = _ctx(timeout=4.0)
    with Stubber(ec2) as stub:
        for _ in range(10):
            stub.add_client_error("associate_iam_instance_profile", *INVALID_PROFILE, http_status_code=400)
        with pytest.raises(PropagationTimeout) as info:
            Associate(instance_id="i-0123456789abcdef0", profile="ExampleRole").apply(ctx)
    assert info.value.exit_code == 3
    assert sum(slept) <= 4.0
    assert "--propagation-timeout" in str(info.value)


def test_other_errors_are_not_retried() -> None:
    ctx, ec2, slept = _ctx()
    with Stubber(ec2) as stub:
        stub.add_client_error(
            "associate_iam_instance_profile",
            "IncorrectState",
            "There is an existing association for instance i-0123456789abcdef0",
            400,
        )
        with pytest.raises(AwsError) as info:
            Associate(instance_id="i-0123456789abcdef0", profile="ExampleRole").apply(ctx)
    assert slept == []
    assert info.value.code == "IncorrectState"
    assert "roleops associate" in str(info.value)  # the hint


@pytest.mark.parametrize(
    ("code", "hint_part"),
    [
        ("AccessDenied", "iam:CreateRole"),
        ("Throttling", "AWS_MAX_ATTEMPTS"),
        ("InvalidClientTokenId", "--profile"),
        ("ExpiredToken", "refresh"),
    ],
)
def test_aws_errors_carry_operation_code_message_and_hint(code: str, hint_part: str) -> None:
    session = boto3.Session(aws_access_key_id="a", aws_secret_access_key="b", region_name="us-east-1")
    iam = Clients(session).iam()
    from roleops import aws

    with Stubber(iam) as stub:
        stub.add_client_error("create_role", code, "the message AWS sent", 403)
        with pytest.raises(AwsError) as info:
            aws.create_role(iam, "ExampleRole", {"Version": "2012-10-17", "Statement": []})
    text = info.value.one_line()
    assert text.startswith("iam:CreateRole failed: ")
    assert f"{code}: the message AWS sent" in text
    assert hint_part in text
    assert info.value.exit_code == 3


def test_smoke_reports_an_instance_that_left_ssm_before_the_send_and_sends_to_the_rest() -> None:
    """SSM refuses a whole SendCommand with InvalidInstanceId when one instance left it between the listing and the
    send (stopped, terminated): that instance is reported, the others still get the command."""
    from roleops.smoke import SmokeRequest, SmokeStatus, _send

    session = boto3.Session(aws_access_key_id="a", aws_secret_access_key="b", region_name="us-east-1")
    ssm = Clients(session).ssm()
    gone, alive = "i-0123456789abcdef0", "i-0fedcba9876543210"
    checks: dict = {}
    with Stubber(ssm) as stub:
        stub.add_client_error("send_command", "InvalidInstanceId", "Instances not in a valid state", 400)
        stub.add_response(
            "describe_instance_information",
            {"InstanceInformationList": [{"InstanceId": alive, "PingStatus": "Online"}]},
        )
        stub.add_response("send_command", {"Command": {"CommandId": "0687abba-9f8f-4cbc-b508-e3a8381aa440"}})
        command_id = _send(ssm, SmokeRequest(), [gone, alive], ["echo hi"], checks)
        stub.assert_no_pending_responses()
    assert command_id == "0687abba-9f8f-4cbc-b508-e3a8381aa440"
    assert checks[gone].status == SmokeStatus.UNDELIVERABLE and "InvalidInstanceId" in checks[gone].message
    assert alive not in checks
