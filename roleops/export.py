"""Templates (pure layer): what `setup` converges, as a CloudFormation template, from setup's own plan.

`roleops export` diffs an empty account with converge.diff_roles (every read None), so the plan is all `create`
operations; each operation becomes the resource that makes it (CreateRole -> AWS::IAM::Role, CreateInstanceProfile
and AddRoleToInstanceProfile -> AWS::IAM::InstanceProfile, PutRolePolicy -> AWS::IAM::Policy). One description of
the resources, then: setup's diffs. ARNs that are the stack's own are written with ${AWS::Partition} and
${AWS::AccountId} (or GetAtt, which also orders the resources: IAM refuses a trust naming a role not yet made).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from roleops import STACK_TAG_KEY, arns, policies
from roleops.aws import managed_tags
from roleops.converge import SetupRequest, diff_role, diff_roles, setup_request
from roleops.errors import UsageError
from roleops.operations import AddRoleToInstanceProfile, CreateInstanceProfile, CreateRole, Diff, PutRolePolicy
from roleops.validate import validate_account_id

FORMATS = ("cloudformation",)
PARTITION = "${AWS::Partition}"  # CloudFormation's pseudo parameters, resolved in whichever account deploys it
ACCOUNT = "${AWS::AccountId}"
INSTANCE_ROLE_PARAMETER = "InstanceRoleArn"
TEMPLATE_VERSION = "2010-09-09"
# A role ARN in any partition, as the StackSet's parameter accepts it (CloudFormation checks it before deploying).
ROLE_ARN_PATTERN = r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$"


@dataclass(frozen=True, kw_only=True)
class ExportRequest:
    setup: SetupRequest  # the setup this template declares, checked by setup's own rules
    require_imdsv2: bool = False
    target_account: str | None = None

    @property
    def instance_role(self) -> str:
        return self.setup.instance_role

    @property
    def assumable_roles(self) -> tuple[str, ...]:  # names or role ARNs, as setup takes them
        return self.setup.assumable_roles

    @property
    def max_session_duration(self) -> int | None:
        return self.setup.max_session_duration


def export_request(
    *,
    instance_role: str,
    assumable_roles: Sequence[str],
    max_session_duration: int | str | None = None,
    require_imdsv2: bool = False,
    target_account: str | None = None,
) -> ExportRequest:
    """Check the input with setup's own rules (ValidationError / UsageError, exit 2)."""
    req = setup_request(
        instance_role=instance_role, assumable_roles=assumable_roles, max_session_duration=max_session_duration
    )
    if target_account is not None:
        validate_account_id(target_account)
        for text in req.assumable_roles:
            parsed = arns.parse_role_arn(text)
            if parsed is not None and parsed.account != target_account:
                raise UsageError(
                    f"--assumable-role {text} is in account {parsed.account}, not --target-account {target_account}",
                    "a target account's template declares that account's roles only",
                    "export each account's roles with its own --target-account; nothing was printed",
                )
    return ExportRequest(setup=req, require_imdsv2=require_imdsv2, target_account=target_account)


# --- the plan of an empty account --------------------------------------------------------------------------


def instance_account_diffs(req: ExportRequest, *, account: str | None, partition: str | None) -> list[Diff]:
    """setup's account-level diffs against an empty account. `account`/`partition`: the instance role's, when
    known (needed only to tell a home role given by ARN from another account's); the stack's own ARNs use the
    pseudo parameters either way."""
    from roleops.accounts import foreign_roles

    home_names, foreign = foreign_roles(
        req.assumable_roles, home_account=account or ACCOUNT, home_partition=partition or PARTITION
    )
    assumable: list[tuple[str, str | None, Mapping[str, Any] | None]] = [(n, None, None) for n in home_names]
    assumable += [(r.name, other, None) for other, roles in foreign.items() for r in roles]
    return diff_roles(
        req.setup,
        instance_role=None,
        profile=None,
        inline=None,
        assumable=assumable,
        account=ACCOUNT,
        partition=PARTITION,
    )


