"""Credentials export (service layer): the instance role's (or an assumed role's) keys, formatted like the AWS CLI.

The only roleops module whose output carries secrets, and only through `format_credentials`.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from roleops import arns, sts
from roleops.arns import iso_z
from roleops.default_chain import INSTANCE_METADATA_SOURCE
from roleops.errors import EnvironmentProblem, UsageError, ValidationError
from roleops.instance import BrokenLink, InstanceContext, read_instance
from roleops.results import mask_key

if TYPE_CHECKING:  # botocore is imported lazily so that `roleops --help` stays fast
    from roleops.clients import Clients, Session
    from roleops.imds import ImdsClient

FORMATS = ("env", "env-no-export", "json", "process")
DEFAULT_SESSION_NAME = "roleops-creds"


@dataclass(frozen=True, repr=False)
class Credentials:
    """A set of AWS credentials. Its repr shows the masked key id and the expiry, never a secret."""

    access_key_id: str
    secret_access_key: str = field(compare=False)
    session_token: str | None = field(default=None, compare=False)
    expiration: datetime | None = None
    arn: str | None = None  # the role (instance) or assumed-role session (assume) they belong to

    def __repr__(self) -> str:
        return (
            f"Credentials(access_key_id={mask_key(self.access_key_id)!r}, "
            f"expiration={iso_z(self.expiration)!r}, arn={self.arn!r})"
        )

    __str__ = __repr__


def _validate(
    assume: str | None, session_name: str | None, external_id: str | None, duration: int | None
) -> int | None:
    from roleops.validate import (
        validate_duration_seconds,
        validate_external_id,
        validate_role_arn,
        validate_session_name,
    )

    if assume is not None:
        validate_role_arn(assume, "--assume")
        if session_name is not None:  # None: the caller names the session itself (profile: after the instance)
            validate_session_name(session_name, "--session-name")
    if external_id is not None:
        validate_external_id(external_id, "--external-id")
    if duration is None:
        return None
    if assume is None:
        raise UsageError("--duration applies only with --assume", "instance role credentials last as IMDS says")
    number = validate_duration_seconds(duration, "--duration")
    if number > arns.CHAINED_SESSION_MAX:
        # Unlike verify (which caps and says so), creds would print shorter-lived keys than asked: refuse.
        raise ValidationError(
            "--duration",
            duration,
            f"at most {arns.CHAINED_SESSION_MAX} seconds: a role assumed from the instance role's session is "
            "role chaining, which AWS limits to 1 hour",
        )
    return number


def get_credentials(
    *,
    imds: ImdsClient,
    session: Session,
    assume: str | None = None,
    session_name: str = DEFAULT_SESSION_NAME,
    external_id: str | None = None,
    duration: int | None = None,
    endpoint_url: str | None = None,
    clients_factory: Callable[..., Clients] | None = None,
    now: datetime | None = None,
) -> Credentials:
    """The instance role's credentials from IMDS, or, with `assume`, an AssumeRole session made with them.

    Raises UsageError (exit 2) on bad input before any call, EnvironmentProblem / ImdsError (exit 3) when the
    instance has no usable role, AwsError (exit 3) when STS refuses.
    """
    duration = _validate(assume, session_name, external_id, duration)
    ctx = _instance(imds, now or datetime.now(timezone.utc))
    doc = ctx.credentials
    if assume is None:
        return Credentials(
            access_key_id=ctx.keys.access_key_id,
            secret_access_key=ctx.keys.secret_access_key,
            session_token=doc.session_token,
            expiration=doc.expiration,
            arn=ctx.role_arn,
        )
    client = sts.make_sts(
        session, ctx.keys, region=ctx.region, endpoint_url=endpoint_url, clients_factory=clients_factory
    )
    try:
        resp = sts.assume_role(client, assume, session_name, external_id=external_id, duration=duration)
    except sts.StsFailure as err:
        hint = sts.assume_hint(
            err, instance_role_arn=ctx.role_arn, target_arn=assume, external_id=external_id, region=ctx.region
        )
        raise sts.StsFailure(err.operation, err.code, err.aws_message, hint) from err
    creds = resp["Credentials"]
    expiration = creds.get("Expiration")
    return Credentials(
        access_key_id=creds["AccessKeyId"],
        secret_access_key=creds["SecretAccessKey"],
        session_token=creds.get("SessionToken"),
        expiration=expiration if isinstance(expiration, datetime) else None,
        arn=(resp.get("AssumedRoleUser") or {}).get("Arn"),
    )


def _instance(imds: ImdsClient, now: datetime) -> InstanceContext:
    """The instance's role, read as verify reads it; a broken link is an environment problem here (exit 3)."""
    try:
        return read_instance(imds, now=now)
    except BrokenLink as broken:
        raise EnvironmentProblem(broken.message, "", broken.hint) from None


