"""E2E: `roleops creds` formats used by a shell, the AWS CLI and credential_process; `roleops demo` end to end."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest
from conftest import ACCOUNT, REPO, SandboxProcess, role_arn

INSTANCE_ROLE = "ExampleRole"
ASSUMED_ROLE = "ExampleAssumedRole"
ASSUMED_ARN = role_arn(ASSUMED_ROLE)
ENV_NAMES = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_CREDENTIAL_EXPIRATION"]
JSON_KEYS = ["AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"]


def run(
    record: Callable[..., None], args: list[str], env: dict[str, str], *, label: str, secrets_allowed: bool = False
) -> subprocess.CompletedProcess:
    """Run a command; stdout and stderr go to the suite's leak check (stderr is never allowed a secret)."""
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, cwd=REPO)
    record(f"{label} [stdout]", proc.stdout, secrets_allowed=secrets_allowed)
    record(f"{label} [stderr]", proc.stderr)
    return proc


def creds(record: Callable[..., None], sb: SandboxProcess, *args: str) -> subprocess.CompletedProcess:
    proc = run(
        record,
        [sys.executable, "-m", "roleops", "creds", *args],
        sb.env(sb.instance_id),
        label="roleops creds " + " ".join(args),
        secrets_allowed=True,  # the one command that prints secrets
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return proc


@pytest.fixture
def chain(sb: SandboxProcess, record: Callable[..., None]) -> SandboxProcess:
    """The walkthrough's set-up, by `roleops setup` with the sandbox admin's keys."""
    proc = run(
        record,
        [sys.executable, "-m", "roleops", "setup", "--instance-role", INSTANCE_ROLE]
        + ["--assumable-role", ASSUMED_ROLE, "--instance-id", sb.instance_id],
        sb.env(),
        label="roleops setup",
    )
    assert proc.returncode == 0, proc.stderr
    return sb


def parse_env_lines(text: str, prefix: str) -> dict[str, str]:
    names, values = [], {}
    for line in text.splitlines():
        assert line.startswith(prefix), "every line is an assignment"
        name, _, value = line[len(prefix) :].partition("=")
        (value,) = shlex.split(value)  # one shell word each
        names.append(name)
        values[name] = value
    assert names == ENV_NAMES
    return values


def aware(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


# --- roleops creds ------------------------------------------------------------------------------------


def test_creds_prints_the_instance_role_credentials_in_each_format(chain, record):
    document = chain.imds().credentials(INSTANCE_ROLE)  # what IMDS serves, read test-side
    want = {
        "AccessKeyId": document["AccessKeyId"],
        "SecretAccessKey": document["SecretAccessKey"],
        "SessionToken": document["Token"],
    }
    expiry = aware(document["Expiration"])
    assert {want["SecretAccessKey"], want["SessionToken"]} <= chain.secrets()

    for fmt, prefix in (("env", "export "), ("env-no-export", "")):
        values = parse_env_lines(creds(record, chain, "--format", fmt).stdout, prefix)
        assert [values[n] for n in ENV_NAMES[:3]] == list(want.values()), fmt
        assert aware(values["AWS_CREDENTIAL_EXPIRATION"]) == expiry

    doc = json.loads(creds(record, chain, "--format", "json").stdout)
    assert list(doc) == JSON_KEYS
    assert {k: doc[k] for k in want} == want and aware(doc["Expiration"]) == expiry

    process = json.loads(creds(record, chain, "--format", "process").stdout)
    assert list(process) == ["Version", *JSON_KEYS]
    assert process["Version"] == 1  # the number, as credential_process requires
    assert {k: process[k] for k in want} == want and aware(process["Expiration"]) == expiry


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ((), f"arn:aws:sts::{ACCOUNT}:assumed-role/{INSTANCE_ROLE}/{{instance}}"),
        (
            ("--assume", ASSUMED_ARN, "--session-name", "ci-deploy"),
            f"arn:aws:sts::{ACCOUNT}:assumed-role/{ASSUMED_ROLE}/ci-deploy",
        ),
    ],
    ids=["instance-role", "assumed-role"],
)
def test_eval_of_the_env_format_gives_the_aws_cli_that_identity(chain, record, extra, expected):
    # IMDS is disabled for the aws CLI: the keys `eval` exported are the only credentials it can find.
    script = (
        'set -euo pipefail\neval "$("$PY" -m roleops creds --format env "$@")"\n'
        'test -n "$AWS_CREDENTIAL_EXPIRATION"\n'
        'AWS_EC2_METADATA_DISABLED=true "$PY" -m awscli sts get-caller-identity --output json\n'
    )
    env = chain.env(chain.instance_id) | {"PY": sys.executable}
    proc = run(record, ["bash", "-c", script, "bash", *extra], env, label="eval roleops creds; aws sts")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["Arn"] == expected.format(instance=chain.instance_id)


