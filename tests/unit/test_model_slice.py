"""The shipped botocore data slices (roleops/data) are complete and agree with the installed botocore."""

from __future__ import annotations

import ast
import hashlib
import json
import sys
from pathlib import Path

import botocore
import botocore.session
import pytest
from botocore.model import ServiceModel

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
from slice_botocore_model import SLICES, shape_closure, slice_endpoints  # noqa: E402

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


# --- endpoints.json slice ---------------------------------------------------------------------------------

BUILTIN_ENDPOINTS = Path(botocore.__file__).parent / "data" / "endpoints.json"
# Regions of every partition botocore knows, plus names no release knows yet (resolved by the partition regex).
REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-7", "cn-north-1", "us-gov-west-1", "us-iso-east-1", "xx-new-1")


def _cut_slice(directory: Path, source: bytes) -> None:
    """What scripts/slice_botocore_model.py writes, into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "endpoints.json").write_text(json.dumps(slice_endpoints(json.loads(source))))
    (directory / "source.json").write_text(json.dumps({"sha256": hashlib.sha256(source).hexdigest()}))


def _resolved(session: botocore.session.Session, service: str, region: str) -> tuple:
    from roleops.clients import Clients

    client = Clients(session, region=region).client(service)
    signer = client._request_signer  # where botocore keeps the signing name and region it resolved
    return client.meta.endpoint_url, client.meta.partition, signer.signing_name, signer.region_name


def _session() -> botocore.session.Session:
    session = botocore.session.Session()
    session.set_credentials("AKIDEXAMPLE", "secret")
    return session


def test_shipped_endpoints_slice_is_a_fresh_cut_or_unused() -> None:
    # The slice stands in for botocore's file only when it was cut from that very file; after a botocore upgrade
    # that changed endpoints.json it is ignored (correct, slower) until scripts/slice_botocore_model.py is re-run.
    from roleops.clients import ENDPOINTS_SLICE, endpoints_slice_usable, use_data_slices

    recorded = json.loads(Path(ENDPOINTS_SLICE, "source.json").read_text())["sha256"]
    installed = BUILTIN_ENDPOINTS.read_bytes()
    session = _session()
    use_data_slices(session)
    _, path = session.get_component("data_loader").load_data_with_path("endpoints")
    if hashlib.sha256(installed).hexdigest() == recorded:
        assert json.loads(Path(ENDPOINTS_SLICE, "endpoints.json").read_text()) == slice_endpoints(json.loads(installed))
        assert path == str(Path(ENDPOINTS_SLICE, "endpoints"))
    else:
        assert not endpoints_slice_usable([str(BUILTIN_ENDPOINTS.parent)])
        assert path == str(BUILTIN_ENDPOINTS.with_suffix(""))


@pytest.mark.parametrize("service", ["sts", "iam", "ec2"])
def test_sliced_endpoints_resolve_as_the_full_file(
    service: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Endpoint URL, partition, signing name and signing region, for every region kind, with and without the slice.
    import roleops.clients

    _cut_slice(tmp_path / "endpoints", BUILTIN_ENDPOINTS.read_bytes())
    monkeypatch.setattr(roleops.clients, "ENDPOINTS_SLICE", str(tmp_path / "endpoints"))
    sliced = _session()
    roleops.clients.use_data_slices(sliced)
    assert sliced.get_component("data_loader").search_paths[0] == str(tmp_path / "endpoints")  # in use
    with monkeypatch.context() as m:
        m.setenv("ROLEOPS_FULL_MODELS", "1")
        full = _session()
        for region in REGIONS:
            assert _resolved(sliced, service, region) == _resolved(full, service, region), region
    assert sliced.get_partition_for_region("cn-north-1") == "aws-cn"


def test_endpoints_slice_yields_to_any_other_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import roleops.clients
    from roleops.clients import endpoints_slice_usable

    botocore_data, user_data = tmp_path / "botocore-data", tmp_path / "user-models"
    botocore_data.mkdir()
    user_data.mkdir()
    source = BUILTIN_ENDPOINTS.read_bytes()
    (botocore_data / "endpoints.json").write_bytes(source)
    _cut_slice(tmp_path / "slice", source)
    monkeypatch.setattr(roleops.clients, "ENDPOINTS_SLICE", str(tmp_path / "slice"))
    paths = [str(user_data), str(botocore_data)]
    assert endpoints_slice_usable(paths)  # cut from the file botocore would load
    (botocore_data / "endpoints.json").write_bytes(source.replace(b'"us-east-1"', b'"us-east-9"', 1))
    assert not endpoints_slice_usable(paths)  # botocore's file changed (an upgrade)
    (botocore_data / "endpoints.json").write_bytes(source)
    (user_data / "endpoints.json.gz").write_bytes(b"")
    assert not endpoints_slice_usable(paths)  # the user's own endpoints file (~/.aws/models) comes first
    (user_data / "endpoints.json.gz").unlink()
    (tmp_path / "slice" / "source.json").write_text("not json")
    assert not endpoints_slice_usable(paths)  # a damaged record: botocore's file
