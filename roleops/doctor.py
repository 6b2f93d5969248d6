"""Doctor (diagnosis layer): read the chain from an operator's machine and name the broken link.

Gathering is a handful of read-only AWS calls (through the thin AWS layer); deciding is pure: the same
evaluator the sandbox's STS uses says, for each target role, whether the identity side and the trust side
allow sts:AssumeRole, and which statement decides. Every finding carries the command that mends it:
`roleops ...` first, the `aws ...` equivalent beside it.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from roleops import INLINE_POLICY_NAME, aws, policies
from roleops.evaluator import (
    Decision,
    NamedPolicy,
    Principal,
    PrincipalKind,
    Verdict,
    evaluate_assume_role,
    evaluate_trust,
)
from roleops.results import DoctorReport, Finding, Status
from roleops.validate import role_arn_parts

CHAIN_CAP = 3600  # role chaining caps sessions at one hour (AWS-FACTS.md, STS)
_UNIQUE_ID = re.compile(r"^(?:AROA|AIDA)[A-Z0-9]{8,}$")


def _cmd(*words: str) -> str:
    return shlex.join(words)


@dataclass(frozen=True, kw_only=True)
class Target:
    arn: str
    name: str
    account: str
    role: Mapping[str, Any] | None  # None: missing, or in another account we cannot read


@dataclass(frozen=True, kw_only=True)
class Gathered:
    """Everything doctor read; the input of the pure `diagnose`."""

    instance_id: str
    instance: Mapping[str, Any]
    association: Mapping[str, Any] | None = None
    profile: Mapping[str, Any] | None = None
    role: Mapping[str, Any] | None = None
    identity_policies: tuple[NamedPolicy, ...] = ()
    boundary: NamedPolicy | None = None
    targets: tuple[Target, ...] = ()
    guessed_profile: str | None = None
    containers: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)


# --- gathering (read-only AWS calls) --------------------------------------------------------------------


def gather(clients: Any, *, instance_id: str, assume: Sequence[str], containers: bool = False) -> Gathered:
    from roleops.errors import UsageError

    iam, ec2 = clients.iam(), clients.ec2()
    instance = aws.describe_instance(ec2, instance_id)
    if instance is None:
        raise UsageError(
            f"instance {instance_id} not found in {clients.region}",
            "no such instance",
            "check --instance-id and --region",
        )
    association = aws.get_association(ec2, instance_id)
    profile = role = None
    identity: list[NamedPolicy] = []
    boundary = None
    if association:
        profile = aws.get_instance_profile(iam, aws.profile_name_from_arn(association["IamInstanceProfile"]["Arn"]))
    if profile and profile.get("Roles"):
        role = aws.get_role(iam, profile["Roles"][0]["RoleName"])
    if role:
        name = role["RoleName"]
        for policy in aws.list_role_policies(iam, name):
            doc = aws.get_role_policy(iam, name, policy)
            if doc is not None:
                identity.append(NamedPolicy(name=f"inline:{policy}", document=doc))
        for arn in aws.list_attached_role_policies(iam, name):
            doc = aws.get_managed_policy_document(iam, arn)
            if doc is not None:
                identity.append(NamedPolicy(name=f"managed:{arn}", document=doc))
        boundary_arn = (role.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
        if boundary_arn:
            doc = aws.get_managed_policy_document(iam, boundary_arn)
            if doc is not None:
                boundary = NamedPolicy(name=f"boundary:{boundary_arn}", document=doc)

    caller_account = (role or {}).get("Arn", "::::").split(":")[4] or None
    targets = []
    for arn in assume:
        _, account, _, name = role_arn_parts(arn)
        same_account = caller_account is None or account == caller_account
        targets.append(
            Target(arn=arn, name=name, account=account, role=aws.get_role(iam, name) if same_account else None)
        )

    guessed = None
    if association is None:
        # Which profile should the instance carry? The one named after a role the targets trust.
        for t in targets:
            for principal in policies.principals(
                policies.parse_document((t.role or {}).get("AssumeRolePolicyDocument"))
            ):
                if ":role/" in principal:
                    candidate = principal.rsplit("/", 1)[-1]
                    if aws.get_instance_profile(iam, candidate):
                        guessed = candidate
                        break
            if guessed:
                break
    return Gathered(
        instance_id=instance_id,
        instance=instance,
        association=association,
        profile=profile,
        role=role,
        identity_policies=tuple(identity),
        boundary=boundary,
        targets=tuple(targets),
        guessed_profile=guessed,
        containers=containers,
    )


# --- diagnosis (pure) ----------------------------------------------------------------------------------


def _setup_fix(g: Gathered, role_name: str, *, adopt: bool) -> str:
    words = ["roleops", "setup", "--instance-role", role_name]
    for t in g.targets or ():
        words += ["--assumable-role", t.name]
    if not g.targets:
        words += ["--assumable-role", "TARGET_ROLE"]
    if adopt:
        words.append("--adopt")
    return _cmd(*words)


def _verdict_detail(v: Verdict) -> str:
    if v.decision is Decision.ALLOW:
        return v.reason
    where = ""
    if v.policy is not None:
        where = f" [{v.policy} statement {v.statement_index}{f' Sid {v.sid}' if v.sid else ''}]"
    return f"{v.reason}{where}"


def diagnose(g: Gathered) -> DoctorReport:
    f: list[Finding] = []
    iid = g.instance_id
    state = g.instance.get("State", {}).get("Name", "unknown")
    f.append(
        Finding(
            check="instance",
            status=Status.PASS if state == "running" else Status.WARN,
            detail=f"{iid} is {state}",
            fix="" if state == "running" else f"start it: aws ec2 start-instances --instance-ids {iid}",
        )
    )
    f.extend(_metadata_findings(g))

    # 1. association
    if g.association is None:
        profile = g.guessed_profile or "PROFILE"
        f.append(
            Finding(
                check="association",
                status=Status.FAIL,
                detail=f"no instance profile is associated with {iid}",
                fix=_cmd("roleops", "associate", "--instance-id", iid, "--instance-profile", profile),
                fix_aws=_cmd(
                    "aws",
                    "ec2",
                    "associate-iam-instance-profile",
                    "--instance-id",
                    iid,
                    "--iam-instance-profile",
                    f"Name={profile}",
                ),
            )
        )
        return DoctorReport(findings=tuple(f))
    profile_arn = g.association["IamInstanceProfile"]["Arn"]
    profile_name = aws.profile_name_from_arn(profile_arn)
    assoc_state = g.association.get("State", "")
    f.append(
        Finding(
            check="association",
            status=Status.PASS if assoc_state == "associated" else Status.WARN,
            detail=f"{profile_arn} is {assoc_state}",
        )
    )

    # 2. the profile and its role
    if g.profile is None:
        f.append(
            Finding(
                check="instance-profile",
                status=Status.FAIL,
                detail=f"{profile_name} is associated but no longer exists (deleted, or re-created: IMDS then answers "
                "InstanceProfileNotFound)",
                fix=_setup_fix(g, profile_name, adopt=False) + " --instance-id " + iid,
                fix_aws=_cmd("aws", "iam", "create-instance-profile", "--instance-profile-name", profile_name),
            )
        )
        return DoctorReport(findings=tuple(f))
    if (
        g.association["IamInstanceProfile"].get("Id")
        and g.profile.get("InstanceProfileId")
        and g.association["IamInstanceProfile"]["Id"] != g.profile["InstanceProfileId"]
    ):
        f.append(
            Finding(
                check="instance-profile",
                status=Status.FAIL,
                detail=f"{profile_name} was re-created after it was associated; the instance points at the old one",
                fix=_cmd("roleops", "associate", "--instance-id", iid, "--instance-profile", profile_name),
                fix_aws=_cmd(
                    "aws",
                    "ec2",
                    "replace-iam-instance-profile-association",
                    "--association-id",
                    g.association.get("AssociationId", "ASSOC"),
                    "--iam-instance-profile",
                    f"Name={profile_name}",
                ),
            )
        )
    if not g.profile.get("Roles") or g.role is None:
        role_name = profile_name  # roleops' convention: the profile is named after its role
        f.append(
            Finding(
                check="profile-role",
                status=Status.FAIL,
                detail=f"instance profile {profile_name} holds no role",
                fix=_setup_fix(g, role_name, adopt=not aws.is_managed(g.profile)),
                fix_aws=_cmd(
                    "aws",
                    "iam",
                    "add-role-to-instance-profile",
                    "--instance-profile-name",
                    profile_name,
                    "--role-name",
                    role_name,
                ),
            )
        )
        return DoctorReport(findings=tuple(f))
    role = g.role
    role_name, role_arn = role["RoleName"], role["Arn"]
    partition, account = role_arn.split(":")[1], role_arn.split(":")[4]
    f.append(Finding(check="profile-role", status=Status.PASS, detail=f"{profile_name} holds {role_arn}"))

    # 3. EC2 may assume the instance role
    trust = policies.parse_document(role.get("AssumeRolePolicyDocument")) or {}
    ec2_verdict = evaluate_trust(
        trust, principal=Principal(kind=PrincipalKind.SERVICE, service=policies.EC2_SERVICE, partition=partition)
    )
    adopt = not aws.is_managed(role)
    if ec2_verdict.allowed:
        cond = (ec2_verdict.statement or {}).get("Condition")
        f.append(
            Finding(
                check="ec2-trust",
                status=Status.WARN if cond else Status.PASS,
                detail=_verdict_detail(ec2_verdict) + (f"; with conditions {cond}" if cond else ""),
            )
        )
    else:
        f.append(
            Finding(
                check="ec2-trust",
                status=Status.FAIL,
                detail=f"{role_name} does not trust ec2.amazonaws.com: {_verdict_detail(ec2_verdict)}; IMDS answers "
                "AssumeRoleUnauthorizedAccess instead of keys",
                fix=_setup_fix(g, role_name, adopt=adopt),
                fix_aws=_cmd(
                    "aws",
                    "iam",
                    "update-assume-role-policy",
                    "--role-name",
                    role_name,
                    "--policy-document",
                    "file://examples/ec2-trust-policy.json",
                ),
            )
        )
    f.extend(_unique_id_findings(f"trust of {role_name}", trust, g, role_name))

    # 4. each target: identity side, trust side, session duration
    principal = Principal(
        kind=PrincipalKind.ROLE_SESSION,
        account=account,
        arn=role_arn,
        session_arn=f"arn:{partition}:sts::{account}:assumed-role/{role_name}/{iid}",
        unique_id=role.get("RoleId", ""),
        partition=partition,
    )
    for t in g.targets:
        f.extend(_target_findings(g, t, principal, role_name, adopt))
    return DoctorReport(findings=tuple(f))


def _metadata_findings(g: Gathered) -> list[Finding]:
    iid = g.instance_id
    opts = g.instance.get("MetadataOptions", {})
    out: list[Finding] = []
    if opts.get("HttpEndpoint", "enabled") == "disabled":
        out.append(
            Finding(
                check="imds-endpoint",
                status=Status.FAIL,
                detail="the instance metadata endpoint is disabled",
                fix_aws=_cmd(
                    "aws", "ec2", "modify-instance-metadata-options", "--instance-id", iid, "--http-endpoint", "enabled"
                ),
            )
        )
    tokens = opts.get("HttpTokens", "optional")
    if tokens == "required":
        out.append(Finding(check="imdsv2", status=Status.PASS, detail="HttpTokens=required (IMDSv1 is off)"))
    else:
        out.append(
            Finding(
                check="imdsv2",
                status=Status.WARN,
                detail=f"HttpTokens={tokens}: IMDSv1 is on, the SSRF path; AWS recommends tokens required",
                fix=_setup_fix(g, _role_name_guess(g), adopt=bool(g.role) and not aws.is_managed(g.role))
                + " "
                + _cmd("--instance-id", iid, "--require-imdsv2"),
                fix_aws=_cmd(
                    "aws", "ec2", "modify-instance-metadata-options", "--instance-id", iid, "--http-tokens", "required"
                ),
            )
        )
    hops = int(opts.get("HttpPutResponseHopLimit", 1) or 1)
    if g.containers and hops < 2:
        out.append(
            Finding(
                check="hop-limit",
                status=Status.WARN,
                detail=f"HttpPutResponseHopLimit={hops}: inside containers the IMDSv2 token never arrives (AWS: use 2)",
                fix_aws=_cmd(
                    "aws",
                    "ec2",
                    "modify-instance-metadata-options",
                    "--instance-id",
                    iid,
                    "--http-put-response-hop-limit",
                    "2",
                ),
            )
        )
    else:
        out.append(Finding(check="hop-limit", status=Status.PASS, detail=f"HttpPutResponseHopLimit={hops}"))
    return out


def _role_name_guess(g: Gathered) -> str:
    if g.role:
        return g.role["RoleName"]
    if g.association:
        return aws.profile_name_from_arn(g.association["IamInstanceProfile"]["Arn"])
    return g.guessed_profile or "ROLE"


def _unique_id_findings(check_name: str, trust: Mapping[str, Any], g: Gathered, role_name: str) -> list[Finding]:
    stale = [p for p in policies.principals(trust) if _UNIQUE_ID.match(p)]
    if not stale:
        return []
    return [
        Finding(
            check=f"stale-principal:{role_name}",
            status=Status.FAIL,
            detail=f"{check_name} names {', '.join(stale)}: a unique id, which IAM shows when the named role or user "
            "was deleted; a re-created one does not match it",
            fix=_setup_fix(g, (g.role or {}).get("RoleName", role_name), adopt=True),
            fix_aws=_cmd(
                "aws",
                "iam",
                "update-assume-role-policy",
                "--role-name",
                role_name,
                "--policy-document",
                "file://examples/secondary-role-trust-policy.json",
            ),
        )
    ]


def _deny_fix(v: Verdict, role_name: str) -> str:
    if v.policy and v.policy.startswith("inline:"):
        return _cmd(
            "aws", "iam", "delete-role-policy", "--role-name", role_name, "--policy-name", v.policy.split(":", 1)[1]
        )
    if v.policy and v.policy.startswith("managed:"):
        return _cmd(
            "aws", "iam", "detach-role-policy", "--role-name", role_name, "--policy-arn", v.policy.split(":", 1)[1]
        )
    return ""


def _target_findings(g: Gathered, t: Target, principal: Principal, role_name: str, adopt: bool) -> list[Finding]:
    out: list[Finding] = []
    if t.role is None:
        if t.account != principal.account:
            out.append(
                Finding(
                    check=f"target:{t.name}",
                    status=Status.WARN,
                    detail=f"{t.arn} is in another account; its trust cannot be read from here",
                )
            )
        else:
            out.append(
                Finding(
                    check=f"target:{t.name}",
                    status=Status.FAIL,
                    detail=f"{t.arn} does not exist",
                    fix=_setup_fix(g, role_name, adopt=adopt),
                    fix_aws=_cmd(
                        "aws",
                        "iam",
                        "create-role",
                        "--role-name",
                        t.name,
                        "--assume-role-policy-document",
                        "file://examples/secondary-role-trust-policy.json",
                    ),
                )
            )
            return out
    trust = policies.parse_document((t.role or {}).get("AssumeRolePolicyDocument")) or {}
    verdict = evaluate_assume_role(
        principal=principal,
        identity_policies=g.identity_policies,
        trust_policy=trust,
        target_role_arn=t.arn,
        boundary=g.boundary,
    )
    target_adopt = adopt or (t.role is not None and not aws.is_managed(t.role))

    # identity side
    ident = verdict.identity
    if ident.decision is Decision.EXPLICIT_DENY:
        out.append(
            Finding(
                check=f"permission:{t.name}",
                status=Status.FAIL,
                detail=f"{role_name} is explicitly denied: {_verdict_detail(ident)}",
                fix="(roleops never removes statements) remove the Deny statement named here",
                fix_aws=_deny_fix(ident, role_name),
            )
        )
    elif not ident.allowed:
        out.append(
            Finding(
                check=f"permission:{t.name}",
                status=Status.FAIL,
                detail=f"{role_name} may not call sts:AssumeRole on {t.arn}: {_verdict_detail(ident)}",
                fix=_setup_fix(g, role_name, adopt=target_adopt),
                fix_aws=_cmd(
                    "aws",
                    "iam",
                    "put-role-policy",
                    "--role-name",
                    role_name,
                    "--policy-name",
                    INLINE_POLICY_NAME,
                    "--policy-document",
                    "file://examples/assume-role-permission.json",
                ),
            )
        )
    else:
        out.append(Finding(check=f"permission:{t.name}", status=Status.PASS, detail=_verdict_detail(ident)))
    if verdict.boundary is not None and not verdict.boundary.allowed:
        out.append(
            Finding(
                check=f"boundary:{t.name}",
                status=Status.FAIL,
                detail=f"the permissions boundary of {role_name} blocks it: {_verdict_detail(verdict.boundary)}",
                fix="allow sts:AssumeRole on the target in the boundary policy",
                fix_aws=_cmd("aws", "iam", "delete-role-permissions-boundary", "--role-name", role_name),
            )
        )

    if t.role is None:
        return out
    # trust side
    tv = verdict.trust
    if tv.decision is Decision.EXPLICIT_DENY:
        out.append(
            Finding(
                check=f"trust:{t.name}",
                status=Status.FAIL,
                detail=f"{t.name}'s trust explicitly denies {role_name}: {_verdict_detail(tv)}",
                fix="(roleops never removes statements) remove the Deny statement from the trust",
                fix_aws=_cmd(
                    "aws",
                    "iam",
                    "update-assume-role-policy",
                    "--role-name",
                    t.name,
                    "--policy-document",
                    "file://examples/secondary-role-trust-policy.json",
                ),
            )
        )
    elif not tv.allowed:
        out.append(
            Finding(
                check=f"trust:{t.name}",
                status=Status.FAIL,
                detail=f"{t.name} does not trust {principal.arn}: {_verdict_detail(tv)}",
                fix=_setup_fix(g, role_name, adopt=target_adopt),
                fix_aws=_cmd(
                    "aws",
                    "iam",
                    "update-assume-role-policy",
                    "--role-name",
                    t.name,
                    "--policy-document",
                    "file://examples/secondary-role-trust-policy.json",
                ),
            )
        )
    else:
        out.append(Finding(check=f"trust:{t.name}", status=Status.PASS, detail=_verdict_detail(tv)))
    out.extend(_unique_id_findings(f"trust of {t.name}", trust, g, t.name))
    star = [p for p in policies.principals(trust) if p == "*"]
    if star:
        out.append(
            Finding(
                check=f"open-trust:{t.name}",
                status=Status.WARN,
                detail=f'{t.name}\'s trust names "*": anyone may try to assume it',
            )
        )

    max_duration = int(t.role.get("MaxSessionDuration", 3600))
    detail = f"MaxSessionDuration {max_duration} s"
    if max_duration > CHAIN_CAP:
        detail += f"; sessions chained from the instance role are capped at {CHAIN_CAP} s all the same"
    out.append(Finding(check=f"session-duration:{t.name}", status=Status.PASS, detail=detail))
    return out


def run_doctor(clients: Any, *, instance_id: str, assume: Sequence[str] = (), containers: bool = False) -> DoctorReport:
    return diagnose(gather(clients, instance_id=instance_id, assume=assume, containers=containers))
