"""AWS client factory (AWS layer): one client per service per run, botocore retries configured once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # boto3 is imported lazily so that `roleops --help` stays fast
    import boto3

# Slices of botocore models holding only the operations roleops calls (EC2's full model costs ~100 ms).
MODEL_SLICES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
DEFAULT_RETRY_MODE = "standard"
# Total attempts per call (the first try included). botocore's standard mode defaults to 3; its legacy mode, and
# roleops before the reliability suite, to 5. With 30 % of calls throttled, 5 attempts lose a call with
# probability 0.3**5 = 0.24 %: about 3 % of `setup --wait` runs (~13 calls) end in exit 3 (measured on the
# sandbox: see the reliability report). 8 attempts lose 0.3**8 = 0.0066 % of calls, under 0.1 % of runs. The cost:
# when AWS refuses everything, a call gives up after ~35 s of throttling backoff on average (at most 71 s) instead
# of ~7.5 s, and a refused connection after ~3 s instead of ~0.4 s (botocore backs off 20x less for those).
DEFAULT_MAX_ATTEMPTS = 8
MAX_ATTEMPTS_LIMIT = 25  # what roleops accepts from AWS_MAX_ATTEMPTS / max_attempts (Terraform's own default)
RETRY_MODES = ("legacy", "standard", "adaptive")


class Clients:
    """Holds a boto3 Session and hands out cached clients.

    Throttling and 5xx retries are botocore's job (standard mode, DEFAULT_MAX_ATTEMPTS, unless AWS_RETRY_MODE /
    AWS_MAX_ATTEMPTS or the profile say otherwise); roleops never loops on them itself.
    """

    def __init__(
        self,
        session: boto3.Session,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        max_attempts: int | None = None,
        event_hooks: list[tuple[str, Any]] | None = None,
        credentials: Mapping[str, str | None] | None = None,
    ) -> None:
        """`credentials` (aws_access_key_id, aws_secret_access_key, aws_session_token) sign this object's
        clients instead of the session's own chain; verify uses it to test exact keys on one shared session."""
        self.session = session
        self.endpoint_url = endpoint_url
        self.region = region or session.region_name or "us-east-1"
        self.max_attempts = max_attempts
        self._event_hooks = event_hooks or []
        self._credentials = {k: v for k, v in (credentials or {}).items() if v is not None}
        self._cache: dict[tuple[str, str], Any] = {}
        self._sliced = False

    def config(self):
        from botocore.config import Config

        mode, attempts = self.retry_settings()
        return Config(retries={"mode": mode, "total_max_attempts": attempts}, connect_timeout=5, read_timeout=30)

    def retry_settings(self) -> tuple[str, int]:
        """(mode, total attempts): AWS_RETRY_MODE / AWS_MAX_ATTEMPTS, else the profile's retry_mode / max_attempts
        (as botocore reads them), else roleops' defaults. A value botocore would choke on is bad input (exit 2),
        raised before any call."""
        from roleops.errors import ValidationError

        scoped = self._scoped_config()
        mode, mode_from = os.environ.get("AWS_RETRY_MODE"), "AWS_RETRY_MODE"
        if mode is None:
            mode, mode_from = scoped.get("retry_mode"), "retry_mode (config profile)"
        mode = DEFAULT_RETRY_MODE if mode is None else str(mode).strip().lower()
        if mode not in RETRY_MODES:
            raise ValidationError(mode_from, mode, "a retry mode is legacy, standard or adaptive")
        if self.max_attempts is not None:
            return mode, self.max_attempts
        raw, raw_from = os.environ.get("AWS_MAX_ATTEMPTS"), "AWS_MAX_ATTEMPTS"
        if raw is None:
            raw, raw_from = scoped.get("max_attempts"), "max_attempts (config profile)"
        if raw is None:
            return mode, DEFAULT_MAX_ATTEMPTS
        try:
            attempts = int(str(raw).strip())
        except ValueError:
            attempts = 0
        if not 1 <= attempts <= MAX_ATTEMPTS_LIMIT:
            raise ValidationError(
                raw_from, raw, f"total attempts per call, a whole number from 1 to {MAX_ATTEMPTS_LIMIT}"
            )
        return mode, attempts

    def _scoped_config(self) -> dict[str, Any]:
        core = getattr(self.session, "_session", self.session)
        try:
            scoped = core.get_scoped_config()
        except Exception:  # noqa: BLE001 - a missing profile is reported where the client is made; no default here
            return {}
        return scoped if isinstance(scoped, dict) else {}

    def _use_model_slices(self) -> None:
        """Put roleops/data/ first on this session's model search path (see scripts/slice_botocore_model.py).

        Only this session is affected; ROLEOPS_FULL_MODELS=1 turns it off.
        """
        if self._sliced or os.environ.get("ROLEOPS_FULL_MODELS"):
            return
        self._sliced = True
        core = getattr(self.session, "_session", self.session)  # boto3.Session wraps a botocore session
        loader = core.get_component("data_loader")
        if MODEL_SLICES not in loader.search_paths:
            loader.search_paths.insert(0, MODEL_SLICES)

    def client(self, service: str, region: str | None = None) -> Any:
        region = region or self.region
        key = (service, region)
        if key not in self._cache:
            self._use_model_slices()
            kwargs: dict[str, Any] = {"region_name": region, "config": self.config()}
            if self.endpoint_url:
                kwargs["endpoint_url"] = self.endpoint_url
            kwargs.update(self._credentials)
            client = self.session.client(service, **kwargs)
            for event, handler in self._event_hooks:
                client.meta.events.register(event, handler)
            self._cache[key] = client
        return self._cache[key]

    def partition(self) -> str:
        """aws, aws-cn or aws-us-gov, from botocore's own endpoint data (no call)."""
        try:
            return self.session.get_partition_for_region(self.region) or "aws"
        except Exception:  # noqa: BLE001 - an unknown region: the commercial partition is the sane default
            return "aws"

    def iam(self) -> Any:
        return self.client("iam")

    def ec2(self) -> Any:
        return self.client("ec2")

    def sts(self, region: str | None = None) -> Any:
        return self.client("sts", region)
