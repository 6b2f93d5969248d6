"""Fleet smoke check (service layer): verify every instance's chain through SSM Run Command, from one machine.

SSM runs a shell script on each instance (AWS-RunShellScript, at most 50 instances per command): `roleops verify
--output json` where roleops is installed, else the walkthrough's own curl (IMDSv2) + `aws sts` commands, whose
output this module parses into the same steps. The script prints no secret: the aws CLI's assumed keys go
straight into the environment of the next command. Script building and output parsing are pure; only
`run_smoke` calls AWS (through roleops.aws).
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from roleops import arns, aws, sts
from roleops.results import Status

MODES = ("auto", "roleops", "aws-cli")
MARK = "@@roleops-smoke"
END = f"{MARK} end"
DEFAULT_TIMEOUT = 300
POLL_FIRST, POLL_CAP = 1.0, 5.0  # polling ListCommandInvocations: 1 s doubling to 5 s, within --timeout
TERMINAL = frozenset({"Success", "Failed", "TimedOut", "Cancelled", "Undeliverable", "Terminated"})
_STEP_RE = re.compile(rf"^{MARK} step (?P<step>\S+) rc=(?P<rc>\d+)(?: (?P<rest>.*))?$")


class SmokeStatus:
    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"
    UNDELIVERABLE = "undeliverable"
    TIMED_OUT = "timed-out"


@dataclass(frozen=True, kw_only=True)
class SmokeRequest:
    instance_ids: tuple[str, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()
    assume: tuple[str, ...] = ()
    expect_role: str | None = None
    session_name: str = "roleops-smoke"
    max_concurrency: str = "50"
    max_errors: str = "100%"  # a smoke check wants every instance's answer, not a stop at the first failure
    timeout: int = DEFAULT_TIMEOUT
    remote: str = "auto"


@dataclass(frozen=True, kw_only=True)
class InstanceCheck:
    instance_id: str
    status: str
    broken_link: str | None = None
    message: str = ""
    steps: tuple[dict[str, Any], ...] = ()
    mode: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "status": self.status,
            "broken_link": self.broken_link,
            "message": self.message,
            "steps": list(self.steps),
        }


@dataclass(frozen=True, kw_only=True)
class SmokeReport:
    command_ids: tuple[str, ...] = ()
    instances: tuple[InstanceCheck, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return bool(self.instances) and all(i.status == SmokeStatus.PASS for i in self.instances)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for i in self.instances:
            out[i.status] = out.get(i.status, 0) + 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "command_ids": list(self.command_ids),
            "counts": self.counts(),
            "instances": [i.to_json() for i in self.instances],
        }


# --- the script each instance runs (pure) ---------------------------------------------------------------


def _verify_argv(req: SmokeRequest) -> list[str]:
    argv = ["roleops", "verify", "--output", "json", "--session-name", req.session_name]
    for arn in req.assume:
        argv += ["--assume", arn]
    if req.expect_role:
        argv += ["--expect-role", req.expect_role]
    return argv


def _roleops_script(req: SmokeRequest) -> list[str]:
    return [
        f"echo '{MARK} mode=roleops'",
        f"{shlex.join(_verify_argv(req))} 2>/dev/null; echo '{MARK} exit='$?",
    ]


def _aws_cli_script(req: SmokeRequest) -> list[str]:
    """The walkthrough's own commands, printing what the steps need and never a secret."""
    lines = [
        f"echo '{MARK} mode=aws-cli'",
        'IMDS="${AWS_EC2_METADATA_SERVICE_ENDPOINT:-http://169.254.169.254}"; IMDS="${IMDS%/}"',
        'TOKEN=$(curl -s -f -m 5 -X PUT "$IMDS/latest/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 300")',
        f"echo '{MARK} step imds-token rc='$?",
        'IID=$(curl -s -f -m 5 -H "X-aws-ec2-metadata-token: $TOKEN" "$IMDS/latest/meta-data/instance-id")',
        f"echo '{MARK} step instance-id rc='$?\" id=$IID\"",
        'ROLE=$(curl -s -f -m 5 -H "X-aws-ec2-metadata-token: $TOKEN" '
        '"$IMDS/latest/meta-data/iam/security-credentials/" | head -n 1)',
        f"echo '{MARK} step imds-role rc='$?\" role=$ROLE\"",
        "OUT=$(aws sts get-caller-identity --output json 2>&1); RC=$?",
        f"echo '{MARK} step caller rc='$RC; echo \"$OUT\" | head -c 1500; echo",
    ]
    for arn in dict.fromkeys(req.assume):
        name = arns.name_of(arn)
        assume = shlex.join(
            [
                "aws",
                "sts",
                "assume-role",
                "--role-arn",
                arn,
                "--role-session-name",
                req.session_name,
                "--query",
                "Credentials.[AccessKeyId,SecretAccessKey,SessionToken]",
                "--output",
                "text",
            ]
        )
        lines += [
            # The keys stay in this shell's variables: printed only when the call failed (then OUT is the error).
            f"OUT=$({assume} 2>&1); RC=$?",
            f"echo '{MARK} step assume:{name} rc='$RC; [ $RC -ne 0 ] && echo \"$OUT\" | head -c 1000",
            "if [ $RC -eq 0 ]; then set -- $OUT; "
            'CALLER=$(AWS_ACCESS_KEY_ID="$1" AWS_SECRET_ACCESS_KEY="$2" AWS_SESSION_TOKEN="$3" '
            "aws sts get-caller-identity --output json 2>&1); "
            f"echo '{MARK} step assumed-caller:{name} rc='$?; echo \"$CALLER\" | head -c 1500; echo; fi",
        ]
    return lines


