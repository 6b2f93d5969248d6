"""Pure policy documents: the walkthrough's shapes and structural comparison independent of formatting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from roleops import policies

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ROLE = "arn:aws:iam::123456789012:role/ExampleRole"
TARGET = "arn:aws:iam::123456789012:role/ExampleAssumedRole"


def example(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text())


def test_builders_make_the_walkthrough_documents() -> None:
    assert policies.documents_equal(
        policies.trust_policy(policies.ec2_trust_statement()), example("ec2-trust-policy.json")
    )
    assert policies.documents_equal(
        policies.trust_policy(policies.role_trust_statement(ROLE)), example("secondary-role-trust-policy.json")
    )
    assert policies.documents_equal(policies.assume_permission_policy([TARGET]), example("assume-role-permission.json"))


def test_permission_names_exactly_the_given_roles_sorted_and_deduplicated() -> None:
    doc = policies.assume_permission_policy([TARGET, ROLE, TARGET])
    assert doc["Statement"][0]["Resource"] == sorted([ROLE, TARGET])
    with pytest.raises(ValueError):
        policies.assume_permission_policy([])


@pytest.mark.parametrize(
    "variant",
    [
        # string vs list, key order, action case, Sid, single statement object
        {
            "Statement": {
                "Action": ["STS:AssumeRole"],
                "Principal": {"Service": ["ec2.amazonaws.com"]},
                "Effect": "Allow",
            }
        },
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "x",
                    "Effect": "Allow",
                    "Action": "sts:assumerole",
                    "Principal": {"Service": "ec2.amazonaws.com"},
                }
            ],
        },
    ],
)
def test_formatting_never_matters(variant: dict) -> None:
    assert policies.documents_equal(variant, example("ec2-trust-policy.json"))
    assert policies.has_statement(variant, policies.ec2_trust_statement())


@pytest.mark.parametrize(
    "other",
    [
        {"Effect": "Deny", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"},
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"},
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:TagSession"},
        # a condition could exclude us, so it never counts as holding the plain statement
        {
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": "111111111111"}},
        },
    ],
)
def test_different_statements_do_not_count(other: dict) -> None:
    doc = policies.trust_policy(other)
    assert not policies.has_statement(doc, policies.ec2_trust_statement())
    assert not policies.documents_equal(doc, example("ec2-trust-policy.json"))


def test_a_wider_statement_covers_ours() -> None:
    wide = {
        "Effect": "Allow",
        "Principal": {"AWS": [ROLE, "arn:aws:iam::123456789012:root"]},
        "Action": ["sts:AssumeRole", "sts:TagSession"],
    }
    assert policies.has_statement(policies.trust_policy(wide), policies.role_trust_statement(ROLE))


def test_merge_adds_once_keeps_others_and_version() -> None:
    other = {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::999999999999:root"}, "Action": "sts:AssumeRole"}
    doc = {"Version": "2008-10-17", "Statement": other}
    merged = policies.merge_statement(doc, policies.role_trust_statement(ROLE))
    assert merged["Version"] == "2008-10-17"
    assert other in merged["Statement"]
    assert policies.principals(merged) == ["arn:aws:iam::999999999999:root", ROLE]
    assert policies.merge_statement(merged, policies.role_trust_statement(ROLE)) == merged
    assert doc == {"Version": "2008-10-17", "Statement": other}  # the input is not mutated


def test_parse_document_accepts_dicts_json_and_url_encoded_json() -> None:
    doc = example("ec2-trust-policy.json")
    text = json.dumps(doc)
    from urllib.parse import quote

    assert policies.parse_document(doc) == doc
    assert policies.parse_document(text) == doc
    assert policies.parse_document(quote(text)) == doc
    assert policies.parse_document(None) is None


# --- teardown: taking one principal back --------------------------------------------------------------

OTHER = "arn:aws:iam::123456789012:role/OtherRole"
ROOT = "arn:aws:iam::123456789012:root"


def _stmt(principal: object, **extra: object) -> dict:
    return {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole", **extra}


@pytest.mark.parametrize(
    ("trust", "expected", "removed"),
    [
        # our statement alone: it goes
        ([_stmt({"AWS": OTHER})], [], True),
        # a second setup's statement beside the first: only ours goes
        ([_stmt({"AWS": ROLE}), _stmt({"AWS": OTHER})], [_stmt({"AWS": ROLE})], True),
        # the list form: that one element goes, the rest of the statement stays (a list stays a list)
        ([_stmt({"AWS": [ROLE, OTHER, ROOT]})], [_stmt({"AWS": [ROLE, ROOT]})], True),
        ([_stmt({"AWS": [OTHER, ROOT]})], [_stmt({"AWS": [ROOT]})], True),
        # another kind in the same principal: the statement stays with it
        ([_stmt({"AWS": OTHER, "Service": "ec2.amazonaws.com"})], [_stmt({"Service": "ec2.amazonaws.com"})], True),
        # someone's own statement naming the account root: untouched
        ([_stmt({"AWS": OTHER}), _stmt({"AWS": ROOT})], [_stmt({"AWS": ROOT})], True),
        # not there: nothing changes
        ([_stmt({"AWS": ROLE})], [_stmt({"AWS": ROLE})], False),
        # a conditional statement naming us was not written by roleops: it stays whole
        (
            [_stmt({"AWS": OTHER}, Condition={"StringEquals": {"sts:ExternalId": "x1"}})],
            [_stmt({"AWS": OTHER}, Condition={"StringEquals": {"sts:ExternalId": "x1"}})],
            False,
        ),
        # other actions too: not roleops' shape either
        (
            [{**_stmt({"AWS": OTHER}), "Action": ["sts:AssumeRole", "sts:TagSession"]}],
            [{**_stmt({"AWS": OTHER}), "Action": ["sts:AssumeRole", "sts:TagSession"]}],
            False,
        ),
        # a Deny naming us is never ours to lift
        ([{**_stmt({"AWS": OTHER}), "Effect": "Deny"}], [{**_stmt({"AWS": OTHER}), "Effect": "Deny"}], False),
        # the action in a list, in another case: still the same statement (IAM compares actions without case)
        ([{**_stmt({"AWS": [OTHER]}), "Action": ["STS:AssumeRole"]}], [], True),
    ],
)
def test_remove_principal_takes_back_exactly_one_principal(trust: list, expected: list, removed: bool) -> None:
    doc = {"Version": "2012-10-17", "Statement": trust}
    before = json.loads(json.dumps(doc))
    result, did = policies.remove_principal(doc, "AWS", OTHER)
    assert did is removed
    assert result["Statement"] == expected
    assert result["Version"] == "2012-10-17"
    assert doc == before  # pure: the input is not modified


def test_remove_principal_accepts_a_single_statement_object_and_the_service_kind() -> None:
    doc = {"Version": "2012-10-17", "Statement": _stmt({"Service": "ec2.amazonaws.com"})}
    result, did = policies.remove_principal(doc, "Service", "ec2.amazonaws.com")
    assert did and result["Statement"] == []


def test_describe_principals_lists_each_once_in_order() -> None:
    doc = {"Statement": [_stmt({"AWS": [ROLE, ROOT]}), _stmt({"Service": "ec2.amazonaws.com"}), _stmt({"AWS": ROLE})]}
    assert policies.describe_principals(doc) == [f"AWS={ROLE}", f"AWS={ROOT}", "Service=ec2.amazonaws.com"]
    assert policies.describe_principals({"Statement": [_stmt("*")]}) == ["*"]