def test_process_format_works_as_an_aws_cli_credential_process(chain, record, tmp_path):
    config = tmp_path / "config"
    command = shlex.join([sys.executable, "-m", "roleops", "creds", "--format", "process", "--assume", ASSUMED_ARN])
    config.write_text(f"[profile assumed]\ncredential_process = {command}\n")
    env = chain.env(chain.instance_id) | {"AWS_CONFIG_FILE": str(config)}
    proc = run(
        record,
        [sys.executable, "-m", "awscli", "sts", "get-caller-identity", "--profile", "assumed", "--output", "json"],
        env,
        label="aws sts get-caller-identity with credential_process = roleops creds",
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/{ASSUMED_ROLE}/roleops-creds"


# --- roleops demo -------------------------------------------------------------------------------------


def clean_env() -> dict[str, str]:
    """A fresh machine: no AWS settings at all (the demo brings its own sandbox)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PYTHONPATH"] = str(REPO)
    return env


def assert_demo_json(document: dict) -> None:
    assert set(document) == {"ok", "steps"} and document["ok"] is True
    assert document["steps"] and all({"step", "aws"} <= set(s) for s in document["steps"])
    (verify,) = [s["verify"] for s in document["steps"] if "verify" in s]
    assert verify["ok"] is True
    arns = [s["arn"] for s in verify["steps"] if s["step"].startswith("assumed-caller:")]
    assert arns == [f"arn:aws:sts::{ACCOUNT}:assumed-role/{ASSUMED_ROLE}/MySession"]


def test_demo_exits_0_as_a_command_with_table_and_json_output(record):
    argv = [sys.executable, "-m", "roleops", "demo", "--cross-account"]
    table = run(record, argv, clean_env(), label="roleops demo --cross-account")
    assert table.returncode == 0, table.stderr
    assert table.stdout.rstrip().splitlines()[-1] == "demo passed: every link of the walkthrough holds"
    assert f"{ACCOUNT}:assumed-role/{ASSUMED_ROLE}/MySession" in table.stdout
    assert "Second act: the secondary role in account 234567890123" in table.stdout
    assert f"234567890123:assumed-role/{ASSUMED_ROLE}/MySession" in table.stdout

    as_json = run(
        record,
        [sys.executable, "-m", "roleops", "demo", "--output", "json"],
        clean_env(),
        label="roleops demo --output json",
    )
    assert as_json.returncode == 0, as_json.stderr
    assert_demo_json(json.loads(as_json.stdout))


# Runs in a child process: the demo's sandbox uses moto, whose state is process-global. The secrets the demo's
# sandbox issued go to a file, never to a stream.
DEMO_PROBE = """
import io, json, sys
from roleops.demo import run_demo

runs, secrets = [], set()
for output, cross in (("table", False), ("json", True)):
    out, err = io.StringIO(), io.StringIO()
    code = run_demo(output=output, stdout=out, stderr=err, cross_account=cross,
                    before_stop=lambda sb: secrets.update(sb.issued_secrets()))
    runs.append({"output": output, "code": code, "stdout": out.getvalue(), "stderr": err.getvalue()})
with open(sys.argv[1], "w") as f:
    json.dump({"runs": runs, "secrets": sorted(secrets)}, f)
"""


def test_demo_prints_no_secret_its_sandbox_issued(record, tmp_path: Path):
    result = tmp_path / "demo-probe.json"
    proc = run(record, [sys.executable, "-c", DEMO_PROBE, str(result)], clean_env(), label="demo probe")
    assert proc.returncode == 0, proc.stderr
    probe = json.loads(result.read_text())
    secrets = set(probe["secrets"])
    # the admin's secret, the instance session's secret and token, the assumed session's secret and token
    assert len(secrets) >= 5
    for item in probe["runs"]:
        record(f"run_demo(output={item['output']}) [stdout]", item["stdout"])
        record(f"run_demo(output={item['output']}) [stderr]", item["stderr"])
        assert item["code"] == 0, item["stderr"]
        for stream in ("stdout", "stderr"):
            assert not [s for s in secrets if s in item[stream]], f"a secret appears in the {item['output']} {stream}"
    assert "****(secret, not shown" in probe["runs"][0]["stdout"]  # the credential document is shown, masked
    # `roleops demo --cross-account`: the second act assumes the role in the second account, each side made and
    # removed in its own account, beside the aws commands (with the second account's profile)
    document = json.loads(probe["runs"][1]["stdout"])
    assert document["ok"] is True
    verifies = [s["verify"] for s in document["steps"] if "verify" in s]
    arns = [s["arn"] for v in verifies for s in v["steps"] if s["step"].startswith("assumed-caller:")]
    assert arns == [
        f"arn:aws:sts::{ACCOUNT}:assumed-role/{ASSUMED_ROLE}/MySession",
        f"arn:aws:sts::234567890123:assumed-role/{ASSUMED_ROLE}/MySession",
    ]
    teardown = document["steps"][-1]
    assert "--profile account-b" in teardown["aws"]
    assert {(c["resource"], c["account"]) for c in teardown["changes"] if c["action"] == "delete"} >= {
        (f"role {ASSUMED_ROLE}", "234567890123"),
        ("role ExampleRole", ACCOUNT),
    }
