"""E2E: `roleops verify` on a sandbox instance, over real HTTP: the three identities, each broken link, fail-fast."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from conftest import ACCOUNT, EC2_TRUST, REPO, SandboxProcess, role_arn

INSTANCE_ROLE = "ExampleRole"
ASSUMED_ROLE = "ExampleAssumedRole"
ASSUMED_ARN = role_arn(ASSUMED_ROLE)
SESSION = "MySession"
# The contract's JSON keys of one verify step, exactly.
STEP_KEYS = {"step", "status", "arn", "account", "user_id", "access_key_id", "expiration", "message", "hint"}
FAIL_FAST_SECONDS = 1.5  # the contract: no metadata service -> exit 3, quickly


def run_roleops(record: Callable[..., None], env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """`python -m roleops ARGS` in `env`; both streams go to the leak checks."""
    proc = subprocess.run(
        [sys.executable, "-m", "roleops", *args], env=env, capture_output=True, text=True, timeout=60, cwd=REPO
    )
    label = "roleops " + " ".join(args)
    record(f"{label} [stdout]", proc.stdout)
    record(f"{label} [stderr]", proc.stderr)
    return proc


def setup_chain(sb: SandboxProcess, record: Callable[..., None], *, associate: bool = True) -> None:
    """The walkthrough's set-up, by `roleops setup` with the sandbox admin's keys."""
    args = ["setup", "--instance-role", INSTANCE_ROLE, "--assumable-role", ASSUMED_ROLE]
    if associate:
        args += ["--instance-id", sb.instance_id]
    proc = run_roleops(record, sb.env(), *args)
    assert proc.returncode == 0, proc.stderr


def verify_json(
    sb: SandboxProcess, record: Callable[..., None], *extra: str, env: dict[str, str] | None = None
) -> tuple[int, dict, subprocess.CompletedProcess]:
    """`roleops verify --assume TARGET --output json` as code on the instance; (exit code, report, process)."""
    proc = run_roleops(
        record, env or sb.env(sb.instance_id), "verify", "--assume", ASSUMED_ARN, "--output", "json", *extra
    )
    assert proc.stdout.strip(), f"no JSON on stdout (exit {proc.returncode}): {proc.stderr}"
    return proc.returncode, json.loads(proc.stdout), proc


def steps_by_name(report: dict) -> dict[str, dict]:
    return {s["step"]: s for s in report["steps"]}


def assert_fails_at(report: dict, step: str) -> dict:
    """The report failed, at `step` and nowhere before it; what depends on it is skipped. Returns the step."""
    assert report["ok"] is False
    names = [s["step"] for s in report["steps"]]
    statuses = [s["status"] for s in report["steps"]]
    assert statuses.count("fail") == 1, report
    assert names[statuses.index("fail")] == step
    failed = report["steps"][names.index(step)]
    later = report["steps"][names.index(step) + 1 :]
    assert later and all(s["status"] == "skip" for s in later), report  # each waits on the broken link
    return failed


# --- the walkthrough, passing ----------------------------------------------------------------------------


def test_verify_passes_and_shows_the_three_identities(sb, record):
    setup_chain(sb, record)
    instance_session = f"arn:aws:sts::{ACCOUNT}:assumed-role/{INSTANCE_ROLE}/{sb.instance_id}"
    assumed_session = f"arn:aws:sts::{ACCOUNT}:assumed-role/{ASSUMED_ROLE}/{SESSION}"

    code, report, json_run = verify_json(sb, record, "--session-name", SESSION)
    assert code == 0, json_run.stderr
    assert json_run.stderr == ""
    assert set(report) == {"ok", "steps"} and report["ok"] is True
    for step in report["steps"]:
        assert set(step) == STEP_KEYS, step
        assert step["status"] == "pass", step
    steps = steps_by_name(report)
    assert list(steps) == [
        "imds",
        "caller",
        "default-chain",
        f"assume:{ASSUMED_ROLE}",
        f"assumed-caller:{ASSUMED_ROLE}",
    ]
    # 1. the instance role, as IMDS serves it; 2. that role as STS sees it (session named after the instance);
    # 3. the assumed role, as STS sees the assumed credentials.
    assert steps["imds"]["arn"] == role_arn(INSTANCE_ROLE)
    assert steps["caller"]["arn"] == instance_session
    assert steps["caller"]["user_id"].endswith(f":{sb.instance_id}")
    assert steps[f"assumed-caller:{ASSUMED_ROLE}"]["arn"] == assumed_session
    assert steps[f"assumed-caller:{ASSUMED_ROLE}"]["user_id"].endswith(f":{SESSION}")
    assert {s["account"] for s in report["steps"]} == {ACCOUNT}
    # Access key ids masked (first 4, last 4), and expiries in AWS's own shape.
    instance_key = sb.imds().credentials(INSTANCE_ROLE)["AccessKeyId"]
    assert steps["caller"]["access_key_id"] == f"{instance_key[:4]}…{instance_key[-4:]}"
    assert instance_key not in json_run.stdout
    assert steps[f"assume:{ASSUMED_ROLE}"]["access_key_id"] != steps["caller"]["access_key_id"]
    assert steps["imds"]["expiration"].endswith("Z")

    table = run_roleops(record, sb.env(sb.instance_id), "verify", "--assume", ASSUMED_ARN, "--session-name", SESSION)
    assert table.returncode == 0, table.stderr
    for arn in (role_arn(INSTANCE_ROLE), instance_session, assumed_session):
        assert arn in table.stdout
    assert table.stdout.rstrip().splitlines()[-1] == "PASS every link of the chain holds"


# --- each broken link: exit 1, the right step, the right hint ------------------------------------------


def test_no_association_fails_at_imds_and_names_roleops_associate(sb, record):
    setup_chain(sb, record, associate=False)  # roles and profile, but the instance holds none
    code, report, proc = verify_json(sb, record, "--expect-role", INSTANCE_ROLE)
    assert code == 1, proc.stderr
    failed = assert_fails_at(report, "imds")
    assert "no instance profile is associated" in failed["message"]
    assert failed["hint"] == f"roleops associate --instance-id {sb.instance_id} --instance-profile {INSTANCE_ROLE}"


def test_missing_trust_on_the_target_fails_at_assume(sb, record):
    setup_chain(sb, record)
    # The target trusts someone else now; the instance role keeps its permission.
    sb.client("iam").update_assume_role_policy(RoleName=ASSUMED_ROLE, PolicyDocument=json.dumps(EC2_TRUST))
    code, report, proc = verify_json(sb, record)
    assert code == 1, proc.stderr
    assert steps_by_name(report)["caller"]["status"] == "pass"  # the instance role itself is fine
    failed = assert_fails_at(report, f"assume:{ASSUMED_ROLE}")
    assert "AccessDenied" in failed["message"]
    # STS does not say which side refused (AWS's message is the same): the hint names both, and the fix.
    assert f"{ASSUMED_ROLE}'s trust policy must name {role_arn(INSTANCE_ROLE)}" in failed["hint"]
    assert failed["hint"].endswith(f"roleops setup --instance-role {INSTANCE_ROLE} --assumable-role {ASSUMED_ROLE}")


def test_missing_permission_on_the_instance_role_fails_at_assume(sb, record):
    setup_chain(sb, record)
    iam = sb.client("iam")
    (policy,) = iam.list_role_policies(RoleName=INSTANCE_ROLE)["PolicyNames"]  # the one setup wrote
    iam.delete_role_policy(RoleName=INSTANCE_ROLE, PolicyName=policy)
    code, report, proc = verify_json(sb, record)
    assert code == 1, proc.stderr
    failed = assert_fails_at(report, f"assume:{ASSUMED_ROLE}")
    assert "is not authorized to perform: sts:AssumeRole" in failed["message"]
    assert f"the instance role {INSTANCE_ROLE} must allow sts:AssumeRole on {ASSUMED_ARN}" in failed["hint"]
    assert f"--assumable-role {ASSUMED_ROLE}" in failed["hint"]


def test_instance_role_not_trusting_ec2_fails_at_imds_with_the_credential_document_code(sb, record):
    setup_chain(sb, record)
    trust_lambda = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    sb.client("iam").update_assume_role_policy(RoleName=INSTANCE_ROLE, PolicyDocument=json.dumps(trust_lambda))
    assert sb.imds().credentials(INSTANCE_ROLE)["Code"] == "AssumeRoleUnauthorizedAccess"  # what IMDS serves
    code, report, proc = verify_json(sb, record)
    assert code == 1, proc.stderr
    failed = assert_fails_at(report, "imds")
    assert "AssumeRoleUnauthorizedAccess" in failed["message"]
    assert "EC2 cannot assume the role ExampleRole" in failed["message"]  # IMDS's own Message, passed on
    assert "trust policy must allow ec2.amazonaws.com" in failed["hint"]
    assert failed["hint"].endswith(f"roleops setup --instance-role {INSTANCE_ROLE} --assumable-role {ASSUMED_ROLE}")


# --- IMDSv2 required, the client pushed onto IMDSv1 --------------------------------------------------


class ForwardingProxy(ThreadingHTTPServer):
    """A plain HTTP forward proxy on 127.0.0.1 that adds X-Forwarded-For, as Squid and most proxies do.

    It logs (method, path, had a token header, status) of every request it forwards.
    """

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.log: list[tuple[str, str, bool, int]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(BaseHTTPRequestHandler):
    server: ForwardingProxy

    def _forward(self) -> None:
        target = urlsplit(self.path)  # a proxy receives the absolute URL
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if not k.lower().startswith("proxy-")}
        headers.pop("Connection", None)
        headers["X-Forwarded-For"] = self.client_address[0]
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=15)
        try:
            conn.request(self.command, target.path + (f"?{target.query}" if target.query else ""), body, headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        has_token = any(k.lower() == "x-aws-ec2-metadata-token" for k in headers)
        self.server.log.append((self.command, target.path, has_token, resp.status))
        self.send_response(resp.status)
        for key, value in resp.getheaders():
            if key.lower() not in ("connection", "transfer-encoding", "content-length", "server", "date"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = _forward

    def log_message(self, format: str, *args: object) -> None:
        pass  # request lines would carry access key ids


@pytest.fixture
def proxy() -> Iterator[ForwardingProxy]:
    server = ForwardingProxy()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _through_proxy(env: dict[str, str], proxy_url: str) -> dict[str, str]:
    env = {k: v for k, v in env.items() if k.lower() not in ("no_proxy", "http_proxy", "https_proxy", "all_proxy")}
    env["http_proxy"] = proxy_url
    return env


def test_tokens_required_while_the_client_is_pushed_to_imdsv1(sb, record, proxy):
    """HttpTokens=required on the instance; the client cannot get a token and so would have to use IMDSv1.

    How a real client ends up "IMDSv1 only": its requests go through an HTTP proxy (http_proxy set, the metadata
    address not in NO_PROXY). A forwarding proxy adds X-Forwarded-For, and IMDS refuses any token PUT carrying
    that header with 403 (AWS documents this; the sandbox does it), which botocore, and roleops, read as "no
    token API here: use IMDSv1". The proxy below is a real forwarding proxy; nothing answers on roleops' behalf.

    - With AWS_EC2_METADATA_V1_DISABLED=true, IMDSv1 may not be tried: verify fails at imds without sending a
      single tokenless request, and the hint names the proxy (NO_PROXY), not "require IMDSv2" (already so).
    - With fallback allowed, the tokenless GET gets 401 (tokens required): fails at imds, same hint.
    - The control: the same proxy with HttpTokens=optional reads over IMDSv1 and passes, with a warning whose
      hint mends the proxy before requiring IMDSv2 (which would otherwise cut this host off its role).
    - And the direct path (no proxy, v1 disabled, tokens required) passes: the proxy is the only cause.
    """
    setup_chain(sb, record)
    instance_env = sb.env(sb.instance_id)
    instance_env["AWS_EC2_METADATA_V1_DISABLED"] = "true"
    sb.client("ec2").modify_instance_metadata_options(InstanceId=sb.instance_id, HttpTokens="required")

    code, report, proc = verify_json(sb, record, env=instance_env)
    assert code == 0, report  # direct: IMDSv2 works
    assert "IMDSv2" in steps_by_name(report)["imds"]["message"]

    proxied = _through_proxy(instance_env, proxy.url)
    code, report, proc = verify_json(sb, record, env=proxied)
    assert code == 1, proc.stderr
    failed = assert_fails_at(report, "imds")
    assert "answered HTTP 403, and IMDSv1 is disabled" in failed["message"]
    assert "NO_PROXY=127.0.0.1" in failed["hint"] and "X-Forwarded-For" in failed["hint"]
    assert [(m, p.rsplit("/latest/", 1)[1], t, s) for m, p, t, s in proxy.log] == [
        ("PUT", "api/token", False, 403)
    ]  # one refused token request, and no IMDSv1 request at all

    proxy.log.clear()
    del proxied["AWS_EC2_METADATA_V1_DISABLED"]
    code, report, proc = verify_json(sb, record, env=proxied)
    assert code == 1, proc.stderr
    failed = assert_fails_at(report, "imds")
    assert "requires IMDSv2 tokens (HTTP 401 on IMDSv1)" in failed["message"]
    assert "NO_PROXY=127.0.0.1" in failed["hint"]
    assert [(m, t, s) for m, _p, t, s in proxy.log] == [("PUT", False, 403), ("GET", False, 401)]

    sb.client("ec2").modify_instance_metadata_options(InstanceId=sb.instance_id, HttpTokens="optional")
    code, report, proc = verify_json(sb, record, env=proxied)
    assert code == 0, report
    imds = steps_by_name(report)["imds"]
    assert imds["status"] == "warn" and "read with IMDSv1" in imds["message"]
    assert imds["hint"].index("NO_PROXY") < imds["hint"].index("--http-tokens required")


# --- no metadata service at all: exit 3, fast ---------------------------------------------------------


def _elapsed(args: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.monotonic()
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, cwd=REPO)
    return time.monotonic() - start, proc


def test_no_metadata_service_exits_3_fast_with_one_line(sandbox, record):
    env = sandbox.env(sandbox.instance_id)
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))  # bound, never listening: the port is ours and connections are refused
        port = held.getsockname()[1]
        env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = f"http://127.0.0.1:{port}/"
        startup, help_run = _elapsed([sys.executable, "-m", "roleops", "--help"], env)
        assert help_run.returncode == 0
        elapsed, proc = _elapsed([sys.executable, "-m", "roleops", "verify", "--assume", ASSUMED_ARN], env)
    record("roleops verify (no IMDS) [stdout]", proc.stdout)
    record("roleops verify (no IMDS) [stderr]", proc.stderr)
    assert proc.returncode == 3, proc.stderr
    assert elapsed < FAIL_FAST_SECONDS + startup, (elapsed, startup)
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"roleops: error: no instance metadata service answered at http://127.0.0.1:{port}/")
    assert "refused" in lines[0] and "AWS_EC2_METADATA_SERVICE_ENDPOINT" in lines[0]
