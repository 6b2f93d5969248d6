"""E2E: scripts/smoke_check.sh and the examples that run it (user data, SSM Run Command) against the sandbox."""

from __future__ import annotations

import json
import re
import shlex
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from botocore.session import get_session
from botocore.validate import validate_parameters
from conftest import ACCOUNT, REPO, SandboxProcess, role_arn

SMOKE = REPO / "scripts" / "smoke_check.sh"
USER_DATA = REPO / "examples" / "user-data.sh"
SSM_INPUT = REPO / "examples" / "ssm-run-command.json"
INSTANCE_ROLE = "ExampleRole"
ASSUMED_ROLE = "ExampleAssumedRole"
ASSUMED_ARN = role_arn(ASSUMED_ROLE)


@pytest.fixture
def roleops_bin(tmp_path: Path) -> Path:
    """A `roleops` executable for this interpreter, as a pip install would put in a venv's bin/."""
    path = tmp_path / "bin" / "roleops"
    path.parent.mkdir()
    path.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m roleops "$@"\n')
    path.chmod(0o755)
    return path


def run(record: Callable[..., None], args: list[str], env: dict[str, str], label: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, cwd=REPO)
    record(f"{label} [stdout]", proc.stdout)
    record(f"{label} [stderr]", proc.stderr)
    return proc


def smoke(
    record: Callable[..., None], sb: SandboxProcess, roleops_bin: Path, *args: str, **env_extra: str
) -> subprocess.CompletedProcess:
    """The smoke check, as code on the sandbox instance would run it."""
    env = sb.env(sb.instance_id) | {"ROLEOPS_BIN": str(roleops_bin)} | env_extra
    return run(record, ["bash", str(SMOKE), *args], env, "smoke_check.sh " + " ".join(args))


def setup_chain(sb: SandboxProcess, record: Callable[..., None]) -> None:
    args = [
        "setup",
        "--instance-role",
        INSTANCE_ROLE,
        "--assumable-role",
        ASSUMED_ROLE,
        "--instance-id",
        sb.instance_id,
    ]
    proc = run(record, [sys.executable, "-m", "roleops", *args], sb.env(), "roleops setup")
    assert proc.returncode == 0, proc.stderr


def summary(proc: subprocess.CompletedProcess) -> str:
    return proc.stderr.rstrip("\n").splitlines()[-1]


# --- scripts/smoke_check.sh ----------------------------------------------------------------------------


def test_smoke_check_passes_keeps_the_report_and_exits_0(sb, record, roleops_bin, tmp_path):
    setup_chain(sb, record)
    report = tmp_path / "logs" / "nested" / "verify.json"  # a directory that does not exist yet
    ignored = tmp_path / "from-env.json"
    proc = smoke(
        record,
        sb,
        roleops_bin,
        "--report",
        str(report),
        "--assume",
        ASSUMED_ARN,
        "--session-name",
        "post-deploy",
        ROLEOPS_REPORT=str(ignored),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert summary(proc) == f"roleops-smoke: PASS (report {report}): 5 steps passed, 0 warnings"
    assert not ignored.exists()  # --report wins over ROLEOPS_REPORT
    document = json.loads(report.read_text())
    assert document["ok"] is True
    # verify got the pass-through arguments: the assumed session carries the given name
    assumed = [s["arn"] for s in document["steps"] if s["step"] == f"assumed-caller:{ASSUMED_ROLE}"]
    assert assumed == [f"arn:aws:sts::{ACCOUNT}:assumed-role/{ASSUMED_ROLE}/post-deploy"]
    assert [p.name for p in report.parent.iterdir()] == ["verify.json"]  # no temporary file left behind
    record("smoke check report", report.read_text())  # checked for secrets with the rest


def test_smoke_check_fails_with_verify_exit_code_and_names_the_broken_link(sb, record, roleops_bin, tmp_path):
    report = tmp_path / "report.json"  # by environment this time; nothing is set up: no role on the instance
    proc = smoke(record, sb, roleops_bin, "--assume", ASSUMED_ARN, ROLEOPS_REPORT=str(report))
    assert proc.returncode == 1, proc.stderr
    assert summary(proc) == f"roleops-smoke: FAIL (exit 1, report {report}): broken link imds"
    document = json.loads(report.read_text())
    assert document["ok"] is False
    assert document["steps"][0]["hint"].startswith(f"roleops associate --instance-id {sb.instance_id}")


def test_smoke_check_records_an_environment_error_and_retries_within_its_bound(sb, record, roleops_bin, tmp_path):
    report = tmp_path / "report.json"
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))  # bound, never listening: no metadata service here
        proc = smoke(
            record,
            sb,
            roleops_bin,
            "--report",
            str(report),
            AWS_EC2_METADATA_SERVICE_ENDPOINT=f"http://127.0.0.1:{held.getsockname()[1]}/",
            ROLEOPS_SMOKE_ATTEMPTS="2",
            ROLEOPS_SMOKE_DELAY="0",
        )
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.splitlines()
    assert sum(line.startswith("roleops: error: no instance metadata service") for line in lines) == 2
    assert "roleops-smoke: attempt 1/2 failed (exit 3); retrying in 0s" in lines
    assert summary(proc).startswith(f"roleops-smoke: FAIL (exit 3, report {report}): no instance metadata service")
    document = json.loads(report.read_text())
    assert document["ok"] is False and document["exit_code"] == 3 and document["steps"] == []
    assert document["error"].startswith("roleops: error: no instance metadata service answered at http://127.0.0.1:")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--output", "table"], "the smoke check sets --output json itself"),
        (["--report", "{file}/report.json"], "cannot create the report directory"),
    ],
    ids=["output-option", "unwritable-report"],
)
def test_smoke_check_refuses_bad_usage_before_running_verify(sandbox, record, tmp_path, args, message):
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    args = [a.format(file=a_file) for a in args]
    env = sandbox.env(sandbox.instance_id) | {"ROLEOPS_BIN": str(tmp_path / "never-run")}
    proc = run(record, ["bash", str(SMOKE), *args], env, "smoke_check.sh (usage)")
    assert proc.returncode == 2
    assert proc.stderr.startswith("roleops-smoke: error: ") and len(proc.stderr.splitlines()) == 1
    assert message in proc.stderr


