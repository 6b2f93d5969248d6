"""The shipped botocore model slices (roleops/data) are complete and agree with the installed botocore."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import botocore.session
import pytest
from botocore.model import ServiceModel

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
from slice_botocore_model import SLICES, shape_closure  # noqa: E402

from roleops.clients import MODEL_SLICES  # noqa: E402


def _slice(service: str) -> dict:
    (path,) = Path(MODEL_SLICES, service).glob("*/service-2.json")
    return json.loads(path.read_text())


def _full(service: str) -> dict:
    loader = botocore.session.get_session().get_component("data_loader")
    return loader.load_service_model(service, "service-2")


def _ec2_operations_called() -> set[str]:
    """Every EC2 operation roleops' AWS layer calls: `call(ec2, "snake_name", ...)`."""
    tree = ast.parse((REPO / "roleops" / "aws.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "call" and len(node.args) >= 2:
            client, op = node.args[0], node.args[1]
            if isinstance(client, ast.Name) and client.id == "ec2" and isinstance(op, ast.Constant):
                names.add(op.value)
    return names


@pytest.mark.parametrize("service", sorted(SLICES))
def test_slice_is_self_contained_and_loads(service: str) -> None:
    model = _slice(service)
    assert shape_closure(model, tuple(model["operations"])) <= set(model["shapes"])
    sm = ServiceModel(model, service_name=service)
    for name in model["operations"]:
        sm.operation_model(name).input_shape  # noqa: B018 - resolves every reference or raises


@pytest.mark.parametrize("service", sorted(SLICES))
def test_requests_match_the_installed_botocore(service: str) -> None:
    # What roleops sends must be what the installed botocore would send: same input members, same required ones.
    sliced, full = ServiceModel(_slice(service), service), ServiceModel(_full(service), service)
    assert sliced.api_version == full.api_version
    for name in SLICES[service]:
        a, b = sliced.operation_model(name).input_shape, full.operation_model(name).input_shape
        assert sorted(a.members) == sorted(b.members), name
        assert sorted(a.required_members) == sorted(b.required_members), name


def test_every_ec2_operation_roleops_calls_is_in_the_slice() -> None:
    from botocore import xform_name

    called = _ec2_operations_called()
    assert "describe_instances" in called  # the scan itself works
    sliced = {xform_name(op) for op in _slice("ec2")["operations"]}
    assert called <= sliced, called - sliced


def test_clients_use_the_slice_and_can_opt_out(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    from roleops.clients import Clients

    client = Clients(boto3.Session(aws_access_key_id="a", aws_secret_access_key="b", region_name="us-east-1")).ec2()
    assert len(client.meta.service_model.operation_names) == len(SLICES["ec2"])
    monkeypatch.setenv("ROLEOPS_FULL_MODELS", "1")
    full = Clients(boto3.Session(aws_access_key_id="a", aws_secret_access_key="b", region_name="us-east-1")).ec2()
    assert len(full.meta.service_model.operation_names) > 500