def format_profile(
    *,
    profile_name: str,
    role_arn: str,
    session_name: str,
    region: str,
    external_id: str | None = None,
    duration: int | None = None,
) -> str:
    """The ~/.aws/config block with which any SDK on the instance assumes `role_arn` from the instance role.

    `credential_source = Ec2InstanceMetadata` makes the SDK read the instance role from IMDS and call AssumeRole
    itself, refreshing both as they near expiry: no secret is in the block, and nothing has to re-run roleops.
    """
    lines = [
        f"[profile {profile_name}]",
        f"role_arn = {role_arn}",
        f"credential_source = {INSTANCE_METADATA_SOURCE}",
        f"role_session_name = {session_name}",
        f"region = {region}",
    ]
    if external_id is not None:
        lines.append(f"external_id = {external_id}")
    if duration is not None:
        lines.append(f"duration_seconds = {duration}")
    return "\n".join(lines) + "\n"


def profile_for_instance(
    *,
    imds: ImdsClient,
    assume: str,
    profile_name: str | None = None,
    session_name: str | None = None,
    external_id: str | None = None,
    duration: int | None = None,
    region: str | None = None,
) -> str:
    """`creds --format profile`: the config block for this instance (its region; sessions named after it).

    Reads the instance's role as verify does (the block needs a role to start from); makes no STS call, and the
    block holds no secret. Raises UsageError on bad input, EnvironmentProblem when the instance has no role.
    """
    from roleops.validate import role_arn_parts, validate_config_profile_name

    duration = _validate(assume, session_name, external_id, duration)
    name = validate_config_profile_name(profile_name) if profile_name is not None else role_arn_parts(assume)[3]
    ctx = _instance(imds, datetime.now(timezone.utc))  # the block starts from this role: it must be served
    return format_profile(
        profile_name=name,
        role_arn=assume,
        # EC2 names the instance role's sessions after the instance; the assumed sessions say the same in CloudTrail.
        session_name=session_name or ctx.instance_id,
        region=region or ctx.region,
        external_id=external_id,
        duration=duration,
    )


def _expiry(creds: Credentials) -> str | None:
    # The AWS CLI prints the expiry as datetime.isoformat() of an aware UTC datetime: 2018-01-26T05:40:31+00:00.
    if creds.expiration is None:
        return None
    when = creds.expiration if creds.expiration.tzinfo else creds.expiration.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).isoformat()


def format_credentials(creds: Credentials, fmt: str) -> str:
    """Render credentials as `aws configure export-credentials --format FMT` does (values shell-quoted).

    env / env-no-export: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_CREDENTIAL_EXPIRATION
    lines (the last two only when known); json: {"AccessKeyId", "SecretAccessKey", "SessionToken",
    "Expiration"}; process: the credential_process document, {"Version": 1, ...}. Ends with a newline.
    """
    if fmt not in FORMATS:
        raise UsageError(f"unknown credentials format {fmt!r}", "choose one of " + ", ".join(FORMATS))
    expiry = _expiry(creds)
    if fmt in ("env", "env-no-export"):
        pairs = [("AWS_ACCESS_KEY_ID", creds.access_key_id), ("AWS_SECRET_ACCESS_KEY", creds.secret_access_key)]
        if creds.session_token is not None:
            pairs.append(("AWS_SESSION_TOKEN", creds.session_token))
        if expiry is not None:
            pairs.append(("AWS_CREDENTIAL_EXPIRATION", expiry))
        prefix = "export " if fmt == "env" else ""
        # shlex.quote leaves base64 keys and ISO times bare (as the AWS CLI prints them) and quotes anything else.
        return "".join(f"{prefix}{name}={shlex.quote(value)}\n" for name, value in pairs)
    doc: dict[str, Any] = {"Version": 1} if fmt == "process" else {}
    doc["AccessKeyId"] = creds.access_key_id
    doc["SecretAccessKey"] = creds.secret_access_key
    if creds.session_token is not None:
        doc["SessionToken"] = creds.session_token
    if expiry is not None:
        doc["Expiration"] = expiry
    return json.dumps(doc, indent=2, separators=(",", ": ")) + "\n"