# --- the examples ---------------------------------------------------------------------------------------


def user_data_paths() -> dict[str, str]:
    """Where examples/user-data.sh installs roleops and the smoke check."""
    text = USER_DATA.read_text()
    prefix = re.search(r"^PREFIX=(\S+)$", text, re.M)
    smoke_check = re.search(r"^SMOKE_CHECK=(\S+)$", text, re.M)
    assert prefix and smoke_check
    return {"roleops": f"{prefix[1]}/venv/bin/roleops", "smoke_check": smoke_check[1]}


def test_user_data_installs_roleops_with_pip_into_a_venv_and_runs_the_smoke_check():
    assert subprocess.run(["bash", "-n", str(USER_DATA)], capture_output=True).returncode == 0
    text = USER_DATA.read_text()
    assert text.startswith("#!/bin/bash\n")  # cloud-init runs user data that starts with #! as a script
    assert '-m venv "$PREFIX/venv"' in text and '"$PREFIX/venv/bin/pip" install' in text
    assert 'install -m 0755 "$PREFIX/src/scripts/smoke_check.sh" "$SMOKE_CHECK"' in text
    assert "/dev/console" in text  # the console log is where a boot-time failure is read
    paths = user_data_paths()
    assert 'ROLEOPS_BIN="$PREFIX/venv/bin/roleops"' in text and '"$SMOKE_CHECK" --assume' in text
    assert paths == {"roleops": "/opt/roleops/venv/bin/roleops", "smoke_check": "/usr/local/bin/roleops-smoke-check"}


def test_ssm_send_command_input_is_valid_and_its_commands_run_the_smoke_check(sb, record, roleops_bin, tmp_path):
    document = json.loads(SSM_INPUT.read_text())
    # What `aws ssm send-command --cli-input-json file://...` sends: SendCommand's input, by botocore's model.
    shape = get_session().get_service_model("ssm").operation_model("SendCommand").input_shape
    validate_parameters(document, shape)  # raises ParamValidationError on an unknown key or a bad type
    assert document["DocumentName"] == "AWS-RunShellScript"
    commands = document["Parameters"]["commands"]

    # Run the commands as the SSM agent does (sh, one script), with the instance's paths mapped to this test's.
    paths = user_data_paths()
    report = tmp_path / "roleops-verify.json"
    script = "\n".join(commands)
    for on_instance, here in (
        (paths["smoke_check"], str(SMOKE)),
        (paths["roleops"], str(roleops_bin)),
        ("/var/log/roleops-verify.json", str(report)),
    ):
        assert on_instance in script
        script = script.replace(on_instance, here)
    assert ASSUMED_ARN in script

    env = sb.env(sb.instance_id)
    broken = run(record, ["sh", "-c", script], env, "ssm commands (no role)")
    assert broken.returncode == 1, broken.stderr  # the command invocation shows Failed
    assert json.loads(broken.stdout)["ok"] is False  # and its output holds the report

    setup_chain(sb, record)
    passing = run(record, ["sh", "-c", script], env, "ssm commands")
    assert passing.returncode == 0, passing.stderr
    assert json.loads(passing.stdout)["ok"] is True
    assert summary(passing).startswith("roleops-smoke: PASS")
