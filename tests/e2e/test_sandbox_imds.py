"""E2E: the sandbox's per-instance metadata service, its control endpoints and its foreground run."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.error
from urllib.parse import urlsplit

import pytest
from conftest import ACCOUNT, CREDENTIAL_KEYS, REPO, ImdsClient, http, start_sandbox_process, stop_process

TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
# Each instance's metadata service: the root of a loopback port of its own, as EC2's http://169.254.169.254/.
METADATA_ENDPOINT_RE = re.compile(r"^http://127\.0\.0\.1:(\d+)/$")


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, cwd=REPO)


# --- the walkthrough ------------------------------------------------------------------------------


def test_cli_and_boto3_default_chain_resolve_the_instance_role_over_imdsv2(sb):
    sb.create_instance_role("ExampleRole")
    sb.associate("ExampleRole")
    # IMDSv2 only: a v1 fallback would be refused, so success proves the token flow.
    sb.client("ec2").modify_instance_metadata_options(InstanceId=sb.instance_id, HttpTokens="required")
    env = sb.env(sb.instance_id)
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"} & set(env)
    expected = f"arn:aws:sts::{ACCOUNT}:assumed-role/ExampleRole/{sb.instance_id}"

    cli = run([sys.executable, "-m", "awscli", "sts", "get-caller-identity", "--output", "json"], env)
    assert cli.returncode == 0, cli.stderr
    identity = json.loads(cli.stdout)
    assert identity["Arn"] == expected
    assert identity["Account"] == ACCOUNT
    assert identity["UserId"].endswith(f":{sb.instance_id}")

    code = (
        "import boto3; s = boto3.Session(); c = s.get_credentials();"
        "print(s.client('sts').get_caller_identity()['Arn']); print(c.method)"
    )
    py = run([sys.executable, "-c", code], env)
    assert py.returncode == 0, py.stderr
    arn, method = py.stdout.split()
    assert arn == expected
    assert method == "iam-role"


def test_walkthrough_curl_calls_answer_as_shown(sb):
    sb.create_instance_role("ExampleRole")
    sb.associate("ExampleRole")
    imds = sb.imds()
    # The walkthrough uses plain curl (IMDSv1): served while HttpTokens is optional.
    assert imds.get("meta-data/iam/security-credentials/", v2=False) == (200, "ExampleRole")
    status, body = imds.get("meta-data/iam/security-credentials/ExampleRole", v2=False)
    assert status == 200
    document = json.loads(body)
    assert list(document) == CREDENTIAL_KEYS
    assert document["Code"] == "Success"
    assert document["Type"] == "AWS-HMAC"
    assert TIME_RE.match(document["LastUpdated"]) and TIME_RE.match(document["Expiration"])
    assert '"Code" : "Success"' in body  # IMDS's own pretty-printing, as in the walkthrough
    identity = sb.client_from_document("sts", document).get_caller_identity()
    assert identity["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/ExampleRole/{sb.instance_id}"
    assert {document["SecretAccessKey"], document["Token"]} <= sb.secrets()


def test_credentials_are_cached_per_instance_and_role(sb):
    sb.create_instance_role("ExampleRole")
    second = sb.new_instance()
    sb.associate("ExampleRole")
    sb.associate("ExampleRole", second)
    first_doc = sb.imds().credentials("ExampleRole")
    assert sb.imds().credentials("ExampleRole")["AccessKeyId"] == first_doc["AccessKeyId"]
    other = sb.imds(second).credentials("ExampleRole")
    assert other["AccessKeyId"] != first_doc["AccessKeyId"]
    arn = sb.client_from_document("sts", other).get_caller_identity()["Arn"]
    assert arn.endswith(f"/ExampleRole/{second['instance_id']}")


# --- association state ----------------------------------------------------------------------------


def test_no_association_then_associate_then_replace(sb):
    imds = sb.imds()
    assert imds.get("meta-data/iam/security-credentials/")[0] == 404
    assert imds.get("meta-data/iam/info")[0] == 404
    assert "iam/" not in imds.get("meta-data/")[1].split()

    sb.create_instance_role("FirstRole")
    association = sb.associate("FirstRole")
    assert imds.get("meta-data/iam/security-credentials/") == (200, "FirstRole")
    status, body = imds.get("meta-data/iam/info")
    info = json.loads(body)
    assert status == 200 and list(info) == ["Code", "LastUpdated", "InstanceProfileArn", "InstanceProfileId"]
    assert info["Code"] == "Success"
    assert info["InstanceProfileArn"] == f"arn:aws:iam::{ACCOUNT}:instance-profile/FirstRole"

    sb.create_instance_role("SecondRole")
    sb.client("ec2").replace_iam_instance_profile_association(
        AssociationId=association["AssociationId"], IamInstanceProfile={"Name": "SecondRole"}
    )
    assert imds.get("meta-data/iam/security-credentials/") == (200, "SecondRole")
    assert imds.get("meta-data/iam/security-credentials/FirstRole")[0] == 404
    document = imds.credentials("SecondRole")
    arn = sb.client_from_document("sts", document).get_caller_identity()["Arn"]
    assert arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/SecondRole/{sb.instance_id}"


def test_profile_without_role_lists_nothing(sb):
    iam = sb.client("iam")
    iam.create_instance_profile(InstanceProfileName="EmptyProfile")
    sb.associate("EmptyProfile")
    assert sb.imds().get("meta-data/iam/info")[0] == 200
    assert sb.imds().get("meta-data/iam/security-credentials/")[0] == 404


def test_role_without_ec2_trust_gets_an_error_document(sb):
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}
        ],
    }
    sb.create_instance_role("NoEc2Trust", trust=trust)
    sb.associate("NoEc2Trust")
    status, body = sb.imds().get("meta-data/iam/security-credentials/NoEc2Trust")
    document = json.loads(body)
    assert status == 200
    assert document["Code"] == "AssumeRoleUnauthorizedAccess"
    assert document["Message"]
    assert not {"AccessKeyId", "SecretAccessKey", "Token", "Expiration"} & set(document)


# --- tokens and metadata options ------------------------------------------------------------------


def test_http_tokens_required_then_optional(sb):
    ec2, imds = sb.client("ec2"), sb.imds()
    ec2.modify_instance_metadata_options(InstanceId=sb.instance_id, HttpTokens="required")
    assert imds.get("meta-data/instance-id", v2=False)[0] == 401
    assert imds.get("meta-data/instance-id") == (200, sb.instance_id)
    # Only HttpTokens was named: the other options keep their values, as on EC2.
    options = ec2.describe_instances(InstanceIds=[sb.instance_id])["Reservations"][0]["Instances"][0]["MetadataOptions"]
    assert options["HttpTokens"] == "required" and options["HttpEndpoint"] == "enabled"
    ec2.modify_instance_metadata_options(InstanceId=sb.instance_id, HttpTokens="optional")
    assert imds.get("meta-data/instance-id", v2=False) == (200, sb.instance_id)


@pytest.mark.parametrize("ttl", ["0", "21601", None, "abc", "-5"])
def test_token_ttl_out_of_range_or_missing_is_400(sb, ttl):
    assert sb.imds().token(ttl)[0] == 400


@pytest.mark.parametrize("ttl", ["1", "21600"])
def test_token_ttl_bounds_are_accepted(sb, ttl):
    status, token = sb.imds().token(ttl)
    assert status == 200 and token


def test_bad_expired_or_foreign_tokens_are_401(sb):
    imds = sb.imds()
    assert imds.get("meta-data/instance-id", token="not-a-token")[0] == 401
    other = sb.new_instance()
    status, foreign = sb.imds(other).token()
    assert status == 200
    assert imds.get("meta-data/instance-id", token=foreign)[0] == 401  # tokens are per instance
    assert sb.imds(other).get("meta-data/instance-id", token=foreign) == (200, other["instance_id"])


def test_token_put_through_a_proxy_is_refused(sb):
    status, _ = sb.imds().token(headers={"X-Forwarded-For": "10.0.0.1"})
    assert status == 403


def test_http_endpoint_disabled_is_403(sb):
    ec2 = sb.client("ec2")
    ec2.modify_instance_metadata_options(InstanceId=sb.instance_id, HttpEndpoint="disabled")
    assert sb.imds().token()[0] == 403
    assert sb.imds().get("meta-data/instance-id", v2=False)[0] == 403
    ec2.modify_instance_metadata_options(InstanceId=sb.instance_id, HttpEndpoint="enabled")
    assert sb.imds().get("meta-data/instance-id")[0] == 200


def test_identity_document_and_placement(sb):
    imds = sb.imds()
    document = json.loads(imds.get("dynamic/instance-identity/document")[1])
    for key in (
        "accountId", "architecture", "availabilityZone", "billingProducts", "devpayProductCodes",
        "marketplaceProductCodes", "imageId", "instanceId", "instanceType", "kernelId", "pendingTime",
        "privateIp", "ramdiskId", "region", "version",
    ):  # fmt: skip
        assert key in document
    assert document["instanceId"] == sb.instance_id
    assert document["accountId"] == ACCOUNT
    assert document["region"] == "us-east-1"
    assert imds.get("meta-data/placement/region") == (200, "us-east-1")
    assert imds.get("meta-data/placement/availability-zone") == (200, document["availabilityZone"])
    assert imds.get("meta-data/no-such-thing")[0] == 404
    # the image is a current Amazon Linux AMI of the region's catalogue, as EC2 lists it (the sandbox loads moto's
    # latest AMIs of the region only, which keeps a reset fast)
    (image,) = sb.client("ec2").describe_images(ImageIds=[document["imageId"]])["Images"]
    assert image["Name"].startswith("al2023-ami-") and image["Architecture"] == "x86_64"
    assert imds.get("meta-data/ami-id") == (200, document["imageId"])


def test_unknown_instance_is_404(sb):
    status, _ = http("GET", f"{sb.endpoint_url}/imds/i-00000000000000000/latest/meta-data/instance-id")
    assert status == 404


# --- each instance's own metadata address -----------------------------------------------------------


def test_each_instance_is_served_at_the_root_of_its_own_port(sb):
    """What SDKs that keep only scheme, host and port of the endpoint (and EC2's own address) need."""
    second = sb.new_instance()
    instances = [sb.info["instances"][0], second]
    endpoints = [i["metadata_endpoint"] for i in instances]
    ports = [int(METADATA_ENDPOINT_RE.match(e)[1]) for e in endpoints]  # type: ignore[index]
    assert len(set(ports)) == 2 and urlsplit(sb.endpoint_url).port not in ports
    sb.create_instance_role("ExampleRole")
    ec2 = sb.client("ec2")
    for instance in instances:
        sb.associate("ExampleRole", instance)
        ec2.modify_instance_metadata_options(InstanceId=instance["instance_id"], HttpTokens="required")
    for instance in instances:
        imds = sb.imds(instance)
        assert imds.endpoint == instance["metadata_endpoint"]
        assert imds.get("meta-data/instance-id", v2=False)[0] == 401  # IMDSv2 only: what follows used a token
        status, token = imds.token()
        assert status == 200
        assert imds.get("meta-data/instance-id", token=token) == (200, instance["instance_id"])
        assert imds.get("meta-data/iam/security-credentials/", token=token) == (200, "ExampleRole")
        document = imds.credentials("ExampleRole")
        arn = sb.client_from_document("sts", document).get_caller_identity()["Arn"]
        assert arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/ExampleRole/{instance['instance_id']}"
        assert {document["SecretAccessKey"], document["Token"]} <= sb.secrets()
    # A token is the instance's, not the port's: the other instance's port refuses it.
    status, token = sb.imds(instances[0]).token()
    assert sb.imds(second).get("meta-data/instance-id", token=token)[0] == 401


def test_old_imds_url_on_the_api_port_still_works(sb):
    sb.create_instance_role("ExampleRole")
    sb.associate("ExampleRole")
    old = ImdsClient(f"{sb.endpoint_url}/imds/{sb.instance_id}/")
    assert old.get("meta-data/instance-id") == (200, sb.instance_id)
    assert old.get("meta-data/iam/security-credentials/") == (200, "ExampleRole")
    # The same service at both addresses: one cached session, and a token from one is good at the other.
    assert old.credentials("ExampleRole")["AccessKeyId"] == sb.imds().credentials("ExampleRole")["AccessKeyId"]
    status, token = old.token()
    assert status == 200 and sb.imds().get("meta-data/instance-id", token=token) == (200, sb.instance_id)


def test_reset_gives_the_new_instances_new_endpoints_and_closes_the_old(sb):
    before = [sb.info["instances"][0], sb.new_instance()]
    sb.reset()
    after = sb.info["instances"]
    assert len(after) == 1 and after[0]["instance_id"] not in {i["instance_id"] for i in before}
    assert sb.imds(after[0]).get("meta-data/instance-id") == (200, after[0]["instance_id"])
    launched = sb.new_instance()
    assert sb.imds(launched).get("meta-data/instance-id") == (200, launched["instance_id"])
    old_endpoints = {i["metadata_endpoint"] for i in before}
    assert not old_endpoints & {after[0]["metadata_endpoint"], launched["metadata_endpoint"]}
    for endpoint in old_endpoints:
        # Closed, never handed to another instance: an old endpoint is refused, not answered by a new instance.
        with pytest.raises(urllib.error.URLError, match="refused"):
            http("GET", endpoint + "latest/meta-data/instance-id")


# Every path moto's server answers with its own fake metadata (`/latest/meta-data/...`, `/latest/api/...`),
# and the other shapes of an IMDS request.
API_PORT_METADATA_REQUESTS = [
    ("PUT", "/latest/api/token"),
    ("GET", "/latest/meta-data/"),
    ("GET", "/latest/meta-data/iam"),
    ("GET", "/latest/meta-data/iam/security-credentials/"),
    ("GET", "/latest/meta-data/iam/security-credentials/default-role"),
    ("GET", "/latest/meta-data/instance-id"),
    ("GET", "/latest/dynamic/instance-identity/document"),
    ("GET", "/latest"),
    ("GET", "/2021-01-03/meta-data/iam/security-credentials/"),
]


@pytest.mark.parametrize(("method", "path"), API_PORT_METADATA_REQUESTS)
def test_api_port_refuses_metadata_paths(sb, method, path):
    headers = {"X-aws-ec2-metadata-token-ttl-seconds": "21600", "X-aws-ec2-metadata-token": "any"}
    status, body = http(method, sb.endpoint_url + path, headers=headers)
    assert status == 404
    assert "not an instance metadata service" in body and "metadata_endpoint" in body
    assert "test-key" not in body and "AccessKeyId" not in body and "fake" not in body


def test_sdk_pointed_at_the_api_port_finds_no_credentials(sb):
    """The reported failure: an SDK that reaches the API port's root gets no credentials (and says so), not
    moto's test-key ones that STS then rejects."""
    sb.create_instance_role("ExampleRole")
    sb.associate("ExampleRole")
    env = {**sb.env(sb.instance_id), "AWS_EC2_METADATA_SERVICE_ENDPOINT": sb.endpoint_url + "/"}
    cli = run([sys.executable, "-m", "awscli", "sts", "get-caller-identity", "--output", "json"], env)
    assert cli.returncode != 0
    assert "Unable to locate credentials" in cli.stderr, cli.stderr
    assert "InvalidClientTokenId" not in cli.stderr


# --- control endpoints and lifecycle --------------------------------------------------------------


def test_info_shape_and_reset_keeps_admin_keys(sb):
    info = sb.control("GET", "info")
    assert set(info) == {
        "endpoint_url",
        "region",
        "account_id",
        "access_key_id",
        "secret_access_key",
        "instances",
        "accounts",
    }
    assert info["endpoint_url"].startswith("http://127.0.0.1:")
    assert info["account_id"] == ACCOUNT
    assert [set(i) for i in info["instances"]] == [{"instance_id", "metadata_endpoint"}]
    sb.client("iam").create_role(RoleName="Gone", AssumeRolePolicyDocument="{}")
    before = info["instances"][0]["instance_id"]
    sb.reset()
    assert sb.info["access_key_id"] == info["access_key_id"]
    assert sb.instance_id != before
    assert [r["RoleName"] for r in sb.client("iam").list_roles()["Roles"]] == []
    arn = sb.client("sts").get_caller_identity()["Arn"]
    assert arn == f"arn:aws:iam::{ACCOUNT}:user/sandbox-admin"


def test_new_instance_is_a_running_ec2_instance(sb):
    instance = sb.new_instance()
    assert METADATA_ENDPOINT_RE.match(instance["metadata_endpoint"])
    assert instance["metadata_endpoint"] not in {i["metadata_endpoint"] for i in sb.info["instances"][:-1]}
    assert sb.imds(instance).get("meta-data/instance-id") == (200, instance["instance_id"])
    described = sb.client("ec2").describe_instances(InstanceIds=[instance["instance_id"]])
    state = described["Reservations"][0]["Instances"][0]
    assert state["State"]["Name"] == "running" and state["InstanceType"] == "t3.micro"


def test_unknown_control_route_and_method(sb):
    assert http("GET", f"{sb.endpoint_url}/_roleops/nope")[0] == 404
    assert http("GET", f"{sb.endpoint_url}/_roleops/reset")[0] == 405


def test_foreground_table_output_and_clean_stop(tmp_path):
    def two_instances(lines: list[str]) -> bool:
        return sum(ln.startswith("# export AWS_EC2_METADATA_SERVICE_ENDPOINT=") for ln in lines) == 2

    proc, lines = start_sandbox_process(
        "--port", "0", "--instances", "2", stderr_path=tmp_path / "err.log", until=two_instances
    )
    try:
        assert two_instances(lines), lines
        names = [ln.split("=")[0] for ln in lines if ln.startswith("export ")]
        assert names == [
            "export AWS_ENDPOINT_URL",
            "export AWS_DEFAULT_REGION",
            "export AWS_ACCESS_KEY_ID",
            "export AWS_SECRET_ACCESS_KEY",
        ]
        assert lines[0].startswith("export AWS_ENDPOINT_URL=http://127.0.0.1:")
        assert len([ln for ln in lines if re.match(r"^# i-[0-9a-f]+$", ln)]) == 2
        endpoints = [
            ln.split("=", 1)[1] for ln in lines if ln.startswith("# export AWS_EC2_METADATA_SERVICE_ENDPOINT=")
        ]
        assert all(METADATA_ENDPOINT_RE.match(e) for e in endpoints) and len(set(endpoints)) == 2, endpoints
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        stop_process(proc)
        if proc.stdout is not None:
            proc.stdout.close()


def test_sigterm_stops_cleanly_and_one_sandbox_per_process(tmp_path):
    code = (
        "from roleops.sandbox import Sandbox\n"
        "a = Sandbox(instances=0).start()\n"
        "try:\n"
        "    Sandbox(instances=0).start()\n"
        "except RuntimeError as e:\n"
        "    print('refused:', e)\n"
        "a.stop()\n"
        "b = Sandbox(instances=0).start(); b.stop(); print('restarted')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "refused: a roleops sandbox is already running" in result.stdout
    assert "restarted" in result.stdout

    proc, lines = start_sandbox_process("--port", "0", "--output", "json", stderr_path=tmp_path / "err.log")
    try:
        assert json.loads(lines[0])["instances"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        stop_process(proc)
        if proc.stdout is not None:
            proc.stdout.close()
