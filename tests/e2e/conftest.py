"""End-to-end fixtures: the sandbox as a subprocess, spoken to over real HTTP only."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import leakcheck
import pytest
from botocore.config import Config

REPO = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
START_TIMEOUT = 30.0
HTTP_TIMEOUT = 15.0
EC2_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
CREDENTIAL_KEYS = ["Code", "LastUpdated", "Type", "AccessKeyId", "SecretAccessKey", "Token", "Expiration"]
DEFAULT_FAULTS = {
    "throttle_fraction": 0.0,
    "profile_propagation_delay": 0.0,
    "trust_propagation_delay": 0.0,
    "credentials_delay": 0.0,
    "imds_latency": 0.0,
    "imds_error_rate": 0.0,
    "imds_malformed": False,
}


def role_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


def trust_for(*role_names: str, **statement_extra: Any) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": [role_arn(n) for n in role_names]},
                "Action": "sts:AssumeRole",
                **statement_extra,
            }
        ],
    }


def allow_assume(*targets: str, effect: str = "Allow") -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": effect, "Action": ["sts:AssumeRole"], "Resource": [role_arn(t) for t in targets]}],
    }


def http(method: str, url: str, *, headers: dict[str, str] | None = None, body: bytes | None = None) -> tuple[int, str]:
    """One HTTP exchange; (status, body text) whatever the status."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class ImdsClient:
    """curl-like access to one instance's metadata endpoint."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    def token(self, ttl: str | None = "21600", headers: dict[str, str] | None = None) -> tuple[int, str]:
        all_headers = dict(headers or {})
        if ttl is not None:
            all_headers["X-aws-ec2-metadata-token-ttl-seconds"] = ttl
        return http("PUT", self.endpoint + "latest/api/token", headers=all_headers)

    def get(self, path: str, *, token: str | None = None, v2: bool = True) -> tuple[int, str]:
        """GET latest/<path>; with v2 a fresh token is fetched unless one is given."""
        if token is None and v2:
            status, token = self.token()
            assert status == 200, (status, token)
        headers = {"X-aws-ec2-metadata-token": token} if token is not None else {}
        return http("GET", self.endpoint + "latest/" + path, headers=headers)

    def credentials(self, role: str) -> dict:
        status, body = self.get(f"meta-data/iam/security-credentials/{role}")
        assert status == 200, (status, body)
        return json.loads(body)


class SandboxProcess:
    """The sandbox subprocess and helpers that speak to it over HTTP."""

    def __init__(self, proc: subprocess.Popen, info: dict, stderr_path: Path) -> None:
        self.proc = proc
        self.info = info
        self.stderr_path = stderr_path

    # --- info --------------------------------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        return self.info["endpoint_url"]

    @property
    def instance_id(self) -> str:
        return self.info["instances"][0]["instance_id"]

    def metadata_endpoint(self, instance: str | dict | None = None) -> str:
        instance_id = self._instance_id(instance)
        for item in self.info["instances"]:
            if item["instance_id"] == instance_id:
                return item["metadata_endpoint"]
        # Not one this fixture has seen: ask the sandbox. An instance it did not launch itself (EC2's
        # RunInstances, or an id that is no instance) has no port of its own, only the API port's /imds/<id>/.
        for item in self.control("GET", "instances")["instances"]:
            if item["instance_id"] == instance_id:
                return item["metadata_endpoint"]
        return f"{self.endpoint_url}/imds/{instance_id}/"

    def _instance_id(self, instance: str | dict | None) -> str:
        if instance is None:
            return self.instance_id
        return instance["instance_id"] if isinstance(instance, dict) else instance

    def imds(self, instance: str | dict | None = None) -> ImdsClient:
        return ImdsClient(self.metadata_endpoint(instance))

    # --- environments and clients --------------------------------------------------------------------

    def env(self, instance: str | dict | None = None) -> dict[str, str]:
        """A subprocess environment: the admin's, or (for an instance) only its metadata endpoint."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["AWS_ENDPOINT_URL"] = self.endpoint_url
        env["AWS_DEFAULT_REGION"] = self.info["region"]
        env["PYTHONPATH"] = str(REPO)
        if instance is None:
            env["AWS_ACCESS_KEY_ID"] = self.info["access_key_id"]
            env["AWS_SECRET_ACCESS_KEY"] = self.info["secret_access_key"]
            return env
        missing = str(Path(tempfile.gettempdir()) / "roleops-e2e-no-such-aws-file")
        env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = self.metadata_endpoint(instance)
        env["AWS_SHARED_CREDENTIALS_FILE"] = missing
        env["AWS_CONFIG_FILE"] = missing
        return env

    def client(self, service: str, *, attempts: int | None = None, validate: bool = True, **creds: str) -> Any:
        """A boto3 client with the admin's keys (or the given ones)."""
        retries: dict[str, Any] = {"mode": "standard"}
        if attempts is not None:
            retries["total_max_attempts"] = attempts
        config = Config(retries=retries, parameter_validation=validate)
        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=self.info["region"],
            aws_access_key_id=creds.get("access_key_id", self.info["access_key_id"]),
            aws_secret_access_key=creds.get("secret_access_key", self.info["secret_access_key"]),
            aws_session_token=creds.get("session_token"),
            config=config,
        )

    def client_from_document(self, service: str, document: dict, **kwargs: Any) -> Any:
        return self.client(
            service,
            access_key_id=document["AccessKeyId"],
            secret_access_key=document["SecretAccessKey"],
            session_token=document["Token"],
            **kwargs,
        )

    # --- control endpoints ---------------------------------------------------------------------------

    def control(self, method: str, route: str, payload: dict | None = None) -> Any:
        body = json.dumps(payload).encode() if payload is not None else None
        headers = {"Content-Type": "application/json"} if body is not None else {}
        status, text = http(method, f"{self.endpoint_url}/_roleops/{route}", headers=headers, body=body)
        if status != 200:
            raise AssertionError(f"{method} /_roleops/{route} answered {status}: {text}")
        return json.loads(text)

    def new_instance(self) -> dict:
        instance = self.control("POST", "instances")
        self.info["instances"].append(instance)
        return instance

    def set_faults(self, **changes: Any) -> dict:
        return self.control("POST", "faults", changes)

    def reset(self) -> None:
        self.info = self.control("POST", "reset")

    def secrets(self) -> set[str]:
        return set(self.control("GET", "secrets")["secrets"])

    # --- the walkthrough's set-up, through the public API with the admin's keys ----------------------

    def create_instance_role(self, name: str = "ExampleRole", *, trust: dict | None = None) -> None:
        iam = self.client("iam")
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust or EC2_TRUST))
        iam.create_instance_profile(InstanceProfileName=name)
        iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)

    def associate(self, profile: str = "ExampleRole", instance: str | dict | None = None) -> dict:
        ec2 = self.client("ec2")
        return ec2.associate_iam_instance_profile(
            InstanceId=self._instance_id(instance), IamInstanceProfile={"Name": profile}
        )["IamInstanceProfileAssociation"]


