"""Policy evaluator (pure layer): decides sts:AssumeRole as AWS does and names the deciding statement."""

from __future__ import annotations

import copy
import enum
import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from roleops import arns

__all__ = [
    "AssumeRoleVerdict",
    "Decision",
    "NamedPolicy",
    "Principal",
    "PrincipalKind",
    "Verdict",
    "aws_access_denied_message",
    "evaluate_assume_role",
    "evaluate_identity",
    "evaluate_trust",
    "parse_principal_arn",
]

ASSUME_ROLE = "sts:AssumeRole"

# --- public types --------------------------------------------------------------------------------


class Decision(enum.Enum):
    ALLOW = "allow"
    EXPLICIT_DENY = "explicit-deny"
    IMPLICIT_DENY = "implicit-deny"


class PrincipalKind(enum.Enum):
    ROLE_SESSION = "role-session"  # credentials from sts:AssumeRole (incl. EC2 instance role sessions)
    USER = "user"
    ROOT = "root"
    SERVICE = "service"  # e.g. ec2.amazonaws.com


@dataclass(frozen=True, kw_only=True)
class Principal:
    """Who is asking. Only the fields that matter for the kind need to be set."""

    kind: PrincipalKind
    account: str = ""  # 12 digits; "" for services
    arn: str = ""  # role ARN for ROLE_SESSION, user ARN for USER, arn:aws:iam::ACCT:root for ROOT
    session_arn: str = ""  # arn:aws:sts::ACCT:assumed-role/NAME/SESSION for ROLE_SESSION
    unique_id: str = ""  # AROA.../AIDA... of the role/user, when known
    service: str = ""  # for SERVICE
    partition: str = "aws"


@dataclass(frozen=True, kw_only=True)
class NamedPolicy:
    """A policy document plus the name verdicts use to point at it (e.g. "inline:roleops-assume-roles")."""

    name: str
    document: dict


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """The decision of one side (identity, trust or boundary) and the statement that decided it."""

    decision: Decision
    policy: str | None = None  # NamedPolicy.name of the deciding statement
    statement_index: int | None = None  # index within that policy's Statement list
    sid: str | None = None
    statement: dict | None = None  # the deciding statement as written
    reason: str = ""  # one human line

    @property
    def allowed(self) -> bool:
        return self.decision is Decision.ALLOW


@dataclass(frozen=True, kw_only=True)
class AssumeRoleVerdict:
    """Both sides of an sts:AssumeRole decision (plus the caller's permissions boundary, when it has one)."""

    identity: Verdict
    trust: Verdict
    boundary: Verdict | None = None

    def _sides(self) -> list[tuple[str, Verdict]]:
        sides = [("identity", self.identity), ("trust", self.trust)]
        if self.boundary is not None:
            sides.append(("boundary", self.boundary))
        return sides

    @property
    def allowed(self) -> bool:
        # Every side must allow; a side only allows when it has no explicit deny, so this also
        # covers "no explicit deny anywhere".
        return all(verdict.allowed for _, verdict in self._sides())

    @property
    def denied_by(self) -> str | None:
        """The first failing side, explicit denies first (they win whatever the other sides say)."""
        sides = self._sides()
        for name, verdict in sides:
            if verdict.decision is Decision.EXPLICIT_DENY:
                return name
        for name, verdict in sides:
            if not verdict.allowed:
                return name
        return None


# --- ARNs (the patterns are roleops.arns', the one home of AWS identifiers) ---------------------------


def parse_principal_arn(arn: str) -> Principal:
    """Build a Principal from an STS caller ARN (GetCallerIdentity's Arn).

    Session ARNs drop the role's path, so the role ARN is rebuilt with path "/"; trust matching
    knows this and compares account and name when the policy names a longer path.
    """
    if not isinstance(arn, str):
        raise ValueError(f"not an ARN: {arn!r}")
    text = arn.strip()
    if m := arns.ASSUMED_ROLE_ARN_RE.fullmatch(text):
        part, acct, name = m["partition"], m["account"], m["name"]
        return Principal(
            kind=PrincipalKind.ROLE_SESSION,
            account=acct,
            arn=f"arn:{part}:iam::{acct}:role/{name}",
            session_arn=text,
            partition=part,
        )
    if m := arns.USER_ARN_RE.fullmatch(text):
        return Principal(kind=PrincipalKind.USER, account=m["account"], arn=text, partition=m["partition"])
    if m := arns.ROOT_ARN_RE.fullmatch(text):
        return Principal(kind=PrincipalKind.ROOT, account=m["account"], arn=text, partition=m["partition"])
    raise ValueError(f"not an assumed-role, IAM user or root ARN: {arn!r}")


