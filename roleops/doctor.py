"""Doctor (diagnosis layer): read the chain from an operator's machine and name the broken link.

Gathering is a handful of read-only AWS calls (through the thin AWS layer); deciding is pure: the same
evaluator the sandbox's STS uses says, for each target role, whether the identity side and the trust side
allow sts:AssumeRole, and which statement decides. Every failing finding carries a command that mends it:
`fix` is the command to run (`roleops ...` when roleops can mend it, else the `aws ...` one) and `fix_aws` is
the `aws ...` equivalent, with the policy documents written out for the actual names and current policies.
"""

from __future__ import annotations

import copy
import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from roleops import INLINE_POLICY_NAME, arns, aws, policies
from roleops.accounts import TargetAccess
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

CHAIN_CAP = arns.CHAINED_SESSION_MAX  # kept under this name: doctor's public vocabulary
_INLINE_ROLEOPS = f"inline:{INLINE_POLICY_NAME}"


def _cmd(*words: str) -> str:
    return shlex.join(words)


def _doc_arg(doc: Mapping[str, Any]) -> str:
    # Written out in the command itself: correct for these names and this account, runnable from any directory.
    # The spaces after "," and ":" let a table wrap the document instead of cutting it off; a line break that
    # lands inside the quoted JSON when it is copied from a terminal is still valid JSON.
    return json.dumps(doc)


@dataclass(frozen=True, kw_only=True)
class Target:
    arn: str
    name: str
    account: str
    role: Mapping[str, Any] | None  # None: missing, or in another account we cannot read
    readable: bool = True  # False: in another account no --target-profile reaches (its trust is unknown)
    profile: str | None = None  # the --target-profile that read it (another account's), for the fixes


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
    # Other existing roles the roleops inline policy already allows: a `roleops setup` fix must name them too,
    # because setup sets that policy to exactly the roles it is given.
    kept_targets: tuple[Target, ...] = ()
    guessed_profile: str | None = None
    containers: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)


# --- gathering (read-only AWS calls) --------------------------------------------------------------------


def _role_arn_match(arn: str) -> arns.RoleArn | None:
    return arns.parse_role_arn(arn)


def _allowed_role_arns(doc: Mapping[str, Any] | None) -> list[str]:
    """Exact role ARNs an identity policy allows sts:AssumeRole on (wildcards are not role names)."""
    found: list[str] = []
    for s in policies.statements(doc):
        actions = s.get("Action", [])
        actions = [actions] if isinstance(actions, str) else list(actions)
        if s.get("Effect") != "Allow" or not any(str(a).lower() == "sts:assumerole" for a in actions):
            continue
        resources = s.get("Resource", [])
        for r in [resources] if isinstance(resources, str) else list(resources):
            if "*" not in r and "?" not in r and _role_arn_match(r) and r not in found:
                found.append(r)
    return found