def read_lines(proc: subprocess.Popen, timeout: float, *, until: Callable[[list[str]], bool]) -> list[str]:
    """Stdout lines until `until(lines)` holds, EOF, or `timeout` seconds: never blocks past that."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    buffer = b""
    lines: list[str] = []
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while not until(lines):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                break
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            lines.extend(line.decode() for line in complete)
    return lines


def start_sandbox_process(
    *args: str, stderr_path: Path, until: Callable[[list[str]], bool] = bool
) -> tuple[subprocess.Popen, list[str]]:
    """`python -m roleops.sandbox ARGS` and its first stdout lines (by default: the first one)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PYTHONPATH"] = str(REPO)
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "roleops.sandbox", *args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            cwd=REPO,
        )
    return proc, read_lines(proc, START_TIMEOUT, until=until)


def stop_process(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.terminate()
        try:
            return proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(timeout=10)
    return proc.returncode


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    stderr_path = tmp_path_factory.mktemp("sandbox") / "stderr.log"
    proc, lines = start_sandbox_process("--port", "0", "--output", "json", stderr_path=stderr_path)
    try:
        if not lines:
            stop_process(proc)
            pytest.fail(f"sandbox printed no JSON line within {START_TIMEOUT:g}s: {stderr_path.read_text()[-2000:]}")
        process = SandboxProcess(proc, json.loads(lines[0]), stderr_path)
        yield process
        # Hand every secret it issued to the suite-wide leak check (tests/conftest.py). The admin's key is left
        # out: `roleops sandbox` prints it by contract. The sandbox's own log is an output to search too.
        leakcheck.SECRETS.update(process.secrets() - {process.info["secret_access_key"]})
    finally:
        stop_process(proc)
        leakcheck.record("sandbox stderr log", stderr_path.read_text(errors="replace") if stderr_path.exists() else "")
        if proc.stdout is not None:
            proc.stdout.close()


def fresh(sandbox: SandboxProcess) -> SandboxProcess:
    """Fault settings off, then a reset: fresh accounts, the same admin keys."""
    sandbox.set_faults(**DEFAULT_FAULTS)
    sandbox.reset()
    return sandbox


@pytest.fixture
def sb(sandbox: SandboxProcess) -> SandboxProcess:
    """A fresh account (and fault settings off) for each test."""
    return fresh(sandbox)


@pytest.fixture
def record(sandbox: SandboxProcess, record_output: Callable[..., None]) -> Iterator[Callable[..., None]]:
    """`record_output`, and at the test's end: no secret the sandbox ever issued is in what was recorded
    without `secrets_allowed` (the instance and assumed sessions' keys and tokens, IMDS tokens, the admin's secret
    key), nor anything shaped like a sandbox session token (leakcheck.SHAPES: a private sandbox's too)."""
    seen: list[tuple[str, str]] = []

    def rec(source: str, text: str | bytes | None, *, secrets_allowed: bool = False) -> None:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        record_output(source, text, secrets_allowed=secrets_allowed)
        if text and not secrets_allowed:
            seen.append((source, text))

    yield rec
    secrets = sandbox.secrets()
    assert secrets, "the sandbox reports no issued secrets: the check would prove nothing"
    leaks = [source for source, text in seen if leakcheck.holds_secret(text, secrets)]
    assert not leaks, f"a secret issued by the sandbox appears in: {leaks}"


def admin_session(sb: SandboxProcess, role: str = "SandboxAdminSession", **keys: str) -> dict[str, Any]:
    """A role session (keys and a session token) of an account's admin, as an operator with SSO or an assumed admin
    role has: the admin's keys (the default account's, or `keys` as SandboxProcess.client takes them) assume `role`,
    an admin role made for it in that account. STS's Credentials."""
    iam = sb.client("iam", **keys)
    admin_arn = iam.get_user()["User"]["Arn"]
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": admin_arn}, "Action": "sts:AssumeRole"}],
    }
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))
    everything = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    iam.put_role_policy(RoleName=role, PolicyName="admin", PolicyDocument=json.dumps(everything))
    arn = f"arn:aws:iam::{admin_arn.split(':')[4]}:role/{role}"
    return sb.client("sts", **keys).assume_role(RoleArn=arn, RoleSessionName="operator")["Credentials"]