def remote_commands(req: SmokeRequest) -> list[str]:
    """The AWS-RunShellScript commands for `req.remote`; `auto` decides on each instance."""
    if req.remote == "roleops":
        body = _roleops_script(req)
    elif req.remote == "aws-cli":
        body = _aws_cli_script(req)
    else:  # auto: one command for every instance; each picks what it has
        body = [
            "if command -v roleops >/dev/null 2>&1; then",
            *_roleops_script(req),
            "else",
            *_aws_cli_script(req),
            "fi",
        ]
    # The end mark tells a whole output from one ListCommandInvocations cut short.
    return [*body, f"echo '{END}'"]


# --- reading what an instance printed (pure) ------------------------------------------------------------


def _step(step: str, status: Status, message: str = "", hint: str = "", arn: str | None = None) -> dict[str, Any]:
    return {
        "step": step,
        "status": status.value,
        "arn": arn,
        "account": arns.account_of(arn),
        "user_id": None,
        "access_key_id": None,
        "expiration": None,
        "message": message,
        "hint": hint,
    }


def _sections(stdout: str) -> dict[str, tuple[int, str, str]]:
    """step -> (rc, the marker's rest, the text until the next marker)."""
    out: dict[str, tuple[int, str, str]] = {}
    current: str | None = None
    for line in stdout.splitlines():
        if line.startswith(MARK):
            current = None
            if m := _STEP_RE.match(line):
                current = m["step"]
                out[current] = (int(m["rc"]), m["rest"] or "", "")
            continue
        if current is not None:
            rc, rest, text = out[current]
            out[current] = (rc, rest, f"{text}{line}\n")
    return out


def _arn_of(text: str) -> str | None:
    try:
        doc = json.loads(text.strip() or "{}")
    except ValueError:
        return None
    return doc.get("Arn") if isinstance(doc, dict) else None


