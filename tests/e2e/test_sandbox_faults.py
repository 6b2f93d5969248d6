"""E2E: every fault mode of the sandbox, observable over HTTP, with small delays."""

from __future__ import annotations

import json
import time

import pytest
from botocore.exceptions import ClientError
from conftest import ACCOUNT, DEFAULT_FAULTS, allow_assume, http, role_arn, trust_for

DELAY = 1.5
POLL_LIMIT = 40  # polls of 0.1 s: every wait below ends within 4 s


def error_of(call, *args, **kwargs) -> tuple[str, int]:
    with pytest.raises(ClientError) as info:
        call(*args, **kwargs)
    response = info.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def eventually(check) -> tuple[int, object]:
    """Poll `check` (returns a value or raises/returns None) until it succeeds; (polls, value)."""
    for attempt in range(POLL_LIMIT):
        try:
            value = check()
        except ClientError:
            value = None
        if value:
            return attempt, value
        time.sleep(0.1)
    raise AssertionError(f"still failing after {POLL_LIMIT} polls")


def test_faults_endpoint_reads_validates_and_sets(sb):
    assert sb.control("GET", "faults") == DEFAULT_FAULTS
    assert sb.set_faults(imds_latency=0.2)["imds_latency"] == 0.2
    for bad in ({"no_such_fault": 1}, {"throttle_fraction": 2}, {"credentials_delay": -1}, {"imds_malformed": "maybe"}):
        status, body = http(
            "POST", f"{sb.endpoint_url}/_roleops/faults", headers={"Content-Type": "application/json"},
            body=json.dumps(bad).encode(),
        )  # fmt: skip
        assert status == 400 and "error" in json.loads(body)
    assert sb.control("GET", "faults")["imds_latency"] == 0.2  # a refused change changes nothing


def test_throttling_shows_each_services_error_code(sb):
    sb.set_faults(throttle_fraction=1.0)
    assert error_of(sb.client("iam", attempts=1).list_roles) == ("Throttling", 400)
    assert error_of(sb.client("sts", attempts=1).get_caller_identity) == ("Throttling", 400)
    assert error_of(sb.client("ec2", attempts=1).describe_instances) == ("RequestLimitExceeded", 503)
    assert sb.imds().get("meta-data/instance-id")[0] == 200  # IMDS is not an API: never throttled
    sb.set_faults(throttle_fraction=0.0)
    assert sb.client("iam", attempts=1).list_roles()["Roles"] == []


def test_throttling_is_a_deterministic_fraction(sb):
    def pattern() -> list[bool]:
        sb.reset()  # reseeds the dice
        sb.set_faults(throttle_fraction=0.5)
        iam = sb.client("iam", attempts=1)
        outcomes = []
        for _ in range(12):
            try:
                iam.list_roles()
                outcomes.append(True)
            except ClientError:
                outcomes.append(False)
        sb.set_faults(throttle_fraction=0.0)
        return outcomes

    first = pattern()
    assert first == pattern()
    assert True in first and False in first


def test_profile_propagation_delay(sb):
    sb.set_faults(profile_propagation_delay=DELAY)
    sb.create_instance_role("ExampleRole")
    ec2 = sb.client("ec2", attempts=1)
    with pytest.raises(ClientError) as info:
        ec2.associate_iam_instance_profile(InstanceId=sb.instance_id, IamInstanceProfile={"Name": "ExampleRole"})
    assert info.value.response["Error"] == {
        "Code": "InvalidParameterValue",
        "Message": "Value (ExampleRole) for parameter iamInstanceProfile.name is invalid. "
        "Invalid IAM Instance Profile name",
    }
    arn = f"arn:aws:iam::{ACCOUNT}:instance-profile/ExampleRole"
    by_arn = {"InstanceId": sb.instance_id, "IamInstanceProfile": {"Arn": arn}}
    assert error_of(ec2.associate_iam_instance_profile, **by_arn) == ("InvalidParameterValue", 400)
    polls, association = eventually(lambda: ec2.associate_iam_instance_profile(**by_arn))
    assert polls > 0
    assert association["IamInstanceProfileAssociation"]["InstanceId"] == sb.instance_id


def test_trust_propagation_delay(sb):
    sb.create_instance_role("ExampleRole")
    sb.associate("ExampleRole")
    iam = sb.client("iam")
    iam.put_role_policy(RoleName="ExampleRole", PolicyName="assume", PolicyDocument=json.dumps(allow_assume("Target")))
    document = sb.imds().credentials("ExampleRole")  # minted before the fault: EC2's trust is old enough
    sb.set_faults(trust_propagation_delay=DELAY)
    iam.create_role(RoleName="Target", AssumeRolePolicyDocument=json.dumps(trust_for("ExampleRole")))
    sts = sb.client_from_document("sts", document, attempts=1)
    assert error_of(sts.assume_role, RoleArn=role_arn("Target"), RoleSessionName="s1") == ("AccessDenied", 403)
    polls, result = eventually(lambda: sts.assume_role(RoleArn=role_arn("Target"), RoleSessionName="s1"))
    assert polls > 0 and result["AssumedRoleUser"]["Arn"].endswith("assumed-role/Target/s1")
    # A changed trust: the old one (which allows) is honoured until the new one (which does not) arrives.
    iam.update_assume_role_policy(RoleName="Target", PolicyDocument=json.dumps(trust_for("Target")))
    assert sts.assume_role(RoleArn=role_arn("Target"), RoleSessionName="s1")
    time.sleep(DELAY + 0.2)
    assert error_of(sts.assume_role, RoleArn=role_arn("Target"), RoleSessionName="s1")[0] == "AccessDenied"


def test_credentials_delay(sb):
    sb.set_faults(credentials_delay=DELAY)
    sb.create_instance_role("ExampleRole")
    sb.associate("ExampleRole")
    imds = sb.imds()
    assert imds.get("meta-data/iam/security-credentials/")[0] == 404
    assert imds.get("meta-data/iam/security-credentials/ExampleRole")[0] == 404
    polls, (_, role) = eventually(lambda: (r := imds.get("meta-data/iam/security-credentials/"))[0] == 200 and r)
    assert polls > 0 and role == "ExampleRole"
    assert imds.credentials("ExampleRole")["Code"] == "Success"


def test_imds_errors_and_latency(sb):
    sb.set_faults(imds_error_rate=1.0)
    imds = sb.imds()
    status, token = imds.token()
    assert status == 200  # only GETs fail
    assert imds.get("meta-data/instance-id", token=token)[0] == 500
    sb.set_faults(imds_error_rate=0.0, imds_latency=0.5)
    started = time.monotonic()
    assert imds.get("meta-data/instance-id", token=token) == (200, sb.instance_id)
    assert time.monotonic() - started >= 0.5


def test_imds_malformed_credential_document(sb):
    sb.create_instance_role("ExampleRole")
    sb.associate("ExampleRole")
    sb.set_faults(imds_malformed=True)
    status, body = sb.imds().get("meta-data/iam/security-credentials/ExampleRole")
    assert status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)
    assert not any(secret in body for secret in sb.secrets())
    sb.set_faults(imds_malformed=False)
    assert sb.imds().credentials("ExampleRole")["Code"] == "Success"