def assumed_admin_env(sb: SandboxProcess, role: str = "SandboxAdminSession") -> dict[str, str]:
    """A subprocess environment signing with the admin's role session (admin_session).

    The admin's own long-term keys send no X-Amz-Security-Token; only a session shows whether one leaks.
    """
    credentials = admin_session(sb, role)
    env = sb.env()
    env["AWS_ACCESS_KEY_ID"] = credentials["AccessKeyId"]
    env["AWS_SECRET_ACCESS_KEY"] = credentials["SecretAccessKey"]
    env["AWS_SESSION_TOKEN"] = credentials["SessionToken"]
    return env


# --- SSM Run Command (tests/e2e/test_sandbox_ssm.py) -------------------------------------------------------

SSM_DONE = {"Success", "Failed", "TimedOut", "Cancelled"}  # an invocation's terminal Status values
SSM_WAIT_SECONDS = 30.0


def launch_instance(
    sb: SandboxProcess, *, ssm_agent: bool = True, roleops: bool = True, tags: dict[str, str] | None = None
) -> dict:
    """POST /_roleops/instances with the instance options (SSM agent, roleops on its PATH, EC2 tags)."""
    instance = sb.control("POST", "instances", {"ssm_agent": ssm_agent, "roleops": roleops, "tags": tags or {}})
    sb.info["instances"].append(instance)
    return instance