def parse_aws_cli(stdout: str, req: SmokeRequest) -> list[dict[str, Any]]:
    """The aws-cli script's output as verify's steps (imds, caller, assume:ROLE, assumed-caller:ROLE)."""
    s = _sections(stdout)
    steps: list[dict[str, Any]] = []
    token, role, iid = s.get("imds-token"), s.get("imds-role"), s.get("instance-id")
    role_name = (role[1].partition("role=")[2].strip() if role else "") or None
    instance_id = (iid[1].partition("id=")[2].strip() if iid else "") or None
    hint_imds = "check the metadata options (HttpTokens, HttpEndpoint, hop limit) and the profile association"
    if token is None or token[0] != 0:
        steps.append(
            _step("imds", Status.FAIL, "the IMDSv2 token request failed (curl PUT /latest/api/token)", hint_imds)
        )
    elif role is None or role[0] != 0 or not role_name:
        associate = (
            f"roleops associate --instance-id {instance_id or 'ID'} --instance-profile {req.expect_role or 'NAME'}"
        )
        steps.append(
            _step(
                "imds",
                Status.FAIL,
                "IMDS lists no role (iam/security-credentials/)",
                f"no instance profile (with a role) is associated: {associate}",
            )
        )
    elif req.expect_role and role_name.lower() != req.expect_role.lower():
        steps.append(
            _step("imds", Status.FAIL, f"the instance has role {role_name}; --expect-role wants {req.expect_role}")
        )
    else:
        steps.append(_step("imds", Status.PASS, f"instance {instance_id}: role {role_name}; IMDSv2"))
    ok = steps[-1]["status"] == Status.PASS.value

    caller = s.get("caller")
    if not ok:
        steps.append(_step("caller", Status.SKIP, "skipped: waits on step 'imds', which failed"))
    elif caller is None or caller[0] != 0:
        text = caller[2].strip() if caller else "no output"
        steps.append(_step("caller", Status.FAIL, f"aws sts get-caller-identity failed: {text[:300]}"))
        ok = False
    else:
        arn = _arn_of(caller[2])
        wanted = f":assumed-role/{role_name}/{instance_id}"
        if arn and arn.endswith(wanted):
            steps.append(_step("caller", Status.PASS, f"the instance credentials are {arn}", arn=arn))
        else:
            steps.append(
                _step(
                    "caller",
                    Status.FAIL,
                    f"the aws CLI is {arn}, not the instance role's session",
                    "something shadows the instance role (environment keys, a profile)",
                    arn=arn,
                )
            )
            ok = False

    for target in dict.fromkeys(req.assume):
        name = arns.name_of(target)
        step, after = f"assume:{name}", f"assumed-caller:{name}"
        assumed = s.get(step)
        if not ok:
            steps.append(_step(step, Status.SKIP, f"skipped: waits on step '{steps[1]['step']}', which failed"))
            steps.append(_step(after, Status.SKIP, f"skipped: waits on step '{step}', which was skipped"))
            continue
        if assumed is None or assumed[0] != 0:
            text = assumed[2].strip() if assumed else "no output"
            caller_arn = next((x["arn"] for x in steps if x["step"] == "caller"), None)
            where = arns.split_arn(caller_arn) or ("aws", "")
            instance_role_arn = arns.role_arn(where[0], where[1], role_name or "ROLE")
            why = (
                sts.hint_access_denied(instance_role_arn, target, None)
                if "AccessDenied" in text
                else sts.hint(next((c for c in ("ExpiredToken", "InvalidClientTokenId") if c in text), ""), text, "")
            )
            steps.append(_step(step, Status.FAIL, f"sts:AssumeRole into {target} failed: {text[:500]}", why))
            steps.append(_step(after, Status.SKIP, f"skipped: waits on step '{step}', which failed"))
            continue
        steps.append(_step(step, Status.PASS, f"assumed {target} as session {req.session_name}"))
        check = s.get(after)
        parsed = arns.parse_role_arn(target)
        wanted_arn = parsed.session_arn(req.session_name) if parsed else None
        arn = _arn_of(check[2]) if check and check[0] == 0 else None
        if arn and arn == wanted_arn:
            steps.append(_step(after, Status.PASS, f"the assumed credentials are {arn}", arn=arn))
        else:
            steps.append(
                _step(after, Status.FAIL, f"the assumed credentials are {arn or 'unknown'}; expected {wanted_arn}")
            )
    return steps


