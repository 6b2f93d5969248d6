"""Verify chain (service layer): instance metadata -> STS -> AssumeRole, each link a declared, named step.

Like botocore's credential resolver, verify is a list of steps run in order. Each step declares its name, the
steps it needs, and one `run`; the runner (`run_steps`) makes a step whose needs did not hold SKIP and says which
one it waited on, so no step wires the skipping by hand. AWS-side failures become FAIL steps with a hint naming
the roleops command that mends them; verify raises only when no metadata service answered at all
(ImdsUnreachable, exit 3). Options are checked when `VerifyOptions` is made, with validate.py's converters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from roleops import arns, sts
from roleops.default_chain import INSTANCE_METADATA_SOURCE, SHADOWS, RoleProfile, role_profile
from roleops.imds import ImdsClient, ImdsError, ImdsUnreachable, RoleCredentials
from roleops.instance import BrokenLink, InstanceContext, read_instance
from roleops.results import Identity, Status, StepResult, VerifyReport, mask_key

if TYPE_CHECKING:  # botocore is imported lazily so that `roleops --help` stays fast
    from roleops.clients import Clients, Session

STEP_IMDS = "imds"
STEP_CALLER = "caller"
STEP_DEFAULT_CHAIN = "default-chain"
DEFAULT_SESSION_NAME = "roleops-verify"
SOURCE_CALLER = "sts:GetCallerIdentity"
SOURCE_ASSUME = "sts:AssumeRole"
SOURCE_DEFAULT_CHAIN = "boto3 default chain"
_HOLDS = (Status.PASS, Status.WARN)  # a step that passed or only warned satisfies the steps that need it

__all__ = ["DEFAULT_SESSION_NAME", "Step", "VerifyOptions", "chain_steps", "run_steps", "run_verify"]


@dataclass(frozen=True)
class VerifyOptions:
    """What to verify; each value goes through validate.py's converter as the object is made (UsageError)."""

    assume: tuple[str, ...] = ()
    session_name: str = DEFAULT_SESSION_NAME
    external_id: str | None = None
    duration: int | None = None
    expect_role: str | None = None
    endpoint_url: str | None = None

    def __post_init__(self) -> None:
        from roleops import validate

        # The CLI's argparse converters are these same functions: a value checked there passes again unchanged.
        for arn in self.assume:
            validate.validate_role_arn(arn, "--assume")
        validate.validate_session_name(self.session_name, "--session-name")
        if self.external_id is not None:
            validate.validate_external_id(self.external_id, "--external-id")
        if self.duration is not None:
            validate.validate_duration_seconds(self.duration, "--duration")
        if self.expect_role is not None:
            validate.validate_role_name(self.expect_role, "--expect-role")

    def targets(self) -> list[tuple[str, str]]:
        """(step suffix, ARN) per distinct --assume; the role name unless two share a name."""
        unique = list(dict.fromkeys(self.assume))
        names = [arns.name_of(a) for a in unique]
        return [(n if names.count(n) == 1 else a, a) for n, a in zip(names, unique, strict=True)]

    def target_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(arns.name_of(a) for a in self.assume))


# --- the walk's shared state ----------------------------------------------------------------------------------


class _Secrets:
    """Every secret seen this run; scrubbed from any text that reaches a StepResult."""

    def __init__(self) -> None:
        self._values: set[str] = set()

    def add(self, *values: str | None) -> None:
        from roleops.redact import register

        self._values.update(v for v in values if v and len(v) >= 8)
        register(*values)  # and for the --debug log, which the scrub here never sees

    def scrub(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, "****")
        return text


