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
