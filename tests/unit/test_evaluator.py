"""Unit tests for roleops.evaluator, built from AWS's documented policy evaluation logic."""

from __future__ import annotations

from typing import Any

import pytest

from roleops.evaluator import (
    AssumeRoleVerdict,
    Decision,
    NamedPolicy,
    Principal,
    PrincipalKind,
    Verdict,
    aws_access_denied_message,
    evaluate_assume_role,
    evaluate_identity,
    evaluate_trust,
    parse_principal_arn,
)

ACCT = "123456789012"
OTHER_ACCT = "210987654321"
ROLE_ARN = f"arn:aws:iam::{ACCT}:role/ExampleRole"
SESSION_ARN = f"arn:aws:sts::{ACCT}:assumed-role/ExampleRole/i-0123456789abcdef0"
TARGET = f"arn:aws:iam::{ACCT}:role/ExampleAssumedRole"
USER_ARN = f"arn:aws:iam::{ACCT}:user/alice"
INLINE = "inline:roleops-assume-roles"

# The walkthrough's three documents, as written there.
EC2_TRUST_STATEMENT = {
    "Effect": "Allow",
    "Principal": {"Service": "ec2.amazonaws.com"},
    "Action": "sts:AssumeRole",
}
PERMISSION_STATEMENT = {
    "Sid": "Stmt1512947264000",
    "Effect": "Allow",
    "Action": ["sts:AssumeRole"],
    "Resource": [TARGET],
}
TRUST_STATEMENT = {
    "Effect": "Allow",
    "Principal": {"AWS": ROLE_ARN},
    "Action": "sts:AssumeRole",
}

SESSION = parse_principal_arn(SESSION_ARN)
EC2 = Principal(kind=PrincipalKind.SERVICE, service="ec2.amazonaws.com")
USER = Principal(kind=PrincipalKind.USER, account=ACCT, arn=USER_ARN)


def doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def inline(*statements: dict[str, Any]) -> NamedPolicy:
    return NamedPolicy(name=INLINE, document=doc(*statements))


def identity_decision(statement: dict[str, Any], resource: str = TARGET, **ctx: str) -> Decision:
    return evaluate_identity([inline(statement)], action="sts:AssumeRole", resource=resource, context=ctx).decision


def trust_decision(statement: dict[str, Any], principal: Principal = SESSION, **ctx: str) -> Decision:
    return evaluate_trust(doc(statement), principal=principal, context=ctx).decision


ALLOW, EXPLICIT, IMPLICIT = Decision.ALLOW, Decision.EXPLICIT_DENY, Decision.IMPLICIT_DENY


# --- the walkthrough ---------------------------------------------------------------------------------


def test_walkthrough_documents_allow_the_instance_session() -> None:
    verdict = evaluate_assume_role(
        principal=SESSION,
        identity_policies=[inline(PERMISSION_STATEMENT)],
        trust_policy=doc(TRUST_STATEMENT),
        target_role_arn=TARGET,
    )
    assert verdict.allowed
    assert verdict.denied_by is None
    assert verdict.boundary is None
    assert verdict.identity == Verdict(
        decision=ALLOW,
        policy=INLINE,
        statement_index=0,
        sid="Stmt1512947264000",
        statement=PERMISSION_STATEMENT,
        reason=f'statement 0 (Sid "Stmt1512947264000") of {INLINE} allows sts:AssumeRole on {TARGET}',
    )
    assert verdict.trust.policy == "trust"
    assert verdict.trust.statement_index == 0
    assert verdict.trust.sid is None
    assert verdict.trust.reason == f"statement 0 of trust allows {SESSION_ARN} to sts:AssumeRole"


def test_walkthrough_ec2_trust_lets_ec2_deliver_the_instance_role() -> None:
    verdict = evaluate_assume_role(
        principal=EC2, identity_policies=[], trust_policy=doc(EC2_TRUST_STATEMENT), target_role_arn=ROLE_ARN
    )
    assert verdict.allowed
    assert verdict.identity.decision is ALLOW
    assert verdict.identity.reason == "service principals need no identity policy"
    assert verdict.trust.statement == EC2_TRUST_STATEMENT


def test_ec2_trust_does_not_let_a_role_session_in() -> None:
    verdict = evaluate_assume_role(
        principal=SESSION,
        identity_policies=[inline(PERMISSION_STATEMENT)],
        trust_policy=doc(EC2_TRUST_STATEMENT),
        target_role_arn=TARGET,
    )
    assert not verdict.allowed
    assert verdict.denied_by == "trust"
    assert verdict.trust.reason == f"no statement in trust allows {SESSION_ARN} to sts:AssumeRole"


DENY_IDENTITY = {"Sid": "NoAssume", "Effect": "Deny", "Action": "sts:*", "Resource": "*"}
DENY_TRUST = {"Sid": "NoSessions", "Effect": "Deny", "Principal": {"AWS": ROLE_ARN}, "Action": "sts:AssumeRole"}