@dataclass
class Walk:
    """What the steps share: the inputs, and each step's output by step name (the instance, clients, answers)."""

    opts: VerifyOptions
    imds: ImdsClient
    session: Session
    clients_factory: Callable[..., Clients] | None
    now: datetime
    secrets: _Secrets = field(default_factory=_Secrets)
    outputs: dict[str, Any] = field(default_factory=dict)

    def sts(self, keys: sts.Keys, region: str) -> Any:
        return sts.make_sts(
            self.session, keys, region=region, endpoint_url=self.opts.endpoint_url, clients_factory=self.clients_factory
        )

    @property
    def instance(self) -> InstanceContext:
        return self.outputs[STEP_IMDS]


@dataclass(frozen=True)
class Outcome:
    """What a step's run found: its status and words, the identity it showed, and what later steps may use."""

    status: Status
    message: str
    hint: str = ""
    identity: Identity | None = None
    output: Any = None


class Step:
    """One link of the chain: a name, the steps it needs (each must pass or warn), and one run."""

    name: str
    needs: tuple[str, ...] = ()

    def run(self, walk: Walk) -> Outcome:
        raise NotImplementedError


def run_steps(steps: Sequence[Step], walk: Walk, emit: Callable[[StepResult], None]) -> list[StepResult]:
    """Run each step whose needs held; SKIP the others, naming the first need that did not hold."""
    done: dict[str, StepResult] = {}
    for step in steps:
        blocked = next((n for n in step.needs if done[n].status not in _HOLDS), None)
        if blocked is not None:
            what = "was skipped" if done[blocked].status is Status.SKIP else "failed"
            result = StepResult(
                step=step.name, status=Status.SKIP, message=f"skipped: waits on step '{blocked}', which {what}"
            )
        else:
            outcome = step.run(walk)
            if outcome.status in _HOLDS:
                walk.outputs[step.name] = outcome.output
            result = StepResult(
                step=step.name,
                status=outcome.status,
                message=walk.secrets.scrub(outcome.message),
                hint=walk.secrets.scrub(outcome.hint),
                identity=outcome.identity,
            )
        done[step.name] = result
        emit(result)  # live, so the renderer prints each identity as soon as it is known
    return list(done.values())


# --- the steps --------------------------------------------------------------------------------------------------


def _expires(when: datetime | None) -> str:
    return f"expires {arns.iso_z(when)}" if when else "no expiry given"


class ImdsStep(Step):
    """The instance's role from its metadata service (roleops.instance), and how it was read (IMDSv2 or v1)."""

    name = STEP_IMDS

    def run(self, walk: Walk) -> Outcome:
        imds, opts = walk.imds, walk.opts

        def seen(creds: RoleCredentials) -> None:
            walk.secrets.add(creds.secret_access_key, creds.session_token)

        try:
            ctx = read_instance(
                imds, now=walk.now, expect_role=opts.expect_role, targets=opts.target_names(), seen=seen
            )
        except ImdsUnreachable:
            raise  # no metadata service at all: an environment problem, exit 3
        except ImdsError as err:
            return Outcome(Status.FAIL, f"{err.what}{f': {err.why}' if err.why else ''}", err.next_step)
        except BrokenLink as broken:
            return Outcome(Status.FAIL, broken.message, broken.hint, broken.identity)
        message = (
            f"instance {ctx.instance_id} in {ctx.region}, account {ctx.account}; instance profile {ctx.profile_arn}; "
            f"role {ctx.role}; {_expires(ctx.credentials.expiration)}"
        )
        if imds.token_mode != "v1":
            return Outcome(Status.PASS, message + "; IMDSv2", identity=ctx.identity, output=ctx)
        require = (
            "require IMDSv2: aws ec2 modify-instance-metadata-options --instance-id "
            f"{ctx.instance_id} --http-tokens required --http-put-response-hop-limit 2 "
            "(or roleops setup ... --instance-id ID --require-imdsv2)"
        )
        # When IMDS refused the token request (a proxy in the way), requiring IMDSv2 first would cut this host off
        # its role: mend the token request, then require it.
        hint = f"{imds.fallback_hint}; then {require}" if imds.fallback_hint else require
        return Outcome(
            Status.WARN, message + f"; read with IMDSv1 ({imds.fallback_reason})", hint, ctx.identity, output=ctx
        )


