"""scripts/bootstrap_account.py, the setup written as a short script over roleops' public API, against the sandbox."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

from conftest import ACCOUNT, REPO, SandboxProcess

from roleops.policies import documents_equal

SCRIPT = str(REPO / "scripts" / "bootstrap_account.py")


def _run(sb: SandboxProcess, record: Callable[..., None], *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, SCRIPT, "--instance-role", "ExampleRole", "--assumable-role", "ExampleAssumedRole", *args],
        env=sb.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    record(f"bootstrap {' '.join(args)} stdout", proc.stdout)
    record(f"bootstrap {' '.join(args)} stderr", proc.stderr)
    return proc


def test_bootstrap_script_converges_then_changes_nothing(sb: SandboxProcess, record: Callable[..., None]) -> None:
    first = _run(sb, record, "--instance-id", sb.instance_id)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count(" create ") == 5, first.stdout

    iam = sb.client("iam")
    trust = iam.get_role(RoleName="ExampleAssumedRole")["Role"]["AssumeRolePolicyDocument"]
    expected = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/ExampleRole"},
            }
        ],
    }
    assert documents_equal(trust, expected)
    # The instance now really carries the role: its metadata service lists it.
    assert sb.imds().get("meta-data/iam/security-credentials/")[1].strip() == "ExampleRole"

    second = _run(sb, record, "--instance-id", sb.instance_id)
    assert second.returncode == 0, second.stderr
    assert " create " not in second.stdout and second.stdout.count(" unchanged ") == 5


def test_bootstrap_script_bad_name_is_exit_2_and_creates_nothing(
    sb: SandboxProcess, record: Callable[..., None]
) -> None:
    proc = subprocess.run(
        [sys.executable, SCRIPT, "--instance-role", "bad name", "--assumable-role", "T"],
        env=sb.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    record("bootstrap bad name stderr", proc.stderr)
    assert proc.returncode == 2
    assert "--instance-role" in proc.stderr and "Traceback" not in proc.stderr
    assert sb.client("iam").list_roles()["Roles"] == []  # a fresh account (sb), and nothing was created
