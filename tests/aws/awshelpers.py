"""Helpers and fixtures for the moto-backed tests (AWS layer, in-process)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from roleops.aws import CallCounter
from roleops.clients import Clients
from roleops.converge import Context

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(autouse=True)
def _fake_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Never let a developer's real credentials or config reach a test.
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "nope-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "nope-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def calls() -> CallCounter:
    """Every API call the `ctx` clients send (a before-call hook: counts what really goes out)."""
    return CallCounter()


@pytest.fixture
def ctx(aws: None, calls: CallCounter) -> Context:
    clients = Clients(boto3.Session(region_name="us-east-1"), event_hooks=[("before-call.*.*", calls)])
    # No real sleeping in tests: the propagation loop is bounded by the fake clock instead.
    fake = {"t": 0.0}

    def sleep(seconds: float) -> None:
        fake["t"] += seconds

    return Context(clients=clients, sleep=sleep, clock=lambda: fake["t"])


@pytest.fixture
def iam(aws: None) -> Any:
    return boto3.client("iam", region_name="us-east-1")


@pytest.fixture
def ec2(aws: None) -> Any:
    return boto3.client("ec2", region_name="us-east-1")


def launch(ec2: Any) -> str:
    image = ec2.describe_images()["Images"][0]["ImageId"]
    return ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro")["Instances"][0][
        "InstanceId"
    ]


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / name).read_text())