@pytest.mark.parametrize(
    ("identity", "trust", "boundary", "expected"),
    [
        pytest.param([inline(PERMISSION_STATEMENT)], doc(TRUST_STATEMENT), None, (ALLOW, ALLOW, None), id="both-allow"),
        pytest.param([], doc(TRUST_STATEMENT), None, (IMPLICIT, ALLOW, "identity"), id="missing-permission"),
        pytest.param(
            [inline(PERMISSION_STATEMENT)], doc(EC2_TRUST_STATEMENT), None, (ALLOW, IMPLICIT, "trust"), id="no-trust"
        ),
        pytest.param(
            [inline(PERMISSION_STATEMENT), NamedPolicy(name="managed:deny", document=doc(DENY_IDENTITY))],
            doc(TRUST_STATEMENT),
            None,
            (EXPLICIT, ALLOW, "identity"),
            id="identity-deny-beats-allow",
        ),
        pytest.param(
            [inline(PERMISSION_STATEMENT)],
            doc(TRUST_STATEMENT, DENY_TRUST),
            None,
            (ALLOW, EXPLICIT, "trust"),
            id="trust-deny-beats-allow",
        ),
        pytest.param(
            [], doc(TRUST_STATEMENT, DENY_TRUST), None, (IMPLICIT, EXPLICIT, "trust"), id="explicit-deny-named-first"
        ),
        pytest.param(
            [inline(PERMISSION_STATEMENT)],
            doc(TRUST_STATEMENT),
            NamedPolicy(name="boundary:b", document=doc({"Effect": "Allow", "Action": "sts:*", "Resource": "*"})),
            (ALLOW, ALLOW, None),
            id="boundary-allows",
        ),
        pytest.param(
            [inline(PERMISSION_STATEMENT)],
            doc(TRUST_STATEMENT),
            NamedPolicy(name="boundary:b", document=doc({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})),
            (ALLOW, ALLOW, "boundary"),
            id="boundary-implicitly-denies",
        ),
        pytest.param(
            [],
            doc(TRUST_STATEMENT),
            NamedPolicy(name="boundary:b", document=doc(DENY_IDENTITY)),
            (IMPLICIT, ALLOW, "boundary"),
            id="boundary-explicit-deny-before-identity-implicit",
        ),
    ],
)
def test_assume_role_sides(
    identity: list[NamedPolicy],
    trust: dict[str, Any],
    boundary: NamedPolicy | None,
    expected: tuple[Decision, Decision, str | None],
) -> None:
    verdict = evaluate_assume_role(
        principal=SESSION, identity_policies=identity, trust_policy=trust, target_role_arn=TARGET, boundary=boundary
    )
    identity_decision_, trust_decision_, denied_by = expected
    assert verdict.identity.decision is identity_decision_
    assert verdict.trust.decision is trust_decision_
    assert verdict.denied_by == denied_by
    assert verdict.allowed is (denied_by is None)


def test_identity_explicit_deny_names_the_deny_statement() -> None:
    verdict = evaluate_identity(
        [inline(PERMISSION_STATEMENT), NamedPolicy(name="managed:deny", document=doc(DENY_IDENTITY))],
        action="sts:AssumeRole",
        resource=TARGET,
    )
    assert verdict.decision is EXPLICIT
    assert (verdict.policy, verdict.statement_index, verdict.sid) == ("managed:deny", 0, "NoAssume")
    assert verdict.statement == DENY_IDENTITY
    assert (
        verdict.reason == f'statement 0 (Sid "NoAssume") of managed:deny explicitly denies sts:AssumeRole on {TARGET}'
    )


def test_trust_explicit_deny_names_the_deny_statement() -> None:
    verdict = evaluate_trust(doc(TRUST_STATEMENT, DENY_TRUST), principal=SESSION)
    assert verdict.decision is EXPLICIT
    assert (verdict.policy, verdict.statement_index, verdict.sid) == ("trust", 1, "NoSessions")
    assert verdict.reason == f'statement 1 (Sid "NoSessions") of trust explicitly denies {SESSION_ARN} sts:AssumeRole'


def test_implicit_deny_names_every_policy_checked() -> None:
    verdict = evaluate_identity(
        [inline({"Effect": "Allow", "Action": "s3:*", "Resource": "*"}), NamedPolicy(name="managed:x", document={})],
        action="sts:AssumeRole",
        resource=TARGET,
    )
    assert verdict.decision is IMPLICIT
    assert verdict.policy is None and verdict.statement_index is None and verdict.statement is None
    assert verdict.reason == f"no statement in {INLINE}, managed:x allows sts:AssumeRole on {TARGET}"


def test_implicit_deny_with_no_policies_says_so() -> None:
    verdict = evaluate_identity([], action="sts:AssumeRole", resource=TARGET)
    assert verdict.reason == f"no statement in (no policies) allows sts:AssumeRole on {TARGET}"