def ssm_invocations(ssm: Any, command_id: str, *, page_size: int = 50, details: bool = True) -> list[dict]:
    """Every invocation of a command, read page by page (a bounded number of pages)."""
    found: list[dict] = []
    kwargs: dict[str, Any] = {"CommandId": command_id, "Details": details, "MaxResults": page_size}
    for _ in range(1000):
        page = ssm.list_command_invocations(**kwargs)
        found.extend(page["CommandInvocations"])
        if not page.get("NextToken"):
            return found
        kwargs["NextToken"] = page["NextToken"]
    raise AssertionError("ListCommandInvocations kept answering NextToken")


def ssm_wait(
    ssm: Any, command_id: str, *, page_size: int = 50, timeout: float = SSM_WAIT_SECONDS, until: set[str] = SSM_DONE
) -> list[dict]:
    """Poll ListCommandInvocations (paged) until every invocation's Status is in `until`; at most `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        invocations = ssm_invocations(ssm, command_id, page_size=page_size)
        if invocations and all(i["Status"] in until for i in invocations):
            return invocations
        if time.monotonic() >= deadline:
            raise AssertionError(f"command {command_id} not done after {timeout:g}s: {invocations}")
        time.sleep(0.1)


def run_shell(ssm: Any, commands: list[str], *, instance_ids: list[str] | None = None, **kwargs: Any) -> str:
    """SendCommand AWS-RunShellScript with `commands` (by instance ids unless Targets is given); the command id."""
    parameters: dict[str, list[str]] = {"commands": commands}
    parameters.update(kwargs.pop("parameters", {}))
    if instance_ids is not None:
        kwargs["InstanceIds"] = instance_ids
    sent = ssm.send_command(DocumentName="AWS-RunShellScript", Parameters=parameters, **kwargs)
    return sent["Command"]["CommandId"]


# --- a test module's own sandbox process, several accounts (tests/e2e/test_sandbox_accounts.py, ...) -------------


def own_sandbox(stderr_path: Path, *args: str) -> Iterator[SandboxProcess]:
    """`python -m roleops.sandbox --port 0 --output json ARGS` for one test module (a generator for a module-scoped
    fixture): stopped at the end, its issued secrets handed to the suite-wide leak check like the session sandbox's
    (every account's admin secret apart: `roleops sandbox` prints them by contract), its stderr log searched too."""
    proc, lines = start_sandbox_process("--port", "0", "--output", "json", *args, stderr_path=stderr_path)
    try:
        if not lines:
            pytest.fail(f"sandbox printed no JSON line within {START_TIMEOUT:g}s: {stderr_path.read_text()[-2000:]}")
        process = SandboxProcess(proc, json.loads(lines[0]), stderr_path)
        yield process
        admins = {a["secret_access_key"] for a in process.info.get("accounts", [])} | {
            process.info["secret_access_key"]
        }
        leakcheck.SECRETS.update(process.secrets() - admins)
    finally:
        stop_process(proc)
        leakcheck.record("sandbox stderr log", stderr_path.read_text(errors="replace") if stderr_path.exists() else "")
        if proc.stdout is not None:
            proc.stdout.close()


def admin_keys(sb: SandboxProcess, index: int) -> dict[str, str]:
    """The admin keys of the sandbox's `index`-th account (0: the default), as `SandboxProcess.client` takes them."""
    account = sb.info["accounts"][index]
    return {"access_key_id": account["access_key_id"], "secret_access_key": account["secret_access_key"]}


@pytest.fixture(scope="session")
def sandbox2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    """One two-account sandbox for the suite (cross-account tests, CloudFormation and StackSets)."""
    yield from own_sandbox(tmp_path_factory.mktemp("accounts") / "stderr.log", "--accounts", "2")


@pytest.fixture
def sb2(sandbox2: SandboxProcess) -> SandboxProcess:
    """Fresh accounts (and fault settings off) for each test."""
    return fresh(sandbox2)


@pytest.fixture
def operator(sb2: SandboxProcess, tmp_path: Path) -> dict[str, str]:
    """An operator's environment on the two-account sandbox: the first account's admin keys, and in a shared
    credentials file of its own the profiles `prod` (the second account's admin) and `home` (the first's)."""
    creds = tmp_path / "credentials"
    lines = []
    for name, index in (("prod", 1), ("home", 0)):
        keys = admin_keys(sb2, index)
        lines += [f"[{name}]", f"aws_access_key_id = {keys['access_key_id']}"]
        lines += [f"aws_secret_access_key = {keys['secret_access_key']}", ""]
    creds.write_text("\n".join(lines))
    env = sb2.env()
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(creds)
    env["AWS_CONFIG_FILE"] = str(tmp_path / "config")
    return env


# --- CloudFormation StackSets (tests/e2e/test_sandbox_cloudformation.py, test_e2e_export.py) ---------------------

STACK_SET_DONE = {"SUCCEEDED", "FAILED", "STOPPED"}  # a StackSet operation's final states
STACK_SET_WAIT_SECONDS = 30.0


def deploy_stack_set(
    sb: SandboxProcess, name: str, body: str, account: str, parameters: dict[str, str] | None = None
) -> dict[str, Any]:
    """A self-managed StackSet from the default account (its admin's keys), with one stack instance in `account`;
    the StackSetOperation once it is final (moto finishes at once; the wait is bounded all the same)."""
    cfn = sb.client("cloudformation", attempts=1)
    cfn.create_stack_set(
        StackSetName=name,
        TemplateBody=body,
        PermissionModel="SELF_MANAGED",
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in (parameters or {}).items()],
        Capabilities=["CAPABILITY_NAMED_IAM"],
        # The usual self-managed prerequisites (the sandbox does not ask for them).
        AdministrationRoleARN=f"arn:aws:iam::{sb.info['account_id']}:role/AWSCloudFormationStackSetAdministrationRole",
        ExecutionRoleName="AWSCloudFormationStackSetExecutionRole",
    )
    operation_id = cfn.create_stack_instances(StackSetName=name, Accounts=[account], Regions=[sb.info["region"]])[
        "OperationId"
    ]
    deadline = time.monotonic() + STACK_SET_WAIT_SECONDS
    while True:
        operation = cfn.describe_stack_set_operation(StackSetName=name, OperationId=operation_id)
        if operation["StackSetOperation"]["Status"] in STACK_SET_DONE:
            return operation["StackSetOperation"]
        if time.monotonic() >= deadline:
            raise AssertionError(f"operation {operation_id} not done after {STACK_SET_WAIT_SECONDS:g}s: {operation}")
        time.sleep(0.2)