def parse_roleops(stdout: str) -> tuple[list[dict[str, Any]] | None, str]:
    """verify's JSON report from the roleops script's output: (steps, problem when there are none)."""
    start = stdout.find(f"{MARK} mode=roleops")
    end = stdout.find(f"{MARK} exit=")
    body = stdout[start + len(f"{MARK} mode=roleops") : end if end >= 0 else None].strip() if start >= 0 else ""
    try:
        doc = json.loads(body)
    except ValueError:
        code = stdout[end:].split("=", 1)[-1].split()[0] if end >= 0 else "?"
        return None, f"roleops verify printed no report (exit {code})"
    steps = doc.get("steps") if isinstance(doc, dict) else None
    return (steps if isinstance(steps, list) else None), "" if isinstance(steps, list) else "no steps in the report"


def check_from_output(instance_id: str, stdout: str, req: SmokeRequest) -> InstanceCheck:
    """The instance's verdict from what its script printed."""
    mode = "roleops" if f"{MARK} mode=roleops" in stdout else "aws-cli" if f"{MARK} mode=aws-cli" in stdout else None
    if mode is None:
        return InstanceCheck(
            instance_id=instance_id,
            status=SmokeStatus.ERROR,
            message="the script printed nothing roleops can read (no shell, or cut short?)",
        )
    if mode == "roleops":
        steps, problem = parse_roleops(stdout)
        if steps is None:
            return InstanceCheck(instance_id=instance_id, status=SmokeStatus.ERROR, message=problem, mode=mode)
    else:
        steps = parse_aws_cli(stdout, req)
    failed = next((s for s in steps if s.get("status") == Status.FAIL.value), None)
    if failed is None:
        n = sum(s.get("status") == Status.PASS.value for s in steps)
        return InstanceCheck(
            instance_id=instance_id,
            status=SmokeStatus.PASS,
            message=f"{n} steps passed ({mode})",
            steps=tuple(steps),
            mode=mode,
        )
    message = str(failed.get("message", ""))
    if failed.get("hint"):
        message += f"; hint: {failed['hint']}"
    return InstanceCheck(
        instance_id=instance_id,
        status=SmokeStatus.FAIL,
        broken_link=str(failed.get("step")),
        message=message,
        steps=tuple(steps),
        mode=mode,
    )


def check_from_invocation(invocation: dict[str, Any], stdout: str, req: SmokeRequest) -> InstanceCheck:
    """An invocation in a terminal state, and its full standard output, as the instance's verdict."""
    iid = invocation["InstanceId"]
    status, details = invocation.get("Status", ""), invocation.get("StatusDetails", "")
    if status == "Undeliverable" or details in ("Undeliverable", "DeliveryTimedOut", "InvalidPlatform", "Terminated"):
        return InstanceCheck(instance_id=iid, status=SmokeStatus.UNDELIVERABLE, message=f"SSM: {details or status}")
    if status == "TimedOut":
        return InstanceCheck(instance_id=iid, status=SmokeStatus.TIMED_OUT, message=f"SSM: {details or status}")
    if status in ("Success", "Failed"):
        return check_from_output(iid, stdout, req)
    return InstanceCheck(instance_id=iid, status=SmokeStatus.ERROR, message=f"SSM: {status} ({details})")


# --- the run (AWS) ---------------------------------------------------------------------------------------


def _plugin_output(invocation: dict[str, Any]) -> str:
    plugins = invocation.get("CommandPlugins") or []
    return "".join(str(p.get("Output") or "") for p in plugins)