def test_first_allowing_statement_decides_the_allow() -> None:
    verdict = evaluate_identity(
        [
            inline(
                {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
                PERMISSION_STATEMENT,
                DENY_IDENTITY | {"Action": "iam:*"},
            )
        ],
        action="sts:AssumeRole",
        resource=TARGET,
    )
    assert verdict.decision is ALLOW
    assert verdict.statement_index == 1


def test_statement_as_a_single_dict() -> None:
    identity = NamedPolicy(name=INLINE, document={"Version": "2012-10-17", "Statement": PERMISSION_STATEMENT})
    trust = {"Version": "2012-10-17", "Statement": TRUST_STATEMENT}
    verdict = evaluate_assume_role(
        principal=SESSION, identity_policies=[identity], trust_policy=trust, target_role_arn=TARGET
    )
    assert verdict.allowed
    assert verdict.identity.statement_index == 0
    assert verdict.trust.statement_index == 0


def test_verdict_statement_is_a_copy() -> None:
    statement = dict(PERMISSION_STATEMENT)
    verdict = evaluate_identity([inline(statement)], action="sts:AssumeRole", resource=TARGET)
    statement["Effect"] = "Deny"
    assert verdict.statement is not None and verdict.statement["Effect"] == "Allow"


def test_reason_stays_on_one_line() -> None:
    verdict = evaluate_identity(
        [inline(PERMISSION_STATEMENT | {"Sid": "two\nlines"})], action="sts:AssumeRole", resource=TARGET
    )
    assert "\n" not in verdict.reason
    assert '(Sid "two lines")' in verdict.reason


# --- action and resource matching ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("sts:AssumeRole", ALLOW),
        ("sts:*", ALLOW),
        ("*", ALLOW),
        ("sts:Assume?ole", ALLOW),
        ("sts:Assume*", ALLOW),
        ("STS:assumerole", ALLOW),  # actions are case-insensitive
        (["iam:PassRole", "sts:AssumeRole"], ALLOW),
        ("sts:AssumeRoleWithSAML", IMPLICIT),
        ("sts:Assume?", IMPLICIT),
        ("sts:Assume?Role", IMPLICIT),
        ("iam:*", IMPLICIT),
        ("sts", IMPLICIT),
    ],
)
def test_action_matching(action: Any, expected: Decision) -> None:
    assert identity_decision({"Effect": "Allow", "Action": action, "Resource": TARGET}) is expected


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        (TARGET, ALLOW),
        ("*", ALLOW),
        (f"arn:aws:iam::{ACCT}:role/Example*", ALLOW),
        (f"arn:aws:iam::{ACCT}:role/ExampleAssumedRol?", ALLOW),
        ("arn:aws:iam::*:role/ExampleAssumedRole", ALLOW),
        ([f"arn:aws:iam::{OTHER_ACCT}:role/X", TARGET], ALLOW),
        (f"arn:aws:iam::{ACCT}:role/example*", IMPLICIT),  # resources are case-sensitive
        (f"arn:aws:iam::{ACCT}:role/ExampleAssumedRole?", IMPLICIT),
        (f"arn:aws:iam::{OTHER_ACCT}:role/*", IMPLICIT),
        (f"arn:aws:iam::{ACCT}:role/ExampleAssumedRole2", IMPLICIT),
    ],
)
def test_resource_matching(resource: Any, expected: Decision) -> None:
    assert identity_decision({"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": resource}) is expected


def test_identity_statement_without_resource_matches_nothing() -> None:
    verdict = evaluate_identity([inline({"Effect": "Allow", "Action": "*"})], action="sts:AssumeRole", resource=TARGET)
    assert verdict.decision is IMPLICIT
    assert f"statement 0 of {INLINE}: it has no Resource" in verdict.reason


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}, ALLOW),
        ({"Effect": "Allow", "NotAction": ["iam:*", "s3:*"], "Resource": TARGET}, ALLOW),
        ({"Effect": "Allow", "NotAction": "sts:*", "Resource": "*"}, IMPLICIT),
        ({"Effect": "Allow", "NotAction": "STS:ASSUMEROLE", "Resource": "*"}, IMPLICIT),
        ({"Effect": "Allow", "Action": "sts:AssumeRole", "NotResource": f"arn:aws:iam::{ACCT}:role/Admin*"}, ALLOW),
        ({"Effect": "Allow", "Action": "sts:AssumeRole", "NotResource": TARGET}, IMPLICIT),
        ({"Effect": "Allow", "Action": "sts:AssumeRole", "NotResource": [TARGET, "x"]}, IMPLICIT),
        ({"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*", "NotResource": "x"}, IMPLICIT),
        ({"Effect": "Allow", "Action": "sts:AssumeRole", "NotAction": "iam:*", "Resource": "*"}, IMPLICIT),
    ],
)
def test_not_action_and_not_resource(statement: dict[str, Any], expected: Decision) -> None:
    assert identity_decision(statement) is expected


@pytest.mark.parametrize(
    ("deny", "expected"),
    [
        ({"Effect": "Deny", "NotAction": "iam:*", "Resource": "*"}, EXPLICIT),
        ({"Effect": "Deny", "NotAction": "sts:AssumeRole", "Resource": "*"}, ALLOW),
        ({"Effect": "Deny", "Action": "*", "NotResource": f"arn:aws:iam::{ACCT}:role/Example*"}, ALLOW),
        ({"Effect": "Deny", "Action": "*", "NotResource": f"arn:aws:iam::{ACCT}:role/Admin*"}, EXPLICIT),
    ],
)
def test_negated_deny_statements(deny: dict[str, Any], expected: Decision) -> None:
    verdict = evaluate_identity([inline(PERMISSION_STATEMENT, deny)], action="sts:AssumeRole", resource=TARGET)
    assert verdict.decision is expected