def gather(
    clients: Any,
    *,
    instance_id: str,
    assume: Sequence[str],
    containers: bool = False,
    access: TargetAccess | None = None,
) -> Gathered:
    """Read the chain. A target in another account is read with the --target-profile (`access`) that serves its
    account, checked to reach it (exit 2 otherwise); with none, its trust is unknown (a warning, never a pass)."""
    access = access or TargetAccess()

    iam, ec2 = clients.iam(), clients.ec2()
    instance = aws.require_instance(ec2, instance_id)
    association = aws.get_association(ec2, instance_id)
    profile = role = None
    identity: list[NamedPolicy] = []
    boundary = None
    if association:
        profile = aws.get_instance_profile(iam, arns.name_of(association["IamInstanceProfile"]["Arn"]))
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
            # A boundary naming a policy that no longer exists allows nothing (as STS treats it).
            boundary = NamedPolicy(name=f"boundary:{boundary_arn}", document=doc if doc is not None else {})

    caller_account = arns.account_of((role or {}).get("Arn"))
    targets = []
    for arn in assume:
        m = _role_arn_match(arn)
        if m is None:  # the CLI validated it; a role ARN with an unusual path still needs a name
            continue
        if caller_account is None or m.account == caller_account:
            targets.append(Target(arn=arn, name=m.name, account=m.account, role=aws.get_role(iam, m.name)))
            continue
        target_profile = access.profile_for(m.account)
        if target_profile is None:
            targets.append(Target(arn=arn, name=m.name, account=m.account, role=None, readable=False))
            continue
        other = access.clients_for(m.account, home=caller_account, why=f"--assume {arn}")
        role_there = aws.get_role(other.iam(), m.name)
        targets.append(Target(arn=arn, name=m.name, account=m.account, role=role_there, profile=target_profile))

    kept: list[Target] = []
    roleops_policy = next((p.document for p in identity if p.name == _INLINE_ROLEOPS), None)
    for arn in _allowed_role_arns(roleops_policy):
        m = _role_arn_match(arn)
        if m is None or any(t.arn == arn or (t.account == m.account and t.name == m.name) for t in targets):
            continue
        if m.account != caller_account:  # another account's: kept by ARN, not read (doctor was not asked to)
            kept.append(Target(arn=arn, name=m.name, account=m.account, role=None, readable=False,
                               profile=access.profile_for(m.account)))  # fmt: skip
            continue
        existing = aws.get_role(iam, m.name)
        if existing is not None:  # a deleted one is not worth re-creating: setup may drop its ARN
            kept.append(Target(arn=arn, name=m.name, account=m.account, role=existing))

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
        kept_targets=tuple(kept),
        guessed_profile=guessed,
        containers=containers,
    )


# --- fixes (pure) ----------------------------------------------------------------------------------------


def _account(g: Gathered) -> str | None:
    return arns.account_of(g.role["Arn"]) if g.role else None


def _needs_adopt(g: Gathered) -> bool:
    """setup refuses every existing resource it did not tag unless --adopt: look at all it would touch."""
    existing = [g.role, g.profile]
    existing += [t.role for t in g.targets]  # another account's too: setup converges it as well
    existing += [t.role for t in g.kept_targets]
    return any(r is not None and not aws.is_managed(r) for r in existing)


def _setup_fix(g: Gathered, role_name: str, *, instance_id: bool = False, require_imdsv2: bool = False) -> str:
    """The `roleops setup` run that converges this chain without narrowing what the role may assume today.

    A role of another account is named by its ARN, with the --target-profile of its account (the one doctor read
    it with, else a placeholder to fill in)."""
    account = _account(g)
    names: list[str] = []
    profiles: list[str] = []
    for t in (*g.targets, *g.kept_targets):
        same = account is None or t.account == account
        name = t.name if same else t.arn
        if name not in names:
            names.append(name)
        if not same:
            flag = f"{t.account}={t.profile}" if t.profile else f"{t.account}=PROFILE"
            if flag not in profiles:
                profiles.append(flag)
    words = ["roleops", "setup", "--instance-role", role_name]
    for name in names or ["TARGET_ROLE"]:
        words += ["--assumable-role", name]
    for flag in profiles:
        words += ["--target-profile", flag]
    if instance_id:
        words += ["--instance-id", g.instance_id]
    if require_imdsv2:
        words.append("--require-imdsv2")
    if _needs_adopt(g):
        words.append("--adopt")
    return _cmd(*words)


def _trust_update(role_name: str, doc: Mapping[str, Any], *extra: str) -> str:
    return _cmd(
        "aws", "iam", "update-assume-role-policy", "--role-name", role_name, "--policy-document", _doc_arg(doc), *extra
    )


def _without_statement(doc: Mapping[str, Any] | None, index: int | None) -> dict[str, Any]:
    base = copy.deepcopy(dict(doc or {"Version": policies.VERSION}))
    stmts = policies.statements(base)
    base["Statement"] = [s for i, s in enumerate(stmts) if i != index]
    return base