def _check_caller(
    walk: Walk, what: str, keys: sts.Keys, *, expected_arn: str, expiration: datetime | None, mismatch_hint: str
) -> Outcome:
    """GetCallerIdentity with exactly these keys; PASS when STS names `expected_arn`. Its output is the client."""
    region = walk.instance.region
    masked = mask_key(keys.access_key_id)
    client = walk.sts(keys, region)
    try:
        resp = sts.get_caller_identity(client)
    except sts.StsFailure as err:
        return Outcome(
            Status.FAIL,
            f"sts:GetCallerIdentity with the {what} ({masked}) failed: {err.code}: {err.aws_message}",
            sts.hint(err.code, err.aws_message, region),
        )
    identity = Identity(
        source=SOURCE_CALLER,
        account=resp.get("Account"),
        user_id=resp.get("UserId"),
        arn=resp.get("Arn"),
        access_key_id=masked,
        expiration=expiration,
    )
    if resp.get("Arn") != expected_arn:
        return Outcome(
            Status.FAIL, f"STS says the {what} are {resp.get('Arn')}; expected {expected_arn}", mismatch_hint, identity
        )
    return Outcome(Status.PASS, f"the {what} are {resp['Arn']}", identity=identity, output=client)


class CallerStep(Step):
    """GetCallerIdentity with exactly the instance credentials: they must be the instance's own role session."""

    name = STEP_CALLER
    needs = (STEP_IMDS,)

    def run(self, walk: Walk) -> Outcome:
        ctx = walk.instance
        return _check_caller(
            walk,
            "instance credentials",
            ctx.keys,
            expected_arn=ctx.session_arn,
            expiration=ctx.credentials.expiration,
            mismatch_hint="what answers at the metadata endpoint is not serving this instance's role session: check "
            f"{walk.imds.endpoint} and the instance's profile association",
        )