def test_unknown_effect_never_allows() -> None:
    verdict = evaluate_identity(
        [inline(PERMISSION_STATEMENT | {"Effect": "allow"})], action="sts:AssumeRole", resource=TARGET
    )
    assert verdict.decision is IMPLICIT
    assert "Effect 'allow' is neither" in verdict.reason


# --- trust principals ------------------------------------------------------------------------------------

CN_SESSION = parse_principal_arn(f"arn:aws-cn:sts::{ACCT}:assumed-role/ExampleRole/s1")
PATHED_SESSION = Principal(
    kind=PrincipalKind.ROLE_SESSION, account=ACCT, arn=f"arn:aws:iam::{ACCT}:role/other/ExampleRole"
)
OTHER_ACCT_SESSION = parse_principal_arn(f"arn:aws:sts::{OTHER_ACCT}:assumed-role/ExampleRole/s1")
ROOT = parse_principal_arn(f"arn:aws:iam::{ACCT}:root")
LAMBDA = Principal(kind=PrincipalKind.SERVICE, service="lambda.amazonaws.com")
SESSION_WITH_ID = Principal(
    kind=PrincipalKind.ROLE_SESSION,
    account=ACCT,
    arn=ROLE_ARN,
    session_arn=SESSION_ARN,
    unique_id="AROAEXAMPLEOLDID12345",
)
SESSION_ONLY = Principal(kind=PrincipalKind.ROLE_SESSION, account=ACCT, session_arn=SESSION_ARN)


@pytest.mark.parametrize(
    ("principal_block", "principal", "expected"),
    [
        pytest.param("*", SESSION, ALLOW, id="star-session"),
        pytest.param("*", EC2, ALLOW, id="star-service"),
        pytest.param({"AWS": "*"}, SESSION, ALLOW, id="aws-star-session"),
        pytest.param({"AWS": "*"}, USER, ALLOW, id="aws-star-user"),
        pytest.param({"AWS": "*"}, EC2, IMPLICIT, id="aws-star-not-services"),
        pytest.param({"AWS": ROLE_ARN}, SESSION, ALLOW, id="role-arn"),
        pytest.param({"AWS": [f"arn:aws:iam::{ACCT}:role/Nope", ROLE_ARN]}, SESSION, ALLOW, id="role-arn-list"),
        pytest.param({"AWS": ROLE_ARN}, SESSION_ONLY, ALLOW, id="role-arn-from-session-arn-only"),
        pytest.param({"AWS": f"arn:aws:iam::{ACCT}:role/team/ExampleRole"}, SESSION, ALLOW, id="path-lost-in-session"),
        pytest.param(
            {"AWS": f"arn:aws:iam::{ACCT}:role/team/ExampleRole"}, PATHED_SESSION, IMPLICIT, id="known-path-differs"
        ),
        pytest.param(
            {"AWS": f"arn:aws:iam::{ACCT}:role/other/ExampleRole"}, PATHED_SESSION, ALLOW, id="known-path-equal"
        ),
        pytest.param({"AWS": f"arn:aws:iam::{ACCT}:role/OtherRole"}, SESSION, IMPLICIT, id="other-role"),
        pytest.param({"AWS": f"arn:aws:iam::{ACCT}:role/examplerole"}, SESSION, IMPLICIT, id="role-name-case"),
        pytest.param({"AWS": ROLE_ARN}, OTHER_ACCT_SESSION, IMPLICIT, id="role-other-account"),
        pytest.param({"AWS": ROLE_ARN}, USER, IMPLICIT, id="role-arn-not-user"),
        pytest.param({"AWS": SESSION_ARN}, SESSION, ALLOW, id="exact-session"),
        pytest.param(
            {"AWS": f"arn:aws:sts::{ACCT}:assumed-role/ExampleRole/other"}, SESSION, IMPLICIT, id="other-session"
        ),
        pytest.param({"AWS": f"arn:aws:iam::{ACCT}:root"}, SESSION, ALLOW, id="root-delegates-session"),
        pytest.param({"AWS": f"arn:aws:iam::{ACCT}:root"}, USER, ALLOW, id="root-delegates-user"),
        pytest.param({"AWS": f"arn:aws:iam::{ACCT}:root"}, ROOT, ALLOW, id="root-matches-root"),
        pytest.param({"AWS": f"arn:aws:iam::{OTHER_ACCT}:root"}, SESSION, IMPLICIT, id="root-other-account"),
        pytest.param({"AWS": f"arn:aws:iam::{ACCT}:root"}, EC2, IMPLICIT, id="root-not-services"),
        pytest.param({"AWS": ACCT}, SESSION, ALLOW, id="account-id"),
        pytest.param({"AWS": OTHER_ACCT}, SESSION, IMPLICIT, id="other-account-id"),
        pytest.param({"AWS": USER_ARN}, USER, ALLOW, id="user-arn"),
        pytest.param({"AWS": USER_ARN}, SESSION, IMPLICIT, id="user-arn-not-session"),
        pytest.param({"AWS": f"arn:aws:iam::{ACCT}:user/bob"}, USER, IMPLICIT, id="other-user"),
        pytest.param({"Service": "ec2.amazonaws.com"}, EC2, ALLOW, id="service"),
        pytest.param({"Service": ["lambda.amazonaws.com", "ec2.amazonaws.com"]}, EC2, ALLOW, id="service-list"),
        pytest.param({"Service": ["lambda.amazonaws.com", "ec2.amazonaws.com"]}, LAMBDA, ALLOW, id="service-list-2"),
        pytest.param({"Service": "lambda.amazonaws.com"}, EC2, IMPLICIT, id="wrong-service"),
        pytest.param({"Service": "ec2.amazonaws.com"}, SESSION, IMPLICIT, id="service-not-session"),
        pytest.param({"AWS": "ec2.amazonaws.com"}, EC2, IMPLICIT, id="service-under-aws-key"),
        pytest.param({"Federated": "cognito-identity.amazonaws.com"}, SESSION, IMPLICIT, id="federated-session"),
        pytest.param({"Federated": "cognito-identity.amazonaws.com"}, EC2, IMPLICIT, id="federated-service"),
        pytest.param({"AWS": f"arn:aws-cn:iam::{ACCT}:role/ExampleRole"}, SESSION, IMPLICIT, id="partition-role"),
        pytest.param({"AWS": f"arn:aws-cn:iam::{ACCT}:role/ExampleRole"}, CN_SESSION, ALLOW, id="same-cn-partition"),
        pytest.param({"AWS": ROLE_ARN}, CN_SESSION, IMPLICIT, id="cn-session-aws-role"),
        pytest.param({"AWS": f"arn:aws-us-gov:iam::{ACCT}:root"}, SESSION, IMPLICIT, id="partition-root"),
        pytest.param({"AWS": "AROAEXAMPLEOLDID12345"}, SESSION_WITH_ID, ALLOW, id="unique-id-equal"),
        pytest.param({"AWS": "AROAEXAMPLENEWID67890"}, SESSION_WITH_ID, IMPLICIT, id="unique-id-recreated"),
        pytest.param({"AWS": "AROAEXAMPLEOLDID12345"}, SESSION, IMPLICIT, id="unique-id-unknown"),
        pytest.param({"AWS": "not-a-principal"}, SESSION, IMPLICIT, id="junk"),
    ],
)
def test_trust_principal_matching(principal_block: Any, principal: Principal, expected: Decision) -> None:
    statement = {"Effect": "Allow", "Principal": principal_block, "Action": "sts:AssumeRole"}
    assert trust_decision(statement, principal) is expected


