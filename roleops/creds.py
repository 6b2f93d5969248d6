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

from roleops.errors import AwsError, EnvironmentProblem, UsageError, ValidationError
from roleops.results import iso_z, mask_key
from roleops.verify import (
    CHAINED_SESSION_MAX,
    INSTANCE_METADATA_SOURCE,
    client_error_parts,
    hint_access_denied,
    hint_setup,
    make_sts,
    partition_of,
    sts_hint,
)

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
    from roleops.validate import validate_duration, validate_external_id, validate_role_arn, validate_session_name

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
    number = validate_duration(duration, "--duration", 900, 43200)
    if number > CHAINED_SESSION_MAX:
        # Unlike verify (which caps and says so), creds would print shorter-lived keys than asked: refuse.
        raise ValidationError(
            "--duration",
            duration,
            f"at most {CHAINED_SESSION_MAX} seconds: a role assumed from the instance role's session is "
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
    from botocore.exceptions import BotoCoreError, ClientError

    duration = _validate(assume, session_name, external_id, duration)
    ident = imds.identity()
    iid = ident.instance_id
    roles = imds.role_names()
    if not roles:
        raise EnvironmentProblem(
            f"instance {iid} has no role in instance metadata",
            "no instance profile (with a role) is associated",
            f"roleops associate --instance-id {iid} --instance-profile NAME",
        )
    role = roles[0]
    doc = imds.role_credentials(role)
    if doc is None:
        raise EnvironmentProblem(
            f"IMDS lists role {role} but has no credential document for it", "HTTP 404", "retry in a few seconds"
        )
    if not doc.ok:
        raise EnvironmentProblem(
            f"IMDS could not get credentials for role {role}",
            f"{doc.code}: {doc.message}" if doc.message else doc.code,
            f"the role's trust policy must allow ec2.amazonaws.com: {hint_setup(role)}",
        )
    if doc.missing:
        raise EnvironmentProblem(
            f"the credential document of role {role} is incomplete", "it lacks " + ", ".join(doc.missing)
        )
    when = now or datetime.now(timezone.utc)
    if doc.expiration is not None and doc.expiration <= when:
        raise EnvironmentProblem(
            f"the credentials IMDS serves for role {role} expired at {iso_z(doc.expiration)}",
            f"now is {iso_z(when)}",
            "check the instance clock and retry",
        )
    assert doc.access_key_id and doc.secret_access_key  # not in `missing`
    partition = partition_of(ident.region)
    role_arn = f"arn:{partition}:iam::{ident.account_id}:role/{role}"
    if assume is None:
        return Credentials(
            access_key_id=doc.access_key_id,
            secret_access_key=doc.secret_access_key,
            session_token=doc.session_token,
            expiration=doc.expiration,
            arn=role_arn,
        )

    kwargs: dict[str, Any] = {"RoleArn": assume, "RoleSessionName": session_name}
    if external_id is not None:
        kwargs["ExternalId"] = external_id
    if duration is not None:
        kwargs["DurationSeconds"] = duration
    try:
        sts = make_sts(
            session,
            clients_factory,
            access_key_id=doc.access_key_id,
            secret_access_key=doc.secret_access_key,
            session_token=doc.session_token,
            region=ident.region,
            endpoint_url=endpoint_url,
        )
        resp = sts.assume_role(**kwargs)
    except ClientError as err:
        code, msg = client_error_parts(err)
        hint = (
            hint_access_denied(role_arn, assume, external_id)
            if code == "AccessDenied"
            else sts_hint(code, msg, ident.region)
        )
        raise AwsError("sts:AssumeRole", code, msg, hint) from err
    except BotoCoreError as err:
        code, msg = client_error_parts(err)
        raise EnvironmentProblem("sts:AssumeRole failed", msg, sts_hint(code, msg, ident.region)) from err
    creds = resp["Credentials"]
    from roleops.redact import register

    register(creds.get("SecretAccessKey"), creds.get("SessionToken"))  # new secrets: scrubbed from --debug logs
    expiration = creds.get("Expiration")
    return Credentials(
        access_key_id=creds["AccessKeyId"],
        secret_access_key=creds["SecretAccessKey"],
        session_token=creds.get("SessionToken"),
        expiration=expiration if isinstance(expiration, datetime) else None,
        arn=(resp.get("AssumedRoleUser") or {}).get("Arn"),
    )


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

    Reads only the instance identity and the role IMDS lists (the block needs a role to start from); makes no STS
    call and holds no secret. Raises UsageError on bad input, EnvironmentProblem when the instance has no role.
    """
    from roleops.validate import role_arn_parts, validate_config_profile_name

    duration = _validate(assume, session_name, external_id, duration)
    name = validate_config_profile_name(profile_name) if profile_name is not None else role_arn_parts(assume)[3]
    ident = imds.identity()
    if not imds.role_names():
        raise EnvironmentProblem(
            f"instance {ident.instance_id} has no role in instance metadata",
            "the profile's credential_source = Ec2InstanceMetadata would find nothing to start from",
            f"roleops associate --instance-id {ident.instance_id} --instance-profile NAME",
        )
    return format_profile(
        profile_name=name,
        role_arn=assume,
        # EC2 names the instance role's sessions after the instance; the assumed sessions say the same in CloudTrail.
        session_name=session_name or ident.instance_id,
        region=region or ident.region,
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