def target_account_diffs(req: ExportRequest) -> list[Diff]:
    """setup's diffs of the target account's roles against an empty account, trusting the parameter's ARN."""
    trust = policies.role_trust_statement("${" + INSTANCE_ROLE_PARAMETER + "}")
    return [
        diff_role(
            arns.name_of(text),
            None,
            trust,
            adopt=False,
            max_session_duration=req.max_session_duration,
            purpose="assumable role",
        )
        for text in req.assumable_roles
    ]


# --- operations -> resources -------------------------------------------------------------------------------


def _logical_id(prefix: str, name: str, taken: set[str]) -> str:
    """CloudFormation logical ids are alphanumeric; IAM names may hold +=,.@_- (and differ only in them)."""
    base = prefix + re.sub(r"[^A-Za-z0-9]", "", name)
    found, n = base, 1
    while found in taken:
        n += 1
        found = f"{base}{n}"
    taken.add(found)
    return found


def _intrinsic(value: Any, refs: Mapping[str, Any]) -> Any:
    """Plan values as template values: a role ARN of this stack -> its GetAtt; text with ${...} -> Fn::Sub."""
    if isinstance(value, str):
        if value in refs:
            return refs[value]
        return {"Fn::Sub": value} if "${" in value else value
    if isinstance(value, Mapping):
        return {k: _intrinsic(v, refs) for k, v in value.items()}
    if isinstance(value, list):
        return [_intrinsic(v, refs) for v in value]
    return value


