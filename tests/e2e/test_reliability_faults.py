"""E2E reliability: setup under throttling and IAM propagation delay, verify and creds against a flaky IMDS.

Every fault is the sandbox's, seeded (`POST /_roleops/reset {"seed": N}` restarts its dice), so each run here
is repeatable; the counters of `GET /_roleops/calls` show that the fault really fired.
"""

from __future__ import annotations

import json
from typing import Any

import leakcheck
import pytest
from conftest import SandboxProcess, role_arn
from test_reliability_interrupt import (
    INSTANCE_ROLE,
    TARGET_ROLE,
    assert_nothing_left,
    converge,
    run_roleops,
    setup_args,
    snapshot,
    teardown_args,
)

TARGET_ARN = role_arn(TARGET_ROLE)


def reseed(sb: SandboxProcess, seed: int) -> None:
    """A fresh account whose fault dice start from `seed`."""
    sb.info = sb.control("POST", "reset", {"seed": seed})


def error_lines(stderr: str) -> list[str]:
    """stderr's error lines; anything else there must be a progress note ("… waiting for ...")."""
    lines = stderr.strip().splitlines()
    others = [line for line in lines if not line.startswith(("roleops: error: ", "… "))]
    assert not others, stderr
    return [line for line in lines if line.startswith("roleops: error: ")]


@pytest.fixture(scope="module")
def reference(sandbox: SandboxProcess) -> dict[str, Any]:
    """What an undisturbed `setup --require-imdsv2` leaves (module-scoped: records through leakcheck.record)."""
    reseed(sandbox, 0)
    converge(sandbox, leakcheck.record, setup_args(sandbox))
    return snapshot(sandbox)


# --- throttling -------------------------------------------------------------------------------------------


def test_setup_and_teardown_converge_under_30_percent_throttling(sb, record, reference):
    """Throttling is botocore's to retry (standard mode, roleops.clients.DEFAULT_MAX_ATTEMPTS attempts): a run
    with 30 % of IAM/EC2/STS calls refused ends exactly where an undisturbed one does. One seed here (botocore's
    backoff makes each run take seconds); the odds over many seeds are in roleops/clients.py."""
    reseed(sb, 3)
    sb.set_faults(throttle_fraction=0.3)
    converge(sb, record, setup_args(sb, "--wait"))
    calls = sb.control("GET", "calls")
    assert calls["throttled"] >= 2, calls  # the fault fired, more than once
    sb.set_faults(throttle_fraction=0.0)
    assert snapshot(sb) == reference

    sb.set_faults(throttle_fraction=0.3)
    converge(sb, record, teardown_args(sb))
    assert sb.control("GET", "calls")["throttled"] > calls["throttled"]
    sb.set_faults(throttle_fraction=0.0)
    assert_nothing_left(snapshot(sb))


def test_throttling_beyond_the_retries_fails_cleanly_and_a_rerun_converges(sb, record, reference):
    sb.set_faults(throttle_fraction=1.0)
    env = {**sb.env(), "AWS_MAX_ATTEMPTS": "2"}  # keep botocore's backoff short: 2 attempts per call
    proc = run_roleops(record, env, *setup_args(sb))
    assert proc.returncode == 3
    [line] = error_lines(proc.stderr)
    assert "Throttling" in line and "AWS_MAX_ATTEMPTS" in line
    assert sb.control("GET", "calls")["mutations"] == 0  # the reads are throttled first: nothing was changed
    sb.set_faults(throttle_fraction=0.0)
    converge(sb, record, setup_args(sb))
    assert snapshot(sb) == reference


# --- IAM propagation --------------------------------------------------------------------------------------


def test_setup_wait_rides_out_10s_of_profile_propagation(sb, record, reference):
    sb.set_faults(profile_propagation_delay=10)
    proc = converge(sb, record, setup_args(sb, "--wait"))
    assert error_lines(proc.stderr) == []
    assert "waiting for IAM to propagate" in proc.stderr  # the progress note, on stderr
    attempts = sb.control("GET", "calls")["mutating"].count("ec2:AssociateIamInstanceProfile")
    assert attempts > 1  # refused while the profile propagated, retried, then accepted
    assert snapshot(sb) == reference


def test_propagation_outlasting_the_timeout_exits_3_with_one_line(sb, record, reference):
    sb.set_faults(profile_propagation_delay=30)
    proc = run_roleops(record, sb.env(), *setup_args(sb, "--wait", "--propagation-timeout", "3"))
    assert proc.returncode == 3
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    [line] = error_lines(proc.stderr)
    assert "still refused after 3 s" in line and "InvalidParameterValue" in line
    assert "--propagation-timeout" in line  # the next step
    attempts = sb.control("GET", "calls")["mutating"].count("ec2:AssociateIamInstanceProfile")
    assert 2 <= attempts <= 6  # 0.5 s doubling, cut at 3 s: a handful of tries, not a spin
    # Nothing is lost: once IAM catches up, a re-run finishes the job.
    sb.set_faults(profile_propagation_delay=0)
    converge(sb, record, setup_args(sb))
    assert snapshot(sb) == reference