def _role_arn_of(principal: Principal) -> str:
    """The role ARN of a role session, falling back to the session ARN when only that is known."""
    if principal.arn:
        return principal.arn
    if m := arns.ASSUMED_ROLE_ARN_RE.fullmatch(principal.session_arn):
        return f"arn:{m['partition']}:iam::{m['account']}:role/{m['name']}"
    return ""


def _describe(principal: Principal) -> str:
    """The principal as a reason names it: what AWS would print as the caller."""
    if principal.kind is PrincipalKind.SERVICE:
        return principal.service or "an unnamed service"
    if principal.kind is PrincipalKind.ROLE_SESSION and principal.session_arn:
        return principal.session_arn
    if principal.arn:
        return principal.arn
    if principal.account:
        return f"a {principal.kind.value} of account {principal.account}"
    return f"an unnamed {principal.kind.value}"


def aws_access_denied_message(principal: Principal, target_role_arn: str) -> str:
    """AWS's AccessDenied text for sts:AssumeRole, so the sandbox's errors read like the real ones."""
    return f"User: {_describe(principal)} is not authorized to perform: {ASSUME_ROLE} on resource: {target_role_arn}"


# --- small helpers ---------------------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    """AWS accepts a single value wherever a list is allowed ("string-or-list")."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _as_str(value: Any) -> str:
    # JSON booleans and numbers in Condition values compare as their policy text ("true", "3600").
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _one_line(text: str) -> str:
    # Sids and names come from user-written JSON: never let them break the one-line contract.
    return " ".join(str(text).split())


