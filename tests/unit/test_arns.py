"""AWS identifiers (pure): ARNs, partitions and limits have one home, checked against botocore's own data."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import botocore
import pytest

from roleops import arns


def test_partitions_are_botocores_and_longest_first() -> None:
    data = json.loads((Path(botocore.__file__).parent / "data" / "partitions.json").read_text())
    assert set(arns.PARTITIONS) == {p["id"] for p in data["partitions"]}
    # a pattern alternation must never stop at a prefix: a partition comes before every shorter one it extends
    order = {p: i for i, p in enumerate(arns.PARTITIONS)}
    for p in arns.PARTITIONS:
        for q in arns.PARTITIONS:
            if q != p and q.startswith(p):
                assert order[q] < order[p], (q, p)
    assert arns.ROLE_ARN_RE.fullmatch("arn:aws-iso-b:iam::123456789012:role/R")["partition"] == "aws-iso-b"


@pytest.mark.parametrize(
    ("region", "partition"),
    [
        ("us-east-1", "aws"),
        ("eu-central-2", "aws"),
        ("cn-north-1", "aws-cn"),
        ("us-gov-west-1", "aws-us-gov"),
        ("us-iso-east-1", "aws-iso"),
        ("us-isob-east-1", "aws-iso-b"),
        ("xx-nowhere-9", "aws"),  # a region no release knows: the commercial partition
    ],
)
def test_partition_of_region_follows_botocores_patterns(region: str, partition: str) -> None:
    assert arns.partition_of_region(region) == partition


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("arn:aws:iam::123456789012:role/ExampleRole", ("aws", "123456789012", "/", "ExampleRole")),
        ("arn:aws-cn:iam::123456789012:role/a/b/R", ("aws-cn", "123456789012", "/a/b/", "R")),
        ("arn:aws-us-gov:iam::123456789012:role/R", ("aws-us-gov", "123456789012", "/", "R")),
        ("arn:aws-xx:iam::123456789012:role/R", None),
        ("arn:aws:iam::12345678901:role/R", None),
        ("arn:aws:iam::123456789012:user/R", None),
        ("arn:aws:iam::123456789012:role/", None),
        ("arn:aws:iam::123456789012:role/" + "r" * 65, None),
        (None, None),
    ],
)
def test_parse_role_arn(text: str, expected: tuple | None) -> None:
    parsed = arns.parse_role_arn(text)  # type: ignore[arg-type]
    if expected is None:
        assert parsed is None
        return
    assert (parsed.partition, parsed.account, parsed.path, parsed.name) == expected
    assert str(parsed) == text
    assert parsed.session_arn("s") == f"arn:{expected[0]}:sts::{expected[1]}:assumed-role/{expected[3]}/s"


def test_account_and_partition_of_any_arn() -> None:
    assert arns.split_arn("arn:aws:sts::123456789012:assumed-role/R/s") == ("aws", "123456789012")
    assert arns.account_of("arn:aws:iam::123456789012:instance-profile/P") == "123456789012"
    assert arns.partition_of("arn:aws-cn:iam::123456789012:root") == "aws-cn"
    for junk in (None, "", "::::", "arn:aws:iam::notanaccount:role/R", "AROAEXAMPLE123456"):
        assert arns.split_arn(junk) is None and arns.account_of(junk) is None
    assert arns.name_of("arn:aws:iam::123456789012:instance-profile/a/b/P") == "P"


def test_unique_ids_and_builders() -> None:
    assert arns.is_unique_id("AROAEXAMPLE1234567") and arns.is_unique_id("AIDAEXAMPLE1234567")
    assert not arns.is_unique_id("arn:aws:iam::123456789012:role/R") and not arns.is_unique_id("AKIAEXAMPLE12345")
    assert arns.role_arn("aws", "123456789012", "R") == "arn:aws:iam::123456789012:role/R"
    assert arns.assumed_role_arn("aws", "123456789012", "R", "i-1") == "arn:aws:sts::123456789012:assumed-role/R/i-1"


def test_iso_z_is_awss_timestamp_shape() -> None:
    when = datetime(2018, 1, 26, 5, 40, 31, 999, tzinfo=timezone.utc)
    assert arns.iso_z(when) == "2018-01-26T05:40:31Z"
    assert arns.iso_z(when.replace(tzinfo=None)) == "2018-01-26T05:40:31Z"  # naive means UTC
    assert arns.iso_z(when.astimezone(timezone(timedelta(hours=2)))) == "2018-01-26T05:40:31Z"
    assert arns.iso_z(None) is None
