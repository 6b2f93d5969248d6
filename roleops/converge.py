"""Setup, associate and teardown (plan layer): each step is read -> pure diff -> apply.

A plan reads every resource first and diffs it against the wanted state without touching AWS; only when every
step has been diffed (and none refused) are the steps applied, in order. So bad input and refusals (an
untagged role without --adopt) stop the run before anything is created, and --dry-run is simply "stop here".
Diffs return operations as data (`Op`), which keeps them pure and testable without AWS.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from roleops import INLINE_POLICY_NAME, arns, aws, policies
from roleops.accounts import TargetAccess, foreign_roles
from roleops.errors import InstanceNotFound, NotManagedError, UsageError
from roleops.operations import (
    DEFAULT_CONCURRENCY,
    DEFAULT_PROPAGATION_TIMEOUT,
    AddRoleToInstanceProfile,
    Associate,
    Context,
    CreateInstanceProfile,
    CreateRole,
    DeleteInstanceProfile,
    DeleteRole,
    DeleteRolePolicy,
    Diff,
    Disassociate,
    NewDefaultTemplateVersion,
    NullReporter,
    Op,
    PutRolePolicy,
    RemoveRoleFromInstanceProfile,
    Replace,
    RequireImdsv2,
    UpdateMaxSessionDuration,
    UpdateTrust,
    WaitAssociated,
    apply,
)
from roleops.results import Action, Change, PlanReport
from roleops.validate import (
    unique,
    validate_assumable_role,
    validate_concurrency,
    validate_instance_id,
    validate_launch_template,
    validate_max_session_duration,
    validate_profile_name,
    validate_propagation_timeout,
    validate_role_name,
    validate_tag_filter,
)

__all__ = ["Context", "Diff", "NullReporter", "Op", "apply"]  # the plan's vocabulary, re-exported for callers


# --- requests ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Targets:
    """The instances a command acts on: ids and/or tag filters (ANDed, like EC2's), and how many at once."""

    instance_ids: tuple[str, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()
    concurrency: int = DEFAULT_CONCURRENCY

    def __bool__(self) -> bool:
        return bool(self.instance_ids or self.tags)


def targets(
    *,
    instance_ids: Sequence[str] = (),
    tags: Sequence[tuple[str, str] | str] = (),
    concurrency: int | str = DEFAULT_CONCURRENCY,
) -> Targets:
    """Check the targeting inputs (ValidationError, exit 2) with validate.py's converters."""
    ids = unique([validate_instance_id(i) for i in instance_ids], "--instance-id")
    filters = tuple(validate_tag_filter(t) if isinstance(t, str) else t for t in tags)
    return Targets(instance_ids=ids, tags=filters, concurrency=validate_concurrency(concurrency))


def _ids(instance_id: str | None, instance_ids: Sequence[str]) -> list[str]:
    """`instance_id` (the one-instance keyword library callers know) and `instance_ids`, as one list."""
    return [*([instance_id] if instance_id is not None else []), *instance_ids]


def _refuse_self(instance_role: str, names: Sequence[str]) -> None:
    """An assumable role that is the instance role itself is bad input (IAM names are case-insensitive)."""
    if instance_role.lower() in {n.lower() for n in names}:
        raise UsageError(
            f"--assumable-role {instance_role!r} is the instance role itself",
            "a role does not need to assume itself",
            "name a different secondary role",
        )


@dataclass(frozen=True, kw_only=True)
class SetupRequest:
    instance_role: str
    assumable_roles: tuple[str, ...]  # names (the instance role's account) or role ARNs (any account)
    targets: Targets = Targets()
    launch_template: str | None = None
    require_imdsv2: bool = False
    max_session_duration: int | None = None
    adopt: bool = False
    wait: bool = False
    propagation_timeout: float = DEFAULT_PROPAGATION_TIMEOUT

    @property
    def profile(self) -> str:
        # The walkthrough (and the AWS console) name the profile after the role.
        return self.instance_role


def setup_request(
    *,
    instance_role: str,
    assumable_roles: Sequence[str],
    instance_id: str | None = None,
    instance_ids: Sequence[str] = (),
    instances_tagged: Sequence[tuple[str, str] | str] = (),
    concurrency: int | str = DEFAULT_CONCURRENCY,
    launch_template: str | None = None,
    require_imdsv2: bool = False,
    max_session_duration: int | str | None = None,
    adopt: bool = False,
    wait: bool = False,
    propagation_timeout: float = DEFAULT_PROPAGATION_TIMEOUT,
) -> SetupRequest:
    """Validate everything a setup needs before any AWS call (raises ValidationError, exit 2)."""
    validate_role_name(instance_role, "--instance-role")
    validate_profile_name(instance_role, "--instance-role")
    if not assumable_roles:
        raise UsageError(
            "no --assumable-role given", "setup needs at least one role to assume", "add --assumable-role NAME"
        )
    roles = unique([validate_assumable_role(r) for r in assumable_roles], "--assumable-role")
    _refuse_self(instance_role, roles)  # by name here; a home ARN naming it is caught once the account is known
    where = targets(instance_ids=_ids(instance_id, instance_ids), tags=instances_tagged, concurrency=concurrency)
    if launch_template is not None:
        validate_launch_template(launch_template)
    if not where and wait:
        raise UsageError(
            "--wait needs --instance-id or --instances-tagged", "it waits for instances", "add --instance-id i-..."
        )
    if not where and require_imdsv2 and launch_template is None:
        raise UsageError(
            "--require-imdsv2 needs --instance-id, --instances-tagged or --launch-template",
            "it acts on instances or their launch template",
            "add --instance-id i-... or --launch-template NAME",
        )
    duration = validate_max_session_duration(max_session_duration) if max_session_duration is not None else None
    timeout = validate_propagation_timeout(propagation_timeout)
    return SetupRequest(
        instance_role=instance_role,
        assumable_roles=roles,
        targets=where,
        launch_template=launch_template,
        require_imdsv2=require_imdsv2,
        max_session_duration=duration,
        adopt=adopt,
        wait=wait,
        propagation_timeout=timeout,
    )


def resolve_instances(ctx: Context, where: Targets) -> list[dict[str, Any]]:
    """The target instances, read in batches: every --instance-id must exist (else InstanceNotFound, exit 2), and
    each --instances-tagged filter set must match at least one instance (else bad input, exit 2)."""
    ec2 = ctx.clients.ec2()
    found: dict[str, dict[str, Any]] = {}
    if where.instance_ids:
        for instance in aws.describe_instances(ec2, instance_ids=where.instance_ids):
            found[instance["InstanceId"]] = instance
        missing = [i for i in where.instance_ids if i not in found]
        if missing:
            raise InstanceNotFound(", ".join(missing), ctx.clients.region)
    if where.tags:
        tagged = aws.describe_instances(ec2, tags=where.tags)
        if not tagged:
            given = " ".join(f"--instances-tagged {k}={v}" for k, v in where.tags)
            raise UsageError(
                f"no instance matches {given} in {ctx.clients.region}",
                "the filters are ANDed and match running and stopped instances",
                "check the tags and --region; nothing was changed",
            )
        for instance in tagged:
            found.setdefault(instance["InstanceId"], instance)
    return list(found.values())


# --- pure diffs ------------------------------------------------------------------------------------


def _refuse_unmanaged(kind: str, name: str) -> NotManagedError:
    return NotManagedError(
        f"{kind} {name} exists but roleops did not create it (no roleops:managed=true tag)",
        "roleops leaves resources it did not make alone",
        "pass --adopt to add roleops' statements to it (nothing is removed), or choose another name",
    )


def diff_role(
    name: str,
    role: Mapping[str, Any] | None,
    wanted: policies.Statement,
    *,
    adopt: bool,
    max_session_duration: int | None = None,
    purpose: str = "",
) -> Diff:
    """A role whose trust must hold `wanted`; other statements are kept untouched."""
    resource = f"role {name}"
    if role is None:
        trust = policies.trust_policy(wanted)
        detail = f"{purpose}; trust: {_describe_statement(wanted)}".lstrip("; ")
        return Diff(
            change=Change(resource=resource, action=Action.CREATE, detail=detail),
            ops=(CreateRole(name=name, trust=trust, max_session_duration=max_session_duration),),
        )
    if not aws.is_managed(role) and not adopt:
        raise _refuse_unmanaged("role", name)
    current = policies.parse_document(role.get("AssumeRolePolicyDocument"))
    ops: list[Op] = []
    details: list[str] = []
    if not policies.has_statement(current, wanted):
        ops.append(UpdateTrust(name=name, trust=policies.merge_statement(current, wanted)))
        details.append(f"trust: add {_describe_statement(wanted)} (other statements kept)")
    if max_session_duration and role.get("MaxSessionDuration") != max_session_duration:
        ops.append(UpdateMaxSessionDuration(name=name, seconds=max_session_duration))
        details.append(f"MaxSessionDuration {role.get('MaxSessionDuration')} -> {max_session_duration}")
    if not ops:
        note = "" if aws.is_managed(role) else " (adopted, untagged)"
        return Diff(
            change=Change(
                resource=resource,
                action=Action.UNCHANGED,
                detail=f"trust already has {_describe_statement(wanted)}{note}",
            )
        )
    return Diff(change=Change(resource=resource, action=Action.UPDATE, detail="; ".join(details)), ops=tuple(ops))


def diff_profile(name: str, role_name: str, profile: Mapping[str, Any] | None, *, adopt: bool) -> Diff:
    resource = f"instance-profile {name}"
    if profile is None:
        return Diff(
            change=Change(resource=resource, action=Action.CREATE, detail=f"holding role {role_name}"),
            ops=(CreateInstanceProfile(name=name), AddRoleToInstanceProfile(profile=name, role=role_name)),
        )
    if not aws.is_managed(profile) and not adopt:
        raise _refuse_unmanaged("instance profile", name)
    roles = [r["RoleName"] for r in profile.get("Roles", [])]
    if roles == [role_name]:
        return Diff(change=Change(resource=resource, action=Action.UNCHANGED, detail=f"holds role {role_name}"))
    if roles:
        raise UsageError(
            f"instance profile {name} holds role {roles[0]}, not {role_name}",
            "an instance profile holds one role and roleops will not swap it",
            f"remove {roles[0]} from the profile, or choose another --instance-role",
        )
    return Diff(
        change=Change(resource=resource, action=Action.UPDATE, detail=f"add role {role_name}"),
        ops=(AddRoleToInstanceProfile(profile=name, role=role_name),),
    )


def diff_inline_policy(role: str, current: Mapping[str, Any] | None, target_arns: Sequence[str]) -> Diff:
    resource = f"inline-policy {role}/{INLINE_POLICY_NAME}"
    wanted = policies.assume_permission_policy(target_arns)
    arns = ", ".join(sorted(set(target_arns)))
    if current is None:
        return Diff(
            change=Change(resource=resource, action=Action.CREATE, detail=f"sts:AssumeRole on {arns}"),
            ops=(PutRolePolicy(role=role, policy=INLINE_POLICY_NAME, document=wanted),),
        )
    if policies.documents_equal(current, wanted):
        return Diff(change=Change(resource=resource, action=Action.UNCHANGED, detail=f"sts:AssumeRole on {arns}"))
    return Diff(
        change=Change(resource=resource, action=Action.UPDATE, detail=f"set to sts:AssumeRole on exactly {arns}"),
        ops=(PutRolePolicy(role=role, policy=INLINE_POLICY_NAME, document=wanted),),
    )


def diff_association(
    instance_id: str,
    instance: Mapping[str, Any],
    association: Mapping[str, Any] | None,
    profile: str,
    *,
    wait: bool,
    profile_id: str | None = None,
) -> Diff:
    """`profile_id`: the live profile's id, when it exists; an association holding another id points at a
    deleted (or deleted and re-created) profile of the same name, and IMDS then serves no role."""
    resource = f"association {instance_id}"
    state = instance.get("State", {}).get("Name", "")
    if state in ("terminated", "shutting-down"):
        raise UsageError(f"instance {instance_id} is {state}", "it cannot take a profile", "pick a live instance")
    waits = (WaitAssociated(instance_id=instance_id, profile=profile),) if wait else ()
    if association is None:
        return Diff(
            change=Change(resource=resource, action=Action.CREATE, detail=f"associate profile {profile}"),
            ops=(Associate(instance_id=instance_id, profile=profile), *waits),
            instance=instance_id,
        )
    current = arns.name_of(association["IamInstanceProfile"]["Arn"])
    held_id = association["IamInstanceProfile"].get("Id")
    stale = current == profile and bool(profile_id and held_id and held_id != profile_id)
    if current == profile and not stale:
        detail = f"profile {profile} is {association.get('State', 'associated')}"
        return Diff(
            change=Change(resource=resource, action=Action.UNCHANGED, detail=detail),
            ops=waits if association.get("State") != "associated" else (),
            instance=instance_id,
        )
    if state == "running":
        ops: tuple[Op, ...] = (
            Replace(association_id=association["AssociationId"], profile=profile, instance_id=instance_id),
        )
    else:
        # EC2 only replaces on a running instance (AWS-FACTS.md): disassociate, then associate.
        ops = (
            Disassociate(association_id=association["AssociationId"]),
            Associate(instance_id=instance_id, profile=profile),
        )
    detail = f"{current} (re-created since it was associated) -> {profile}" if stale else f"{current} -> {profile}"
    return Diff(
        change=Change(resource=resource, action=Action.REPLACE, detail=detail), ops=ops + waits, instance=instance_id
    )


def diff_metadata_options(instance_id: str, instance: Mapping[str, Any] | None) -> Diff:
    """IMDSv2 only means tokens required *and* the endpoint on (a disabled endpoint serves no role at all)."""
    resource = f"metadata-options {instance_id}"
    options = (instance or {}).get("MetadataOptions", {})
    tokens = options.get("HttpTokens", "optional")
    endpoint = options.get("HttpEndpoint", "enabled")
    if tokens == "required" and endpoint == "enabled":
        return Diff(
            change=Change(resource=resource, action=Action.UNCHANGED, detail="HttpTokens=required (IMDSv2 only)"),
            instance=instance_id,
        )
    details = [f"HttpTokens {tokens} -> required"] if tokens != "required" else []
    if endpoint != "enabled":
        details.append(f"HttpEndpoint {endpoint} -> enabled")
    return Diff(
        change=Change(resource=resource, action=Action.UPDATE, detail="; ".join(details)),
        ops=(RequireImdsv2(instance_id=instance_id),),
        instance=instance_id,
    )


def diff_launch_template(
    name_or_id: str, template: Mapping[str, Any], default: Mapping[str, Any], profile: str, *, require_imdsv2: bool
) -> Diff:
    """The default version of a launch template must carry `profile` (and, with --require-imdsv2, HttpTokens
    required); otherwise a new version from it, with only those blocks changed, becomes the default."""
    label = template.get("LaunchTemplateName") or name_or_id
    resource = f"launch-template {label}"
    number = int(default.get("VersionNumber") or template.get("DefaultVersionNumber") or 1)
    data = default.get("LaunchTemplateData") or {}
    held = data.get("IamInstanceProfile") or {}
    held_name = held.get("Name") or (arns.name_of(held["Arn"]) if held.get("Arn") else None)
    options = dict(data.get("MetadataOptions") or {})
    wanted: dict[str, Any] = {}
    details: list[str] = []
    if held_name != profile:
        wanted["IamInstanceProfile"] = {"Name": profile}
        details.append(f"IamInstanceProfile {held_name or 'none'} -> {profile}")
    if require_imdsv2 and options.get("HttpTokens") != "required":
        # The sent block replaces the source's MetadataOptions whole: carry its other settings over.
        wanted["MetadataOptions"] = {**options, "HttpTokens": "required"}
        details.append(f"HttpTokens {options.get('HttpTokens') or 'optional'} -> required")
    if not wanted:
        tokens = "; HttpTokens=required" if require_imdsv2 else ""
        return Diff(
            change=Change(
                resource=resource,
                action=Action.UNCHANGED,
                detail=f"default version {number} carries profile {profile}{tokens}",
            )
        )
    return Diff(
        change=Change(
            resource=resource,
            action=Action.UPDATE,
            detail=f"new default version from version {number}: " + "; ".join(details),
        ),
        ops=(NewDefaultTemplateVersion(template_id=template["LaunchTemplateId"], source_version=number, data=wanted),),
    )


def _describe_statement(stmt: Mapping[str, Any]) -> str:
    principal = stmt.get("Principal", {})
    if isinstance(principal, Mapping):
        who = ", ".join(f"{k}={v}" for k, v in principal.items())
    else:
        who = str(principal)
    return f"Allow {who} sts:AssumeRole"


# --- setup -----------------------------------------------------------------------------------------


def _account_and_partition(ctx: Context, known_arn: str | None, instance: Mapping[str, Any] | None) -> tuple[str, str]:
    """The account and partition the roles live in, from what was already read when possible.

    An existing role's ARN says it; else the instance's owner (the profile must live in the instance's account);
    only then is STS asked, which costs a client and a call.
    """
    if known_arn and (found := arns.split_arn(known_arn)):
        return found[1], found[0]
    if instance and instance.get("OwnerId"):
        return instance["OwnerId"], ctx.clients.partition()
    ident = aws.caller_identity(ctx.clients.sts())
    return ident["Account"], arns.partition_of(ident["Arn"]) or ctx.clients.partition()


def diff_roles(
    req: SetupRequest,
    *,
    instance_role: Mapping[str, Any] | None,
    profile: Mapping[str, Any] | None,
    inline: Mapping[str, Any] | None,
    assumable: Sequence[tuple[str, str | None, Mapping[str, Any] | None]],
    account: str,
    partition: str,
) -> list[Diff]:
    """The account-level rows of a setup, from what was read (pure): the instance role and its EC2 trust, its
    profile, each assumable role (name, other account or None, the role as read) trusting the instance role, and
    the inline policy on exactly their ARNs. `roleops export` diffs an empty account with it (every read None)."""
    instance_role_arn = (instance_role or {}).get("Arn") or arns.role_arn(partition, account, req.instance_role)
    diffs = [
        diff_role(
            req.instance_role, instance_role, policies.ec2_trust_statement(), adopt=req.adopt, purpose="instance role"
        ),
        diff_profile(req.profile, req.instance_role, profile, adopt=req.adopt),
    ]
    target_arns = []
    for name, other, role in assumable:
        diff = diff_role(
            name,
            role,
            policies.role_trust_statement(instance_role_arn),
            adopt=req.adopt,
            max_session_duration=req.max_session_duration,
            purpose="assumable role" if other is None else f"assumable role in account {other}",
        )
        diffs.append(dataclasses.replace(diff, account=other))
        target_arns.append((role or {}).get("Arn") or arns.role_arn(partition, other or account, name))
    diffs.append(diff_inline_policy(req.instance_role, inline, target_arns))
    return diffs


def _other_accounts(
    ctx: Context, access: TargetAccess, foreign: Mapping[str, Sequence[arns.RoleArn]], home: str
) -> None:
    """Check every target account is reached by a --target-profile (exit 2 otherwise) and keep its clients."""
    access.check_unused(list(foreign))
    for account, roles in foreign.items():
        why = "role " + ", ".join(str(r) for r in roles)
        ctx.other_accounts[account] = access.clients_for(account, home=home, why=why)


def _in_account(diff: Diff, account: str | None) -> Diff:
    """The row says which account it is in (a plan across accounts shows it)."""
    return dataclasses.replace(diff, change=dataclasses.replace(diff.change, account=account))


def plan_setup(ctx: Context, req: SetupRequest, access: TargetAccess | None = None) -> list[Diff]:
    """Read everything, then diff; no mutating call happens here.

    Assumable roles in other accounts are read (and later converged) with the clients of `access` (the
    --target-profile flags), each checked first to reach its account.
    """
    iam = ctx.clients.iam()
    instance_role = aws.get_role(iam, req.instance_role)
    profile = aws.get_instance_profile(iam, req.profile)
    named = [r for r in req.assumable_roles if arns.parse_role_arn(r) is None]
    assumable_home = {name: aws.get_role(iam, name) for name in named}
    instances = resolve_instances(ctx, req.targets) if req.targets else []
    associations = (
        aws.associations_of_instances(ctx.clients.ec2(), [i["InstanceId"] for i in instances]) if instances else {}
    )
    known_arn = next((r["Arn"] for r in (instance_role, *assumable_home.values()) if r), None)
    account, partition = _account_and_partition(ctx, known_arn, instances[0] if instances else None)
    home_names, foreign = foreign_roles(req.assumable_roles, home_account=account, home_partition=partition)
    _refuse_self(req.instance_role, home_names)
    _other_accounts(ctx, access or TargetAccess(), foreign, account)
    # (name, other account or None, the role as read); a home role given by its ARN is read here by name
    assumable: list[tuple[str, str | None, Mapping[str, Any] | None]] = [
        (name, None, assumable_home[name] if name in assumable_home else aws.get_role(iam, name)) for name in home_names
    ]
    for other, roles in foreign.items():
        other_iam = ctx.in_account(other).clients.iam()
        assumable.extend((r.name, other, aws.get_role(other_iam, r.name)) for r in roles)
    inline = aws.get_role_policy(iam, req.instance_role, INLINE_POLICY_NAME) if instance_role else None
    diffs = diff_roles(
        req,
        instance_role=instance_role,
        profile=profile,
        inline=inline,
        assumable=assumable,
        account=account,
        partition=partition,
    )

    if req.launch_template is not None:
        ec2 = ctx.clients.ec2()
        template = aws.get_launch_template(ec2, req.launch_template)
        if template is None:
            raise UsageError(
                f"launch template {req.launch_template} not found in {ctx.clients.region}",
                "no such launch template",
                "check --launch-template (a name or lt-... id) and --region; nothing was changed",
            )
        default = aws.get_launch_template_version(ec2, template["LaunchTemplateId"], "$Default") or {}
        diffs.append(diff_launch_template(req.launch_template, template, default, req.profile,
                                          require_imdsv2=req.require_imdsv2))  # fmt: skip
    for instance in instances:  # one row (or two) per instance; applied side by side
        iid = instance["InstanceId"]
        diffs.append(
            diff_association(
                iid,
                instance,
                associations.get(iid),
                req.profile,
                wait=req.wait,
                profile_id=(profile or {}).get("InstanceProfileId"),
            )
        )
        if req.require_imdsv2:
            diffs.append(diff_metadata_options(iid, instance))
    return [_in_account(d, d.account or account) for d in diffs]


def run_setup(
    ctx: Context, req: SetupRequest, *, dry_run: bool = False, access: TargetAccess | None = None
) -> PlanReport:
    ctx.propagation_timeout = req.propagation_timeout
    return apply(ctx, plan_setup(ctx, req, access), dry_run=dry_run, concurrency=req.targets.concurrency)


# --- associate ---------------------------------------------------------------------------------------


def run_associate(
    ctx: Context,
    *,
    profile: str,
    instance_id: str | None = None,
    where: Targets | None = None,
    wait: bool = False,
    dry_run: bool = False,
    propagation_timeout: float = DEFAULT_PROPAGATION_TIMEOUT,
) -> PlanReport:
    """Associate `profile` with one instance (`instance_id`) or a fleet (`where`), replacing other profiles."""
    where = where or targets(instance_ids=_ids(instance_id, ()))
    if not where:
        raise UsageError("no instance given", "associate acts on instances", "add --instance-id or --instances-tagged")
    validate_profile_name(profile, "--instance-profile")
    ctx.propagation_timeout = validate_propagation_timeout(propagation_timeout)
    instances = resolve_instances(ctx, where)
    associations = aws.associations_of_instances(ctx.clients.ec2(), [i["InstanceId"] for i in instances])
    live = aws.get_instance_profile(ctx.clients.iam(), profile)
    diffs = [
        diff_association(
            i["InstanceId"],
            i,
            associations.get(i["InstanceId"]),
            profile,
            wait=wait,
            profile_id=(live or {}).get("InstanceProfileId"),
        )
        for i in instances
    ]
    if live is None and any(d.ops for d in diffs):
        raise UsageError(
            f"instance profile {profile} not found",
            "there is nothing to associate",
            f"create it with `roleops setup --instance-role {profile} --assumable-role NAME`",
        )
    return apply(ctx, diffs, dry_run=dry_run, concurrency=where.concurrency)


# --- teardown ----------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TeardownRequest:
    instance_role: str
    assumable_roles: tuple[str, ...]
    targets: Targets = Targets()


def teardown_request(
    *,
    instance_role: str,
    assumable_roles: Sequence[str],
    instance_id: str | None = None,
    instance_ids: Sequence[str] = (),
    instances_tagged: Sequence[tuple[str, str] | str] = (),
    concurrency: int | str = DEFAULT_CONCURRENCY,
) -> TeardownRequest:
    validate_role_name(instance_role, "--instance-role")
    roles = unique([validate_assumable_role(r) for r in assumable_roles], "--assumable-role")
    return TeardownRequest(
        instance_role=instance_role,
        assumable_roles=roles,
        targets=targets(instance_ids=_ids(instance_id, instance_ids), tags=instances_tagged, concurrency=concurrency),
    )


def _foreign_policies(inline: Sequence[str], attached: Sequence[str], ours: Sequence[str]) -> list[str]:
    return [f"inline {p}" for p in inline if p not in ours] + [f"managed {p}" for p in attached]


def diff_release_role(
    name: str,
    role: Mapping[str, Any] | None,
    inline: Sequence[str],
    attached: Sequence[str],
    *,
    principal: tuple[str, str],
    ours: Sequence[str] = (),
) -> Diff:
    """Take back what setup added to a roleops role: `principal` (KIND, VALUE) from its trust, the `ours` policies.

    The role itself goes only when nothing else is left: no other statement or principal in its trust and no
    policy roleops did not add. Otherwise it stays, with the principals that still trust it named in the row.
    Teardown never removes a principal roleops did not add, and never leaves a role with an empty trust: a role
    that would keep only policies of someone else is refused (the run stops before any change).
    """
    resource = f"role {name}"
    if role is None:
        return Diff(change=Change(resource=resource, action=Action.UNCHANGED, detail="absent"))
    if not aws.is_managed(role):
        return Diff(
            change=Change(
                resource=resource,
                action=Action.UNCHANGED,
                detail="not made by roleops (no roleops:managed tag); left alone",
            )
        )
    if stack := aws.stack_of(role):
        # A stack of `roleops export` owns it: changing it here would drift the stack (delete the stack instead).
        return Diff(
            change=Change(
                resource=resource,
                action=Action.UNCHANGED,
                detail=f"made by CloudFormation stack {stack}; left to the stack (delete or update the stack)",
            )
        )
    kind, value = principal
    trust = policies.parse_document(role.get("AssumeRolePolicyDocument"))
    remaining, removed = policies.remove_principal(trust, kind, value)
    foreign = _foreign_policies(inline, attached, ours)
    drop_ours = [DeleteRolePolicy(role=name, policy=p) for p in inline if p in ours]
    if not policies.statements(remaining) and not foreign:
        return Diff(
            change=Change(resource=resource, action=Action.DELETE, detail="tagged roleops:managed"),
            ops=(*drop_ours, DeleteRole(name=name)),
        )
    if not policies.statements(remaining):
        raise UsageError(
            f"role {name} has policies roleops did not add ({', '.join(foreign)})",
            "its trust names only what roleops added, so deleting it would lose them and keeping it would leave "
            "a role nobody can assume",
            "detach them first, then re-run teardown",
        )
    stays = policies.describe_principals(remaining)
    kept = [f"still trusted by {', '.join(stays)}"] if stays else []
    if foreign:
        kept.append(f"keeps {', '.join(foreign)}")
    ops: list[Op] = [UpdateTrust(name=name, trust=remaining)] if removed else []
    ops.extend(drop_ours)
    if not ops:
        return Diff(
            change=Change(
                resource=resource,
                action=Action.UNCHANGED,
                detail=f"trust does not name {kind}={value}; kept: {'; '.join(kept)}",
            )
        )
    what = [f"trust: remove {kind}={value}"] if removed else []
    what.extend(f"delete inline {p}" for p in inline if p in ours)
    return Diff(
        change=Change(resource=resource, action=Action.UPDATE, detail=f"{'; '.join(what)}; kept: {'; '.join(kept)}"),
        ops=tuple(ops),
    )


def diff_disassociate(
    instance_id: str, association: Mapping[str, Any] | None, profile: str, *, profile_managed: bool
) -> Diff:
    """Disassociate the instance only from roleops' own profile (another profile's association is not ours)."""
    resource = f"association {instance_id}"

    def row(action: Action, detail: str, ops: tuple[Op, ...] = ()) -> Diff:
        return Diff(change=Change(resource=resource, action=action, detail=detail), ops=ops, instance=instance_id)

    if association is None:
        return row(Action.UNCHANGED, "no association")
    held = arns.name_of(association["IamInstanceProfile"]["Arn"])
    if held != profile:
        return row(Action.UNCHANGED, f"holds another profile ({held}); left alone")
    if not profile_managed:
        return row(Action.UNCHANGED, "profile not made by roleops; left alone")
    return row(Action.DELETE, f"disassociate {profile}", (Disassociate(association_id=association["AssociationId"]),))


def diff_delete_profile(name: str, profile: Mapping[str, Any] | None, other_instances: Sequence[str]) -> Diff:
    """`other_instances`: instances other than --instance-id that hold the profile (teardown will not strand them)."""
    resource = f"instance-profile {name}"
    if profile is None:
        return Diff(change=Change(resource=resource, action=Action.UNCHANGED, detail="absent"))
    if not aws.is_managed(profile):
        return Diff(change=Change(resource=resource, action=Action.UNCHANGED, detail="not made by roleops; left alone"))
    if other_instances:
        raise UsageError(
            f"instance profile {name} is still associated with {', '.join(other_instances)}",
            "deleting it would take the role away from running code",
            f"re-run with --instance-id {other_instances[0]} to disassociate it first",
        )
    ops = [RemoveRoleFromInstanceProfile(profile=name, role=r["RoleName"]) for r in profile.get("Roles", [])]
    ops.append(DeleteInstanceProfile(name=name))
    return Diff(change=Change(resource=resource, action=Action.DELETE, detail="tagged roleops:managed"), ops=tuple(ops))


def plan_teardown(ctx: Context, req: TeardownRequest, access: TargetAccess | None = None) -> list[Diff]:
    """Read everything, then diff; in the reverse order of setup, so that the instance role (whose ARN the
    assumable roles' trusts name) is deleted last: an interrupted teardown leaves trusts a re-run still matches."""
    iam = ctx.clients.iam()
    diffs: list[Diff] = []
    profile = aws.get_instance_profile(iam, req.instance_role)
    profile_managed = profile is not None and aws.is_managed(profile)

    instances = resolve_instances(ctx, req.targets) if req.targets else []
    target_ids = [i["InstanceId"] for i in instances]
    associations = aws.associations_of_instances(ctx.clients.ec2(), target_ids) if target_ids else {}
    for iid in target_ids:  # first, side by side: the profile can go only once no target holds it
        diffs.append(diff_disassociate(iid, associations.get(iid), req.instance_role, profile_managed=profile_managed))

    role = aws.get_role(iam, req.instance_role)
    home_account, partition = arns.account_of((role or {}).get("Arn")), arns.partition_of((role or {}).get("Arn"))
    names: list[str] = list(req.assumable_roles)
    foreign: dict[str, list[arns.RoleArn]] = {}
    if any(arns.parse_role_arn(r) for r in req.assumable_roles):
        # Which ARNs are of another account depends on the instance role's account: known from the role, the
        # instance's owner, or (neither left) STS.
        first = instances[0] if instances else None
        home_account, partition = _account_and_partition(ctx, (role or {}).get("Arn"), first)
        names, foreign = foreign_roles(req.assumable_roles, home_account=home_account, home_partition=partition)
        _other_accounts(ctx, access or TargetAccess(), foreign, home_account)
    assumable: list[tuple[str, str | None]] = [(n, None) for n in names]
    assumable += [(r.name, other) for other, roles in foreign.items() for r in roles]
    # The principal setup wrote into each assumable role's trust: the instance role's ARN. When the instance role
    # is already gone (a teardown interrupted after deleting it), its name in its account still says it.
    instance_role_arn = (role or {}).get("Arn")
    if instance_role_arn is None and home_account is not None and partition is not None:
        instance_role_arn = arns.role_arn(partition, home_account, req.instance_role)
    for name, other in assumable:
        other_iam = ctx.in_account(other).clients.iam()
        target = aws.get_role(other_iam, name)
        if instance_role_arn is None and target is not None and (found := arns.split_arn(target["Arn"])):
            instance_role_arn = arns.role_arn(*found, req.instance_role)  # a home target: same account
        diff = diff_release_role(
            name,
            target,
            aws.list_role_policies(other_iam, name) if target else [],
            aws.list_attached_role_policies(other_iam, name) if target else [],
            principal=("AWS", instance_role_arn or ""),
        )
        diffs.append(dataclasses.replace(diff, account=other))

    others: list[str] = []
    if profile_managed:
        assert profile is not None
        others = [
            a["InstanceId"]
            for a in aws.associations_of_profile(ctx.clients.ec2(), profile["Arn"])
            if a["InstanceId"] not in target_ids
        ]
    diffs.append(diff_delete_profile(req.instance_role, profile, others))

    diffs.append(
        diff_release_role(
            req.instance_role,
            role,
            aws.list_role_policies(iam, req.instance_role) if role else [],
            aws.list_attached_role_policies(iam, req.instance_role) if role else [],
            principal=("Service", policies.EC2_SERVICE),
            ours=(INLINE_POLICY_NAME,),
        )
    )
    home_account = home_account or arns.account_of((role or {}).get("Arn"))
    return [_in_account(d, d.account or home_account) for d in diffs]


def run_teardown(
    ctx: Context, req: TeardownRequest, *, dry_run: bool = False, access: TargetAccess | None = None
) -> PlanReport:
    return apply(ctx, plan_teardown(ctx, req, access), dry_run=dry_run, concurrency=req.targets.concurrency)