def test_recreated_role_unique_id_reason() -> None:
    trust = doc({"Effect": "Allow", "Principal": {"AWS": "AROAEXAMPLEOLDID12345"}, "Action": "sts:AssumeRole"})
    recreated = Principal(
        kind=PrincipalKind.ROLE_SESSION, account=ACCT, arn=ROLE_ARN, unique_id="AROAEXAMPLENEWID67890"
    )
    verdict = evaluate_trust(trust, principal=recreated)
    assert verdict.decision is IMPLICIT
    assert "unique id AROAEXAMPLEOLDID12345" in verdict.reason
    assert "this principal's id is AROAEXAMPLENEWID67890" in verdict.reason
    assert "re-created" in verdict.reason
    assert "\n" not in verdict.reason


@pytest.mark.parametrize(
    ("not_principal", "principal", "expected"),
    [
        ({"AWS": f"arn:aws:iam::{ACCT}:role/Other"}, SESSION, ALLOW),
        ({"AWS": ROLE_ARN}, SESSION, IMPLICIT),
        ({"AWS": ACCT}, SESSION, IMPLICIT),
        ({"Service": "lambda.amazonaws.com"}, EC2, ALLOW),
    ],
)
def test_not_principal_allow(not_principal: dict[str, Any], principal: Principal, expected: Decision) -> None:
    statement = {"Effect": "Allow", "NotPrincipal": not_principal, "Action": "sts:AssumeRole"}
    assert trust_decision(statement, principal) is expected


@pytest.mark.parametrize(
    ("action", "expected"),
    [("sts:AssumeRole", ALLOW), ("sts:*", ALLOW), ("sts:TagSession", IMPLICIT), ({"x": 1}, IMPLICIT)],
)
def test_trust_action(action: Any, expected: Decision) -> None:
    assert trust_decision({"Effect": "Allow", "Principal": {"AWS": ROLE_ARN}, "Action": action}) is expected


def test_trust_statement_without_principal_matches_nothing() -> None:
    verdict = evaluate_trust(doc({"Effect": "Allow", "Action": "sts:AssumeRole"}), principal=SESSION)
    assert verdict.decision is IMPLICIT
    assert "statement 0 of trust: it has no Principal" in verdict.reason


def test_trust_policy_name_is_used() -> None:
    verdict = evaluate_trust(doc(TRUST_STATEMENT), principal=SESSION, policy_name="trust:ExampleAssumedRole")
    assert verdict.policy == "trust:ExampleAssumedRole"


def test_root_credentials_cannot_assume_roles() -> None:
    trust = doc({"Effect": "Allow", "Principal": {"AWS": ACCT}, "Action": "sts:AssumeRole"})
    verdict = evaluate_assume_role(
        principal=ROOT,
        identity_policies=[inline({"Effect": "Allow", "Action": "*", "Resource": "*"})],
        trust_policy=trust,
        target_role_arn=TARGET,
    )
    assert verdict.trust.allowed
    assert verdict.identity.decision is IMPLICIT
    assert verdict.denied_by == "identity"
    assert "root" in verdict.identity.reason


