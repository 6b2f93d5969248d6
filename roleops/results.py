"""Result types (pure data layer): what setup, verify, doctor and creds return and the renderer shows."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from roleops.arns import iso_z  # re-exported: results serialise times in AWS's shape


def mask_key(access_key_id: str | None) -> str | None:
    """Show an access key id as its first 4 and last 4 characters (the contract's masking)."""
    if not access_key_id:
        return access_key_id
    if len(access_key_id) <= 8:
        return "*" * len(access_key_id)
    return f"{access_key_id[:4]}…{access_key_id[-4:]}"


# --- setup / associate / teardown -------------------------------------------------------------


class Action(enum.Enum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"
    UNCHANGED = "unchanged"
    FAILED = "failed"  # a per-instance step that failed (or was not tried after one did); the run exits 3


@dataclass(frozen=True, kw_only=True)
class Change:
    """One row of a plan: a resource, what roleops does (or did) to it, and why."""

    resource: str
    action: Action
    detail: str = ""
    account: str | None = None  # the account the resource is in (None: not known, e.g. nothing exists yet)

    def to_json(self) -> dict[str, Any]:
        return {"resource": self.resource, "action": self.action.value, "detail": self.detail, "account": self.account}


@dataclass(frozen=True, kw_only=True)
class InstanceFailure:
    """One target instance whose steps failed; the others went on."""

    instance_id: str
    error: str  # one line: the operation, AWS's code and message

    def to_json(self) -> dict[str, Any]:
        return {"instance_id": self.instance_id, "error": self.error}


@dataclass(frozen=True, kw_only=True)
class PlanReport:
    changes: tuple[Change, ...]
    dry_run: bool = False
    failures: tuple[InstanceFailure, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "dry_run": self.dry_run,
            "changes": [c.to_json() for c in self.changes],
            "failures": [f.to_json() for f in self.failures],
        }


# --- verify / doctor ----------------------------------------------------------------------------


class Status(enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    WARN = "warn"
    SKIP = "skip"


@dataclass(frozen=True, kw_only=True)
class Identity:
    """Who a set of credentials is, as STS or IMDS said. Never holds a secret."""

    source: str  # e.g. "instance metadata", "sts:GetCallerIdentity", "sts:AssumeRole"
    account: str | None = None
    user_id: str | None = None
    arn: str | None = None
    access_key_id: str | None = None  # always masked
    expiration: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class StepResult:
    step: str
    status: Status
    message: str = ""
    hint: str = ""
    identity: Identity | None = None

    def to_json(self) -> dict[str, Any]:
        ident = self.identity
        return {
            "step": self.step,
            "status": self.status.value,
            "arn": ident.arn if ident else None,
            "account": ident.account if ident else None,
            "user_id": ident.user_id if ident else None,
            "access_key_id": ident.access_key_id if ident else None,
            "expiration": iso_z(ident.expiration) if ident else None,
            "message": self.message,
            "hint": self.hint,
        }


@dataclass(frozen=True, kw_only=True)
class VerifyReport:
    steps: tuple[StepResult, ...]

    @property
    def ok(self) -> bool:
        return all(s.status is not Status.FAIL for s in self.steps)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "steps": [s.to_json() for s in self.steps]}


@dataclass(frozen=True, kw_only=True)
class Finding:
    """One doctor check: its status, what was found, and the commands that mend it."""

    check: str
    status: Status
    detail: str = ""
    fix: str = ""  # the roleops command
    fix_aws: str = ""  # the aws CLI equivalent

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "status": self.status.value,
            "detail": self.detail,
            "fix": self.fix,
            "fix_aws": self.fix_aws,
        }


@dataclass(frozen=True, kw_only=True)
class DoctorReport:
    findings: tuple[Finding, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return all(f.status is not Status.FAIL for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "findings": [f.to_json() for f in self.findings]}
