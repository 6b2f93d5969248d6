"""Other accounts (pure parts): the --target-profile and --assumable-role converters, and the home/foreign split."""

from __future__ import annotations

import pytest

from roleops.accounts import foreign_roles
from roleops.errors import UsageError, ValidationError
from roleops.validate import validate_assumable_role, validate_target_profile

HOME, OTHER = "123456789012", "234567890123"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("prod", (None, "prod")),
        (f"{OTHER}=prod", (OTHER, "prod")),
        ("team=prod", (None, "team=prod")),  # not an account id: the whole text is the profile's name
    ],
)
def test_target_profile_forms(text: str, expected: tuple[str | None, str]) -> None:
    assert validate_target_profile(text) == expected


@pytest.mark.parametrize("text", ["", "12345=prod", f"{OTHER}=", "with space", f"{OTHER}=a b"])
def test_target_profile_refusals(text: str) -> None:
    with pytest.raises(ValidationError, match="--target-profile"):
        validate_target_profile(text)


def test_assumable_role_takes_a_name_or_a_role_arn() -> None:
    assert validate_assumable_role("Deploy") == "Deploy"
    arn = f"arn:aws:iam::{OTHER}:role/team/Deploy"
    assert validate_assumable_role(arn) == arn
    with pytest.raises(ValidationError, match="not 12 digits"):
        validate_assumable_role("arn:aws:iam::2345:role/Deploy")


def test_split_home_names_and_foreign_arns() -> None:
    home, foreign = foreign_roles(
        ["Reader", f"arn:aws:iam::{HOME}:role/Writer", f"arn:aws:iam::{OTHER}:role/Deploy"],
        home_account=HOME,
        home_partition="aws",
    )
    assert home == ["Reader", "Writer"]
    assert [str(r) for r in foreign[OTHER]] == [f"arn:aws:iam::{OTHER}:role/Deploy"]


def test_split_refuses_another_partition_and_the_same_role_twice() -> None:
    with pytest.raises(UsageError, match="partition aws-cn"):
        foreign_roles([f"arn:aws-cn:iam::{OTHER}:role/D"], home_account=HOME, home_partition="aws")
    with pytest.raises(UsageError, match="same role"):
        foreign_roles(["reader", f"arn:aws:iam::{HOME}:role/Reader"], home_account=HOME, home_partition="aws")