# --- conditions ----------------------------------------------------------------------------------------


def _with(condition: dict[str, Any]) -> dict[str, Any]:
    return TRUST_STATEMENT | {"Condition": condition}


EXTERNAL_ID = {"StringEquals": {"sts:ExternalId": "abc-123"}}


@pytest.mark.parametrize(
    ("condition", "context", "expected"),
    [
        # sts:ExternalId, the confused-deputy guard
        pytest.param(EXTERNAL_ID, {"sts:ExternalId": "abc-123"}, ALLOW, id="externalid-pass"),
        pytest.param(EXTERNAL_ID, {"sts:ExternalId": "ABC-123"}, IMPLICIT, id="externalid-case"),
        pytest.param(EXTERNAL_ID, {"sts:ExternalId": "wrong"}, IMPLICIT, id="externalid-fail"),
        pytest.param(EXTERNAL_ID, {}, IMPLICIT, id="externalid-missing"),
        pytest.param(EXTERNAL_ID, {"STS:EXTERNALID": "abc-123"}, ALLOW, id="keys-case-insensitive"),
        pytest.param(
            {"StringEquals": {"sts:ExternalId": ["x", "abc-123"]}},
            {"sts:ExternalId": "abc-123"},
            ALLOW,
            id="values-ored",
        ),
        pytest.param(
            {"StringEquals": {"sts:ExternalId": "abc-123", "aws:SourceIdentity": "alice"}},
            {"sts:ExternalId": "abc-123"},
            IMPLICIT,
            id="keys-anded",
        ),
        pytest.param(
            {"StringEquals": {"sts:ExternalId": "abc-123"}, "StringLike": {"aws:SourceIdentity": "a*"}},
            {"sts:ExternalId": "abc-123", "aws:SourceIdentity": "alice"},
            ALLOW,
            id="operators-anded",
        ),
        # negated operators: a missing key makes them true (AWS's documented exception)
        pytest.param({"StringNotEquals": {"sts:ExternalId": "bad"}}, {}, ALLOW, id="not-equals-missing"),
        pytest.param(
            {"StringNotEquals": {"sts:ExternalId": "bad"}}, {"sts:ExternalId": "bad"}, IMPLICIT, id="not-equals-equal"
        ),
        pytest.param(
            {"StringNotEquals": {"sts:ExternalId": ["a", "b"]}},
            {"sts:ExternalId": "b"},
            IMPLICIT,
            id="not-equals-any-value",
        ),
        pytest.param(
            {"StringNotEquals": {"sts:ExternalId": ["a", "b"]}}, {"sts:ExternalId": "c"}, ALLOW, id="not-equals-none"
        ),
        pytest.param(
            {"StringEqualsIgnoreCase": {"sts:ExternalId": "ABC-123"}},
            {"sts:ExternalId": "abc-123"},
            ALLOW,
            id="ignore-case",
        ),
        pytest.param(
            {"StringLike": {"aws:SourceIdentity": "al?ce*"}}, {"aws:SourceIdentity": "alice@x"}, ALLOW, id="like"
        ),
        pytest.param(
            {"StringLike": {"aws:SourceIdentity": "Al*"}},
            {"aws:SourceIdentity": "alice"},
            IMPLICIT,
            id="like-case-sensitive",
        ),
        pytest.param(
            {"StringNotLike": {"aws:SourceIdentity": "adm*"}}, {"aws:SourceIdentity": "alice"}, ALLOW, id="not-like"
        ),
        pytest.param(
            {"StringNotLike": {"aws:SourceIdentity": "adm*"}},
            {"aws:SourceIdentity": "admin"},
            IMPLICIT,
            id="not-like-hit",
        ),
        pytest.param({"StringNotLike": {"aws:SourceIdentity": "adm*"}}, {}, ALLOW, id="not-like-missing"),
        # ARN operators; aws:PrincipalArn is filled in from the principal (the role ARN)
        pytest.param({"ArnEquals": {"aws:PrincipalArn": ROLE_ARN}}, {}, ALLOW, id="arn-equals-principal"),
        pytest.param({"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{ACCT}:role/Example*"}}, {}, ALLOW, id="arn-like"),
        pytest.param({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/Other*"}}, {}, IMPLICIT, id="arn-like-miss"),
        pytest.param(
            {"ArnLike": {"aws:PrincipalArn": "arn:*:role/ExampleRole"}},
            {},
            IMPLICIT,
            id="arn-like-star-does-not-span-parts",
        ),
        pytest.param({"ArnNotEquals": {"aws:PrincipalArn": ROLE_ARN}}, {}, IMPLICIT, id="arn-not-equals"),
        pytest.param({"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/Admin*"}}, {}, ALLOW, id="arn-not-like"),
        pytest.param({"ArnLike": {"aws:SourceArn": "arn:aws:ec2:*"}}, {}, IMPLICIT, id="arn-like-missing"),
        pytest.param(
            {"ArnEquals": {"aws:PrincipalArn": ROLE_ARN}},
            {"aws:PrincipalArn": "arn:aws:iam::1:role/x"},
            IMPLICIT,
            id="explicit-context-wins",
        ),
        # Bool, numeric
        pytest.param(
            {"Bool": {"aws:MultiFactorAuthPresent": "true"}}, {"aws:MultiFactorAuthPresent": "True"}, ALLOW, id="bool"
        ),
        pytest.param(
            {"Bool": {"aws:MultiFactorAuthPresent": True}},
            {"aws:MultiFactorAuthPresent": "false"},
            IMPLICIT,
            id="bool-false",
        ),
        pytest.param({"Bool": {"aws:MultiFactorAuthPresent": "true"}}, {}, IMPLICIT, id="bool-missing"),
        pytest.param(
            {"NumericEquals": {"sts:DurationSeconds": "3600"}}, {"sts:DurationSeconds": "3600"}, ALLOW, id="num-eq"
        ),
        pytest.param(
            {"NumericLessThan": {"sts:DurationSeconds": 3600}}, {"sts:DurationSeconds": "3600"}, IMPLICIT, id="num-lt"
        ),
        pytest.param(
            {"NumericLessThanEquals": {"sts:DurationSeconds": 3600}},
            {"sts:DurationSeconds": "3600"},
            ALLOW,
            id="num-le",
        ),
        pytest.param(
            {"NumericGreaterThan": {"sts:DurationSeconds": 900}}, {"sts:DurationSeconds": "901"}, ALLOW, id="num-gt"
        ),
        pytest.param(
            {"NumericGreaterThanEquals": {"sts:DurationSeconds": 901}},
            {"sts:DurationSeconds": "900"},
            IMPLICIT,
            id="num-ge",
        ),
        pytest.param(
            {"NumericEquals": {"sts:DurationSeconds": "3600"}}, {"sts:DurationSeconds": "lots"}, IMPLICIT, id="num-junk"
        ),
        pytest.param({"NumericLessThan": {"sts:DurationSeconds": 3600}}, {}, IMPLICIT, id="num-missing"),
        # ...IfExists and Null
        pytest.param({"StringEqualsIfExists": {"sts:ExternalId": "abc-123"}}, {}, ALLOW, id="ifexists-missing"),
        pytest.param(
            {"StringEqualsIfExists": {"sts:ExternalId": "abc-123"}},
            {"sts:ExternalId": "no"},
            IMPLICIT,
            id="ifexists-present-mismatch",
        ),
        pytest.param({"NumericLessThanIfExists": {"sts:DurationSeconds": 10}}, {}, ALLOW, id="num-ifexists"),
        pytest.param({"Null": {"sts:ExternalId": "false"}}, {"sts:ExternalId": "abc-123"}, ALLOW, id="null-false"),
        pytest.param({"Null": {"sts:ExternalId": "false"}}, {}, IMPLICIT, id="null-false-missing"),
        pytest.param({"Null": {"sts:ExternalId": "true"}}, {}, ALLOW, id="null-true"),
        pytest.param({"Null": {"sts:ExternalId": True}}, {"sts:ExternalId": "x"}, IMPLICIT, id="null-true-present"),
        # set operators
        pytest.param(
            {"ForAnyValue:StringEquals": {"aws:TagKeys": ["a", "b"]}},
            {"aws:TagKeys": ["c", "b"]},
            ALLOW,
            id="for-any-value",
        ),
        pytest.param(
            {"ForAnyValue:StringEquals": {"aws:TagKeys": ["a", "b"]}},
            {"aws:TagKeys": ["c"]},
            IMPLICIT,
            id="for-any-value-miss",
        ),
        pytest.param({"ForAnyValue:StringEquals": {"aws:TagKeys": "a"}}, {}, IMPLICIT, id="for-any-missing"),
        pytest.param(
            {"ForAllValues:StringLike": {"aws:TagKeys": ["team*", "env"]}},
            {"aws:TagKeys": ["team-a", "env"]},
            ALLOW,
            id="for-all-values",
        ),
        pytest.param(
            {"ForAllValues:StringLike": {"aws:TagKeys": ["team*", "env"]}},
            {"aws:TagKeys": ["team-a", "cost"]},
            IMPLICIT,
            id="for-all-values-miss",
        ),
        pytest.param({"ForAllValues:StringEquals": {"aws:TagKeys": "a"}}, {}, ALLOW, id="for-all-missing"),
    ],
)
def test_conditions(condition: dict[str, Any], context: dict[str, Any], expected: Decision) -> None:
    assert trust_decision(_with(condition), SESSION, **context) is expected


