"""Verify chain (service layer): instance metadata -> STS -> AssumeRole, each link a named StepResult.

Like botocore's credential resolver, verify is a chain of named checks run in order. A step that depends on
a failed (or skipped) one is SKIP and says which step it waited on. AWS-side failures become FAIL steps
with a hint naming the roleops command that mends them; verify raises only for bad input (UsageError,
before any call) and when no metadata service answered at all (ImdsUnreachable, exit 3).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from roleops.imds import ImdsClient, ImdsError, ImdsUnreachable, RoleCredentials
from roleops.results import Identity, Status, StepResult, VerifyReport, iso_z, mask_key

if TYPE_CHECKING:  # botocore is imported lazily so that `roleops --help` stays fast
    from roleops.clients import Clients, Session

STEP_IMDS = "imds"
STEP_CALLER = "caller"
STEP_DEFAULT_CHAIN = "default-chain"
CHAINED_SESSION_MAX = 3600  # AWS caps a role-chained session at 1 hour
SOURCE_IMDS = "instance metadata"
SOURCE_CALLER = "sts:GetCallerIdentity"
SOURCE_ASSUME = "sts:AssumeRole"
SOURCE_DEFAULT_CHAIN = "boto3 default chain"

# What shadows the instance role when boto3's chain stops earlier (botocore provider METHOD -> words, fix).
_SHADOWS: dict[str, tuple[str, str]] = {
    "env": (
        "environment variables AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY",
        "unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN",
    ),
    "shared-credentials-file": (
        "the shared credentials file (~/.aws/credentials or AWS_SHARED_CREDENTIALS_FILE)",
        "remove the profile's keys from the credentials file, or use another profile",
    ),
    "config-file": (
        "keys in the config file (~/.aws/config or AWS_CONFIG_FILE)",
        "remove aws_access_key_id / aws_secret_access_key from the config profile",
    ),
    "assume-role": (  # reached only when the profile could not be read; role_profile() decides otherwise
        "a config profile with role_arn (assume-role)",
        "give the profile credential_source = Ec2InstanceMetadata, or use a profile without role_arn",
    ),
    "assume-role-with-web-identity": (
        "web identity (AWS_WEB_IDENTITY_TOKEN_FILE / AWS_ROLE_ARN or web_identity_token_file)",
        "unset AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN",
    ),
    "custom-process": (
        "a credential_process in the config profile",
        "remove credential_process from the profile",
    ),
    "sso": ("an IAM Identity Center (SSO) profile", "use a profile without sso_* settings"),
    "login": ("an `aws login` session profile", "use a profile without login settings"),
    "container-role": (
        "the container credentials endpoint (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / _FULL_URI)",
        "unset AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ),
    "ec2-credentials-file": ("a legacy EC2 credentials file (AWS_CREDENTIAL_FILE)", "unset AWS_CREDENTIAL_FILE"),
    "boto-config": ("a legacy boto config file (/etc/boto.cfg or ~/.boto)", "remove the keys from the boto config"),
}


INSTANCE_METADATA_SOURCE = "Ec2InstanceMetadata"  # the credential_source that means "the instance role"


@dataclass(frozen=True)
class RoleProfile:
    """What a role_arn profile assumes and where its source credentials come from (shared config, as botocore reads)."""

    profiles: tuple[str, ...]  # the profile, then each source_profile followed
    role_arns: tuple[str, ...]  # the roles assumed, first to last (the last is what the SDK ends up as)
    source: str  # e.g. "credential_source = Ec2InstanceMetadata", "static keys of profile dev"

    @property
    def from_instance_role(self) -> bool:
        return self.source == f"credential_source = {INSTANCE_METADATA_SOURCE}"


def role_profile(profiles: dict[str, dict[str, Any]], name: str) -> RoleProfile | None:
    """Follow a role_arn profile's source_profile links to its source, as botocore's AssumeRoleProvider does.

    None when `name` has no role_arn. Pure: `profiles` is botocore's parsed config (`full_config["profiles"]`).
    """
    seen: list[str] = []
    arns: list[str] = []
    current = name
    for _ in range(len(profiles) + 1):  # bounded: a loop of source_profile links ends here
        config = profiles.get(current) or {}
        if "role_arn" not in config:
            if not arns:
                return None
            return RoleProfile(
                profiles=tuple(seen), role_arns=tuple(reversed(arns)), source=_own_credentials(current, config)
            )
        seen.append(current)
        arns.append(config["role_arn"])
        if "credential_source" in config:
            source = f"credential_source = {config['credential_source']}"
            return RoleProfile(profiles=tuple(seen), role_arns=tuple(reversed(arns)), source=source)
        nxt = config.get("source_profile")
        if nxt is None:
            return RoleProfile(profiles=tuple(seen), role_arns=tuple(reversed(arns)), source="no source configured")
        if nxt == current:  # botocore: a profile that sources itself uses its own static keys
            return RoleProfile(
                profiles=tuple(seen), role_arns=tuple(reversed(arns)), source=_own_credentials(current, config)
            )
        if nxt in seen:
            return RoleProfile(profiles=tuple(seen), role_arns=tuple(reversed(arns)), source="a source_profile loop")
        current = nxt
    return RoleProfile(profiles=tuple(seen), role_arns=tuple(reversed(arns)), source="a source_profile loop")


def _own_credentials(name: str, config: dict[str, Any]) -> str:
    if "aws_access_key_id" in config:
        return f"static keys of profile {name}"
    if "credential_process" in config:
        return f"the credential_process of profile {name}"
    if "sso_session" in config or "sso_start_url" in config:
        return f"the IAM Identity Center (SSO) login of profile {name}"
    if "web_identity_token_file" in config:
        return f"the web identity token of profile {name}"
    return f"profile {name}, which has no credentials"


@dataclass(frozen=True)
class VerifyOptions:
    assume: tuple[str, ...] = ()
    session_name: str = "roleops-verify"
    external_id: str | None = None
    duration: int | None = None
    expect_role: str | None = None
    endpoint_url: str | None = None


def validate_options(opts: VerifyOptions) -> None:
    """Raise UsageError (exit 2) before any call; nothing is changed."""
    from roleops.validate import (
        validate_duration,
        validate_external_id,
        validate_role_arn,
        validate_role_name,
        validate_session_name,
    )

    for arn in opts.assume:
        validate_role_arn(arn, "--assume")
    validate_session_name(opts.session_name, "--session-name")
    if opts.external_id is not None:
        validate_external_id(opts.external_id, "--external-id")
    if opts.duration is not None:
        validate_duration(opts.duration, "--duration", 900, 43200)
    if opts.expect_role is not None:
        validate_role_name(opts.expect_role, "--expect-role")


# --- shared with creds.py -------------------------------------------------------------------------


@dataclass(frozen=True)
class InstanceContext:
    """What the imds step learned; holds the instance credentials (never shown)."""

    instance_id: str
    region: str
    account: str
    partition: str
    role: str
    profile_arn: str | None
    credentials: RoleCredentials

    @property
    def role_arn(self) -> str:
        return f"arn:{self.partition}:iam::{self.account}:role/{self.role}"

    @property
    def session_arn(self) -> str:
        """What STS must say these credentials are: EC2 names the session after the instance."""
        return f"arn:{self.partition}:sts::{self.account}:assumed-role/{self.role}/{self.instance_id}"


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def hint_setup(role: str, target: str = "TARGET_NAME") -> str:
    return f"roleops setup --instance-role {role} --assumable-role {target}"


def hint_access_denied(instance_role_arn: str, target_arn: str, external_id: str | None) -> str:
    role = instance_role_arn.rsplit("/", 1)[-1]
    target = target_arn.rsplit("/", 1)[-1]
    text = (
        f"check both policies: the instance role {role} must allow sts:AssumeRole on {target_arn}, and "
        f"{target}'s trust policy must name {instance_role_arn}"
    )
    if external_id is not None:
        text += " with an sts:ExternalId condition equal to --external-id"
    else:
        text += "; if that trust requires sts:ExternalId, pass --external-id"
    return text + f". IAM changes take a few seconds to propagate. Fix: {hint_setup(role, target)}"


def client_error_parts(err: BaseException) -> tuple[str, str]:
    """(code, message) of a botocore ClientError, or (class name, text) of any other botocore error."""
    response = getattr(err, "response", None)
    if isinstance(response, dict):
        error = response.get("Error") or {}
        return str(error.get("Code") or "Unknown"), str(error.get("Message") or "")
    return type(err).__name__, str(err)


def sts_hint(code: str, message: str, region: str) -> str:
    """Hints for what STS says about credentials, whatever the operation."""
    if code == "ExpiredToken":
        return "the credentials expired; IMDS rotates them at least 5 minutes before expiry, so check the clock"
    if code in ("InvalidClientTokenId", "SignatureDoesNotMatch", "UnrecognizedClientException"):
        return "STS does not know these credentials: check the clock, and that --endpoint-url is the right STS"
    if code == "RegionDisabledException":
        return (
            f"STS is not active in {region}: activate it under IAM > Account settings, "
            "or pass --endpoint-url https://sts.amazonaws.com"
        )
    if code in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError"):
        return "check the network path to STS (VPC endpoint, proxy, --endpoint-url)"
    return ""


def make_sts(
    session: Session,
    clients_factory: Callable[..., Clients] | None,
    *,
    access_key_id: str,
    secret_access_key: str,
    session_token: str | None,
    region: str,
    endpoint_url: str | None,
) -> Any:
    """An STS client that signs with exactly these keys (never the default chain), at `region`'s endpoint.

    The keys go to the client, not the session, so one session serves every set of keys of a run (a botocore
    session costs its own endpoint data and model parsing on its first client: bench/).
    """
    from roleops.clients import Clients, core_session

    # Regional STS even if AWS_STS_REGIONAL_ENDPOINTS=legacy: the instance's region.
    core_session(session).set_config_variable("sts_regional_endpoints", "regional")
    if clients_factory is None:
        clients_factory = Clients
    keys = {
        "aws_access_key_id": access_key_id,
        "aws_secret_access_key": secret_access_key,
        "aws_session_token": session_token,
    }
    return clients_factory(session, endpoint_url=endpoint_url, region=region, credentials=keys).sts(region)


def chained_duration(duration: int | None) -> tuple[int | None, str]:
    """DurationSeconds for a session assumed from the instance-role session, and why it was capped."""
    if duration is None or duration <= CHAINED_SESSION_MAX:
        return duration, ""
    return CHAINED_SESSION_MAX, (
        f"DurationSeconds capped at {CHAINED_SESSION_MAX} s (asked {duration}): a role assumed from the "
        "instance role's session is role chaining, which AWS limits to 1 hour"
    )


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


def _resolve_now(now: datetime | Callable[[], datetime] | None) -> datetime:
    when = now() if callable(now) else now
    if when is None:
        return datetime.now(timezone.utc)
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _expires(when: datetime | None) -> str:
    return f"expires {iso_z(when)}" if when else "no expiry given"


# --- the chain ------------------------------------------------------------------------------------


class _Verifier:
    def __init__(
        self,
        opts: VerifyOptions,
        imds: ImdsClient,
        session: Session,
        clients_factory: Callable[..., Clients] | None,
        on_step: Callable[[StepResult], None] | None,
        now: datetime,
    ) -> None:
        self.opts = opts
        self.imds = imds
        # One session for the whole walk: the default-chain check asks it for credentials; STS clients get
        # explicit keys on top of it.
        self.session = session
        self.clients_factory = clients_factory
        self.on_step = on_step
        self.now = now
        self.steps: list[StepResult] = []
        self.secrets = _Secrets()

    # --- plumbing ---

    def emit(
        self, step: str, status: Status, message: str = "", hint: str = "", identity: Identity | None = None
    ) -> StepResult:
        result = StepResult(
            step=step,
            status=status,
            message=self.secrets.scrub(message),
            hint=self.secrets.scrub(hint),
            identity=identity,
        )
        self.steps.append(result)
        if self.on_step is not None:
            self.on_step(result)  # live, so the renderer prints each identity as soon as it is known
        return result

    def skip(self, step: str, waited_on: str, waited_status: Status) -> None:
        what = "was skipped" if waited_status is Status.SKIP else "failed"
        self.emit(step, Status.SKIP, f"skipped: waits on step '{waited_on}', which {what}")

    def sts(self, access_key_id: str, secret: str, token: str | None, region: str) -> Any:
        return make_sts(
            self.session,
            self.clients_factory,
            access_key_id=access_key_id,
            secret_access_key=secret,
            session_token=token,
            region=region,
            endpoint_url=self.opts.endpoint_url,
        )

    def hint_setup(self, role: str) -> str:
        """The setup command that mends the instance role, naming the --assume targets when there are some."""
        names = list(dict.fromkeys(a.rsplit("/", 1)[-1] for a in self.opts.assume)) or ["TARGET_NAME"]
        return f"roleops setup --instance-role {role} " + " ".join(f"--assumable-role {n}" for n in names)

    def targets(self) -> list[tuple[str, str]]:
        """(step suffix, ARN) per distinct --assume; the role name unless two share a name."""
        arns = list(dict.fromkeys(self.opts.assume))
        names = [a.rsplit("/", 1)[-1] for a in arns]
        return [(n if names.count(n) == 1 else a, a) for n, a in zip(names, arns, strict=True)]

    # --- run ---

    def run(self) -> VerifyReport:
        ctx = self.step_imds()
        targets = self.targets()
        if ctx is None:
            imds_status = self.steps[-1].status
            self.skip(STEP_CALLER, STEP_IMDS, imds_status)
            self.skip(STEP_DEFAULT_CHAIN, STEP_IMDS, imds_status)
            for name, _arn in targets:
                self.skip(f"assume:{name}", STEP_IMDS, imds_status)
                self.skip(f"assumed-caller:{name}", f"assume:{name}", Status.SKIP)
            return VerifyReport(steps=tuple(self.steps))

        sts = self.step_caller(ctx)
        self.step_default_chain(ctx)
        for name, arn in targets:
            step = f"assume:{name}"
            if sts is None:
                self.skip(step, STEP_CALLER, Status.FAIL)
                self.skip(f"assumed-caller:{name}", step, Status.SKIP)
                continue
            assumed = self.step_assume(ctx, sts, step, arn)
            if assumed is None:
                self.skip(f"assumed-caller:{name}", step, Status.FAIL)
                continue
            self.step_assumed_caller(ctx, f"assumed-caller:{name}", arn, assumed)
        return VerifyReport(steps=tuple(self.steps))

    # --- imds ---

    def step_imds(self) -> InstanceContext | None:
        try:
            return self._imds()
        except ImdsUnreachable:
            raise  # no metadata service at all: an environment problem, exit 3
        except ImdsError as err:
            why = f": {err.why}" if err.why else ""
            self.emit(STEP_IMDS, Status.FAIL, f"{err.what}{why}", err.next_step)
            return None

    def _imds(self) -> InstanceContext | None:
        imds = self.imds
        ident = imds.identity()
        iid = ident.instance_id
        info = imds.iam_profile()
        if info is None:
            self.emit(
                STEP_IMDS,
                Status.FAIL,
                f"no instance profile is associated with instance {iid} (iam/info: 404)",
                f"roleops associate --instance-id {iid} --instance-profile {self.opts.expect_role or 'NAME'}",
            )
            return None
        if not info.ok:
            self.emit(
                STEP_IMDS,
                Status.FAIL,
                f"iam/info says {info.code}"
                + (f": {info.message}" if info.message else "")
                + f" (instance profile {info.instance_profile_arn or 'unknown'})",
                "the instance profile was deleted or re-created since it was associated; re-associate it: "
                f"roleops associate --instance-id {iid} --instance-profile {info.profile_name or 'NAME'}",
            )
            return None
        profile_arn = info.instance_profile_arn
        profile_name = info.profile_name or "NAME"
        roles = imds.role_names()
        if not roles:
            self.emit(
                STEP_IMDS,
                Status.FAIL,
                f"instance profile {profile_arn} holds no role (iam/security-credentials/ is empty)",
                f"put a role in it: {self.hint_setup(profile_name)}, or aws iam add-role-to-instance-profile "
                f"--instance-profile-name {profile_name} --role-name ROLE",
            )
            return None
        role = roles[0]
        creds = imds.role_credentials(role)
        if creds is None:
            self.emit(
                STEP_IMDS,
                Status.FAIL,
                f"IMDS lists role {role} but has no credential document for it (404)",
                "the association may be changing; retry in a few seconds",
            )
            return None
        self.secrets.add(creds.secret_access_key, creds.session_token)
        if not creds.ok:
            self.emit(
                STEP_IMDS,
                Status.FAIL,
                f"IMDS could not get credentials for role {role}: {creds.code}"
                + (f": {creds.message}" if creds.message else ""),
                f"the role's trust policy must allow ec2.amazonaws.com to assume it: {self.hint_setup(role)}",
            )
            return None
        if creds.missing:
            self.emit(
                STEP_IMDS,
                Status.FAIL,
                f"the credential document of role {role} lacks {', '.join(creds.missing)}",
                "retry; if it persists, check what answers at " + imds.endpoint,
            )
            return None
        assert creds.expiration is not None  # not in `missing`
        partition = info.partition or partition_of(ident.region)
        ctx = InstanceContext(
            instance_id=iid,
            region=ident.region,
            account=ident.account_id,
            partition=partition,
            role=role,
            profile_arn=profile_arn,
            credentials=creds,
        )
        identity = Identity(
            source=SOURCE_IMDS,
            account=ident.account_id,
            arn=ctx.role_arn,
            access_key_id=mask_key(creds.access_key_id),
            expiration=creds.expiration,
        )
        if creds.expiration <= self.now:
            self.emit(
                STEP_IMDS,
                Status.FAIL,
                f"the credentials IMDS serves for role {role} expired at {iso_z(creds.expiration)} "
                f"(now {iso_z(self.now)})",
                "IMDS rotates credentials at least 5 minutes before expiry: check the instance clock and retry",
                identity,
            )
            return None
        if self.opts.expect_role is not None and role.lower() != self.opts.expect_role.lower():
            self.emit(
                STEP_IMDS,
                Status.FAIL,
                f"instance {iid} has role {role} (instance profile {profile_arn}); "
                f"--expect-role wants {self.opts.expect_role}",
                f"roleops associate --instance-id {iid} --instance-profile {self.opts.expect_role}",
                identity,
            )
            return None
        message = (
            f"instance {iid} in {ident.region}, account {ident.account_id}; instance profile {profile_arn}; "
            f"role {role}; {_expires(creds.expiration)}"
        )
        if imds.token_mode == "v1":
            require = (
                "require IMDSv2: aws ec2 modify-instance-metadata-options --instance-id "
                f"{iid} --http-tokens required --http-put-response-hop-limit 2 "
                "(or roleops setup ... --instance-id ID --require-imdsv2)"
            )
            # When IMDS refused the token request (a proxy in the way), requiring IMDSv2 first would cut this
            # host off its role: mend the token request, then require it.
            self.emit(
                STEP_IMDS,
                Status.WARN,
                message + f"; read with IMDSv1 ({imds.fallback_reason})",
                f"{imds.fallback_hint}; then {require}" if imds.fallback_hint else require,
                identity,
            )
        else:
            self.emit(STEP_IMDS, Status.PASS, message + "; IMDSv2", identity=identity)
        return ctx

    # --- caller ---

    def _check_caller(
        self,
        step: str,
        what: str,
        keys: tuple[str, str, str | None],
        *,
        region: str,
        expected_arn: str,
        expiration: datetime | None,
        mismatch_hint: str,
    ) -> Any | None:
        """GetCallerIdentity with exactly these keys; PASS when STS names `expected_arn`. Returns the client."""
        from botocore.exceptions import BotoCoreError, ClientError

        masked = mask_key(keys[0])
        try:
            sts = self.sts(*keys, region)
            resp = sts.get_caller_identity()
        except (ClientError, BotoCoreError) as err:
            code, msg = client_error_parts(err)
            self.emit(
                step,
                Status.FAIL,
                f"sts:GetCallerIdentity with the {what} ({masked}) failed: {code}: {msg}",
                sts_hint(code, msg, region),
            )
            return None
        identity = Identity(
            source=SOURCE_CALLER,
            account=resp.get("Account"),
            user_id=resp.get("UserId"),
            arn=resp.get("Arn"),
            access_key_id=masked,
            expiration=expiration,
        )
        if resp.get("Arn") != expected_arn:
            self.emit(
                step,
                Status.FAIL,
                f"STS says the {what} are {resp.get('Arn')}; expected {expected_arn}",
                mismatch_hint,
                identity,
            )
            return None
        self.emit(step, Status.PASS, f"the {what} are {resp['Arn']}", identity=identity)
        return sts

    def step_caller(self, ctx: InstanceContext) -> Any | None:
        """GetCallerIdentity with exactly the instance credentials; returns their STS client if it passed."""
        creds = ctx.credentials
        assert creds.access_key_id and creds.secret_access_key
        return self._check_caller(
            STEP_CALLER,
            "instance credentials",
            (creds.access_key_id, creds.secret_access_key, creds.session_token),
            region=ctx.region,
            expected_arn=ctx.session_arn,
            expiration=creds.expiration,
            mismatch_hint="what answers at the metadata endpoint is not serving this instance's role session: check "
            f"{self.imds.endpoint} and the instance's profile association",
        )

    # --- default chain ---

    def step_default_chain(self, ctx: InstanceContext) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        from roleops.clients import core_session

        key = ctx.credentials.access_key_id
        pointed = ""
        try:
            core = core_session(self.session)
            if self.imds.settings.endpoint_explicit:
                # roleops was pointed at this endpoint on its command line; ask boto3 the same question there.
                core.set_config_variable("ec2_metadata_service_endpoint", self.imds.endpoint)
                pointed = f" (with the metadata endpoint {self.imds.endpoint})"
            found = core.get_credentials()
            method = getattr(found, "method", None)
            frozen = found.get_frozen_credentials() if found is not None else None
        except (BotoCoreError, ClientError) as err:
            code, msg = client_error_parts(err)
            chain = self._role_profile()
            what = (
                f" (it assumes {chain.role_arns[-1]} with {chain.source})"
                if chain and not chain.from_instance_role
                else ""
            )
            self.emit(
                STEP_DEFAULT_CHAIN,
                Status.WARN,
                f"boto3's default credential chain failed{what}{pointed}: {code}: {msg}",
                "fix the profile or environment it names, or unset AWS_PROFILE",
            )
            return
        if frozen is None:
            self.emit(
                STEP_DEFAULT_CHAIN,
                Status.WARN,
                f"boto3's default credential chain found no credentials{pointed}",
                "SDKs on this host do not reach the instance role: check AWS_EC2_METADATA_DISABLED, "
                "AWS_METADATA_SERVICE_TIMEOUT and, in a container, the hop limit",
            )
            return
        self.secrets.add(frozen.secret_key, frozen.token)
        other = mask_key(frozen.access_key)
        identity = Identity(
            source=f"{SOURCE_DEFAULT_CHAIN} ({method})",
            account=ctx.account if method == "iam-role" else None,
            arn=ctx.role_arn if method == "iam-role" and frozen.access_key == key else None,
            access_key_id=other,
        )
        if method == "iam-role" and frozen.access_key == key:
            self.emit(
                STEP_DEFAULT_CHAIN,
                Status.PASS,
                f"boto3's default chain resolves to the instance role {ctx.role} (method iam-role){pointed}",
                identity=identity,
            )
        elif method == "iam-role":
            self.emit(
                STEP_DEFAULT_CHAIN,
                Status.WARN,
                f"boto3's default chain reads an instance role, but key {other}, not {mask_key(key)}{pointed}",
                "the credentials may have rotated between the two reads (re-run), or boto3 reads another "
                "metadata endpoint: compare AWS_EC2_METADATA_SERVICE_ENDPOINT",
                identity,
            )
        elif method == "assume-role" and (chain := self._role_profile()) is not None:
            self._role_profile_step(ctx, chain, other, pointed)
        else:
            what, fix = _SHADOWS.get(method or "", (f"credential provider {method!r}", "remove it"))
            self.emit(
                STEP_DEFAULT_CHAIN,
                Status.WARN,
                f"boto3's default chain resolves to {what} (key {other}), which shadows the instance role {ctx.role}",
                f"SDKs and the AWS CLI here will not use the instance role: {fix}",
                identity,
            )

    def _role_profile(self) -> RoleProfile | None:
        from roleops.clients import core_session

        core = core_session(self.session)
        name = core.get_config_variable("profile") or "default"
        return role_profile(core.full_config.get("profiles", {}), name)

    def _role_profile_step(self, ctx: InstanceContext, chain: RoleProfile, key: str, pointed: str) -> None:
        """A role_arn profile is the SDK-native way to assume a role from the instance role: the chain working, when
        its source is the instance metadata (directly or through source_profile links); a shadow otherwise."""
        target = chain.role_arns[-1]
        via = " -> ".join(f"profile {p}" for p in chain.profiles)
        identity = Identity(
            source=f"{SOURCE_DEFAULT_CHAIN} (assume-role)",
            account=target.split(":")[4] if target.count(":") >= 5 else None,
            arn=target,
            access_key_id=key,
        )
        if chain.from_instance_role:
            self.emit(
                STEP_DEFAULT_CHAIN,
                Status.PASS,
                f"boto3's default chain assumes {target} ({via}) from the instance role {ctx.role} "
                f"(credential_source = {INSTANCE_METADATA_SOURCE}; key {key}){pointed}",
                identity=identity,
            )
            return
        self.emit(
            STEP_DEFAULT_CHAIN,
            Status.WARN,
            f"boto3's default chain assumes {target} ({via}) with {chain.source}, not the instance role {ctx.role}"
            f" (key {key}){pointed}",
            f"SDKs and the AWS CLI here will not start from the instance role: in profile {chain.profiles[-1]}, "
            f"put credential_source = {INSTANCE_METADATA_SOURCE} in place of {chain.source} "
            "(`roleops creds --format profile --assume ROLE_ARN` prints such a block)",
            identity,
        )

    # --- assume ---

    def step_assume(self, ctx: InstanceContext, sts: Any, step: str, target_arn: str) -> dict[str, Any] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        opts = self.opts
        duration, capped = chained_duration(opts.duration)
        kwargs: dict[str, Any] = {"RoleArn": target_arn, "RoleSessionName": opts.session_name}
        if opts.external_id is not None:
            kwargs["ExternalId"] = opts.external_id
        if duration is not None:
            kwargs["DurationSeconds"] = duration
        note = f"; {capped}" if capped else ""
        try:
            resp = sts.assume_role(**kwargs)
        except (ClientError, BotoCoreError) as err:
            code, msg = client_error_parts(err)
            if code == "AccessDenied":
                hint = hint_access_denied(ctx.role_arn, target_arn, opts.external_id)
            elif code == "ValidationError" and "DurationSeconds" in msg:
                hint = (
                    "--duration exceeds the role's MaxSessionDuration (default 3600 s): lower it, or raise it "
                    "with roleops setup ... --max-session-duration SECONDS"
                )
            else:
                hint = sts_hint(code, msg, ctx.region)
            self.emit(step, Status.FAIL, f"sts:AssumeRole into {target_arn} failed: {code}: {msg}{note}", hint)
            return None
        creds = resp["Credentials"]
        self.secrets.add(creds.get("SecretAccessKey"), creds.get("SessionToken"))
        user = resp.get("AssumedRoleUser") or {}
        arn = user.get("Arn")
        expiration = creds.get("Expiration")
        identity = Identity(
            source=SOURCE_ASSUME,
            account=arn.split(":")[4] if arn and arn.count(":") >= 5 else None,
            user_id=user.get("AssumedRoleId"),
            arn=arn,
            access_key_id=mask_key(creds.get("AccessKeyId")),
            expiration=expiration if isinstance(expiration, datetime) else None,
        )
        self.emit(
            step,
            Status.PASS,
            f"assumed {target_arn} as session {opts.session_name}; {_expires(identity.expiration)}{note}",
            identity=identity,
        )
        return resp

    def step_assumed_caller(self, ctx: InstanceContext, step: str, target_arn: str, assumed: dict[str, Any]) -> None:
        from roleops.validate import role_arn_parts

        creds = assumed["Credentials"]
        partition, account, _path, name = role_arn_parts(target_arn)
        expiration = creds.get("Expiration")
        self._check_caller(
            step,
            "assumed credentials",
            (creds["AccessKeyId"], creds["SecretAccessKey"], creds.get("SessionToken")),
            region=ctx.region,
            expected_arn=f"arn:{partition}:sts::{account}:assumed-role/{name}/{self.opts.session_name}",
            expiration=expiration if isinstance(expiration, datetime) else None,
            mismatch_hint="the credentials AssumeRole returned are not a session of the target role: "
            "check --endpoint-url",
        )


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
    validate_options(opts)
    verifier = _Verifier(opts, imds, session, clients_factory, on_step, _resolve_now(now))
    return verifier.run()
