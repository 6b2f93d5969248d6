"""Unit tests for roleops.verify: moto (in-process) for IAM/STS, a loopback fake IMDS serving moto-minted keys."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from roleops.clients import Clients
from roleops.errors import UsageError
from roleops.imds import ImdsClient, ImdsUnreachable
from roleops.results import Status, StepResult, VerifyReport, iso_z
from roleops.verify import VerifyOptions, run_verify

try:  # the fake IMDS lives with the IMDS tests
    from .test_imds import INSTANCE_ID, FakeImds, credential_doc
except ImportError:
    from test_imds import INSTANCE_ID, FakeImds, credential_doc

REGION = "eu-west-1"
ACCOUNT = "123456789012"
ROLE = "ExampleRole"
TARGET = "ExampleAssumedRole"
TARGET_ARN = f"arn:aws:iam::{ACCOUNT}:role/{TARGET}"
ALL_STEPS = ["imds", "caller", "default-chain", f"assume:{TARGET}", f"assumed-caller:{TARGET}"]

_AWS_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_STS",
    "AWS_STS_REGIONAL_ENDPOINTS",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
    "AWS_EC2_METADATA_DISABLED",
    "AWS_EC2_METADATA_V1_DISABLED",
    "AWS_METADATA_SERVICE_TIMEOUT",
    "AWS_METADATA_SERVICE_NUM_ATTEMPTS",
    "AWS_CREDENTIAL_FILE",
    "BOTO_CONFIG",
    "HTTP_PROXY",
    "http_proxy",
)


@dataclass
class World:
    fake: FakeImds
    keys: dict[str, Any]  # the "instance credentials" moto minted
    secrets: list[str]

    def imds(self, **kwargs: Any) -> ImdsClient:
        kwargs.setdefault("timeout", 1.0)
        kwargs.setdefault("attempts", 1)
        return ImdsClient(self.fake.endpoint, **kwargs)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[World]:
    # A host with no AWS configuration at all, so boto3's default chain ends at the instance role.
    for name in _AWS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    # mock_credentials off: moto would otherwise put fake keys in the environment and shadow the role
    with mock_aws(config={"core": {"mock_credentials": False}}):
        admin = boto3.Session(
            aws_access_key_id="AKIAADMINEXAMPLE0000",
            aws_secret_access_key="admin-secret-not-used-by-verify",
            region_name=REGION,
        )
        iam = admin.client("iam")
        ec2_trust = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ],
        }
        role_arn = iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(ec2_trust))["Role"]["Arn"]
        role_trust = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": role_arn}, "Action": "sts:AssumeRole"}],
        }
        iam.create_role(RoleName=TARGET, AssumeRolePolicyDocument=json.dumps(role_trust))
        # EC2 names the instance-role session after the instance: mint the keys IMDS will serve that way.
        minted = admin.client("sts").assume_role(RoleArn=role_arn, RoleSessionName=INSTANCE_ID)["Credentials"]
        fake = FakeImds(prefix=f"/imds/{INSTANCE_ID}/", region=REGION, account=ACCOUNT)
        fake.with_role(
            ROLE,
            credential_doc(
                AccessKeyId=minted["AccessKeyId"],
                SecretAccessKey=minted["SecretAccessKey"],
                Token=minted["SessionToken"],
                Expiration=iso_z(minted["Expiration"]),
            ),
        )
        fake.start()
        try:
            yield World(fake, minted, [minted["SecretAccessKey"], minted["SessionToken"]])
        finally:
            fake.stop()


def verify(world: World, imds: ImdsClient | None = None, **kwargs: Any) -> tuple[VerifyReport, list[StepResult]]:
    seen: list[StepResult] = []
    opts = VerifyOptions(**{"assume": (TARGET_ARN,), **kwargs})
    report = run_verify(opts, imds=imds or world.imds(), session=boto3.Session(), on_step=seen.append)
    assert list(report.steps) == seen  # each step was handed to on_step as it became known
    return report, seen


def by_name(report: VerifyReport) -> dict[str, StepResult]:
    return {s.step: s for s in report.steps}


def assert_no_secrets(report: VerifyReport, secrets: list[str]) -> None:
    text = json.dumps(report.to_json()) + repr(report)
    for secret in secrets:
        assert secret not in text


# --- the whole chain ------------------------------------------------------------------------------


def test_everything_passes(world: World) -> None:
    report, _ = verify(world)
    steps = by_name(report)
    assert [s.step for s in report.steps] == ALL_STEPS
    assert {s.step: s.status for s in report.steps} == dict.fromkeys(ALL_STEPS, Status.PASS), [
        (s.step, s.message, s.hint) for s in report.steps
    ]
    assert report.ok

    imds = steps["imds"].identity
    assert imds is not None and imds.source == "instance metadata"
    assert imds.arn == f"arn:aws:iam::{ACCOUNT}:role/{ROLE}" and imds.account == ACCOUNT
    assert imds.access_key_id == world.keys["AccessKeyId"][:4] + "…" + world.keys["AccessKeyId"][-4:]
    assert "instance-profile/ExampleRole" in steps["imds"].message and "IMDSv2" in steps["imds"].message

    caller = steps["caller"].identity
    assert caller is not None
    assert caller.arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE}/{INSTANCE_ID}"
    assert caller.user_id and caller.user_id.endswith(f":{INSTANCE_ID}")

    assumed = steps[f"assume:{TARGET}"].identity
    assert assumed is not None and assumed.source == "sts:AssumeRole"
    assert assumed.arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/{TARGET}/roleops-verify"
    assert assumed.expiration is not None and assumed.access_key_id and "…" in assumed.access_key_id

    again = steps[f"assumed-caller:{TARGET}"].identity
    assert again is not None and again.arn == assumed.arn
    assert "method iam-role" in steps["default-chain"].message
    assert_no_secrets(report, world.secrets)


def test_no_role_attached_names_roleops_associate(world: World) -> None:
    world.fake.iam_info = None
    world.fake.roles.clear()
    report, _ = verify(world)
    steps = by_name(report)
    assert steps["imds"].status is Status.FAIL
    assert f"roleops associate --instance-id {INSTANCE_ID} --instance-profile" in steps["imds"].hint
    assert not report.ok
    for name in ALL_STEPS[1:]:
        assert steps[name].status is Status.SKIP
    assert "waits on step 'imds', which failed" in steps["caller"].message
    assert f"waits on step 'assume:{TARGET}', which was skipped" in steps[f"assumed-caller:{TARGET}"].message


def test_document_code_not_success_points_at_the_trust_policy(world: World) -> None:
    world.fake.roles[ROLE] = {
        "Code": "AssumeRoleUnauthorizedAccess",
        "Message": "EC2 cannot assume the role ExampleRole. Please see documentation.",
        "LastUpdated": "2030-01-01T00:00:00Z",
    }
    report, _ = verify(world)
    imds = by_name(report)["imds"]
    assert imds.status is Status.FAIL
    assert "AssumeRoleUnauthorizedAccess" in imds.message and "EC2 cannot assume" in imds.message
    assert "ec2.amazonaws.com" in imds.hint and f"roleops setup --instance-role {ROLE}" in imds.hint


def test_profile_without_a_role(world: World) -> None:
    world.fake.roles.clear()  # iam/info still names a profile
    report, _ = verify(world)
    imds = by_name(report)["imds"]
    assert imds.status is Status.FAIL and "holds no role" in imds.message
    assert "roleops setup --instance-role ExampleRole" in imds.hint


def test_iam_info_instance_profile_not_found(world: World) -> None:
    world.fake.iam_info = {"Code": "InstanceProfileNotFound", "LastUpdated": "2030-01-01T00:00:00Z"}
    imds = by_name(verify(world)[0])["imds"]
    assert imds.status is Status.FAIL and "InstanceProfileNotFound" in imds.message
    assert "roleops associate" in imds.hint


def test_expect_role_mismatch_fails(world: World) -> None:
    report, _ = verify(world, expect_role="OtherRole")
    imds = by_name(report)["imds"]
    assert imds.status is Status.FAIL
    assert "--expect-role wants OtherRole" in imds.message
    assert f"roleops associate --instance-id {INSTANCE_ID} --instance-profile OtherRole" in imds.hint
    assert imds.identity is not None  # it still shows who the instance is
    assert by_name(report)["caller"].status is Status.SKIP


def test_expect_role_match_passes(world: World) -> None:
    assert verify(world, expect_role=ROLE, assume=())[0].ok


def test_expired_instance_credentials_fail(world: World) -> None:
    later = datetime.now(timezone.utc) + timedelta(days=3650)
    report = run_verify(VerifyOptions(), imds=world.imds(), session=boto3.Session(), now=later)
    assert by_name(report)["imds"].status is Status.FAIL
    assert "expired" in by_name(report)["imds"].message


def test_default_chain_warns_when_environment_variables_shadow(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIASHADOWEXAMPLE123")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "shadow-secret-value-never-shown")
    report, _ = verify(world)
    chain = by_name(report)["default-chain"]
    assert chain.status is Status.WARN
    assert "environment variables" in chain.message and "AKIA…E123" in chain.message
    assert "unset AWS_ACCESS_KEY_ID" in chain.hint
    assert report.ok  # a warning is not a broken link
    assert_no_secrets(report, [*world.secrets, "shadow-secret-value-never-shown"])


def test_default_chain_follows_botocore_endpoint_setting(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", world.fake.endpoint)
    report = run_verify(VerifyOptions(), imds=ImdsClient(timeout=1.0), session=boto3.Session())
    chain = by_name(report)["default-chain"]
    assert chain.status is Status.PASS and "with the metadata endpoint" not in chain.message


def test_caller_failure_skips_what_depends_on_it(world: World) -> None:
    # keys moto never issued: STS answers, but not as this instance's role session
    world.fake.roles[ROLE] = credential_doc(AccessKeyId="ASIAUNKNOWNEXAMPLE00")
    report, _ = verify(world)
    steps = by_name(report)
    assert steps["caller"].status is Status.FAIL and "expected" in steps["caller"].message
    assert steps[f"assume:{TARGET}"].status is Status.SKIP
    assert "waits on step 'caller', which failed" in steps[f"assume:{TARGET}"].message
    assert steps[f"assumed-caller:{TARGET}"].status is Status.SKIP


class _DenyingSts:
    def __init__(self, real: Any) -> None:
        self.real = real

    def get_caller_identity(self) -> Any:
        return self.real.get_caller_identity()

    def assume_role(self, **kwargs: Any) -> Any:
        arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE}/{INSTANCE_ID}"
        raise ClientError(
            {
                "Error": {
                    "Code": "AccessDenied",
                    "Message": f"User: {arn} is not authorized to perform: sts:AssumeRole on resource: "
                    + kwargs["RoleArn"],
                }
            },
            "AssumeRole",
        )


class _DenyingClients(Clients):
    def sts(self, region: str | None = None) -> Any:
        return _DenyingSts(super().sts(region))


def test_access_denied_names_both_policies_and_setup(world: World) -> None:
    report = run_verify(
        VerifyOptions(assume=(TARGET_ARN,)),
        imds=world.imds(),
        session=boto3.Session(),
        clients_factory=_DenyingClients,
    )
    steps = by_name(report)
    assume = steps[f"assume:{TARGET}"]
    assert assume.status is Status.FAIL and "AccessDenied" in assume.message
    assert f"the instance role {ROLE} must allow sts:AssumeRole on {TARGET_ARN}" in assume.hint
    assert f"{TARGET}'s trust policy must name arn:aws:iam::{ACCOUNT}:role/{ROLE}" in assume.hint
    assert f"roleops setup --instance-role {ROLE} --assumable-role {TARGET}" in assume.hint
    assert steps[f"assumed-caller:{TARGET}"].status is Status.SKIP
    assert "which failed" in steps[f"assumed-caller:{TARGET}"].message


def test_duration_is_capped_for_a_chained_session(world: World) -> None:
    report, _ = verify(world, duration=7200)
    assume = by_name(report)[f"assume:{TARGET}"]
    assert assume.status is Status.PASS
    assert "capped at 3600" in assume.message and "role chaining" in assume.message
    assert assume.identity is not None and assume.identity.expiration is not None
    left = assume.identity.expiration - datetime.now(timezone.utc)
    assert timedelta(minutes=55) < left <= timedelta(hours=1, minutes=1)


class _RecordingClients(Clients):
    made: list[Any] = []

    def sts(self, region: str | None = None) -> Any:
        client = super().sts(region)
        _RecordingClients.made.append(client)
        return client


def test_sts_is_called_at_the_instance_region_even_with_legacy_setting(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_STS_REGIONAL_ENDPOINTS", "legacy")
    _RecordingClients.made = []
    run_verify(VerifyOptions(), imds=world.imds(), session=boto3.Session(), clients_factory=_RecordingClients)
    assert [c.meta.endpoint_url for c in _RecordingClients.made] == [f"https://sts.{REGION}.amazonaws.com"]
    assert _RecordingClients.made[0].meta.region_name == REGION


def test_endpoint_url_override_wins(world: World) -> None:
    _RecordingClients.made = []
    override = "https://sts.us-east-1.amazonaws.com"
    report = run_verify(
        VerifyOptions(assume=(TARGET_ARN,), endpoint_url=override),
        imds=world.imds(),
        session=boto3.Session(),
        clients_factory=_RecordingClients,
    )
    assert report.ok
    assert {c.meta.endpoint_url for c in _RecordingClients.made} == {override}


def test_imdsv1_fallback_is_a_warning(world: World) -> None:
    world.fake.token_status = 404
    report, _ = verify(world, assume=())
    imds = by_name(report)["imds"]
    assert imds.status is Status.WARN and "IMDSv1" in imds.message
    assert "--http-tokens required" in imds.hint
    assert by_name(report)["caller"].status is Status.PASS


def test_tokens_required_but_v1_only_is_an_imds_failure_with_the_hop_limit_hint(world: World) -> None:
    world.fake.token_status = 405
    world.fake.require_token = True
    imds = by_name(verify(world)[0])["imds"]
    assert imds.status is Status.FAIL and "requires IMDSv2" in imds.message
    assert "hop-limit 2" in imds.hint


def test_no_metadata_service_raises_for_exit_3(world: World) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    seen: list[StepResult] = []
    with pytest.raises(ImdsUnreachable) as info:
        run_verify(
            VerifyOptions(),
            imds=ImdsClient(f"http://127.0.0.1:{port}/"),
            session=boto3.Session(),
            on_step=seen.append,
        )
    assert info.value.exit_code == 3 and seen == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"assume": ("arn:aws:iam::12345:role/X",)},
        {"assume": ("arn:aws:iam::123456789012:user/X",)},
        {"session_name": "x"},
        {"session_name": "has space"},
        {"external_id": "a"},
        {"duration": 899},
        {"duration": 43201},
        {"expect_role": "bad/name"},
    ],
)
def test_bad_input_is_refused_before_any_call(world: World, kwargs: dict[str, Any]) -> None:
    with pytest.raises(UsageError) as info:
        run_verify(VerifyOptions(**kwargs), imds=world.imds(), session=boto3.Session())
    assert info.value.exit_code == 2
    assert world.fake.requests == []


def test_duplicate_role_names_get_distinct_steps(world: World) -> None:
    other = "arn:aws:iam::210987654321:role/ExampleAssumedRole"
    report, _ = verify(world, assume=(TARGET_ARN, other, TARGET_ARN))
    names = [s.step for s in report.steps]
    assert f"assume:{TARGET_ARN}" in names and f"assume:{other}" in names
    assert len(names) == 3 + 2 * 2


# --- role_arn profiles: the SDK-native chain from the instance role -------------------------------------

ROLE_A = "arn:aws:iam::123456789012:role/A"
ROLE_B = "arn:aws:iam::123456789012:role/B"


@pytest.mark.parametrize(
    ("profiles", "name", "expected"),
    [
        ({"p": {"region": "us-east-1"}}, "p", None),  # no role_arn: not a role profile
        ({}, "default", None),
        (
            {"p": {"role_arn": ROLE_A, "credential_source": "Ec2InstanceMetadata"}},
            "p",
            (("p",), (ROLE_A,), "credential_source = Ec2InstanceMetadata", True),
        ),
        (  # source_profile links ending at the instance metadata: B first, then A
            {
                "p": {"role_arn": ROLE_A, "source_profile": "q"},
                "q": {"role_arn": ROLE_B, "credential_source": "Ec2InstanceMetadata"},
            },
            "p",
            (("p", "q"), (ROLE_B, ROLE_A), "credential_source = Ec2InstanceMetadata", True),
        ),
        (
            {"p": {"role_arn": ROLE_A, "credential_source": "Environment"}},
            "p",
            (("p",), (ROLE_A,), "credential_source = Environment", False),
        ),
        (
            {
                "p": {"role_arn": ROLE_A, "source_profile": "k"},
                "k": {"aws_access_key_id": "AKIA", "aws_secret_access_key": "x"},
            },
            "p",
            (("p",), (ROLE_A,), "static keys of profile k", False),
        ),
        (  # a profile that sources itself uses its own keys (botocore)
            {"p": {"role_arn": ROLE_A, "source_profile": "p", "aws_access_key_id": "AKIA"}},
            "p",
            (("p",), (ROLE_A,), "static keys of profile p", False),
        ),
        (
            {"p": {"role_arn": ROLE_A, "source_profile": "s"}, "s": {"sso_session": "corp"}},
            "p",
            (("p",), (ROLE_A,), "the IAM Identity Center (SSO) login of profile s", False),
        ),
        (
            {"p": {"role_arn": ROLE_A, "source_profile": "q"}, "q": {"role_arn": ROLE_B, "source_profile": "p"}},
            "p",
            (("p", "q"), (ROLE_B, ROLE_A), "a source_profile loop", False),
        ),
        ({"p": {"role_arn": ROLE_A}}, "p", (("p",), (ROLE_A,), "no source configured", False)),
    ],
)
def test_role_profile_follows_source_profile_links_to_the_source(profiles, name, expected) -> None:
    from roleops.default_chain import role_profile

    found = role_profile(profiles, name)
    if expected is None:
        assert found is None
        return
    assert (found.profiles, found.role_arns, found.source, found.from_instance_role) == expected


# --- the runner: SKIP derived from declared needs ---------------------------------------------------------


def test_run_steps_skips_what_needs_a_failed_or_skipped_step_and_names_it() -> None:
    from roleops.verify import Outcome, Step, run_steps

    class Fixed(Step):
        def __init__(self, name: str, status: Status, needs: tuple[str, ...] = ()) -> None:
            self.name, self.status, self.needs, self.ran = name, status, needs, False

        def run(self, walk: Any) -> Outcome:
            self.ran = True
            return Outcome(self.status, f"{self.name} ran", output=self.name)

    class Walk:
        outputs: dict[str, Any] = {}

        class secrets:  # noqa: N801 - stands in for the walk's scrubber
            @staticmethod
            def scrub(text: str) -> str:
                return text

    steps = [
        Fixed("a", Status.WARN),  # a warning still satisfies what needs it
        Fixed("b", Status.FAIL, ("a",)),
        Fixed("c", Status.PASS, ("a",)),
        Fixed("d", Status.PASS, ("a", "b")),
        Fixed("e", Status.PASS, ("d",)),
    ]
    emitted: list[StepResult] = []
    results = run_steps(steps, Walk(), emitted.append)  # type: ignore[arg-type]
    assert emitted == results
    assert [(r.step, r.status) for r in results] == [
        ("a", Status.WARN),
        ("b", Status.FAIL),
        ("c", Status.PASS),
        ("d", Status.SKIP),
        ("e", Status.SKIP),
    ]
    assert results[3].message == "skipped: waits on step 'b', which failed"
    assert results[4].message == "skipped: waits on step 'd', which was skipped"
    assert [s.ran for s in steps] == [True, True, True, False, False]
    assert Walk.outputs == {"a": "a", "c": "c"}  # only steps that held hand their output on