def test_service_principal_gets_principal_service_name_key() -> None:
    statement = EC2_TRUST_STATEMENT | {"Condition": {"StringEquals": {"aws:PrincipalServiceName": "ec2.amazonaws.com"}}}
    assert trust_decision(statement, EC2) is ALLOW
    assert trust_decision(statement, LAMBDA) is IMPLICIT


def test_identity_conditions_use_context() -> None:
    statement = PERMISSION_STATEMENT | {"Condition": {"StringEquals": {"aws:SourceIdentity": "alice"}}}
    assert identity_decision(statement, **{"aws:SourceIdentity": "alice"}) is ALLOW
    assert identity_decision(statement, **{"aws:SourceIdentity": "bob"}) is IMPLICIT
    assert identity_decision(statement) is IMPLICIT


@pytest.mark.parametrize(
    "operator",
    ["DateGreaterThan", "IpAddress", "ForSomeValues:StringEquals", "ForAnyValue:Null", "NullIfExists", "Bogus"],
)
def test_unknown_operator_makes_the_statement_not_match(operator: str) -> None:
    verdict = evaluate_trust(doc(_with({operator: {"aws:CurrentTime": "2020-01-01T00:00:00Z"}})), principal=SESSION)
    assert verdict.decision is IMPLICIT
    assert f"unsupported condition operator {operator}" in verdict.reason