@functools.lru_cache(maxsize=1024)
def _glob_re(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.compile(body, (re.IGNORECASE if ignore_case else 0) | re.DOTALL)


def _glob(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM's wildcard match: `*` any run of characters, `?` exactly one, nothing else special."""
    return _glob_re(pattern, ignore_case).fullmatch(value) is not None


def _arn_like(pattern: str, value: str) -> bool:
    # AWS checks each of the six colon-separated ARN parts on its own, so `*` cannot span parts
    # (the resource part, the sixth, may itself contain colons).
    p_parts = pattern.split(":", 5)
    v_parts = value.split(":", 5)
    if len(p_parts) != 6 or len(v_parts) != 6:
        return False
    return all(_glob(p, v) for p, v in zip(p_parts, v_parts, strict=True))


def _sid_text(statement: Mapping[str, Any]) -> str:
    sid = statement.get("Sid")
    return f' (Sid "{_one_line(sid)}")' if sid else ""


def _statements(document: Any) -> list[Any]:
    if not isinstance(document, Mapping):
        return []
    return _as_list(document.get("Statement"))


# --- conditions --------------------------------------------------------------------------------------


class _Unsupported(Exception):
    """A condition operator this evaluator does not implement: the statement then does not match."""


_NEGATED = {
    "stringnotequals",
    "stringnotequalsignorecase",
    "stringnotlike",
    "arnnotequals",
    "arnnotlike",
    "numericnotequals",
}


_NUMERIC: dict[str, Callable[[float, float], bool]] = {
    "numericequals": lambda a, b: a == b,
    "numericnotequals": lambda a, b: a == b,  # the negation is applied by _one_value
    "numericlessthan": lambda a, b: a < b,
    "numericlessthanequals": lambda a, b: a <= b,
    "numericgreaterthan": lambda a, b: a > b,
    "numericgreaterthanequals": lambda a, b: a >= b,
}


def _positive_match(op: str, context_value: str, policy_value: str) -> bool:
    """Whether one context value matches one policy value under the operator's positive form."""
    if op in ("stringequals", "stringnotequals"):
        return context_value == policy_value
    if op in ("stringequalsignorecase", "stringnotequalsignorecase"):
        return context_value.casefold() == policy_value.casefold()
    if op in ("stringlike", "stringnotlike"):
        return _glob(policy_value, context_value)
    if op in ("arnequals", "arnlike", "arnnotequals", "arnnotlike"):
        # AWS documents ArnEquals and ArnLike identically: per-part, case-sensitive, wildcards allowed.
        return _arn_like(policy_value, context_value)
    if op == "bool":
        return context_value.strip().lower() == policy_value.strip().lower()
    if op in _NUMERIC:
        try:
            return _NUMERIC[op](float(context_value), float(policy_value))
        except ValueError:
            return False  # a non-number on either side never matches, as in AWS
    raise _Unsupported(op)


_BASE_OPERATORS = {
    "stringequals",
    "stringnotequals",
    "stringequalsignorecase",
    "stringnotequalsignorecase",
    "stringlike",
    "stringnotlike",
    "arnequals",
    "arnlike",
    "arnnotequals",
    "arnnotlike",
    "bool",
    "numericequals",
    "numericnotequals",
    "numericlessthan",
    "numericlessthanequals",
    "numericgreaterthan",
    "numericgreaterthanequals",
}


def _one_value(op: str, context_value: str, policy_values: list[str]) -> bool:
    # Several policy values for one key are ORed; a negated operator holds when none of them match.
    hit = any(_positive_match(op, context_value, pv) for pv in policy_values)
    return not hit if op in _NEGATED else hit


def _condition_holds(operator: str, key: str, policy_value: Any, context: Mapping[str, Any]) -> bool:
    """One operator/key pair against the request context, following AWS's documented rules:

    - a missing key makes the condition false, except for negated operators (StringNotEquals,
      StringNotLike, ArnNotLike, ...) where it is true;
    - `...IfExists`: a missing key makes it true, a present key is checked normally;
    - `Null`: "true" holds when the key is missing, "false" when present;
    - `ForAnyValue:` holds if any context value passes (false when the key is missing);
      `ForAllValues:` holds if every context value passes (true when the key is missing or empty).
    Raises _Unsupported for anything else.
    """
    op = operator.strip()
    set_prefix = ""
    if ":" in op:
        set_prefix, op = op.split(":", 1)
        set_prefix = set_prefix.lower()
        if set_prefix not in ("foranyvalue", "forallvalues"):
            raise _Unsupported(operator)
    op_l = op.lower()
    if_exists = op_l.endswith("ifexists") and op_l != "ifexists"
    if if_exists:
        op_l = op_l[: -len("ifexists")]
    policy_values = [_as_str(v) for v in _as_list(policy_value)]

    present = key.lower() in context
    raw = context.get(key.lower())
    values = [_as_str(v) for v in _as_list(raw)] if present else []

    if op_l == "null":
        if set_prefix or if_exists:
            raise _Unsupported(operator)
        want_missing = any(pv.strip().lower() == "true" for pv in policy_values)
        return (not present) == want_missing
    if op_l not in _BASE_OPERATORS:
        raise _Unsupported(operator)

    if set_prefix == "forallvalues":
        return all(_one_value(op_l, v, policy_values) for v in values)
    if set_prefix == "foranyvalue":
        return any(_one_value(op_l, v, policy_values) for v in values)
    if not present:
        return if_exists or op_l in _NEGATED
    # A plain operator on a multi-valued key (rare here: context values are normally strings)
    # is treated like ForAnyValue.
    return any(_one_value(op_l, v, policy_values) for v in values)


def _conditions_hold(condition: Any, context: Mapping[str, Any]) -> bool:
    """All operators and all keys in a Condition block must hold (they are ANDed)."""
    if condition is None:
        return True
    if not isinstance(condition, Mapping):
        raise _Unsupported("(Condition is not an object)")
    for operator, block in condition.items():
        if not isinstance(block, Mapping):
            raise _Unsupported(str(operator))
        for key, value in block.items():
            if not _condition_holds(str(operator), str(key), value, context):
                return False
    return True


def _lower_keys(context: Mapping[str, Any] | None) -> dict[str, Any]:
    # Condition keys are case-insensitive in AWS; lowering once makes every lookup so.
    return {str(k).lower(): v for k, v in (context or {}).items()}


# --- principals ------------------------------------------------------------------------------------


def _principal_entry_matches(kind_key: str, value: str, principal: Principal, notes: list[str]) -> bool:
    """Whether one Principal value (e.g. "AWS": "arn:...") names this principal.

    Notes explain near-misses that a human would otherwise puzzle over (a bare unique id).
    """
    kind = kind_key.lower()
    is_aws = principal.kind is not PrincipalKind.SERVICE
    if kind == "service":
        return (
            principal.kind is PrincipalKind.SERVICE
            and bool(principal.service)
            and value.strip().lower() == principal.service.strip().lower()
        )
    if kind != "aws" or not is_aws:
        # Federated and CanonicalUser principals are never these kinds; AWS keys never name services.
        return False
    value = value.strip()
    if value == "*":
        return True
    if arns.ACCOUNT_ID_RE.fullmatch(value):
        # A bare account id carries no partition; it delegates to the whole account.
        return value == principal.account
    if arns.UNIQUE_ID_RE.fullmatch(value):
        if principal.unique_id and principal.unique_id == value:
            return True
        their_id = principal.unique_id or "unknown"
        notes.append(
            f"it names the bare unique id {value}, which IAM shows when the named role or user "
            f"was deleted; this principal's id is {their_id}, and a re-created role or user gets a new id, "
            "so it does not match (re-save the policy with the ARN)"
        )
        return False
    if m := arns.ROOT_ARN_RE.fullmatch(value):
        return m["partition"] == principal.partition and m["account"] == principal.account
    if m := arns.ASSUMED_ROLE_ARN_RE.fullmatch(value):
        return principal.kind is PrincipalKind.ROLE_SESSION and principal.session_arn == value
    if m := arns.ROLE_ARN_RE.fullmatch(value):
        if principal.kind is not PrincipalKind.ROLE_SESSION:
            return False
        mine = arns.ROLE_ARN_RE.fullmatch(_role_arn_of(principal))
        if mine is None:
            return False
        if (mine["partition"], mine["account"], mine["name"]) != (m["partition"], m["account"], m["name"]):
            return False
        # Session ARNs drop the role's path, so a principal built from one has path "/": then the
        # account and name decide. A principal that knows its real path must match it exactly.
        return mine["path"] == m["path"] or mine["path"] == "/"
    if m := arns.USER_ARN_RE.fullmatch(value):
        return principal.kind is PrincipalKind.USER and principal.arn == value
    return False


def _principal_block_matches(block: Any, principal: Principal, notes: list[str]) -> bool:
    if block == "*":
        return True  # "Principal": "*" is anyone at all, services included
    if not isinstance(block, Mapping):
        return False
    return any(
        _principal_entry_matches(str(kind_key), _as_str(value), principal, notes)
        for kind_key, values in block.items()
        for value in _as_list(values)
    )


# --- statement evaluation ----------------------------------------------------------------------------

# A statement tester returns whether the statement applies to the request; it may add notes
# explaining why a statement that looks relevant did not apply.
_Tester = Callable[[Mapping[str, Any], list[str]], bool]


def _action_applies(statement: Mapping[str, Any], action: str, notes: list[str]) -> bool:
    has_action, has_not = "Action" in statement, "NotAction" in statement
    if has_action == has_not:
        notes.append("it has " + ("both Action and NotAction" if has_action else "no Action"))
        return False
    if has_action:
        return any(_glob(_as_str(p), action, ignore_case=True) for p in _as_list(statement["Action"]))
    return not any(_glob(_as_str(p), action, ignore_case=True) for p in _as_list(statement["NotAction"]))


def _resource_applies(statement: Mapping[str, Any], resource: str, notes: list[str]) -> bool:
    has_res, has_not = "Resource" in statement, "NotResource" in statement
    if has_res == has_not:
        # An identity statement without Resource matches nothing (IAM would refuse to store it).
        notes.append("it has " + ("both Resource and NotResource" if has_res else "no Resource"))
        return False
    if has_res:
        return any(_glob(_as_str(p), resource) for p in _as_list(statement["Resource"]))
    return not any(_glob(_as_str(p), resource) for p in _as_list(statement["NotResource"]))


def _conditions_apply(statement: Mapping[str, Any], context: Mapping[str, Any], notes: list[str]) -> bool:
    try:
        return _conditions_hold(statement.get("Condition"), context)
    except _Unsupported as exc:
        notes.append(f"unsupported condition operator {exc.args[0]}")
        return False


@dataclass(frozen=True)
class _Hit:
    policy: str
    index: int
    statement: Mapping[str, Any]


def _evaluate(
    policies: Sequence[NamedPolicy],
    applies: _Tester,
    *,
    allow_text: str,
    deny_text: str,
    none_text: str,
) -> Verdict:
    """Walk every statement of every policy: an applicable Deny wins, else the first applicable Allow.

    The texts are sentence tails: "statement N of P <allow_text>", "... <deny_text>",
    "no statement in P1, P2 <none_text>".
    """
    first_allow: _Hit | None = None
    notes: list[str] = []  # why statements did not apply, for the implicit-deny reason
    unevaluated_denies: list[str] = []  # Deny statements skipped for an unsupported operator
    for policy in policies:
        if not isinstance(policy.document, Mapping):
            notes.append(f"{policy.name} is not a JSON object")
        for index, statement in enumerate(_statements(policy.document)):
            where = f"statement {index} of {policy.name}"
            if not isinstance(statement, Mapping):
                notes.append(f"{where} is not a JSON object")
                continue
            effect = statement.get("Effect")
            if effect not in ("Allow", "Deny"):
                notes.append(f'{where}: Effect {effect!r} is neither "Allow" nor "Deny"')
                continue
            own_notes: list[str] = []
            if not applies(statement, own_notes):
                notes.extend(f"{where}: {n}" for n in own_notes)
                if effect == "Deny":
                    unevaluated_denies.extend(
                        f"{where}: {n}" for n in own_notes if n.startswith("unsupported condition operator")
                    )
                continue
            if effect == "Deny":
                # Explicit deny overrides any allow, so the first applicable Deny decides at once.
                return _verdict(Decision.EXPLICIT_DENY, _Hit(policy.name, index, statement), deny_text)
            if first_allow is None:
                first_allow = _Hit(policy.name, index, statement)
    if first_allow is not None:
        return _verdict(Decision.ALLOW, first_allow, allow_text, caveats=unevaluated_denies)
    checked = ", ".join(p.name for p in policies) if policies else "(no policies)"
    reason = f"no statement in {checked} {none_text}"
    if notes:
        reason += "; " + "; ".join(notes)
    return Verdict(decision=Decision.IMPLICIT_DENY, reason=_one_line(reason))


def _verdict(decision: Decision, hit: _Hit, tail: str, *, caveats: Sequence[str] = ()) -> Verdict:
    sid = hit.statement.get("Sid")
    reason = f"statement {hit.index}{_sid_text(hit.statement)} of {hit.policy} {tail}"
    # An Allow that silently passed over a Deny we could not evaluate would mislead its reader.
    if caveats:
        reason += " (Deny not evaluated: " + "; ".join(caveats) + ")"
    return Verdict(
        decision=decision,
        policy=hit.policy,
        statement_index=hit.index,
        sid=_as_str(sid) if sid else None,
        # A copy, so later edits to the caller's policy dict cannot change a verdict already given.
        statement=copy.deepcopy(dict(hit.statement)),
        reason=_one_line(reason),
    )


# --- public evaluators -------------------------------------------------------------------------------


def evaluate_identity(
    policies: Sequence[NamedPolicy],
    *,
    action: str,
    resource: str,
    context: Mapping[str, str] | None = None,
) -> Verdict:
    """Identity-based (or boundary) policies: may the caller perform `action` on `resource`?"""
    ctx = _lower_keys(context)

    def applies(statement: Mapping[str, Any], notes: list[str]) -> bool:
        return (
            _action_applies(statement, action, notes)
            and _resource_applies(statement, resource, notes)
            and _conditions_apply(statement, ctx, notes)
        )

    return _evaluate(
        policies,
        applies,
        allow_text=f"allows {action} on {resource}",
        deny_text=f"explicitly denies {action} on {resource}",
        none_text=f"allows {action} on {resource}",
    )


def _principal_context(principal: Principal) -> dict[str, str]:
    """Global keys AWS puts in every request context for this principal (explicit context wins)."""
    if principal.kind is PrincipalKind.SERVICE:
        return {"aws:PrincipalServiceName": principal.service} if principal.service else {}
    keys: dict[str, str] = {}
    arn = _role_arn_of(principal) if principal.kind is PrincipalKind.ROLE_SESSION else principal.arn
    if arn:
        keys["aws:PrincipalArn"] = arn
    if principal.account:
        keys["aws:PrincipalAccount"] = principal.account
    return keys


def evaluate_trust(
    trust_policy: dict,
    *,
    principal: Principal,
    action: str = ASSUME_ROLE,
    context: Mapping[str, str] | None = None,
    policy_name: str = "trust",
) -> Verdict:
    """A role's trust policy: may `principal` perform `action` (sts:AssumeRole) on the role?

    Trust policies have no Resource (the role is the resource), so only Principal/NotPrincipal,
    Action/NotAction and Condition decide. `aws:PrincipalArn`, `aws:PrincipalAccount` and
    `aws:PrincipalServiceName` are filled in from the principal unless `context` sets them.
    """
    ctx = _lower_keys({**_principal_context(principal), **(context or {})})

    def applies(statement: Mapping[str, Any], notes: list[str]) -> bool:
        has_p, has_not = "Principal" in statement, "NotPrincipal" in statement
        if has_p == has_not:
            notes.append("it has " + ("both Principal and NotPrincipal" if has_p else "no Principal"))
            return False
        if has_p:
            named = _principal_block_matches(statement["Principal"], principal, notes)
        else:
            # NotPrincipal: every principal except those listed (AWS discourages it with Allow).
            named = not _principal_block_matches(statement["NotPrincipal"], principal, [])
        return named and _action_applies(statement, action, notes) and _conditions_apply(statement, ctx, notes)

    who = _describe(principal)
    return _evaluate(
        [NamedPolicy(name=policy_name, document=trust_policy)],
        applies,
        allow_text=f"allows {who} to {action}",
        deny_text=f"explicitly denies {who} {action}",
        none_text=f"allows {who} to {action}",
    )


def evaluate_assume_role(
    *,
    principal: Principal,
    identity_policies: Sequence[NamedPolicy],
    trust_policy: dict,
    target_role_arn: str,
    boundary: NamedPolicy | None = None,
    context: Mapping[str, str] | None = None,
) -> AssumeRoleVerdict:
    """Decide sts:AssumeRole of `target_role_arn` by `principal`, side by side.

    AWS documents that within one account a resource-based policy (a trust policy) naming a user
    or role ARN can grant access on its own, without an identity-policy Allow. roleops is stricter
    on purpose: it always requires BOTH the caller's identity policies and the trust policy to
    allow (as AWS requires cross-account and as the walkthrough teaches), because a checker must
    not pass a setup that only works through that same-account exception.
    """
    merged = {**_principal_context(principal), **(context or {})}
    trust = evaluate_trust(trust_policy, principal=principal, context=merged)
    if principal.kind is PrincipalKind.SERVICE:
        # A service principal (ec2.amazonaws.com delivering the instance role) has no identity
        # policies or boundary of its own: the trust policy alone decides.
        identity = Verdict(decision=Decision.ALLOW, reason="service principals need no identity policy")
        return AssumeRoleVerdict(identity=identity, trust=trust, boundary=None)
    if principal.kind is PrincipalKind.ROOT:
        # STS refuses AssumeRole with root credentials whatever the policies say
        # ("Roles may not be assumed by root accounts").
        identity = Verdict(
            decision=Decision.IMPLICIT_DENY,
            reason=f"{_describe(principal)} is a root user, and roles may not be assumed by root accounts",
        )
    else:
        identity = evaluate_identity(identity_policies, action=ASSUME_ROLE, resource=target_role_arn, context=merged)
    boundary_verdict = (
        evaluate_identity([boundary], action=ASSUME_ROLE, resource=target_role_arn, context=merged)
        if boundary is not None
        else None
    )
    return AssumeRoleVerdict(identity=identity, trust=trust, boundary=boundary_verdict)
