"""Input validation (pure layer): every name, ARN and number is checked before any AWS call.

Each `validate_*` function is a converter: text in, a checked (typed) value out, or a ValidationError (exit 2)
naming the field. The CLI hands them to argparse as `type=` functions (roleops.cli.arg), so a bad value stops the parse
itself; library callers use the same functions, and the request objects (SetupRequest, VerifyOptions, ...) run
them as they are made. One function per rule: the message is the same whichever door the value came in by.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from roleops import arns
from roleops.errors import ValidationError

_IAM_NAME = re.compile(r"[\w+=,.@-]+", re.ASCII)
_INSTANCE_ID = re.compile(r"i-(?:[0-9a-f]{8}|[0-9a-f]{17})")
_SESSION_NAME = re.compile(arns.SESSION_NAME_PATTERN, re.ASCII)
_EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]{2,1224}", re.ASCII)
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d{1,2}")


MAX_PROPAGATION_TIMEOUT = 900.0  # seconds roleops may wait for IAM to propagate (setup, associate)


def validate_role_name(value: str, field: str = "role name") -> str:
    if not isinstance(value, str) or not (1 <= len(value) <= 64) or not _IAM_NAME.fullmatch(value):
        raise ValidationError(field, value, "a role name is 1-64 characters of letters, digits and +=,.@_-")
    return value


def validate_profile_name(value: str, field: str = "instance profile name") -> str:
    if not isinstance(value, str) or not (1 <= len(value) <= 128) or not _IAM_NAME.fullmatch(value):
        raise ValidationError(
            field, value, "an instance profile name is 1-128 characters of letters, digits and +=,.@_-"
        )
    return value


_CONFIG_PROFILE = re.compile(r"[\w+=,.@-]{1,128}", re.ASCII)


def validate_config_profile_name(value: str, field: str = "--profile-name") -> str:
    """A shared-config profile name roleops writes: no spaces, brackets or '#' that would break the INI section."""
    if not isinstance(value, str) or not _CONFIG_PROFILE.fullmatch(value):
        raise ValidationError(field, value, "a profile name here is 1-128 characters of letters, digits and +=,.@_-")
    return value


def validate_instance_id(value: str, field: str = "--instance-id") -> str:
    if not isinstance(value, str) or not _INSTANCE_ID.fullmatch(value):
        raise ValidationError(field, value, "an instance id is i- followed by 8 or 17 lowercase hex digits")
    return value


def validate_role_arn(value: str, field: str = "--assume") -> str:
    parsed = arns.parse_role_arn(value)
    if parsed is None:
        raise ValidationError(
            field,
            value,
            "a role ARN looks like arn:aws:iam::123456789012:role/NAME (partition aws, aws-cn, aws-us-gov, ...)",
        )
    return value


def validate_account_id(value: str, field: str = "--target-account") -> str:
    if not isinstance(value, str) or not arns.ACCOUNT_ID_RE.fullmatch(value):
        raise ValidationError(field, value, "an AWS account id is 12 digits, e.g. 123456789012")
    return value


def validate_assumable_role(value: str, field: str = "--assumable-role") -> str:
    """A role name (in the instance role's account) or a role ARN (in any account of the same partition)."""
    if isinstance(value, str) and value.startswith("arn:"):
        if arns.parse_role_arn(value) is None:
            split = value.split(":")
            if len(split) > 4 and split[4] and not arns.ACCOUNT_ID_RE.fullmatch(split[4]):
                raise ValidationError(field, value, f"the account id {split[4]!r} is not 12 digits")
            return validate_role_arn(value, field)
        return value
    if not isinstance(value, str) or not (1 <= len(value) <= 64) or not _IAM_NAME.fullmatch(value):
        raise ValidationError(
            field, value, "a role name (1-64 letters, digits and +=,.@_-) or a role ARN arn:aws:iam::ACCOUNT:role/NAME"
        )
    return value


def validate_target_profile(value: str, field: str = "--target-profile") -> tuple[str | None, str]:
    """PROFILE (every target account it reaches) or ACCOUNT_ID=PROFILE (that account's roles) -> (account, profile)."""
    text = value if isinstance(value, str) else ""
    account, sep, profile = text.partition("=")
    if sep and account.isdigit():
        validate_account_id(account, field)
    else:
        account, profile = "", text
    if not _CONFIG_PROFILE.fullmatch(profile):
        raise ValidationError(
            field, value, "give PROFILE or ACCOUNT_ID=PROFILE (a profile name of 1-128 letters, digits and +=,.@_-)"
        )
    return (account or None), profile


def role_arn_parts(arn: str) -> tuple[str, str, str, str]:
    """(partition, account, path, name) of a validated role ARN."""
    parsed = arns.parse_role_arn(validate_role_arn(arn))
    assert parsed is not None  # validate_role_arn raised otherwise
    return parsed.partition, parsed.account, parsed.path, parsed.name


def validate_session_name(value: str, field: str = "--session-name") -> str:
    if not isinstance(value, str) or not _SESSION_NAME.fullmatch(value):
        raise ValidationError(field, value, "a role session name is 2-64 characters of letters, digits and +=,.@_-")
    return value


def validate_external_id(value: str, field: str = "--external-id") -> str:
    if not isinstance(value, str) or not _EXTERNAL_ID.fullmatch(value):
        raise ValidationError(field, value, "an external id is 2-1224 characters of letters, digits and +=,.@:/_-")
    return value


def validate_duration(value: int | str, field: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValidationError(field, value, f"a whole number of seconds from {low} to {high}") from None
    if not (low <= number <= high):
        raise ValidationError(field, value, f"a whole number of seconds from {low} to {high}")
    return number


def validate_duration_seconds(value: int | str, field: str = "--duration") -> int:
    """AssumeRole's DurationSeconds range (STS's own; the role's MaxSessionDuration may allow less)."""
    return validate_duration(value, field, arns.MIN_DURATION_SECONDS, arns.MAX_DURATION_SECONDS)


def validate_max_session_duration(value: int | str, field: str = "--max-session-duration") -> int:
    return validate_duration(value, field, arns.MIN_MAX_SESSION_DURATION, arns.MAX_MAX_SESSION_DURATION)


def validate_propagation_timeout(value: float | str, field: str = "--propagation-timeout") -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValidationError(field, value, f"use 1 to {MAX_PROPAGATION_TIMEOUT:g} seconds") from None
    # `not 0 < t <= max` rather than `t <= 0 or t > max`: NaN fails every comparison and would never time out.
    if not 0 < number <= MAX_PROPAGATION_TIMEOUT:
        raise ValidationError(field, value, f"use 1 to {MAX_PROPAGATION_TIMEOUT:g} seconds")
    return number


MAX_CONCURRENCY = 32  # instances handled at once (the contract's range, 1-32)
_TAG_KEY = re.compile(r"[^=]{1,128}")


def validate_concurrency(value: int | str, field: str = "--concurrency") -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValidationError(field, value, f"a whole number from 1 to {MAX_CONCURRENCY}") from None
    if not 1 <= number <= MAX_CONCURRENCY:
        raise ValidationError(field, value, f"a whole number from 1 to {MAX_CONCURRENCY}")
    return number


def validate_tag_filter(value: str, field: str = "--instances-tagged") -> tuple[str, str]:
    """KEY=VALUE -> (KEY, VALUE), as EC2's tag:KEY filter takes them (a key of 1-128, a value of 0-256 characters)."""
    key, sep, tag_value = value.partition("=") if isinstance(value, str) else ("", "", "")
    if not sep or not _TAG_KEY.fullmatch(key) or len(tag_value) > 256:
        raise ValidationError(field, value, "give KEY=VALUE (a tag key of 1-128 characters, a value of 0-256)")
    return key, tag_value


_LAUNCH_TEMPLATE = re.compile(r"lt-[0-9a-f]{8,17}|[a-zA-Z0-9().\-/_]{3,128}")


def validate_launch_template(value: str, field: str = "--launch-template") -> str:
    """A launch template id (lt-...) or name (3-128 of letters, digits and ().-/_, as EC2 allows)."""
    if not isinstance(value, str) or not _LAUNCH_TEMPLATE.fullmatch(value):
        raise ValidationError(field, value, "a launch template is lt-... or a name of 3-128 letters, digits and ().-/_")
    return value


_RATE = re.compile(r"[0-9]{1,6}|(?:100|[1-9]?[0-9])%")
MAX_SMOKE_TIMEOUT = 3600  # seconds an instance's smoke check may run (SSM's executionTimeout)


def validate_rate(value: str, field: str) -> str:
    """N or N% (SSM's MaxConcurrency and MaxErrors), kept as SSM takes it."""
    if not isinstance(value, str) or not _RATE.fullmatch(value):
        raise ValidationError(field, value, "a number (N) or a percentage (N%, 0-100%)")
    return value


def validate_smoke_timeout(value: int | str, field: str = "--timeout") -> int:
    return validate_duration(value, field, 30, MAX_SMOKE_TIMEOUT)


def validate_region(value: str, field: str = "--region") -> str:
    if not isinstance(value, str) or not _REGION.fullmatch(value):
        raise ValidationError(field, value, "a region looks like us-east-1")
    return value


def validate_endpoint_url(value: str, field: str = "--endpoint-url") -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(field, value, "an endpoint is an http:// or https:// URL with a host")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValidationError(field, value, "the port must be a number from 0 to 65535") from None
    return value


def unique(values: Iterable[str], field: str) -> tuple[str, ...]:
    """Reject repeats (IAM names are unique case-insensitively, so compare that way)."""
    seen: dict[str, str] = {}
    for v in values:
        key = v.lower()
        if key in seen:
            raise ValidationError(field, v, f"given twice (IAM names are case-insensitive; first as {seen[key]!r})")
        seen[key] = v
    return tuple(seen.values())
