"""Sandbox (product, offline): fault settings that make the local AWS misbehave the way real AWS does."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Delays are capped so a typo cannot hang the test suite or the bench for hours.
MAX_DELAY_SECONDS = 600.0
MAX_IMDS_LATENCY_SECONDS = 30.0


@dataclass(frozen=True, kw_only=True)
class Faults:
    """What the sandbox gets wrong on purpose. Every field defaults to "off".

    throttle_fraction: share of IAM/EC2/STS API calls answered with the service's throttling error.
    profile_propagation_delay: seconds a new instance profile stays invisible to EC2.
    trust_propagation_delay: seconds before a new or changed trust policy is honoured by STS.
    credentials_delay: seconds after an association before IMDS serves the role.
    imds_latency: seconds every IMDS answer is held back.
    imds_error_rate: share of IMDS GETs answered with 500.
    imds_malformed: the credential document is truncated, broken JSON.
    """

    throttle_fraction: float = 0.0
    profile_propagation_delay: float = 0.0
    trust_propagation_delay: float = 0.0
    credentials_delay: float = 0.0
    imds_latency: float = 0.0
    imds_error_rate: float = 0.0
    imds_malformed: bool = False

    def __post_init__(self) -> None:
        for name in ("throttle_fraction", "imds_error_rate"):
            _check_number(name, getattr(self, name), 0.0, 1.0)
        for name in ("profile_propagation_delay", "trust_propagation_delay", "credentials_delay"):
            _check_number(name, getattr(self, name), 0.0, MAX_DELAY_SECONDS)
        _check_number("imds_latency", self.imds_latency, 0.0, MAX_IMDS_LATENCY_SECONDS)
        if not isinstance(self.imds_malformed, bool):
            raise ValueError(f"imds_malformed must be true or false, not {self.imds_malformed!r}")

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def replace(self, **changes: Any) -> Faults:
        """A copy with `changes` applied; unknown names and out-of-range values raise ValueError."""
        unknown = sorted(set(changes) - set(self.field_names()))
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(unknown)}; known: {', '.join(self.field_names())}")
        coerced = {name: _coerce(name, value) for name, value in changes.items()}
        return dataclasses.replace(self, **coerced)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Faults:
        return cls().replace(**dict(values))

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(name: str, value: Any) -> Any:
    # Values arrive from JSON bodies and CLI flags: accept the obvious spellings, nothing clever.
    if name == "imds_malformed":
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off", ""):
            return False
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value in (0, 1):
            return bool(value)
        return value
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, not {value!r}")
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"{name} must be a number, not {value!r}") from None
    return float(value) if isinstance(value, int) else value


def _check_number(name: str, value: Any, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError(f"{name} must be a number, not {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g}, not {value!r}")
