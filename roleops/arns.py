"""AWS identifiers (pure layer): ARNs, partitions, account ids, unique ids and the session limits STS applies.

The one home of these facts for the product and the sandbox alike (PMapper keeps its `util/arns.py` the same
way). Parsing returns small frozen values or None; validation with user-facing messages is validate.py's.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone

# --- STS and IAM limits (AWS-FACTS.md) ------------------------------------------------------------------

CHAINED_SESSION_MAX = 3600  # a role assumed from a role session is role chaining: AWS caps it at one hour
DEFAULT_MAX_SESSION_DURATION = 3600  # a role's MaxSessionDuration unless set
MIN_MAX_SESSION_DURATION, MAX_MAX_SESSION_DURATION = 3600, 43200  # what IAM accepts for MaxSessionDuration
MIN_DURATION_SECONDS, MAX_DURATION_SECONDS = 900, 43200  # what STS accepts for DurationSeconds

# --- building blocks of the patterns --------------------------------------------------------------------

# The partitions botocore's partitions.json lists, longest first so a pattern never stops at a prefix
# (tests/unit/test_arns.py checks this against the installed botocore, so it cannot go stale unnoticed).
PARTITIONS = ("aws-us-gov", "aws-iso-b", "aws-iso-e", "aws-iso-f", "aws-eusc", "aws-iso", "aws-cn", "aws")
PARTITION_PATTERN = "|".join(re.escape(p) for p in PARTITIONS)
IAM_NAME_PATTERN = r"[\w+=,.@-]{1,64}"  # role and user names (instance profiles allow 128)
SESSION_NAME_PATTERN = r"[\w+=,.@-]{2,64}"
# IAM paths are "/" or "/.../" made of printable ASCII; the name after the last "/" has no slash.
PATH_PATTERN = r"/(?:[!-~]*/)?"

_PART = rf"(?P<partition>{PARTITION_PATTERN})"
_ACCT = r"(?P<account>\d{12})"
_NAME = rf"(?P<name>{IAM_NAME_PATTERN})"
_PATH = rf"(?P<path>{PATH_PATTERN})"
ROLE_ARN_RE = re.compile(rf"arn:{_PART}:iam::{_ACCT}:role{_PATH}{_NAME}", re.ASCII)
USER_ARN_RE = re.compile(rf"arn:{_PART}:iam::{_ACCT}:user{_PATH}{_NAME}", re.ASCII)
ROOT_ARN_RE = re.compile(rf"arn:{_PART}:iam::{_ACCT}:root", re.ASCII)
ASSUMED_ROLE_ARN_RE = re.compile(
    rf"arn:{_PART}:sts::{_ACCT}:assumed-role/{_NAME}/(?P<session>[\w+=,.@-]{{1,64}})", re.ASCII
)
ACCOUNT_ID_RE = re.compile(r"\d{12}")
# What IAM shows in a policy in place of a principal that was deleted: the unique id of a role (AROA) or user
# (AIDA). Re-creating the entity does not bring the name back.
UNIQUE_ID_RE = re.compile(r"(?:AROA|AIDA)[A-Z0-9]{8,}")


@dataclass(frozen=True, kw_only=True)
class RoleArn:
    partition: str
    account: str
    path: str
    name: str

    def __str__(self) -> str:
        return f"arn:{self.partition}:iam::{self.account}:role{self.path}{self.name}"

    def session_arn(self, session_name: str) -> str:
        """What STS calls a session of this role (assumed-role ARNs drop the path)."""
        return assumed_role_arn(self.partition, self.account, self.name, session_name)


def parse_role_arn(text: str) -> RoleArn | None:
    m = ROLE_ARN_RE.fullmatch(text) if isinstance(text, str) else None
    return RoleArn(partition=m["partition"], account=m["account"], path=m["path"], name=m["name"]) if m else None


def role_arn(partition: str, account: str, name: str, path: str = "/") -> str:
    return f"arn:{partition}:iam::{account}:role{path}{name}"


def assumed_role_arn(partition: str, account: str, role_name: str, session_name: str) -> str:
    return f"arn:{partition}:sts::{account}:assumed-role/{role_name}/{session_name}"


def split_arn(arn: str | None) -> tuple[str, str] | None:
    """(partition, account) of any ARN of the shape arn:PARTITION:SERVICE:REGION:ACCOUNT:..., else None."""
    parts = arn.split(":", 5) if isinstance(arn, str) else []
    if len(parts) < 6 or parts[0] != "arn" or not ACCOUNT_ID_RE.fullmatch(parts[4]):
        return None
    return parts[1], parts[4]


def account_of(arn: str | None) -> str | None:
    found = split_arn(arn)
    return found[1] if found else None


def partition_of(arn: str | None) -> str | None:
    found = split_arn(arn)
    return found[0] if found else None


def name_of(arn: str) -> str:
    """The last path element of a role, user or instance-profile ARN: .../path/NAME -> NAME."""
    return arn.rsplit("/", 1)[-1]


def is_unique_id(value: str) -> bool:
    return isinstance(value, str) and UNIQUE_ID_RE.fullmatch(value) is not None


# --- partitions, from botocore's own data ---------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _partition_regexes() -> tuple[tuple[str, re.Pattern[str]], ...]:
    # botocore ships partitions.json (ids and region patterns); read it as data, without a botocore session.
    from pathlib import Path

    import botocore

    path = Path(botocore.__file__).parent / "data" / "partitions.json"
    try:
        data = json.loads(path.read_text())
        return tuple((p["id"], re.compile(p["regionRegex"])) for p in data["partitions"])
    except (OSError, ValueError, KeyError):  # an older botocore without the file: the three public partitions
        return (
            ("aws", re.compile(r"^(us|eu|ap|sa|ca|me|af|il|mx)\-\w+\-\d+$")),
            ("aws-cn", re.compile(r"^cn\-\w+\-\d+$")),
            ("aws-us-gov", re.compile(r"^us\-gov\-\w+\-\d+$")),
        )


def partition_of_region(region: str) -> str:
    """The partition a region belongs to, by botocore's region patterns; "aws" for a region none matches."""
    for pid, rx in _partition_regexes():
        if rx.match(region):
            return pid
    return "aws"


# --- timestamps -----------------------------------------------------------------------------------------


def iso_z(when: datetime | None) -> str | None:
    """AWS's own timestamp shape, e.g. 2018-01-26T05:40:31Z (IMDS documents, STS expirations)."""
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
