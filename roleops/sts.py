"""STS with exactly the keys under test (AWS layer): the client, the two calls verify and creds make, their hints.

Like aws.py, this is where botocore's errors are caught: a refused or failed call becomes an `StsFailure` carrying
AWS's code and message (or botocore's error class and text), which verify turns into a failed step and creds into
an error. The keys are given to each client, never taken from the default chain.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from roleops import arns
from roleops.errors import AwsError

if TYPE_CHECKING:  # botocore is imported lazily so that `roleops --help` stays fast
    from roleops.clients import Clients, Session


@dataclass(frozen=True, repr=False)
class Keys:
    """A set of keys to sign with. Its repr never shows the secret."""

    access_key_id: str
    secret_access_key: str = field(compare=False)
    session_token: str | None = field(default=None, compare=False)

    def __repr__(self) -> str:
        from roleops.results import mask_key

        return f"Keys({mask_key(self.access_key_id)!r})"


class StsFailure(AwsError):
    """An STS call failed: AWS refused it (its code and message) or botocore could not make it (class and text)."""


def make_sts(
    session: Session,
    keys: Keys,
    *,
    region: str,
    endpoint_url: str | None,
    clients_factory: Callable[..., Clients] | None = None,
) -> Any:
    """An STS client that signs with exactly `keys`, at `region`'s endpoint.

    The keys go to the client, not the session, so one session serves every set of keys of a run (a botocore
    session parses its endpoint data and models again for its first client).
    """
    from roleops.clients import Clients, core_session

    # Regional STS even if AWS_STS_REGIONAL_ENDPOINTS=legacy: the instance's region.
    core_session(session).set_config_variable("sts_regional_endpoints", "regional")
    factory = clients_factory or Clients
    credentials = {
        "aws_access_key_id": keys.access_key_id,
        "aws_secret_access_key": keys.secret_access_key,
        "aws_session_token": keys.session_token,
    }
    return factory(session, endpoint_url=endpoint_url, region=region, credentials=credentials).sts(region)


def _call(sts: Any, operation: str, api_name: str, **kwargs: Any) -> dict[str, Any]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return getattr(sts, operation)(**kwargs)
    except ClientError as err:
        error = err.response.get("Error") or {}
        code, message = str(error.get("Code") or "Unknown"), str(error.get("Message") or "")
        raise StsFailure(f"sts:{api_name}", code, message) from err
    except BotoCoreError as err:  # no endpoint, a timeout, an answer that is not STS's
        raise StsFailure(f"sts:{api_name}", type(err).__name__, str(err)) from err


def get_caller_identity(sts: Any) -> dict[str, Any]:
    return _call(sts, "get_caller_identity", "GetCallerIdentity")


def assume_role(
    sts: Any,
    role_arn: str,
    session_name: str,
    *,
    external_id: str | None = None,
    duration: int | None = None,
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"RoleArn": role_arn, "RoleSessionName": session_name}
    if external_id is not None:
        kwargs["ExternalId"] = external_id
    if duration is not None:
        kwargs["DurationSeconds"] = duration
    resp = _call(sts, "assume_role", "AssumeRole", **kwargs)
    from roleops.redact import register

    creds = resp.get("Credentials") or {}
    register(creds.get("SecretAccessKey"), creds.get("SessionToken"))  # new secrets: scrubbed from --debug logs
    return resp


def chained_duration(duration: int | None) -> tuple[int | None, str]:
    """DurationSeconds for a session assumed from the instance-role session, and why it was capped."""
    cap = arns.CHAINED_SESSION_MAX
    if duration is None or duration <= cap:
        return duration, ""
    return cap, (
        f"DurationSeconds capped at {cap} s (asked {duration}): a role assumed from the "
        "instance role's session is role chaining, which AWS limits to 1 hour"
    )


# --- hints --------------------------------------------------------------------------------------------------


def hint_setup(role: str, targets: tuple[str, ...] | list[str] = ("TARGET_NAME",)) -> str:
    """The setup command that mends the instance role and its assumable roles."""
    return f"roleops setup --instance-role {role} " + " ".join(f"--assumable-role {t}" for t in targets)


def hint_access_denied(instance_role_arn: str, target_arn: str, external_id: str | None) -> str:
    role = arns.name_of(instance_role_arn)
    target = arns.name_of(target_arn)
    home, other = arns.account_of(instance_role_arn), arns.account_of(target_arn)
    if home and other and home != other:
        # Across accounts each side lives in its own account, and each must allow (no same-account exception).
        text = (
            f"across accounts both sides must allow: in account {home}, the instance role {role} must allow "
            f"sts:AssumeRole on {target_arn}; in account {other}, {target}'s trust policy must name "
            f"{instance_role_arn}"
        )
        fix = f"{hint_setup(role, [target_arn])} --target-profile {other}=PROFILE"
    else:
        text = (
            f"check both policies: the instance role {role} must allow sts:AssumeRole on {target_arn}, and "
            f"{target}'s trust policy must name {instance_role_arn}"
        )
        fix = hint_setup(role, [target])
    if external_id is not None:
        text += " with an sts:ExternalId condition equal to --external-id"
    else:
        text += "; if that trust requires sts:ExternalId, pass --external-id"
    return text + f". IAM changes take a few seconds to propagate. Fix: {fix}"


def hint(code: str, message: str, region: str) -> str:
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


def assume_hint(
    err: StsFailure, *, instance_role_arn: str, target_arn: str, external_id: str | None, region: str
) -> str:
    """What to check when AssumeRole from the instance role failed."""
    if err.code == "AccessDenied":
        return hint_access_denied(instance_role_arn, target_arn, external_id)
    if err.code == "ValidationError" and "DurationSeconds" in err.aws_message:
        return (
            "--duration exceeds the role's MaxSessionDuration (default 3600 s): lower it, or raise it "
            "with roleops setup ... --max-session-duration SECONDS"
        )
    return hint(err.code, err.aws_message, region)