def template_of(
    diffs: Sequence[Diff],
    *,
    description: str,
    instance_role: str | None,
    parameters: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The template whose resources are the plan's operations (the plan must be all creates: an empty account).

    Rows of another account (`Diff.account`) are not this stack's: they are left out.
    """
    ops = [op for d in diffs if d.account is None for op in d.ops]
    taken: set[str] = set()
    ids: dict[str, str] = {}  # role name -> logical id
    # A role ARN of this stack, as the plan wrote it -> GetAtt; a parameter, as "${NAME}" -> Ref.
    refs: dict[str, Any] = {"${" + p + "}": {"Ref": p} for p in parameters or {}}
    for op in ops:
        if isinstance(op, CreateRole):
            prefix = "InstanceRole" if op.name == instance_role else "AssumableRole"
            ids[op.name] = "InstanceRole" if op.name == instance_role else _logical_id(prefix, op.name, taken)
            refs[arns.role_arn(PARTITION, ACCOUNT, op.name)] = {"Fn::GetAtt": [ids[op.name], "Arn"]}
    resources: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    for op in ops:
        if isinstance(op, CreateRole):
            props: dict[str, Any] = {
                "RoleName": op.name,
                "AssumeRolePolicyDocument": _intrinsic(op.trust, refs),
                # roleops:managed as setup tags it, and the owning stack, so that teardown leaves it to the stack.
                "Tags": [*managed_tags(), {"Key": STACK_TAG_KEY, "Value": {"Ref": "AWS::StackName"}}],
            }
            if op.max_session_duration:
                props["MaxSessionDuration"] = op.max_session_duration
            resources[ids[op.name]] = {"Type": "AWS::IAM::Role", "Properties": props}
            outputs[f"{ids[op.name]}Arn"] = {
                "Description": f"ARN of role {op.name}",
                "Value": {"Fn::GetAtt": [ids[op.name], "Arn"]},
            }
        elif isinstance(op, CreateInstanceProfile):
            # AWS::IAM::InstanceProfile takes no Tags: the profile is CloudFormation's, not roleops:managed.
            resources["InstanceProfile"] = {
                "Type": "AWS::IAM::InstanceProfile",
                "Properties": {"InstanceProfileName": op.name, "Roles": []},
            }
            outputs["InstanceProfileName"] = {
                "Description": "the instance profile to associate with instances",
                "Value": {"Ref": "InstanceProfile"},
            }
            outputs["InstanceProfileArn"] = {
                "Description": "ARN of the instance profile",
                "Value": {"Fn::GetAtt": ["InstanceProfile", "Arn"]},
            }
        elif isinstance(op, AddRoleToInstanceProfile):
            resources["InstanceProfile"]["Properties"]["Roles"].append({"Ref": ids[op.role]})
        elif isinstance(op, PutRolePolicy):
            # AWS::IAM::Policy with Roles is an inline policy of that name on the role, as put-role-policy makes.
            resources["AssumeRolesPolicy"] = {
                "Type": "AWS::IAM::Policy",
                "Properties": {
                    "PolicyName": op.policy,
                    "PolicyDocument": _intrinsic(op.document, refs),
                    "Roles": [{"Ref": ids[op.role]}],
                },
            }
        else:  # an empty account's plan holds creates only; anything else is a bug, not input
            raise TypeError(f"no CloudFormation resource for {type(op).__name__}")
    template: dict[str, Any] = {"AWSTemplateFormatVersion": TEMPLATE_VERSION, "Description": description}
    if metadata:
        template["Metadata"] = dict(metadata)
    if parameters:
        template["Parameters"] = dict(parameters)
    template["Resources"] = resources
    template["Outputs"] = outputs
    return template


# --- the two templates ---------------------------------------------------------------------------------------


def _imdsv2_note(req: ExportRequest) -> str:
    if not req.require_imdsv2:
        return ""
    return (
        " --require-imdsv2 is not in this template: CloudFormation cannot set an existing instance's metadata "
        "options; run `roleops setup ... --instance-id ID --require-imdsv2` for instances, or "
        "`roleops setup ... --launch-template NAME --require-imdsv2` for the instances a launch template starts."
    )


def _setup_command(req: ExportRequest, roles: Sequence[str], other_accounts: Sequence[str] = ()) -> str:
    """The `roleops setup` run that converges the same roles imperatively (a profile per other account to fill in)."""
    words = ["roleops", "setup", "--instance-role", req.instance_role]
    for role in roles:
        words += ["--assumable-role", role]
    for account in other_accounts:
        words += ["--target-profile", f"{account}=PROFILE"]
    if req.max_session_duration:
        words += ["--max-session-duration", str(req.max_session_duration)]
    return shlex.join(words)


def instance_account_template(req: ExportRequest, *, account: str | None, partition: str | None) -> dict[str, Any]:
    diffs = instance_account_diffs(req, account=account, partition=partition)
    elsewhere = sorted({str(d.account) for d in diffs if d.account is not None})
    description = (
        f"roleops: instance role {req.instance_role} (trusting EC2), its instance profile, the inline "
        f"sts:AssumeRole policy on exactly its assumable roles, and those of this account."
    )
    if elsewhere:
        description += (
            f" Roles in account(s) {', '.join(elsewhere)} are named in the policy only: export them with "
            "`roleops export ... --target-account ID` and deploy that where they live (e.g. a StackSet)."
        )
    description += _imdsv2_note(req)
    return template_of(
        diffs,
        description=description,
        instance_role=req.instance_role,
        metadata={"roleops": {"setup": _setup_command(req, req.assumable_roles, elsewhere)}},
    )


def target_account_template(req: ExportRequest, *, instance_role_arn: str | None) -> dict[str, Any]:
    parameter: dict[str, Any] = {
        "Type": "String",
        "Description": "ARN of the instance role (in the instance account) these roles trust",
        "AllowedPattern": ROLE_ARN_PATTERN,
    }
    if instance_role_arn:
        parameter["Default"] = instance_role_arn
    names = [arns.name_of(r) for r in req.assumable_roles]
    description = (
        f"roleops: assumable role(s) {', '.join(names)} for account {req.target_account}, trusting the instance "
        f"role {req.instance_role} given as the {INSTANCE_ROLE_PARAMETER} parameter; deploy it to many accounts "
        "with a CloudFormation StackSet."
    ) + _imdsv2_note(req)
    return template_of(
        target_account_diffs(req),
        description=description,
        instance_role=None,
        parameters={INSTANCE_ROLE_PARAMETER: parameter},
        metadata={"roleops": {"target_account": req.target_account}},
    )


def check_target_account(req: ExportRequest, instance_account: str | None) -> None:
    if req.target_account is not None and req.target_account == instance_account:
        raise UsageError(
            f"--target-account {req.target_account} is the instance role's own account",
            "its roles go in the instance account's template",
            "drop --target-account (and name the roles by name); nothing was printed",
        )


def render(template: Mapping[str, Any]) -> str:
    return json.dumps(template, indent=2) + "\n"