class DefaultChainStep(Step):
    """What every SDK on the host resolves to: the instance role, an SDK-native role profile from it, or a shadow."""

    name = STEP_DEFAULT_CHAIN
    needs = (STEP_IMDS,)

    def run(self, walk: Walk) -> Outcome:
        from botocore.exceptions import BotoCoreError, ClientError

        from roleops.clients import core_session

        ctx = walk.instance
        key = ctx.credentials.access_key_id
        pointed = ""
        core = core_session(walk.session)
        try:
            if walk.imds.settings.endpoint_explicit:
                # roleops was pointed at this endpoint on its command line; ask boto3 the same question there.
                core.set_config_variable("ec2_metadata_service_endpoint", walk.imds.endpoint)
                pointed = f" (with the metadata endpoint {walk.imds.endpoint})"
            found = core.get_credentials()
            method = getattr(found, "method", None)
            frozen = found.get_frozen_credentials() if found is not None else None
        # The SDK's own chain is under test here, not an AWS call of roleops': its failure is this step's finding.
        except (BotoCoreError, ClientError) as err:
            code, msg = _error_parts(err)
            chain = self._role_profile(walk)
            via = (
                f" (it assumes {chain.role_arns[-1]} with {chain.source})"
                if chain and not chain.from_instance_role
                else ""
            )
            return Outcome(
                Status.WARN,
                f"boto3's default credential chain failed{via}{pointed}: {code}: {msg}",
                "fix the profile or environment it names, or unset AWS_PROFILE",
            )
        if frozen is None:
            return Outcome(
                Status.WARN,
                f"boto3's default credential chain found no credentials{pointed}",
                "SDKs on this host do not reach the instance role: check AWS_EC2_METADATA_DISABLED, "
                "AWS_METADATA_SERVICE_TIMEOUT and, in a container, the hop limit",
            )
        walk.secrets.add(frozen.secret_key, frozen.token)
        other = mask_key(frozen.access_key)
        if method == "assume-role" and (chain := self._role_profile(walk)) is not None:
            return self._role_profile_outcome(ctx, chain, other, pointed)
        identity = Identity(
            source=f"{SOURCE_DEFAULT_CHAIN} ({method})",
            account=ctx.account if method == "iam-role" else None,
            arn=ctx.role_arn if method == "iam-role" and frozen.access_key == key else None,
            access_key_id=other,
        )
        if method == "iam-role" and frozen.access_key == key:
            return Outcome(
                Status.PASS,
                f"boto3's default chain resolves to the instance role {ctx.role} (method iam-role){pointed}",
                identity=identity,
            )
        if method == "iam-role":
            return Outcome(
                Status.WARN,
                f"boto3's default chain reads an instance role, but key {other}, not {mask_key(key)}{pointed}",
                "the credentials may have rotated between the two reads (re-run), or boto3 reads another "
                "metadata endpoint: compare AWS_EC2_METADATA_SERVICE_ENDPOINT",
                identity,
            )
        what, fix = SHADOWS.get(method or "", (f"credential provider {method!r}", "remove it"))
        return Outcome(
            Status.WARN,
            f"boto3's default chain resolves to {what} (key {other}), which shadows the instance role {ctx.role}",
            f"SDKs and the AWS CLI here will not use the instance role: {fix}",
            identity,
        )

    @staticmethod
    def _role_profile(walk: Walk) -> RoleProfile | None:
        from roleops.clients import core_session

        core = core_session(walk.session)
        name = core.get_config_variable("profile") or "default"
        return role_profile(core.full_config.get("profiles", {}), name)

    @staticmethod
    def _role_profile_outcome(ctx: InstanceContext, chain: RoleProfile, key: str, pointed: str) -> Outcome:
        """A role_arn profile is the SDK-native way to assume a role from the instance role: the chain working, when
        its source is the instance metadata (directly or through source_profile links); a shadow otherwise."""
        target = chain.role_arns[-1]
        via = " -> ".join(f"profile {p}" for p in chain.profiles)
        identity = Identity(
            source=f"{SOURCE_DEFAULT_CHAIN} (assume-role)",
            account=arns.account_of(target),
            arn=target,
            access_key_id=key,
        )
        if chain.from_instance_role:
            return Outcome(
                Status.PASS,
                f"boto3's default chain assumes {target} ({via}) from the instance role {ctx.role} "
                f"(credential_source = {INSTANCE_METADATA_SOURCE}; key {key}){pointed}",
                identity=identity,
            )
        return Outcome(
            Status.WARN,
            f"boto3's default chain assumes {target} ({via}) with {chain.source}, not the instance role {ctx.role}"
            f" (key {key}){pointed}",
            f"SDKs and the AWS CLI here will not start from the instance role: in profile {chain.profiles[-1]}, "
            f"put credential_source = {INSTANCE_METADATA_SOURCE} in place of {chain.source} "
            "(`roleops creds --format profile --assume ROLE_ARN` prints such a block)",
            identity,
        )


def _error_parts(err: BaseException) -> tuple[str, str]:
    """(code, message) of a botocore ClientError, or (class name, text) of any other botocore error."""
    response = getattr(err, "response", None)
    if isinstance(response, dict):
        error = response.get("Error") or {}
        return str(error.get("Code") or "Unknown"), str(error.get("Message") or "")
    return type(err).__name__, str(err)


