"""AWS client factory (AWS layer): one client per service per run, botocore retries configured once."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # boto3 is imported lazily so that `roleops --help` stays fast
    import boto3

# Slices of botocore models holding only the operations roleops calls (EC2's full model costs ~100 ms).
MODEL_SLICES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
DEFAULT_RETRY_MODE = "standard"
DEFAULT_MAX_ATTEMPTS = 5


class Clients:
    """Holds a boto3 Session and hands out cached clients.

    Throttling and 5xx retries are botocore's job (standard mode unless AWS_RETRY_MODE says otherwise);
    roleops never loops on them itself.
    """

    def __init__(
        self,
        session: boto3.Session,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        max_attempts: int | None = None,
        event_hooks: list[tuple[str, Any]] | None = None,
    ) -> None:
        self.session = session
        self.endpoint_url = endpoint_url
        self.region = region or session.region_name or "us-east-1"
        self.max_attempts = max_attempts
        self._event_hooks = event_hooks or []
        self._cache: dict[tuple[str, str], Any] = {}
        self._sliced = False

    def config(self):
        from botocore.config import Config

        mode = os.environ.get("AWS_RETRY_MODE", DEFAULT_RETRY_MODE)
        attempts = self.max_attempts or int(os.environ.get("AWS_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS))
        return Config(retries={"mode": mode, "total_max_attempts": attempts}, connect_timeout=5, read_timeout=30)

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