# --- a flaky instance metadata service --------------------------------------------------------------------

RUNS_PER_SETTING = 1
ON_INSTANCE_GETS = 6  # verify's own GETs (identity, iam/info, the role list, the document) + boto3 chain's two


def on_instance(sb: SandboxProcess, attempts: int) -> dict[str, str]:
    return {**sb.env(sb.instance_id), "AWS_METADATA_SERVICE_NUM_ATTEMPTS": str(attempts)}


def imds_counts(sb: SandboxProcess) -> tuple[int, int]:
    calls = sb.control("GET", "calls")
    return calls["imds_requests"], calls["imds_errors"]


def test_verify_and_creds_against_a_flaky_imds_retry_then_pass_or_fail_cleanly(sb, record):
    reseed(sb, 3)
    converge(sb, record, ["setup", "--instance-role", INSTANCE_ROLE, "--assumable-role", TARGET_ROLE,
                          "--instance-id", sb.instance_id])  # fmt: skip
    passed_after_500s = failed = 0
    for rate, attempts in [(0.3, 3), (0.3, 5), (0.5, 3), (0.5, 5)]:
        sb.set_faults(imds_error_rate=rate)
        for _ in range(RUNS_PER_SETTING):  # the dice run on between runs: each run meets other failures
            before = imds_counts(sb)
            proc = run_roleops(record, on_instance(sb, attempts), "verify", "--assume", TARGET_ARN, "--output", "json")
            requests, errors = (a - b for a, b in zip(imds_counts(sb), before, strict=True))
            assert proc.returncode in (0, 1), proc.stderr
            assert proc.stderr == ""  # a failed link is reported in the document, not as an error
            report = json.loads(proc.stdout)
            steps = {s["step"]: s for s in report["steps"]}
            # Within its limits: at most `attempts` tries per GET (plus the token requests).
            assert requests <= ON_INSTANCE_GETS * attempts + 3
            if proc.returncode == 0:
                assert report["ok"] and steps["imds"]["status"] == "pass"
                passed_after_500s += errors > 0
            else:
                failed += 1
                assert steps["imds"]["status"] == "fail"
                assert f"HTTP 500 on each of {attempts} attempt(s)" in steps["imds"]["message"]
                assert "AWS_METADATA_SERVICE_NUM_ATTEMPTS" in steps["imds"]["hint"]
        creds = run_roleops(record, on_instance(sb, attempts), "creds", "--format", "json", creds=True)
        if creds.returncode == 0:
            assert set(json.loads(creds.stdout)) == {"AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"}
        else:
            assert creds.returncode == 3 and creds.stdout == ""
            assert len(error_lines(creds.stderr)) == 1 and "HTTP 500" in creds.stderr
    assert passed_after_500s >= 1  # retries carried at least one run through 500s (seeded: not luck)
    assert failed >= 1  # and at 50 % some ran out of attempts: both ends were exercised


@pytest.mark.parametrize("attempts", [3, 5])
def test_imds_failing_every_time_is_given_up_after_exactly_the_attempts(sb, record, attempts):
    converge(sb, record, ["setup", "--instance-role", INSTANCE_ROLE, "--assumable-role", TARGET_ROLE,
                          "--instance-id", sb.instance_id])  # fmt: skip
    sb.set_faults(imds_error_rate=1.0)
    before = imds_counts(sb)
    proc = run_roleops(record, on_instance(sb, attempts), "verify", "--assume", TARGET_ARN, "--output", "json")
    requests, errors = (a - b for a, b in zip(imds_counts(sb), before, strict=True))
    # "the metadata service answered, with 500s": a broken link (exit 1), not an absent service (exit 3).
    assert proc.returncode == 1 and proc.stderr == ""
    steps = json.loads(proc.stdout)["steps"]
    assert steps[0]["step"] == "imds" and steps[0]["status"] == "fail"
    assert {s["status"] for s in steps[1:]} == {"skip"}
    assert errors == attempts and requests == attempts + 1  # the token PUT, then `attempts` GETs: no more

    before = imds_counts(sb)
    creds = run_roleops(record, on_instance(sb, attempts), "creds", "--format", "env", creds=True)
    assert creds.returncode == 3 and creds.stdout == "" and "Traceback" not in creds.stderr
    [line] = error_lines(creds.stderr)
    assert f"HTTP 500 on each of {attempts} attempt(s)" in line
    assert imds_counts(sb)[1] - before[1] == attempts


def test_a_fault_free_run_needs_no_retry(sb, record):
    """The control for the counts above: without the fault, verify makes each IMDS request once."""
    converge(sb, record, ["setup", "--instance-role", INSTANCE_ROLE, "--assumable-role", TARGET_ROLE,
                          "--instance-id", sb.instance_id])  # fmt: skip
    before = imds_counts(sb)
    proc = run_roleops(record, on_instance(sb, 5), "verify", "--assume", TARGET_ARN, "--output", "json")
    assert proc.returncode == 0, proc.stdout
    requests, errors = (a - b for a, b in zip(imds_counts(sb), before, strict=True))
    assert errors == 0 and requests <= ON_INSTANCE_GETS + 2
