"""Unit tests for roleops.creds: getting credentials (moto + fake IMDS) and their exact output shapes."""

from __future__ import annotations

import json
import shlex
import subprocess
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from roleops.clients import Clients
from roleops.creds import Credentials, format_credentials, get_credentials
from roleops.errors import AwsError, EnvironmentProblem, UsageError, ValidationError

try:  # shared fixtures: the fake IMDS and the moto world
    from .test_imds import INSTANCE_ID, credential_doc
    from .test_verify import ACCOUNT, ROLE, TARGET, TARGET_ARN, World, world  # noqa: F401 - pytest fixture
except ImportError:
    from test_imds import INSTANCE_ID, credential_doc
    from test_verify import ACCOUNT, ROLE, TARGET, TARGET_ARN, World, world  # noqa: F401

EXPIRY = datetime(2018, 1, 26, 5, 40, 31, tzinfo=timezone.utc)
CREDS = Credentials(
    access_key_id="AKJBD787KHV7JHV7JGC9",
    secret_access_key="oqfqoufbqow/qwobOUBuIViyciycIY7ivy7gcUCj",
    session_token="FQoDYXdzEID//////////wEaDMb+nhXW1CzKSssr7iK3A6xOpwS5AQ+Rx/3Zsv=",
    expiration=EXPIRY,
)


# --- formats: exact shapes ------------------------------------------------------------------------


def test_env_format_matches_aws_cli_export_credentials() -> None:
    assert format_credentials(CREDS, "env") == (
        "export AWS_ACCESS_KEY_ID=AKJBD787KHV7JHV7JGC9\n"
        "export AWS_SECRET_ACCESS_KEY=oqfqoufbqow/qwobOUBuIViyciycIY7ivy7gcUCj\n"
        "export AWS_SESSION_TOKEN=FQoDYXdzEID//////////wEaDMb+nhXW1CzKSssr7iK3A6xOpwS5AQ+Rx/3Zsv=\n"
        "export AWS_CREDENTIAL_EXPIRATION=2018-01-26T05:40:31+00:00\n"
    )


def test_env_no_export_format() -> None:
    assert format_credentials(CREDS, "env-no-export") == (
        "AWS_ACCESS_KEY_ID=AKJBD787KHV7JHV7JGC9\n"
        "AWS_SECRET_ACCESS_KEY=oqfqoufbqow/qwobOUBuIViyciycIY7ivy7gcUCj\n"
        "AWS_SESSION_TOKEN=FQoDYXdzEID//////////wEaDMb+nhXW1CzKSssr7iK3A6xOpwS5AQ+Rx/3Zsv=\n"
        "AWS_CREDENTIAL_EXPIRATION=2018-01-26T05:40:31+00:00\n"
    )


def test_json_format() -> None:
    text = format_credentials(CREDS, "json")
    assert text.endswith("}\n")
    doc = json.loads(text)
    assert list(doc) == ["AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"]
    assert doc == {
        "AccessKeyId": CREDS.access_key_id,
        "SecretAccessKey": CREDS.secret_access_key,
        "SessionToken": CREDS.session_token,
        "Expiration": "2018-01-26T05:40:31+00:00",
    }


def test_process_format_is_credential_process_version_1() -> None:
    text = format_credentials(CREDS, "process")
    doc = json.loads(text)
    assert list(doc) == ["Version", "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"]
    assert doc["Version"] == 1 and doc["AccessKeyId"] == CREDS.access_key_id
    assert text.startswith('{\n  "Version": 1,\n')  # the AWS CLI's indent=2 layout


