"""Setup operations (apply layer): one small frozen dataclass per mutating call, which applies itself and confirms
by a read whether a refused call's effect is already in place; the bounded propagation retry; the plan's apply.

Diffs (roleops/converge.py) build these as data and stay pure; only `apply` here calls AWS.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from roleops import arns, aws, policies
from roleops.clients import Clients
from roleops.errors import AwsError, PropagationTimeout, RoleOpsError
from roleops.results import Action, Change, InstanceFailure, PlanReport

DEFAULT_PROPAGATION_TIMEOUT = 60.0
BACKOFF_FIRST = 0.5  # propagation backoff: 0.5 s doubling, capped, the last wait cut to end at the deadline
BACKOFF_CAP = 5.0
DEADLINE_SLACK = 0.05  # less than this left before the deadline: give up rather than make a pointless try


# --- context -------------------------------------------------------------------------------------------


class Reporter(Protocol):
    def waiting(self, message: str) -> contextlib.AbstractContextManager[None]: ...

    def progress(self, total: int, what: str) -> contextlib.AbstractContextManager[Callable[[], None]]: ...


class NullReporter:
    @contextlib.contextmanager
    def waiting(self, message: str) -> Iterator[None]:
        yield

    @contextlib.contextmanager
    def progress(self, total: int, what: str) -> Iterator[Callable[[], None]]:
        yield lambda: None


@dataclass
class Context:
    clients: Clients
    reporter: Reporter = field(default_factory=NullReporter)
    propagation_timeout: float = DEFAULT_PROPAGATION_TIMEOUT
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    # Clients of the other accounts a plan touches (account id -> Clients), filled by the plan's reads from
    # --target-profile once each profile was checked to reach its account.
    other_accounts: dict[str, Clients] = field(default_factory=dict)

    def in_account(self, account: str | None) -> Context:
        """This context acting in `account` (None: the instance role's own, i.e. this one)."""
        if account is None:
            return self
        return dataclasses.replace(self, clients=self.other_accounts[account])


# --- propagation retries (IAM eventual consistency; the only retry loop roleops owns) -------------------


def is_profile_not_yet_visible(err: AwsError) -> bool:
    # EC2 refuses a fresh profile for several seconds (AWS-FACTS.md: IAM eventual consistency).
    msg = err.aws_message
    return (
        (err.code == "InvalidParameterValue" and "Invalid IAM Instance Profile" in msg)
        or (err.code == "IncorrectState" and "InstanceIdentityProfileNotFound" in msg)
        or "has no associated IAM Roles" in msg
    )


def is_principal_not_yet_visible(err: AwsError) -> bool:
    return err.code == "MalformedPolicyDocument" and "Invalid principal" in err.aws_message


def is_role_not_yet_visible(err: AwsError) -> bool:
    return err.code == "NoSuchEntity" and "role with name" in err.aws_message.lower()


def retry_propagation(ctx: Context, what: str, fn: Callable[[], Any], retryable: Callable[[AwsError], bool]) -> Any:
    """Call fn; while it fails with a propagation error, back off (0.5 s doubling to 5 s) until the timeout.

    The last wait is cut short so that the last try happens at the deadline: a timeout of T means "tried
    for T seconds", not "gave up when the next wait would pass T".
    """
    deadline = ctx.clock() + ctx.propagation_timeout
    delay = BACKOFF_FIRST
    spinning = False
    with contextlib.ExitStack() as stack:
        while True:
            try:
                return fn()
            except AwsError as err:
                if not retryable(err):
                    raise
                remaining = deadline - ctx.clock()
                if remaining <= DEADLINE_SLACK:
                    raise PropagationTimeout(
                        f"{what} still refused after {ctx.propagation_timeout:g} s",
                        f"{err.code}: {err.aws_message}",
                        "IAM changes can take longer to propagate; re-run, or raise --propagation-timeout",
                    ) from err
                if not spinning:  # the spinner shows only once there is something to wait for
                    stack.enter_context(ctx.reporter.waiting(f"waiting for IAM to propagate: {what}"))
                    spinning = True
                ctx.sleep(min(delay, remaining))
                delay = min(delay * 2, BACKOFF_CAP)


def wait_associated(ctx: Context, instance_id: str, profile: str) -> None:
    """Poll until the association reaches `associated` (no botocore waiter exists for it)."""
    ec2 = ctx.clients.ec2()
    deadline = ctx.clock() + ctx.propagation_timeout
    delay = BACKOFF_FIRST
    spinning = False
    with contextlib.ExitStack() as stack:
        while True:
            assoc = aws.get_association(ec2, instance_id)
            if (
                assoc
                and assoc.get("State") == "associated"
                and arns.name_of(assoc["IamInstanceProfile"]["Arn"]) == profile
            ):
                return
            if not spinning:  # as in retry_propagation: a note only once there is something to wait for
                stack.enter_context(ctx.reporter.waiting(f"waiting for {instance_id} to be associated with {profile}"))
                spinning = True
            remaining = deadline - ctx.clock()
            if remaining <= DEADLINE_SLACK:
                state = assoc.get("State") if assoc else "none"
                raise PropagationTimeout(
                    f"association of {profile} with {instance_id} not ready after {ctx.propagation_timeout:g} s",
                    f"state is {state}",
                    "re-run with --wait later, or check the instance in the EC2 console",
                )
            ctx.sleep(min(delay, remaining))
            delay = min(delay * 2, BACKOFF_CAP)


# --- operations ------------------------------------------------------------------------------------------
#
# botocore retries a call whose answer was lost (a read timeout, a dropped connection, a 5xx after AWS did the
# work); the retry then meets the first attempt's result: EntityAlreadyExists, a profile already holding the
# role, an existing association, a replaced association id. A concurrent roleops run looks the same. An op's
# `already_done` confirms with a read that exactly the wanted state is there (and, for IAM, tagged
# roleops:managed); anything else re-raises the refusal.


class Op:
    """One mutating AWS call (or a wait) of a plan."""

    conflicts: ClassVar[frozenset[str]] = frozenset()  # error codes after which `already_done` is asked

    def apply(self, ctx: Context) -> None:
        raise NotImplementedError

    def already_done(self, ctx: Context) -> bool:
        return False


@dataclass(frozen=True, kw_only=True)
class CreateRole(Op):
    name: str
    trust: Mapping[str, Any]
    max_session_duration: int | None = None
    conflicts: ClassVar[frozenset[str]] = frozenset({"EntityAlreadyExists"})

    def apply(self, ctx: Context) -> None:
        iam = ctx.clients.iam()
        retry_propagation(
            ctx,
            f"trust of {self.name}",
            lambda: aws.create_role(iam, self.name, self.trust, max_session_duration=self.max_session_duration),
            is_principal_not_yet_visible,
        )

    def already_done(self, ctx: Context) -> bool:
        role = aws.get_role(ctx.clients.iam(), self.name)
        if role is None or not aws.is_managed(role):
            return False
        current = policies.parse_document(role.get("AssumeRolePolicyDocument"))
        return all(policies.has_statement(current, s) for s in policies.statements(self.trust)) and (
            not self.max_session_duration or role.get("MaxSessionDuration") == self.max_session_duration
        )


@dataclass(frozen=True, kw_only=True)
class UpdateTrust(Op):
    name: str
    trust: Mapping[str, Any]

    def apply(self, ctx: Context) -> None:
        iam = ctx.clients.iam()
        retry_propagation(
            ctx,
            f"trust of {self.name}",
            lambda: aws.update_trust(iam, self.name, self.trust),
            is_principal_not_yet_visible,
        )


@dataclass(frozen=True, kw_only=True)
class UpdateMaxSessionDuration(Op):
    name: str
    seconds: int

    def apply(self, ctx: Context) -> None:
        aws.update_max_session_duration(ctx.clients.iam(), self.name, self.seconds)


@dataclass(frozen=True, kw_only=True)
class CreateInstanceProfile(Op):
    name: str
    conflicts: ClassVar[frozenset[str]] = frozenset({"EntityAlreadyExists"})

    def apply(self, ctx: Context) -> None:
        aws.create_instance_profile(ctx.clients.iam(), self.name)

    def already_done(self, ctx: Context) -> bool:
        return aws.is_managed(aws.get_instance_profile(ctx.clients.iam(), self.name))


@dataclass(frozen=True, kw_only=True)
class AddRoleToInstanceProfile(Op):
    profile: str
    role: str
    conflicts: ClassVar[frozenset[str]] = frozenset({"LimitExceeded", "EntityAlreadyExists"})

    def apply(self, ctx: Context) -> None:
        iam = ctx.clients.iam()
        retry_propagation(
            ctx,
            f"role {self.role} into profile {self.profile}",
            lambda: aws.add_role_to_instance_profile(iam, self.profile, self.role),
            is_role_not_yet_visible,
        )

    def already_done(self, ctx: Context) -> bool:
        profile = aws.get_instance_profile(ctx.clients.iam(), self.profile)
        return profile is not None and [r["RoleName"] for r in profile.get("Roles", [])] == [self.role]


@dataclass(frozen=True, kw_only=True)
class PutRolePolicy(Op):
    role: str
    policy: str
    document: Mapping[str, Any]

    def apply(self, ctx: Context) -> None:
        aws.put_role_policy(ctx.clients.iam(), self.role, self.policy, self.document)


@dataclass(frozen=True, kw_only=True)
class DeleteRolePolicy(Op):
    role: str
    policy: str

    def apply(self, ctx: Context) -> None:
        aws.delete_role_policy(ctx.clients.iam(), self.role, self.policy)


@dataclass(frozen=True, kw_only=True)
class RemoveRoleFromInstanceProfile(Op):
    profile: str
    role: str

    def apply(self, ctx: Context) -> None:
        aws.remove_role_from_instance_profile(ctx.clients.iam(), self.profile, self.role)


@dataclass(frozen=True, kw_only=True)
class DeleteInstanceProfile(Op):
    name: str

    def apply(self, ctx: Context) -> None:
        aws.delete_instance_profile(ctx.clients.iam(), self.name)


@dataclass(frozen=True, kw_only=True)
class DeleteRole(Op):
    name: str

    def apply(self, ctx: Context) -> None:
        aws.delete_role(ctx.clients.iam(), self.name)


@dataclass(frozen=True, kw_only=True)
class _ProfileOnInstance(Op):
    """An EC2 call that puts `profile` on `instance_id`: retried while IAM propagates a fresh profile, and done
    when the instance's live association holds that profile."""

    instance_id: str
    profile: str
    conflicts: ClassVar[frozenset[str]] = frozenset({"IncorrectState", "InvalidAssociationID.NotFound"})

    def call(self, ec2: Any) -> Any:
        raise NotImplementedError

    def apply(self, ctx: Context) -> None:
        ec2 = ctx.clients.ec2()
        retry_propagation(
            ctx, f"profile {self.profile} for {self.instance_id}", lambda: self.call(ec2), is_profile_not_yet_visible
        )

    def already_done(self, ctx: Context) -> bool:
        assoc = aws.get_association(ctx.clients.ec2(), self.instance_id)
        return assoc is not None and arns.name_of(assoc["IamInstanceProfile"]["Arn"]) == self.profile


@dataclass(frozen=True, kw_only=True)
class Associate(_ProfileOnInstance):
    def call(self, ec2: Any) -> Any:
        return aws.associate_profile(ec2, self.instance_id, self.profile)


@dataclass(frozen=True, kw_only=True)
class Replace(_ProfileOnInstance):
    """EC2's Replace makes a new association id: a retried Replace with the old one is refused, and found done."""

    association_id: str

    def call(self, ec2: Any) -> Any:
        return aws.replace_profile(ec2, self.association_id, self.profile)


@dataclass(frozen=True, kw_only=True)
class Disassociate(Op):
    association_id: str

    def apply(self, ctx: Context) -> None:
        aws.disassociate_profile(ctx.clients.ec2(), self.association_id)


@dataclass(frozen=True, kw_only=True)
class RequireImdsv2(Op):
    instance_id: str

    def apply(self, ctx: Context) -> None:
        aws.require_imdsv2(ctx.clients.ec2(), self.instance_id)


@dataclass(frozen=True, kw_only=True)
class WaitAssociated(Op):
    instance_id: str
    profile: str

    def apply(self, ctx: Context) -> None:
        wait_associated(ctx, self.instance_id, self.profile)


@dataclass(frozen=True, kw_only=True)
class NewDefaultTemplateVersion(Op):
    """A launch template version from the default one with `data`'s blocks replacing its own, made the default:
    instances an Auto Scaling group launches later get the profile (and the metadata options) too."""

    template_id: str
    source_version: int
    data: Mapping[str, Any]

    def apply(self, ctx: Context) -> None:
        ec2 = ctx.clients.ec2()
        version = aws.create_launch_template_version(
            ec2, self.template_id, self.source_version, self.data, "roleops setup: the instance profile"
        )
        aws.set_default_launch_template_version(ec2, self.template_id, version["VersionNumber"])


# --- a plan ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Diff:
    """One row of a plan and the operations that make it so (none: nothing to do). `instance`: the target
    instance this row is about, for the per-instance steps of a fleet (None: an account-level row). `account`:
    the account a row of another account than the instance role's acts in."""

    change: Change
    ops: tuple[Op, ...] = ()
    instance: str | None = None
    account: str | None = None  # another account's row (its ops run with that account's clients); None: home


DEFAULT_CONCURRENCY = 8


def _apply_ops(ctx: Context, ops: Sequence[Op]) -> None:
    for op in ops:
        try:
            op.apply(ctx)
        except AwsError as err:
            if err.code not in op.conflicts or not op.already_done(ctx):
                raise


def _apply_instances(ctx: Context, diffs: Sequence[Diff], concurrency: int) -> dict[str, tuple[int, str]]:
    """Each instance's diffs in order, instances side by side; instance id -> (index of the failed row, error).
    A single instance is applied as before fleets existed: its error propagates."""
    from concurrent.futures import ThreadPoolExecutor

    by_instance: dict[str, list[tuple[int, Diff]]] = {}
    for i, d in enumerate(diffs):
        by_instance.setdefault(d.instance or "", []).append((i, d))
    if len(by_instance) == 1:
        # One instance is not a fleet: its error stops the run as an account-level row's does (one line, exit 3,
        # its wait notes on stderr), as roleops has always done for --instance-id.
        for d in diffs:
            _apply_ops(ctx, d.ops)
        return {}
    # Spinners are not for worker threads: a fleet shows one progress bar instead.
    quiet = dataclasses.replace(ctx, reporter=NullReporter())
    quiet.clients.ec2()  # made once here: botocore clients are thread-safe, creating them concurrently is waste

    def one(rows: list[tuple[int, Diff]]) -> tuple[int, str] | None:
        for index, d in rows:
            try:
                _apply_ops(quiet, d.ops)
            except RoleOpsError as err:
                return index, err.one_line()
        return None

    failed: dict[str, tuple[int, str]] = {}
    workers = max(1, min(concurrency, len(by_instance)))
    with ctx.reporter.progress(len(by_instance), "instances") as advance, ThreadPoolExecutor(workers) as pool:
        futures = {iid: pool.submit(one, rows) for iid, rows in by_instance.items()}
        for iid, future in futures.items():
            result = future.result()  # each worker catches our errors; anything else is a bug and propagates
            if result is not None:
                failed[iid] = result
            advance()
    return failed


def apply(ctx: Context, diffs: Sequence[Diff], *, dry_run: bool, concurrency: int = DEFAULT_CONCURRENCY) -> PlanReport:
    """Apply every diff's operations in order (none with `dry_run`); the report is the diffs' rows.

    Account-level rows are applied one by one and an error stops the run. A run of per-instance rows is applied
    instance by instance, `concurrency` instances at a time (botocore retries each call; the rows of one instance
    stay in order): an instance whose step fails is reported (its rows `failed`) and the others go on. An
    account-level row after instances of which any failed is not tried (teardown must not delete a profile an
    instance still holds): it is reported failed too.
    """
    changes = [d.change for d in diffs]
    failures: list[InstanceFailure] = []
    if not dry_run:
        i = 0
        while i < len(diffs):
            if diffs[i].instance is None:
                if failures:
                    changes[i] = _failed(changes[i], "not tried: an instance step before it failed")
                else:
                    _apply_ops(ctx.in_account(diffs[i].account), diffs[i].ops)
                i += 1
                continue
            j = i
            while j < len(diffs) and diffs[j].instance is not None:
                j += 1
            group = diffs[i:j]
            for iid, (index, error) in _apply_instances(ctx, group, concurrency).items():
                failures.append(InstanceFailure(instance_id=iid, error=error))
                for k, d in enumerate(group):
                    if d.instance == iid and k >= index:
                        why = error if k == index else "not tried: an earlier step on this instance failed"
                        changes[i + k] = _failed(changes[i + k], why)
            i = j
    return PlanReport(changes=tuple(changes), dry_run=dry_run, failures=tuple(failures))


def _failed(change: Change, why: str) -> Change:
    return dataclasses.replace(change, action=Action.FAILED, detail=f"{change.detail}: {why}" if change.detail else why)
