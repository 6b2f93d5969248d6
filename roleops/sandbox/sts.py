"""Sandbox (product, offline): decides sts:AssumeRole as AWS does before moto mints anything."""

from __future__ import annotations

import re

from roleops import arns
from roleops.evaluator import aws_access_denied_message, evaluate_assume_role

from .state import World
from .wire import ApiError, ApiRequest

# STS's model patterns, as its validation errors quote them (any length: the lengths are checked apart).
_NAME_RE = re.compile(r"^[\w+=,.@-]*$")
_EXTERNAL_ID_RE = re.compile(r"^[\w+=,.@:/-]*$")


def _validation(message: str) -> ApiError:
    return ApiError("ValidationError", message)


def _constraint(value: str, member: str, rule: str) -> ApiError:
    # AWS's own wording for a field that fails its model constraint.
    return _validation(
        f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {rule}"
    )


def _null(member: str) -> ApiError:
    return _validation(
        f"1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
    )


def _check_shape(params: dict[str, str]) -> ApiError | None:
    """Input validation AWS does before looking at any policy."""
    role_arn = params.get("RoleArn")
    if not role_arn:
        return _validation(
            "1 validation error detected: Value null at 'roleArn' failed to satisfy constraint: Member must not be null"
        )
    if len(role_arn) < 20 or len(role_arn) > 2048:
        return _constraint(role_arn, "roleArn", "Member must have length greater than or equal to 20")
    name = params.get("RoleSessionName")
    if name is None:
        return _null("roleSessionName")
    if len(name) < 2:
        return _constraint(name, "roleSessionName", "Member must have length greater than or equal to 2")
    if len(name) > 64:
        return _constraint(name, "roleSessionName", "Member must have length less than or equal to 64")
    if not _NAME_RE.match(name):
        return _constraint(name, "roleSessionName", r"Member must satisfy regular expression pattern: [\w+=,.@-]*")
    duration = params.get("DurationSeconds")
    if duration is not None:
        try:
            seconds = int(duration)
        except ValueError:
            return _validation(f"Value '{duration}' for parameter DurationSeconds is invalid. Must be an integer")
        if seconds < arns.MIN_DURATION_SECONDS:
            return _constraint(duration, "durationSeconds", "Member must have value greater than or equal to 900")
        if seconds > arns.MAX_DURATION_SECONDS:
            return _constraint(duration, "durationSeconds", "Member must have value less than or equal to 43200")
    external_id = params.get("ExternalId")
    if external_id is not None:
        if len(external_id) < 2:
            return _constraint(external_id, "externalId", "Member must have length greater than or equal to 2")
        if len(external_id) > 1224:
            return _constraint(external_id, "externalId", "Member must have length less than or equal to 1224")
        if not _EXTERNAL_ID_RE.match(external_id):
            return _constraint(
                external_id, "externalId", r"Member must satisfy regular expression pattern: [\w+=,.@:/-]*"
            )
    source_identity = params.get("SourceIdentity")
    if source_identity is not None:
        if not 2 <= len(source_identity) <= 64 or not _NAME_RE.match(source_identity):
            return _constraint(
                source_identity, "sourceIdentity", r"Member must satisfy regular expression pattern: [\w+=,.@-]*"
            )
        if source_identity.lower().startswith("aws:"):
            return _validation("SourceIdentity cannot start with the reserved prefix 'aws:'")
    return None


def check_assume_role(world: World, request: ApiRequest) -> None:
    """Return when AWS would let the call through (moto then mints the session); raise AWS's refusal otherwise.

    The caller holds world.lock.
    """
    params = request.params
    if not request.access_key_id:
        raise ApiError("MissingAuthenticationToken", "Request is missing Authentication Token", status=403)
    caller = world.resolve_caller(request.access_key_id)
    presented_token = request.header("X-Amz-Security-Token")
    if caller is None or (caller.session_token is not None and presented_token != caller.session_token):
        raise ApiError("InvalidClientTokenId", "The security token included in the request is invalid.", status=403)
    if caller.expired:
        raise ApiError("ExpiredToken", "The security token included in the request is expired")
    if (refusal := _check_shape(params)) is not None:
        raise refusal

    target_arn = params["RoleArn"]
    principal = caller.principal
    denied = ApiError("AccessDenied", aws_access_denied_message(principal, target_arn), status=403)
    role = world.role_by_arn(target_arn) if arns.parse_role_arn(target_arn) else None
    if role is None:
        raise denied  # AWS does not say whether the role exists
    trust = world.effective_trust(role)
    if trust is None:
        raise denied  # the role (or its trust) is too new for STS to have seen it
    context = {"sts:RoleSessionName": params["RoleSessionName"], "aws:PrincipalArn": principal.arn}
    for param, key in (("ExternalId", "sts:ExternalId"), ("SourceIdentity", "sts:SourceIdentity")):
        if params.get(param) is not None:
            context[key] = params[param]
    verdict = evaluate_assume_role(
        principal=principal,
        identity_policies=caller.identity_policies,
        trust_policy=trust,
        target_role_arn=target_arn,
        boundary=caller.boundary,
        context=context,
    )
    if not verdict.allowed:
        raise denied

    duration = int(params.get("DurationSeconds") or arns.DEFAULT_MAX_SESSION_DURATION)
    if caller.is_role_session and duration > arns.CHAINED_SESSION_MAX:
        raise _validation(
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining."
        )
    try:
        max_session = int(role.max_session_duration or arns.DEFAULT_MAX_SESSION_DURATION)
    except (TypeError, ValueError):
        max_session = arns.DEFAULT_MAX_SESSION_DURATION
    if duration > max_session:
        raise _validation("The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")
