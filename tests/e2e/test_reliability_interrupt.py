"""E2E reliability: setup and teardown killed (SIGKILL) after each mutating step, or losing an answer, converge.

The sandbox's hold (`POST /_roleops/hold`) stops the (k+1)-th mutating IAM/EC2 request before it takes effect;
once `GET /_roleops/hold` says it is held, the roleops process is SIGKILLed while it waits for the answer. Then
a normal run must end in exactly the state an uninterrupted run leaves (a normalised snapshot read with the
admin's keys), and teardown must leave nothing behind. With `apply` the held request does take effect and its
answer is lost (a 503 after the work, as after a read timeout): botocore retries it into a conflict
(EntityAlreadyExists, an existing association, a replaced association id) that roleops must recognise as done.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import leakcheck
import pytest
from conftest import REPO, SandboxProcess, http

INSTANCE_ROLE = "ExampleRole"
TARGET_ROLE = "ExampleAssumedRole"
HOLD_SECONDS = 30.0  # the sandbox releases a held request by itself after this: nothing hangs
POLL_SECONDS = 0.02
RUN_TIMEOUT = 60
JSON = {"Content-Type": "application/json"}

# The mutating calls of a fresh `roleops setup ... --instance-id I --require-imdsv2`, in order (asserted below
# against what the sandbox saw, so this list is checked, not assumed).
SETUP_MUTATIONS = [
    "iam:CreateRole",  # the instance role
    "iam:CreateInstanceProfile",
    "iam:AddRoleToInstanceProfile",
    "iam:CreateRole",  # the assumable role
    "iam:PutRolePolicy",
    "ec2:AssociateIamInstanceProfile",
    "ec2:ModifyInstanceMetadataOptions",
]
# Teardown runs in the reverse order of setup: the assumable role goes before the instance role, whose ARN its
# trust names (so an interrupted teardown leaves trusts that a re-run still recognises).
TEARDOWN_MUTATIONS = [
    "ec2:DisassociateIamInstanceProfile",
    "iam:DeleteRole",  # the assumable role
    "iam:RemoveRoleFromInstanceProfile",
    "iam:DeleteInstanceProfile",
    "iam:DeleteRolePolicy",
    "iam:DeleteRole",  # the instance role
]


# --- running roleops -------------------------------------------------------------------------------------


def roleops_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "roleops", *args]


def run_roleops(
    rec: Callable[..., None], env: dict[str, str], *args: str, timeout: float = RUN_TIMEOUT, creds: bool = False
) -> subprocess.CompletedProcess:
    """`python -m roleops ARGS`; both streams recorded for the leak checks (`creds`: stdout may hold secrets, as
    only `roleops creds`'s may; its stderr may not)."""
    proc = subprocess.run(roleops_argv(*args), env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    label = "roleops " + " ".join(args)
    rec(f"{label} [stdout]", proc.stdout, secrets_allowed=creds)
    rec(f"{label} [stderr]", proc.stderr)
    return proc


def setup_args(sb: SandboxProcess, *extra: str) -> list[str]:
    return [
        "setup",
        "--instance-role",
        INSTANCE_ROLE,
        "--assumable-role",
        TARGET_ROLE,
        "--instance-id",
        sb.instance_id,
        "--require-imdsv2",
        *extra,
    ]


def teardown_args(sb: SandboxProcess) -> list[str]:
    return [
        "teardown",
        "--instance-role",
        INSTANCE_ROLE,
        "--assumable-role",
        TARGET_ROLE,
        "--instance-id",
        sb.instance_id,
    ]


def converge(sb: SandboxProcess, rec: Callable[..., None], args: list[str]) -> subprocess.CompletedProcess:
    proc = run_roleops(rec, sb.env(), *args)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def killed_at_hold(
    sb: SandboxProcess,
    rec: Callable[..., None],
    k: int,
    args: list[str],
    sig: int = signal.SIGKILL,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run roleops (in `env`, default the admin's) until its (k+1)-th mutating call is held by the sandbox, send
    `sig` there; the hold's state (with the process's exit code and stderr under "exit" and "stderr")."""
    sb.control("POST", "hold", {"after_mutations": k, "timeout": HOLD_SECONDS})
    proc = subprocess.Popen(
        roleops_argv(*args),
        env=env or sb.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        # Ctrl-C as at a terminal: a runner started in the background (`cmd &`, nohup) ignores SIGINT, and an
        # ignored SIGINT is inherited, so Python would never raise KeyboardInterrupt and the test would hang.
        preexec_fn=_default_sigint,
    )
    held: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + HOLD_SECONDS
        while time.monotonic() < deadline and proc.poll() is None:
            held = sb.control("GET", "hold")
            if held["held"]:
                break
            time.sleep(POLL_SECONDS)
    finally:
        proc.send_signal(sig)  # SIGKILL: a killed process, not a mock: no handler, no cleanup, no flush
        out, err = proc.communicate(timeout=10)
        rec(f"killed roleops {' '.join(args)} [stdout]", out)
        rec(f"killed roleops {' '.join(args)} [stderr]", err)
        sb.control("POST", "hold", {"after_mutations": None})  # release: the held request is answered, not applied
    assert held.get("held"), f"roleops ended (exit {proc.returncode}) before its mutating call #{k + 1}: {err}"
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    return {**held, "exit": proc.returncode, "stderr": err}


# --- the state, normalised --------------------------------------------------------------------------------


def _document(doc: Any) -> Any:
    """A policy document as data (IAM hands them out URL-decoded JSON, boto3 parses them)."""
    parsed = json.loads(doc) if isinstance(doc, str) else doc
    return json.loads(json.dumps(parsed, sort_keys=True))


def snapshot(sb: SandboxProcess) -> dict[str, Any]:
    """Everything setup and teardown touch, without ids and dates: roles (trust, tags, inline and attached
    policies, MaxSessionDuration), instance profiles (roles, tags), live associations and metadata options."""
    iam, ec2 = sb.client("iam"), sb.client("ec2")
    roles = {}
    for listed in iam.list_roles()["Roles"]:
        name = listed["RoleName"]
        role = iam.get_role(RoleName=name)["Role"]
        policy_names = iam.list_role_policies(RoleName=name)["PolicyNames"]
        roles[name] = {
            "path": role["Path"],
            "trust": _document(role["AssumeRolePolicyDocument"]),
            "tags": sorted((t["Key"], t["Value"]) for t in role.get("Tags", [])),
            "max_session_duration": role.get("MaxSessionDuration"),
            "inline": {
                p: _document(iam.get_role_policy(RoleName=name, PolicyName=p)["PolicyDocument"]) for p in policy_names
            },
            "attached": sorted(
                p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
            ),
        }
    profiles = {}
    for profile in iam.list_instance_profiles()["InstanceProfiles"]:
        name = profile["InstanceProfileName"]
        tags = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"].get("Tags", [])
        profiles[name] = {
            "roles": sorted(r["RoleName"] for r in profile["Roles"]),
            "tags": sorted((t["Key"], t["Value"]) for t in tags),
        }
    instances = {}
    for reservation in ec2.describe_instances()["Reservations"]:
        for instance in reservation["Instances"]:
            options = instance.get("MetadataOptions", {})
            # Instance ids change with every reset: name the walkthrough's instance by its role in the test.
            key = "the instance" if instance["InstanceId"] == sb.instance_id else instance["InstanceId"]
            instances[key] = {
                "http_tokens": options.get("HttpTokens"),
                "http_endpoint": options.get("HttpEndpoint"),
                "hop_limit": options.get("HttpPutResponseHopLimit"),
                "associations": [],
            }
    for assoc in ec2.describe_iam_instance_profile_associations()["IamInstanceProfileAssociations"]:
        if assoc["State"] not in ("associating", "associated"):
            continue
        key = "the instance" if assoc["InstanceId"] == sb.instance_id else assoc["InstanceId"]
        instances[key]["associations"].append(assoc["IamInstanceProfile"]["Arn"].rsplit("/", 1)[-1])
    return {"roles": roles, "profiles": profiles, "instances": instances}


def assert_nothing_left(state: dict[str, Any]) -> None:
    assert state["roles"] == {}, state["roles"]
    assert state["profiles"] == {}, state["profiles"]
    assert all(i["associations"] == [] for i in state["instances"].values()), state["instances"]


@pytest.fixture(scope="module")
def reference(sandbox: SandboxProcess) -> dict[str, Any]:
    """What an uninterrupted setup leaves, and proof that SETUP_MUTATIONS is its real order of mutating calls.

    Module-scoped, so it records through leakcheck.record, the function behind the `record_output` fixture."""
    record_output = leakcheck.record
    sandbox.reset()
    converge(sandbox, record_output, setup_args(sandbox))
    assert sandbox.control("GET", "calls")["mutating"] == SETUP_MUTATIONS
    state = snapshot(sandbox)
    assert state["roles"][INSTANCE_ROLE]["tags"] == [("roleops:managed", "true")]
    assert state["instances"]["the instance"]["associations"] == [INSTANCE_ROLE]
    assert state["instances"]["the instance"]["http_tokens"] == "required"
    mark = len(sandbox.control("GET", "calls")["mutating"])
    converge(sandbox, record_output, teardown_args(sandbox))
    assert sandbox.control("GET", "calls")["mutating"][mark:] == TEARDOWN_MUTATIONS
    assert_nothing_left(snapshot(sandbox))
    return state


@pytest.fixture
def sbh(sb: SandboxProcess) -> Any:
    """`sb`, with any hold released at the end whatever happened."""
    yield sb
    sb.control("POST", "hold", {"after_mutations": None})


def test_the_hold_releases_itself_and_refuses_bad_settings(sbh, record, reference):
    for bad in (
        {"after_mutations": -1},
        {"after_mutations": 1.5},
        {"after_mutations": True},
        {"after_mutations": 0, "timeout": 0},
        {"after_mutations": 0, "timeout": 301},
        {"after_mutations": 0, "apply": "yes"},
        {"after": 0},
    ):
        status, body = http("POST", f"{sbh.endpoint_url}/_roleops/hold", headers=JSON, body=json.dumps(bad).encode())
        assert status == 400 and "error" in json.loads(body), (bad, body)
    assert sbh.control("GET", "hold")["after_mutations"] is None  # a refused setting changes nothing
    # Nobody releases this hold: after its timeout the request is answered 503, unapplied, and botocore retries.
    sbh.control("POST", "hold", {"after_mutations": 2, "timeout": 0.5})
    converge(sbh, record, setup_args(sbh))
    mutating = sbh.control("GET", "calls")["mutating"]
    assert mutating[2] == mutating[3] == "iam:AddRoleToInstanceProfile"
    assert snapshot(sbh) == reference


# --- SIGKILL during setup ---------------------------------------------------------------------------------


@pytest.mark.parametrize("k", range(len(SETUP_MUTATIONS)), ids=lambda k: f"after-{k}")
def test_setup_killed_after_step_k_then_rerun_converges(sbh, record, reference, k):
    held = killed_at_hold(sbh, record, k, setup_args(sbh))
    assert held["held_action"] == SETUP_MUTATIONS[k]
    # Exactly k mutating calls took effect (the held one was counted, never applied).
    assert sbh.control("GET", "calls")["mutating"] == SETUP_MUTATIONS[: k + 1]
    assert snapshot(sbh) != reference  # the kill really left the account half-done

    rerun = converge(sbh, record, setup_args(sbh, "--output", "json"))
    report = json.loads(rerun.stdout)
    assert any(c["action"] != "unchanged" for c in report["changes"])
    assert snapshot(sbh) == reference

    converge(sbh, record, teardown_args(sbh))
    assert_nothing_left(snapshot(sbh))


@pytest.mark.parametrize("k", range(1, len(SETUP_MUTATIONS)), ids=lambda k: f"after-{k}")
def test_setup_killed_after_step_k_then_teardown_leaves_nothing(sbh, record, k):
    """The operator gives up on a half-done setup: teardown alone cleans up what it made."""
    killed_at_hold(sbh, record, k, setup_args(sbh))
    converge(sbh, record, teardown_args(sbh))
    assert_nothing_left(snapshot(sbh))


def test_setup_interrupted_by_ctrl_c_exits_130_with_one_line_then_converges(sbh, record, reference):
    held = killed_at_hold(sbh, record, 3, setup_args(sbh), signal.SIGINT)
    assert held["exit"] == 130
    assert held["stderr"].splitlines() == [
        "roleops: error: interrupted; what was applied before the interruption stays, re-run to converge"
    ]
    converge(sbh, record, setup_args(sbh))
    assert snapshot(sbh) == reference


# --- SIGKILL during teardown ------------------------------------------------------------------------------


@pytest.mark.parametrize("k", range(len(TEARDOWN_MUTATIONS)), ids=lambda k: f"after-{k}")
def test_teardown_killed_after_step_k_then_rerun_leaves_nothing(sbh, record, reference, k):
    converge(sbh, record, setup_args(sbh))
    held = killed_at_hold(sbh, record, k, teardown_args(sbh))
    assert held["held_action"] == TEARDOWN_MUTATIONS[k]
    converge(sbh, record, teardown_args(sbh))
    assert_nothing_left(snapshot(sbh))


# --- answers lost after AWS did the work ------------------------------------------------------------------


@pytest.mark.parametrize("k", range(len(SETUP_MUTATIONS)), ids=lambda k: f"step-{k + 1}")
def test_setup_survives_a_lost_answer_at_each_step(sbh, record, reference, k):
    sbh.control("POST", "hold", {"after_mutations": k, "timeout": 0.2, "apply": True})
    converge(sbh, record, setup_args(sbh))
    mutating = sbh.control("GET", "calls")["mutating"]
    # botocore retried the call whose answer was lost; the retry met its own first attempt's effect.
    assert mutating[k] == mutating[k + 1] == SETUP_MUTATIONS[k]
    assert snapshot(sbh) == reference


@pytest.mark.parametrize("k", range(len(TEARDOWN_MUTATIONS)), ids=lambda k: f"step-{k + 1}")
def test_teardown_survives_a_lost_answer_at_each_step(sbh, record, k):
    converge(sbh, record, setup_args(sbh))
    sbh.control("POST", "hold", {"after_mutations": k, "timeout": 0.2, "apply": True})
    converge(sbh, record, teardown_args(sbh))
    assert_nothing_left(snapshot(sbh))


def test_replace_survives_a_lost_answer(sbh, record):
    """EC2's Replace makes a new association id: a retried Replace with the old one is refused."""
    converge(sbh, record, ["setup", "--instance-role", "OldRole", "--assumable-role", TARGET_ROLE,
                           "--instance-id", sbh.instance_id])  # fmt: skip
    converge(sbh, record, ["setup", "--instance-role", INSTANCE_ROLE, "--assumable-role", "OtherTarget"])
    sbh.control("POST", "hold", {"after_mutations": 0, "timeout": 0.2, "apply": True})
    proc = converge(
        sbh, record, ["associate", "--instance-id", sbh.instance_id, "--instance-profile", INSTANCE_ROLE, "--wait"]
    )
    assert sbh.control("GET", "calls")["mutating"][-2:] == ["ec2:ReplaceIamInstanceProfileAssociation"] * 2
    assert "replace" in proc.stdout
    assert snapshot(sbh)["instances"]["the instance"]["associations"] == [INSTANCE_ROLE]