def test_unevaluated_deny_is_reported_on_the_allow() -> None:
    deny = DENY_TRUST | {"Condition": {"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}}
    verdict = evaluate_trust(doc(TRUST_STATEMENT, deny), principal=SESSION)
    assert verdict.decision is ALLOW
    assert verdict.statement_index == 0
    assert "Deny not evaluated: statement 1 of trust: unsupported condition operator DateLessThan" in verdict.reason


def test_condition_not_an_object_is_unsupported() -> None:
    verdict = evaluate_trust(doc(_with({"StringEquals": "x"})), principal=SESSION)
    assert verdict.decision is IMPLICIT
    assert "unsupported condition operator StringEquals" in verdict.reason


# --- AssumeRoleVerdict -------------------------------------------------------------------------------------

_A = Verdict(decision=ALLOW)
_E = Verdict(decision=EXPLICIT)
_I = Verdict(decision=IMPLICIT)


@pytest.mark.parametrize(
    ("identity", "trust", "boundary", "denied_by"),
    [
        (_A, _A, None, None),
        (_A, _A, _A, None),
        (_I, _A, None, "identity"),
        (_A, _I, None, "trust"),
        (_A, _A, _I, "boundary"),
        (_I, _I, None, "identity"),
        (_I, _E, None, "trust"),
        (_I, _I, _E, "boundary"),
        (_E, _E, _E, "identity"),
        (_A, _E, _E, "trust"),
    ],
)
def test_denied_by(identity: Verdict, trust: Verdict, boundary: Verdict | None, denied_by: str | None) -> None:
    verdict = AssumeRoleVerdict(identity=identity, trust=trust, boundary=boundary)
    assert verdict.denied_by == denied_by
    assert verdict.allowed is (denied_by is None)


@pytest.mark.parametrize(("decision", "allowed"), [(ALLOW, True), (EXPLICIT, False), (IMPLICIT, False)])
def test_verdict_allowed(decision: Decision, allowed: bool) -> None:
    assert Verdict(decision=decision).allowed is allowed


# --- messages and ARNs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("principal", "expected"),
    [
        (
            SESSION,
            f"User: {SESSION_ARN} is not authorized to perform: sts:AssumeRole on resource: {TARGET}",
        ),
        (USER, f"User: {USER_ARN} is not authorized to perform: sts:AssumeRole on resource: {TARGET}"),
    ],
)
def test_aws_access_denied_message(principal: Principal, expected: str) -> None:
    assert aws_access_denied_message(principal, TARGET) == expected


@pytest.mark.parametrize(
    ("arn", "expected"),
    [
        (
            SESSION_ARN,
            Principal(kind=PrincipalKind.ROLE_SESSION, account=ACCT, arn=ROLE_ARN, session_arn=SESSION_ARN),
        ),
        (
            "arn:aws-us-gov:sts::123456789012:assumed-role/R+=,.@-1/botocore-session-1700000000",
            Principal(
                kind=PrincipalKind.ROLE_SESSION,
                account=ACCT,
                arn="arn:aws-us-gov:iam::123456789012:role/R+=,.@-1",
                session_arn="arn:aws-us-gov:sts::123456789012:assumed-role/R+=,.@-1/botocore-session-1700000000",
                partition="aws-us-gov",
            ),
        ),
        (USER_ARN, Principal(kind=PrincipalKind.USER, account=ACCT, arn=USER_ARN)),
        (
            f"arn:aws:iam::{ACCT}:user/ops/team/alice",
            Principal(kind=PrincipalKind.USER, account=ACCT, arn=f"arn:aws:iam::{ACCT}:user/ops/team/alice"),
        ),
        (
            f"arn:aws-cn:iam::{ACCT}:root",
            Principal(kind=PrincipalKind.ROOT, account=ACCT, arn=f"arn:aws-cn:iam::{ACCT}:root", partition="aws-cn"),
        ),
    ],
)
def test_parse_principal_arn(arn: str, expected: Principal) -> None:
    assert parse_principal_arn(arn) == expected


@pytest.mark.parametrize(
    "junk",
    [
        "",
        "hello",
        ROLE_ARN,  # a role ARN is not a caller: callers are sessions of it
        f"arn:aws:sts::{ACCT}:assumed-role/ExampleRole",
        "arn:aws:sts::12345:assumed-role/ExampleRole/s",
        f"arn:aws-xx:iam::{ACCT}:root",
        f"arn:aws:iam::{ACCT}:group/devs",
        f"arn:aws:sts::{ACCT}:federated-user/bob",
        f"arn:aws:iam::{ACCT}:root/extra",
        None,
    ],
)
def test_parse_principal_arn_rejects_junk(junk: Any) -> None:
    with pytest.raises(ValueError):
        parse_principal_arn(junk)