def test_botocore_accepts_the_process_output(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    future = Credentials(
        access_key_id="ASIAEXAMPLEPROCESS01",
        secret_access_key="process-secret",
        session_token="process-token",
        expiration=datetime.now(timezone.utc) + timedelta(hours=1),
    )
    out = tmp_path / "creds.json"
    out.write_text(format_credentials(future, "process"))
    config = tmp_path / "config"
    config.write_text(f"[profile p]\ncredential_process = cat {out}\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    frozen = boto3.Session(profile_name="p").get_credentials().get_frozen_credentials()
    assert (frozen.access_key, frozen.secret_key, frozen.token) == (
        "ASIAEXAMPLEPROCESS01",
        "process-secret",
        "process-token",
    )


def test_env_values_are_shell_quoted_and_survive_a_shell() -> None:
    odd = Credentials(access_key_id="AKIA EXAMPLE", secret_access_key="it's $(rm -rf /); `x`", session_token=None)
    text = format_credentials(odd, "env")
    assert "AWS_SESSION_TOKEN" not in text and "AWS_CREDENTIAL_EXPIRATION" not in text  # omitted, as the AWS CLI
    script = text + 'printf "%s\\n%s" "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY"'
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout == "AKIA EXAMPLE\nit's $(rm -rf /); `x`"
    assert shlex.split(text.splitlines()[1]) == ["export", "AWS_SECRET_ACCESS_KEY=it's $(rm -rf /); `x`"]


def test_unknown_format_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        format_credentials(CREDS, "yaml")


def test_repr_never_shows_secrets() -> None:
    text = repr(CREDS) + str(CREDS) + f"{CREDS}"
    assert CREDS.secret_access_key not in text and CREDS.session_token not in text  # type: ignore[operator]
    assert "AKJB…JGC9" in text


# --- getting them ---------------------------------------------------------------------------------


def test_instance_role_credentials(world: World) -> None:
    creds = get_credentials(imds=world.imds(), session=boto3.Session())
    assert creds.access_key_id == world.keys["AccessKeyId"]
    assert creds.secret_access_key == world.keys["SecretAccessKey"]
    assert creds.session_token == world.keys["SessionToken"]
    assert creds.arn == f"arn:aws:iam::{ACCOUNT}:role/{ROLE}"
    assert creds.expiration is not None


def test_assumed_role_credentials(world: World) -> None:
    creds = get_credentials(
        imds=world.imds(), session=boto3.Session(), assume=TARGET_ARN, session_name="ops-session", duration=900
    )
    assert creds.access_key_id != world.keys["AccessKeyId"]
    assert creds.arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/{TARGET}/ops-session"
    who = (
        boto3.Session(
            aws_access_key_id=creds.access_key_id,
            aws_secret_access_key=creds.secret_access_key,
            aws_session_token=creds.session_token,
            region_name="eu-west-1",
        )
        .client("sts")
        .get_caller_identity()
    )
    assert who["Arn"] == creds.arn
    assert creds.expiration is not None
    assert creds.expiration - datetime.now(timezone.utc) <= timedelta(seconds=905)


def test_no_role_names_roleops_associate(world: World) -> None:
    world.fake.iam_info = None
    world.fake.roles.clear()
    with pytest.raises(EnvironmentProblem) as info:
        get_credentials(imds=world.imds(), session=boto3.Session())
    assert info.value.exit_code == 3
    assert f"roleops associate --instance-id {INSTANCE_ID}" in str(info.value)


def test_document_code_not_success(world: World) -> None:
    world.fake.roles[ROLE] = {"Code": "AssumeRoleUnauthorizedAccess", "Message": "EC2 cannot assume the role."}
    with pytest.raises(EnvironmentProblem) as info:
        get_credentials(imds=world.imds(), session=boto3.Session())
    assert "AssumeRoleUnauthorizedAccess" in str(info.value) and "ec2.amazonaws.com" in str(info.value)


def test_incomplete_document_never_shows_what_it_has(world: World) -> None:
    world.fake.roles[ROLE] = credential_doc(Token="")
    with pytest.raises(EnvironmentProblem) as info:
        get_credentials(imds=world.imds(), session=boto3.Session())
    assert "Token" in str(info.value)
    assert credential_doc()["SecretAccessKey"] not in str(info.value)


class _DenyingClients(Clients):
    def sts(self, region: str | None = None) -> Any:
        class Sts:
            def assume_role(self, **kwargs: Any) -> Any:
                raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not authorized"}}, "AssumeRole")

        return Sts()


def test_access_denied_is_an_aws_error_with_the_hint(world: World) -> None:
    with pytest.raises(AwsError) as info:
        get_credentials(imds=world.imds(), session=boto3.Session(), assume=TARGET_ARN, clients_factory=_DenyingClients)
    err = info.value
    assert (err.exit_code, err.operation, err.code) == (3, "sts:AssumeRole", "AccessDenied")
    assert f"roleops setup --instance-role {ROLE} --assumable-role {TARGET}" in err.next_step
    for secret in world.secrets:
        assert secret not in str(err)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"assume": TARGET_ARN, "duration": 7200}, ValidationError),  # role chaining: 1 hour at most
        ({"duration": 900}, UsageError),  # --duration means nothing without --assume
        ({"assume": "arn:aws:iam::123:role/X"}, ValidationError),
        ({"assume": TARGET_ARN, "session_name": "x"}, ValidationError),
        ({"assume": TARGET_ARN, "external_id": "!"}, ValidationError),
    ],
)
def test_bad_input_is_refused_before_any_call(world: World, kwargs: dict[str, Any], error: type) -> None:
    with pytest.raises(error) as info:
        get_credentials(imds=world.imds(), session=boto3.Session(), **kwargs)
    assert info.value.exit_code == 2
    assert world.fake.requests == []
