"""E2E: setup, associate and teardown across a fleet (many instances per command) on the sandbox over HTTP.

Targets by repeated --instance-id and by --instances-tagged, batched reads, one row per instance, a failure on one
instance that does not stop the others (exit 3 naming it), and re-runs that send no mutating call.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable

from conftest import REPO, SandboxProcess
from test_reliability_interrupt import HOLD_SECONDS, POLL_SECONDS, run_roleops

ROLE, TARGET = "FleetRole", "FleetTarget"


def fleet(sb: SandboxProcess, n: int, *, tag: str | None = None) -> list[str]:
    """n fresh instances (beyond the sandbox's first), tagged app=<tag> when given."""
    ids = [sb.new_instance()["instance_id"] for _ in range(n)]
    if tag:
        sb.client("ec2").create_tags(Resources=ids, Tags=[{"Key": "app", "Value": tag}])
    return ids


def setup(sb: SandboxProcess, rec: Callable[..., None], *targets: str, expect: int = 0) -> dict:
    proc = run_roleops(rec, sb.env(), "setup", "--instance-role", ROLE, "--assumable-role", TARGET, *targets,
                       "--output", "json")  # fmt: skip
    assert proc.returncode == expect, proc.stderr
    assert "Traceback" not in proc.stderr
    return json.loads(proc.stdout) if proc.stdout.strip() else {}


def held_profiles(sb: SandboxProcess) -> dict[str, str]:
    live = [
        a
        for a in sb.client("ec2").describe_iam_instance_profile_associations()["IamInstanceProfileAssociations"]
        if a["State"] in ("associating", "associated")
    ]
    return {a["InstanceId"]: a["IamInstanceProfile"]["Arn"].rsplit("/", 1)[-1] for a in live}


def mutations(sb: SandboxProcess) -> list[str]:
    return sb.control("GET", "calls")["mutating"]


def test_setup_by_ids_and_tags_one_row_per_instance_and_a_rerun_sends_nothing(sb, record):
    by_id = fleet(sb, 2)
    tagged = fleet(sb, 2, tag="web")
    fleet(sb, 1, tag="db")  # not a target
    targets = ["--instance-id", by_id[0], "--instance-id", by_id[1], "--instances-tagged", "app=web"]
    report = setup(sb, record, *targets, "--require-imdsv2", "--concurrency", "3")
    rows = {c["resource"]: c["action"] for c in report["changes"]}
    for iid in by_id + tagged:
        assert rows[f"association {iid}"] == "create" and rows[f"metadata-options {iid}"] == "update"
    assert report["ok"] is True and report["failures"] == []
    assert sum(r.startswith("association ") for r in rows) == 4  # the db instance is not a target
    held = held_profiles(sb)
    assert all(held[i] == ROLE for i in by_id + tagged) and len(held) == 4

    mark = len(mutations(sb))
    again = setup(sb, record, *targets, "--require-imdsv2")
    assert {c["action"] for c in again["changes"]} == {"unchanged"}
    assert mutations(sb)[mark:] == []


def test_tags_are_anded_and_a_filter_matching_nothing_is_bad_input(sb, record):
    web = fleet(sb, 2, tag="web")
    sb.client("ec2").create_tags(Resources=[web[0]], Tags=[{"Key": "tier", "Value": "front"}])
    report = setup(sb, record, "--instances-tagged", "app=web", "--instances-tagged", "tier=front")
    assert [c["resource"] for c in report["changes"] if c["resource"].startswith("association")] == [
        f"association {web[0]}"
    ]
    mark = len(mutations(sb))
    proc = run_roleops(record, sb.env(), "setup", "--instance-role", ROLE, "--assumable-role", TARGET,
                       "--instances-tagged", "app=nothing")  # fmt: skip
    assert proc.returncode == 2 and "no instance matches --instances-tagged app=nothing" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and mutations(sb)[mark:] == []


def test_a_missing_instance_id_is_bad_input_naming_it_and_nothing_changes(sb, record):
    real = fleet(sb, 1)
    ghost = "i-0123456789abcdef0"
    proc = run_roleops(record, sb.env(), "setup", "--instance-role", ROLE, "--assumable-role", TARGET,
                       "--instance-id", real[0], "--instance-id", ghost)  # fmt: skip
    assert proc.returncode == 2 and f"instance {ghost} not found in" in proc.stderr
    assert mutations(sb) == []


def test_one_instance_failing_does_not_stop_the_others(sb, record):
    """B's Associate is held; meanwhile someone else associates B with another profile: B fails (exit 3, named
    with AWS's reason), D is still done, and a re-run converges B by replacing the other association."""
    setup(sb, record)  # the account-level part, so that the fleet run's first mutating call is B's Associate
    other = "SomeoneElses"
    iam = sb.client("iam")
    iam.create_role(RoleName=other, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))  # fmt: skip
    iam.create_instance_profile(InstanceProfileName=other)
    iam.add_role_to_instance_profile(InstanceProfileName=other, RoleName=other)
    b, d = fleet(sb, 2)
    sb.control("POST", "hold", {"after_mutations": 0, "timeout": HOLD_SECONDS})
    argv = [sys.executable, "-m", "roleops", "setup", "--instance-role", ROLE, "--assumable-role", TARGET,
            "--instance-id", b, "--instance-id", d, "--concurrency", "1", "--output", "json"]  # fmt: skip
    proc = subprocess.Popen(argv, env=sb.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        deadline = time.monotonic() + HOLD_SECONDS
        while time.monotonic() < deadline and not sb.control("GET", "hold")["held"]:
            time.sleep(POLL_SECONDS)
        assert sb.control("GET", "hold")["held_action"] == "ec2:AssociateIamInstanceProfile"
        sb.client("ec2").associate_iam_instance_profile(InstanceId=b, IamInstanceProfile={"Name": other})
    finally:
        sb.control("POST", "hold", {"after_mutations": None})  # answered 503, not applied: botocore retries
        out, err = proc.communicate(timeout=60)
        record("fleet setup with one failing instance [stdout]", out)
        record("fleet setup with one failing instance [stderr]", err)
    assert proc.returncode == 3, err
    report = json.loads(out)
    rows = {c["resource"]: c for c in report["changes"]}
    assert rows[f"association {b}"]["action"] == "failed" and "IncorrectState" in rows[f"association {b}"]["detail"]
    assert rows[f"association {d}"]["action"] == "create"
    assert report["ok"] is False and [f["instance_id"] for f in report["failures"]] == [b]
    [line] = err.strip().splitlines()
    assert line.startswith("roleops: error: 1 instance(s) failed") and b in line and "IncorrectState" in line
    assert held_profiles(sb) == {b: other, d: ROLE}

    again = setup(sb, record, "--instance-id", b, "--instance-id", d)
    assert {c["resource"]: c["action"] for c in again["changes"]}[f"association {b}"] == "replace"
    assert held_profiles(sb) == {b: ROLE, d: ROLE}


def test_associate_and_teardown_by_tag(sb, record):
    web = fleet(sb, 3, tag="web")
    setup(sb, record)
    proc = run_roleops(record, sb.env(), "associate", "--instance-profile", ROLE, "--instances-tagged", "app=web",
                       "--output", "json", "--wait")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert [c["action"] for c in json.loads(proc.stdout)["changes"]] == ["create"] * 3
    assert all(held_profiles(sb)[i] == ROLE for i in web)

    proc = run_roleops(record, sb.env(), "teardown", "--instance-role", ROLE, "--assumable-role", TARGET,
                       "--instances-tagged", "app=web", "--output", "json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = {c["resource"]: c["action"] for c in json.loads(proc.stdout)["changes"]}
    assert all(rows[f"association {i}"] == "delete" for i in web)
    assert rows[f"instance-profile {ROLE}"] == "delete" and rows[f"role {ROLE}"] == "delete"
    assert held_profiles(sb) == {}


def test_teardown_of_part_of_a_fleet_refuses_to_strand_the_rest(sb, record):
    web = fleet(sb, 2, tag="web")
    setup(sb, record, "--instances-tagged", "app=web")
    mark = len(mutations(sb))
    proc = run_roleops(record, sb.env(), "teardown", "--instance-role", ROLE, "--assumable-role", TARGET,
                       "--instance-id", web[0])  # fmt: skip
    assert proc.returncode == 2 and f"still associated with {web[1]}" in proc.stderr
    assert mutations(sb)[mark:] == []


def test_a_fleet_setup_converges_under_throttling_and_after_a_kill(sb, record):
    """30 % of API calls throttled (botocore's retries absorb them); then a run killed after its 3rd mutating call
    is finished by a re-run: every instance ends up holding the profile, with no failure reported."""
    from test_reliability_interrupt import killed_at_hold

    ids = fleet(sb, 6, tag="web")
    sb.set_faults(throttle_fraction=0.3)
    try:
        report = setup(sb, record, "--instances-tagged", "app=web", "--concurrency", "4")
    finally:
        sb.set_faults(throttle_fraction=0.0)
    assert report["ok"] is True and all(held_profiles(sb)[i] == ROLE for i in ids)

    more = fleet(sb, 4, tag="api")
    args = ["setup", "--instance-role", ROLE, "--assumable-role", TARGET, "--instances-tagged", "app=api",
            "--concurrency", "1"]  # fmt: skip
    killed_at_hold(sb, record, 2, args)
    assert sum(held_profiles(sb).get(i) == ROLE for i in more) == 2  # killed halfway
    again = setup(sb, record, "--instances-tagged", "app=api")
    assert again["ok"] is True and all(held_profiles(sb)[i] == ROLE for i in more)