def _without_unique_ids(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The trust with every bare unique-id principal dropped (and statements left naming nobody)."""
    base = copy.deepcopy(dict(doc))
    kept = []
    for s in policies.statements(base):
        p = s.get("Principal")
        if isinstance(p, Mapping) and "AWS" in p:
            values = [p["AWS"]] if isinstance(p["AWS"], str) else list(p["AWS"])
            live = [v for v in values if not arns.is_unique_id(v)]
            if len(live) != len(values):
                rest = {k: v for k, v in p.items() if k != "AWS"}
                if live:
                    rest["AWS"] = live[0] if len(live) == 1 else live
                if not rest:
                    continue
                s["Principal"] = rest
        kept.append(s)
    base["Statement"] = kept
    return base


def _permission_fix_aws(g: Gathered, role_name: str, target_arn: str) -> str:
    current = next((p.document for p in g.identity_policies if p.name == _INLINE_ROLEOPS), None)
    arns = [*_allowed_role_arns(current), target_arn]
    return _cmd(
        "aws",
        "iam",
        "put-role-policy",
        "--role-name",
        role_name,
        "--policy-name",
        INLINE_POLICY_NAME,
        "--policy-document",
        _doc_arg(policies.assume_permission_policy(arns)),
    )


def _deny_fix(g: Gathered, v: Verdict, role_name: str) -> str:
    """Remove exactly the deciding Deny: the statement from an inline policy, or the managed policy holding it."""
    name = v.policy or ""
    if name.startswith("inline:"):
        policy = name.split(":", 1)[1]
        doc = next((p.document for p in g.identity_policies if p.name == name), None)
        rest = _without_statement(doc, v.statement_index)
        if not rest["Statement"]:
            return _cmd("aws", "iam", "delete-role-policy", "--role-name", role_name, "--policy-name", policy)
        return _cmd(
            "aws",
            "iam",
            "put-role-policy",
            "--role-name",
            role_name,
            "--policy-name",
            policy,
            "--policy-document",
            _doc_arg(rest),
        )
    if name.startswith("managed:"):
        return _cmd("aws", "iam", "detach-role-policy", "--role-name", role_name, "--policy-arn", name.split(":", 1)[1])
    return ""


def _boundary_fix(g: Gathered, v: Verdict, role_name: str, target_arn: str) -> str:
    if g.boundary is None:
        return ""
    arn = g.boundary.name.split(":", 1)[1]
    if ":iam::aws:policy/" in arn:
        # An AWS managed policy cannot be edited: the boundary itself has to go (or be swapped for another).
        return _cmd("aws", "iam", "delete-role-permissions-boundary", "--role-name", role_name)
    doc = g.boundary.document
    if v.decision is Decision.EXPLICIT_DENY:
        doc = _without_statement(doc, v.statement_index)
    else:
        doc = copy.deepcopy(dict(doc or {"Version": policies.VERSION}))
        doc.setdefault("Version", policies.VERSION)
        allow = {"Effect": "Allow", "Action": [policies.ASSUME_ACTION], "Resource": [target_arn]}
        doc["Statement"] = [*policies.statements(doc), allow]
    return _cmd(
        "aws",
        "iam",
        "create-policy-version",
        "--policy-arn",
        arn,
        "--set-as-default",
        "--policy-document",
        _doc_arg(doc),
    )


# --- diagnosis (pure) ----------------------------------------------------------------------------------


def _verdict_detail(v: Verdict) -> str:
    if v.decision is Decision.ALLOW:
        return v.reason
    where = ""
    if v.policy is not None:
        where = f" [{v.policy} statement {v.statement_index}{f' Sid {v.sid}' if v.sid else ''}]"
    return f"{v.reason}{where}"


def _fail(check: str, detail: str, *, fix: str = "", fix_aws: str = "") -> Finding:
    # `fix` is always something to run: roleops' command when it mends the link, else the aws one.
    return Finding(check=check, status=Status.FAIL, detail=detail, fix=fix or fix_aws, fix_aws=fix_aws)


def diagnose(g: Gathered) -> DoctorReport:
    f: list[Finding] = [_instance_finding(g)]
    f.extend(_metadata_findings(g))
    iid = g.instance_id

    # 1. association
    if g.association is None:
        profile = g.guessed_profile or "PROFILE"
        f.append(
            _fail(
                "association",
                f"no instance profile is associated with {iid}: IMDS serves no credentials"
                + ("" if g.guessed_profile else "; name the profile holding the instance role"),
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
    profile_name = arns.name_of(profile_arn)
    assoc_id = g.association.get("AssociationId", "ASSOCIATION_ID")
    assoc_state = g.association.get("State", "")
    f.append(
        Finding(
            check="association",
            status=Status.PASS if assoc_state == "associated" else Status.WARN,
            detail=f"{profile_arn} is {assoc_state}",
        )
    )
    replace_aws = _cmd(
        "aws",
        "ec2",
        "replace-iam-instance-profile-association",
        "--association-id",
        assoc_id,
        "--iam-instance-profile",
        f"Name={profile_name}",
    )

    # 2. the profile and its role
    if g.profile is None:
        # `roleops setup` re-creates the profile, but the association still points at the deleted one
        # (setup and associate match associations by name), so EC2 must be told about the new one.
        f.append(
            _fail(
                "instance-profile",
                f"{profile_name} is associated but no longer exists: IMDS answers InstanceProfileNotFound",
                fix=f"{_setup_fix(g, profile_name)} && {replace_aws}",
                fix_aws=" && ".join(
                    (
                        _cmd("aws", "iam", "create-instance-profile", "--instance-profile-name", profile_name),
                        _cmd(
                            "aws",
                            "iam",
                            "add-role-to-instance-profile",
                            "--instance-profile-name",
                            profile_name,
                            "--role-name",
                            profile_name,
                        ),
                        replace_aws,
                    )
                ),
            )
        )
        return DoctorReport(findings=tuple(f))
    assoc_profile_id = g.association["IamInstanceProfile"].get("Id")
    if assoc_profile_id and g.profile.get("InstanceProfileId") and assoc_profile_id != g.profile["InstanceProfileId"]:
        f.append(
            _fail(
                "instance-profile",
                f"{profile_name} was re-created after it was associated; the association still points at the old "
                f"one ({assoc_profile_id}), so IMDS answers InstanceProfileNotFound",
                fix_aws=replace_aws,
            )
        )
    if not g.profile.get("Roles") or g.role is None:
        role_name = profile_name  # roleops' convention: the profile is named after its role
        f.append(
            _fail(
                "profile-role",
                f"instance profile {profile_name} holds no role: IMDS lists no credentials",
                fix=_setup_fix(g, role_name),
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
    partition, account = arns.split_arn(role_arn) or ("aws", "")
    f.append(Finding(check="profile-role", status=Status.PASS, detail=f"{profile_name} holds {role_arn}"))

    # 3. EC2 may assume the instance role
    trust = policies.parse_document(role.get("AssumeRolePolicyDocument")) or {}
    ec2_verdict = evaluate_trust(
        trust, principal=Principal(kind=PrincipalKind.SERVICE, service=policies.EC2_SERVICE, partition=partition)
    )
    if ec2_verdict.allowed:
        cond = (ec2_verdict.statement or {}).get("Condition")
        f.append(
            Finding(
                check="ec2-trust",
                status=Status.WARN if cond else Status.PASS,
                detail=_verdict_detail(ec2_verdict) + (f"; with conditions {json.dumps(cond)}" if cond else ""),
            )
        )
    else:
        mended = trust
        if ec2_verdict.decision is Decision.EXPLICIT_DENY:
            mended = _without_statement(trust, ec2_verdict.statement_index)
        # the aws fix re-saves the whole trust: drop dangling unique ids while at it
        mended = policies.merge_statement(_without_unique_ids(mended), policies.ec2_trust_statement())
        roleops_mends = ec2_verdict.decision is not Decision.EXPLICIT_DENY  # setup only adds statements
        f.append(
            _fail(
                "ec2-trust",
                f"{role_name} does not trust ec2.amazonaws.com: {_verdict_detail(ec2_verdict)}; IMDS answers "
                "AssumeRoleUnauthorizedAccess instead of keys",
                fix=_setup_fix(g, role_name) if roleops_mends else "",
                fix_aws=_trust_update(role_name, mended),
            )
        )
    f.extend(_unique_id_findings(trust, role_name))

    # 4. each target: identity side, trust side, session duration
    principal = Principal(
        kind=PrincipalKind.ROLE_SESSION,
        account=account,
        arn=role_arn,
        session_arn=arns.assumed_role_arn(partition, account, role_name, iid),
        unique_id=role.get("RoleId", ""),
        partition=partition,
    )
    if not g.targets:
        f.append(
            Finding(
                check="targets",
                status=Status.SKIP,
                detail="no --assume ROLE_ARN given: only the instance role was checked",
            )
        )
    for t in g.targets:
        f.extend(_target_findings(g, t, principal, role_name))
    return DoctorReport(findings=tuple(f))


def _instance_finding(g: Gathered) -> Finding:
    iid = g.instance_id
    state = g.instance.get("State", {}).get("Name", "unknown")
    if state == "running":
        return Finding(check="instance", status=Status.PASS, detail=f"{iid} is running")
    if state in ("terminated", "shutting-down"):
        return Finding(check="instance", status=Status.FAIL, detail=f"{iid} is {state}: it serves no metadata")
    start = _cmd("aws", "ec2", "start-instances", "--instance-ids", iid)
    return Finding(
        check="instance",
        status=Status.WARN,
        detail=f"{iid} is {state}: IMDS answers only while it runs",
        fix=start,
        fix_aws=start,
    )


def _role_name(g: Gathered) -> str | None:
    """The instance role, when roleops' convention (profile named after its role) holds for this instance."""
    if g.role and g.association:
        profile = arns.name_of(g.association["IamInstanceProfile"]["Arn"])
        return g.role["RoleName"] if profile == g.role["RoleName"] else None
    return None


def _metadata_findings(g: Gathered) -> list[Finding]:
    iid = g.instance_id
    opts = g.instance.get("MetadataOptions", {})
    out: list[Finding] = []

    def modify(*words: str) -> str:
        return _cmd("aws", "ec2", "modify-instance-metadata-options", "--instance-id", iid, *words)

    if opts.get("HttpEndpoint", "enabled") == "disabled":
        # Not `roleops setup --require-imdsv2`: it leaves an instance alone once HttpTokens is required.
        out.append(
            _fail(
                "imds-endpoint",
                "the instance metadata endpoint is disabled: IMDS answers 403 to everything",
                fix_aws=modify("--http-endpoint", "enabled"),
            )
        )
    else:
        out.append(Finding(check="imds-endpoint", status=Status.PASS, detail="HttpEndpoint=enabled"))
    tokens = opts.get("HttpTokens", "optional")
    if tokens == "required":
        out.append(Finding(check="imdsv2", status=Status.PASS, detail="HttpTokens=required (IMDSv1 is off)"))
    else:
        role_name = _role_name(g)
        # setup with --instance-id also converges the association to the profile named after the role:
        # offered only when that is already the instance's profile, so the fix changes nothing else.
        fix = _setup_fix(g, role_name, instance_id=True, require_imdsv2=True) if role_name else ""
        aws_fix = modify("--http-tokens", "required")
        out.append(
            Finding(
                check="imdsv2",
                status=Status.WARN,
                detail=f"HttpTokens={tokens}: IMDSv1 is on, the SSRF path; AWS recommends tokens required",
                fix=fix or aws_fix,
                fix_aws=aws_fix,
            )
        )
    hops = int(opts.get("HttpPutResponseHopLimit", 1) or 1)
    if g.containers and hops < 2:
        detail = f"HttpPutResponseHopLimit={hops}: inside containers the IMDSv2 token never arrives (AWS: use 2)"
        hop_fix = modify("--http-put-response-hop-limit", "2")
        if tokens == "required":
            # With IMDSv1 off there is no fallback: containers get no credentials at all.
            out.append(
                _fail("hop-limit", detail + "; with HttpTokens=required containers get no credentials", fix_aws=hop_fix)
            )
        else:
            out.append(
                Finding(
                    check="hop-limit",
                    status=Status.WARN,
                    detail=detail + "; SDKs fall back to IMDSv1 after a timeout",
                    fix=hop_fix,
                    fix_aws=hop_fix,
                )
            )
    else:
        why = "" if g.containers else " (enough on the host; pass --containers to check for containers)"
        out.append(Finding(check="hop-limit", status=Status.PASS, detail=f"HttpPutResponseHopLimit={hops}{why}"))
    return out


def _stale_ids(trust: Mapping[str, Any]) -> list[str]:
    return [p for p in policies.principals(trust) if arns.is_unique_id(p)]


def _unique_id_findings(trust: Mapping[str, Any], role_name: str, *extra: str) -> list[Finding]:
    """A bare AROA/AIDA principal: a dangling reference. It breaks nothing by itself (the trust check says
    whether the instance role is still allowed), but it matches nobody and should be removed."""
    stale = _stale_ids(trust)
    if not stale:
        return []
    cleaned = _without_unique_ids(trust)
    # A trust left with no statement would be refused by IAM (and trust nobody): then offer no clean-up.
    cleanup = _trust_update(role_name, cleaned, *extra) if policies.statements(cleaned) else ""
    return [
        Finding(
            check=f"stale-principal:{role_name}",
            status=Status.WARN,
            detail=f"the trust of {role_name} names {', '.join(stale)}: a unique id, which IAM shows in place of a "
            "role or user that was deleted; it matches nobody, not even a re-created role of the same name",
            fix=cleanup,
            fix_aws=cleanup,
        )
    ]


def _target_findings(g: Gathered, t: Target, principal: Principal, role_name: str) -> list[Finding]:
    out: list[Finding] = []
    other_account = t.account != principal.account
    # An aws command for the target's side runs with a profile of the target's account.
    in_target = ["--profile", t.profile or "PROFILE"] if other_account else []
    if t.role is None:
        if not t.readable:
            out.append(
                Finding(
                    check=f"target:{t.name}",
                    status=Status.WARN,
                    detail=f"{t.arn} is in account {t.account}: its trust is not readable from account "
                    f"{principal.account}; pass --target-profile {t.account}=PROFILE to check that side too",
                )
            )
        else:
            where = f" in account {t.account}" if other_account else ""
            out.append(
                _fail(
                    f"target:{t.name}",
                    f"{t.arn} does not exist{where}",
                    fix=_setup_fix(g, role_name),
                    fix_aws=_cmd(
                        "aws",
                        "iam",
                        "create-role",
                        "--role-name",
                        t.name,
                        "--assume-role-policy-document",
                        _doc_arg(policies.trust_policy(policies.role_trust_statement(principal.arn))),
                        *in_target,
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

    # identity side
    ident = verdict.identity
    if ident.decision is Decision.EXPLICIT_DENY:
        out.append(
            _fail(
                f"permission:{t.name}",
                f"{role_name} is explicitly denied: {_verdict_detail(ident)}; an explicit Deny beats every Allow "
                "(roleops only adds statements, so the Deny has to be removed by hand)",
                fix_aws=_deny_fix(g, ident, role_name),
            )
        )
    elif not ident.allowed:
        out.append(
            _fail(
                f"permission:{t.name}",
                f"{role_name} may not call sts:AssumeRole on {t.arn}: {_verdict_detail(ident)}",
                fix=_setup_fix(g, role_name),
                fix_aws=_permission_fix_aws(g, role_name, t.arn),
            )
        )
    else:
        out.append(Finding(check=f"permission:{t.name}", status=Status.PASS, detail=_verdict_detail(ident)))
    if verdict.boundary is not None:
        if verdict.boundary.allowed:
            out.append(
                Finding(
                    check=f"boundary:{t.name}",
                    status=Status.PASS,
                    detail=f"the permissions boundary of {role_name}: {_verdict_detail(verdict.boundary)}",
                )
            )
        else:
            out.append(
                _fail(
                    f"boundary:{t.name}",
                    f"the permissions boundary of {role_name} blocks it: {_verdict_detail(verdict.boundary)}",
                    fix_aws=_boundary_fix(g, verdict.boundary, role_name, t.arn),
                )
            )

    if t.role is None:
        return out
    # trust side
    tv = verdict.trust
    stale = _stale_ids(trust)
    if tv.decision is Decision.EXPLICIT_DENY:
        mended = policies.merge_statement(
            _without_unique_ids(_without_statement(trust, tv.statement_index)),
            policies.role_trust_statement(principal.arn),
        )
        out.append(
            _fail(
                f"trust:{t.name}",
                f"{t.name}'s trust explicitly denies {role_name}: {_verdict_detail(tv)} (roleops only adds "
                "statements, so the Deny has to be removed by hand)",
                fix_aws=_trust_update(t.name, mended, *in_target),
            )
        )
    elif not tv.allowed:
        if stale:
            # The evaluator's reason says the same at length; one sentence is enough here.
            detail = (
                f"{t.name} does not trust {principal.arn}; its trust names {', '.join(stale)}, the unique id IAM "
                f"shows where a since-deleted role was named: if that was {role_name}, the re-created role (id "
                f"{principal.unique_id or 'unknown'}) does not match it; re-save the trust with the role's ARN"
            )
        else:
            detail = f"{t.name} does not trust {principal.arn}: {_verdict_detail(tv)}"
        if other_account:
            detail = f"in account {t.account}, {detail} (across accounts both sides must allow)"
        out.append(
            _fail(
                f"trust:{t.name}",
                detail,
                fix=_setup_fix(g, role_name),
                fix_aws=_trust_update(
                    t.name,
                    policies.merge_statement(_without_unique_ids(trust), policies.role_trust_statement(principal.arn)),
                    *in_target,
                ),
            )
        )
    else:
        out.append(Finding(check=f"trust:{t.name}", status=Status.PASS, detail=_verdict_detail(tv)))
    if tv.allowed or not stale:  # when the trust fails, its finding already names the id and drops it
        out.extend(_unique_id_findings(trust, t.name, *in_target))
    if "*" in policies.principals(trust):
        out.append(
            Finding(
                check=f"open-trust:{t.name}",
                status=Status.WARN,
                detail=f'{t.name}\'s trust names "*": anyone may try to assume it',
            )
        )

    max_duration = int(t.role.get("MaxSessionDuration") or arns.DEFAULT_MAX_SESSION_DURATION)
    detail = (
        f"MaxSessionDuration {max_duration} s; from the instance role this is role chaining, capped at "
        f"{CHAIN_CAP} s: ask for DurationSeconds ≤ {min(max_duration, CHAIN_CAP)}"
    )
    if max_duration > CHAIN_CAP:
        detail += " (more fails with ValidationError: exceeds the 1 hour session limit)"
    out.append(Finding(check=f"session-duration:{t.name}", status=Status.PASS, detail=detail))
    return out


def run_doctor(
    clients: Any,
    *,
    instance_id: str,
    assume: Sequence[str] = (),
    containers: bool = False,
    access: TargetAccess | None = None,
) -> DoctorReport:
    return diagnose(gather(clients, instance_id=instance_id, assume=assume, containers=containers, access=access))


__all__ = ["CHAIN_CAP", "Gathered", "Target", "diagnose", "gather", "run_doctor"]