@dataclass(frozen=True)
class AssumeStep(Step):
    """AssumeRole into one --assume role with the instance credentials (the caller step's client)."""

    name: str
    target_arn: str
    needs: tuple[str, ...] = (STEP_IMDS, STEP_CALLER)

    def run(self, walk: Walk) -> Outcome:
        ctx, opts = walk.instance, walk.opts
        duration, capped = sts.chained_duration(opts.duration)
        note = f"; {capped}" if capped else ""
        try:
            resp = sts.assume_role(
                walk.outputs[STEP_CALLER],
                self.target_arn,
                opts.session_name,
                external_id=opts.external_id,
                duration=duration,
            )
        except sts.StsFailure as err:
            hint = sts.assume_hint(
                err,
                instance_role_arn=ctx.role_arn,
                target_arn=self.target_arn,
                external_id=opts.external_id,
                region=ctx.region,
            )
            return Outcome(
                Status.FAIL, f"sts:AssumeRole into {self.target_arn} failed: {err.code}: {err.aws_message}{note}", hint
            )
        creds = resp["Credentials"]
        walk.secrets.add(creds.get("SecretAccessKey"), creds.get("SessionToken"))
        user = resp.get("AssumedRoleUser") or {}
        expiration = creds.get("Expiration")
        identity = Identity(
            source=SOURCE_ASSUME,
            account=arns.account_of(user.get("Arn")),
            user_id=user.get("AssumedRoleId"),
            arn=user.get("Arn"),
            access_key_id=mask_key(creds.get("AccessKeyId")),
            expiration=expiration if isinstance(expiration, datetime) else None,
        )
        return Outcome(
            Status.PASS,
            f"assumed {self.target_arn} as session {opts.session_name}; {_expires(identity.expiration)}{note}",
            identity=identity,
            output=resp,
        )


@dataclass(frozen=True)
class AssumedCallerStep(Step):
    """GetCallerIdentity with the assumed credentials: they must be a session of the target role."""

    name: str
    target_arn: str
    needs: tuple[str, ...] = ()

    def run(self, walk: Walk) -> Outcome:
        assumed = walk.outputs[self.needs[0]]
        creds = assumed["Credentials"]
        target = arns.parse_role_arn(self.target_arn)
        assert target is not None  # VerifyOptions checked it
        expiration = creds.get("Expiration")
        return _check_caller(
            walk,
            "assumed credentials",
            sts.Keys(creds["AccessKeyId"], creds["SecretAccessKey"], creds.get("SessionToken")),
            expected_arn=target.session_arn(walk.opts.session_name),
            expiration=expiration if isinstance(expiration, datetime) else None,
            mismatch_hint="the credentials AssumeRole returned are not a session of the target role: "
            "check --endpoint-url",
        )


def chain_steps(opts: VerifyOptions) -> list[Step]:
    """The chain, in order: imds, caller, default-chain, then assume and assumed-caller per --assume role."""
    steps: list[Step] = [ImdsStep(), CallerStep(), DefaultChainStep()]
    for suffix, arn in opts.targets():
        assume = f"assume:{suffix}"
        steps.append(AssumeStep(name=assume, target_arn=arn))
        steps.append(AssumedCallerStep(name=f"assumed-caller:{suffix}", target_arn=arn, needs=(assume,)))
    return steps


def _resolve_now(now: datetime | Callable[[], datetime] | None) -> datetime:
    when = now() if callable(now) else now
    if when is None:
        return datetime.now(timezone.utc)
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def run_verify(
    opts: VerifyOptions,
    *,
    imds: ImdsClient,
    session: Session,
    clients_factory: Callable[..., Clients] | None = None,
    on_step: Callable[[StepResult], None] | None = None,
    now: datetime | Callable[[], datetime] | None = None,
) -> VerifyReport:
    """Walk the chain and report each link.

    `session` (boto3's or botocore's, for the profile in use) answers the default-chain check and carries the STS
    clients, which sign with the keys under test; `clients_factory(session, endpoint_url=, region=,
    credentials=)` defaults to roleops.clients.Clients.
    """
    walk = Walk(opts=opts, imds=imds, session=session, clients_factory=clients_factory, now=_resolve_now(now))
    steps = run_steps(chain_steps(opts), walk, on_step or (lambda _result: None))
    return VerifyReport(steps=tuple(steps))