def _send(ssm: Any, req: SmokeRequest, chunk: list[str], commands: list[str], checks: dict[str, InstanceCheck]) -> str:
    """SendCommand to a chunk; an instance that left SSM between the listing and the send (stopped, terminated) makes
    SSM refuse the whole chunk with InvalidInstanceId: ask SSM again, report those, and send to the rest once."""
    from roleops.errors import AwsError

    def send(ids: list[str]) -> str:
        return aws.ssm_send_shell(
            ssm,
            ids,
            commands,
            execution_timeout=req.timeout,
            max_concurrency=req.max_concurrency,
            max_errors=req.max_errors,
            comment="roleops smoke: verify the instance role chain",
        )

    try:
        return send(chunk)
    except AwsError as err:
        if err.code != "InvalidInstanceId":
            raise
        online = aws.ssm_online_instances(ssm, chunk)
        for iid in chunk:
            if online.get(iid) != "Online":
                checks[iid] = InstanceCheck(
                    instance_id=iid,
                    status=SmokeStatus.UNDELIVERABLE,
                    message=f"not sent: left SSM before the send ({err.code})",
                )
        rest = [i for i in chunk if i not in checks]
        return send(rest) if rest else ""


def run_smoke(
    clients: Any,
    req: SmokeRequest,
    *,
    reporter: Any = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> SmokeReport:
    """Find the targets, skip the ones SSM does not manage, send, poll to the end or --timeout, read, judge."""
    from roleops.converge import Context, resolve_instances, targets
    from roleops.operations import NullReporter

    reporter = reporter or NullReporter()
    where = targets(instance_ids=req.instance_ids, tags=req.tags)
    instances = [i["InstanceId"] for i in resolve_instances(Context(clients=clients), where)]
    ssm = clients.ssm()
    online = aws.ssm_online_instances(ssm, instances)
    checks: dict[str, InstanceCheck] = {}
    for iid in instances:
        if online.get(iid) != "Online":
            why = f"PingStatus {online[iid]}" if iid in online else "not managed by SSM (no agent, or no role for it)"
            checks[iid] = InstanceCheck(instance_id=iid, status=SmokeStatus.UNDELIVERABLE, message=f"not sent: {why}")
    send = [i for i in instances if i not in checks]
    commands = remote_commands(req)
    sent: dict[str, list[str]] = {}  # command id -> its instances
    for i in range(0, len(send), aws.SSM_MAX_TARGETS):
        chunk = send[i : i + aws.SSM_MAX_TARGETS]
        command_id = _send(ssm, req, chunk, commands, checks)
        if command_id:  # "": every instance of the chunk left SSM before the send
            sent[command_id] = chunk
    command_ids = list(sent)
    send = [i for chunk in sent.values() for i in chunk if i not in checks]
    pending = set(send)
    deadline = clock() + req.timeout + 30  # the instances' own timeout, and time for SSM to say so
    delay = POLL_FIRST
    with reporter.progress(len(send), "instances") as advance:
        while pending:
            for command_id in command_ids:
                for inv in aws.ssm_invocations(ssm, command_id):
                    iid = inv.get("InstanceId")
                    if iid not in pending or inv.get("Status") not in TERMINAL:
                        continue
                    stdout = _plugin_output(inv)
                    if END not in stdout:
                        # The listing cuts each plugin's output at 2,500 characters: read the whole of it.
                        out = aws.ssm_invocation_output(ssm, command_id, iid)
                        stdout = str(out.get("StandardOutputContent") or "")
                    checks[iid] = check_from_invocation(inv, stdout, req)
                    pending.discard(iid)
                    advance()
            if not pending:
                break
            remaining = deadline - clock()
            if remaining <= 0:
                # Cancel what is still running, so nothing outlives the check; its instances are timed out.
                for command_id, chunk in sent.items():
                    late = [i for i in chunk if i in pending]
                    if late:
                        aws.ssm_cancel(ssm, command_id, late)
                for iid in pending:
                    checks[iid] = InstanceCheck(
                        instance_id=iid,
                        status=SmokeStatus.TIMED_OUT,
                        message=f"no answer within --timeout {req.timeout} s; cancelled",
                    )
                break
            sleep(min(delay, remaining))
            delay = min(delay * 2, POLL_CAP)
    return SmokeReport(command_ids=tuple(command_ids), instances=tuple(checks[i] for i in instances))


__all__: Sequence[str] = ["SmokeReport", "SmokeRequest", "remote_commands", "run_smoke"]
