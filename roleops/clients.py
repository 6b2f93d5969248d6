"""AWS client factory (AWS layer): one client per service per run, botocore retries configured once."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from roleops.redact import register as register_secrets

if TYPE_CHECKING:  # boto3 and botocore are imported lazily so that `roleops --help` stays fast
    from typing import TypeAlias

    import boto3
    import botocore.session

    # What roleops accepts as a session: boto3's (scripts, examples, tests) or the botocore one it wraps (the CLI).
    Session: TypeAlias = "boto3.Session | botocore.session.Session"

_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
# Slices of botocore data (scripts/slice_botocore_model.py): models holding only the operations roleops calls
# (EC2's full model has hundreds), and endpoints.json listing only iam, ec2 and sts; what each saves is measured
# in the README's Benchmarks, not written here.
MODEL_SLICES = os.path.join(_DATA, "models")
ENDPOINTS_SLICE = os.path.join(_DATA, "endpoints")
DEFAULT_RETRY_MODE = "standard"
# Total attempts per call (the first try included). botocore's standard mode defaults to 3; its legacy mode, and
# roleops before the reliability suite, to 5. With 30 % of calls throttled, 5 attempts lose a call with
# probability 0.3**5 = 0.24 %, a few percent of `setup --wait` runs; 8 attempts lose 0.3**8 = 0.0066 % of calls.
# The cost, when AWS refuses everything: botocore's backoff runs longer before a call gives up (README,
# Decisions, gives the measured figures).
DEFAULT_MAX_ATTEMPTS = 8
MAX_ATTEMPTS_LIMIT = 25  # what roleops accepts from AWS_MAX_ATTEMPTS / max_attempts (Terraform's own default)
RETRY_MODES = ("legacy", "standard", "adaptive")


def core_session(session: Session) -> botocore.session.Session:
    """The botocore Session under a boto3 Session, or the botocore Session itself."""
    return getattr(session, "_session", session)


def endpoints_slice_usable(search_paths: Sequence[str]) -> bool:
    """True when roleops' endpoints.json slice was cut from the very file botocore would load from `search_paths`.

    A user's own endpoints.json (~/.aws/models, AWS_DATA_PATH) or another botocore release wins over the slice.
    """
    try:
        with open(os.path.join(ENDPOINTS_SLICE, "source.json"), encoding="utf-8") as fp:
            recorded = json.load(fp)["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    for path in search_paths:
        if path == ENDPOINTS_SLICE:
            continue
        # botocore's JSONFileLoader tries endpoints.json, then endpoints.json.gz, in each path in order.
        plain, packed = os.path.join(path, "endpoints.json"), os.path.join(path, "endpoints.json.gz")
        if os.path.isfile(plain):
            with open(plain, "rb") as fp:
                return hashlib.sha256(fp.read()).hexdigest() == recorded
        if os.path.isfile(packed):
            return False
    return False


def use_data_slices(session: Session) -> None:
    """Put roleops/data/ slices first on this session's data search path, before its first client.

    Only this session is affected; once per session (the models slice on the path says it was done, so the
    endpoints check is not repeated for every Clients sharing the session); ROLEOPS_FULL_MODELS=1 turns it off.
    """
    if os.environ.get("ROLEOPS_FULL_MODELS"):
        return
    paths = core_session(session).get_component("data_loader").search_paths
    if MODEL_SLICES in paths:
        return
    paths.insert(0, MODEL_SLICES)
    if endpoints_slice_usable(paths):
        paths.insert(0, ENDPOINTS_SLICE)


def _register_session_secrets(core: botocore.session.Session) -> None:
    """Register the keys the session's own chain resolved (the profile's, the environment's...) for redaction.

    create_client resolved them already and botocore keeps them on the session; reading that cache costs no call.
    `get_credentials()` is not used: when the chain found nothing it would walk the chain again (IMDS timeouts).
    """
    from botocore.exceptions import BotoCoreError, ClientError

    found = getattr(core, "_credentials", None)
    if found is None:
        return
    try:
        # Deferred credentials (a profile's role_arn, SSO) are fetched here rather than at the first signing.
        frozen = found.get_frozen_credentials()
    except (BotoCoreError, ClientError):
        return  # the same failure comes back, reported as usual, from the client's first call
    register_secrets(frozen.secret_key, frozen.token)


class Clients:
    """Holds a session (boto3's or botocore's) and hands out cached clients.

    Throttling and 5xx retries are botocore's job (standard mode, DEFAULT_MAX_ATTEMPTS, unless AWS_RETRY_MODE /
    AWS_MAX_ATTEMPTS or the profile say otherwise); roleops never loops on them itself.
    """

    def __init__(
        self,
        session: Session,
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
        self.region = region or core_session(session).get_config_variable("region") or "us-east-1"
        self.max_attempts = max_attempts
        self._event_hooks = event_hooks or []
        self._credentials = {k: v for k, v in (credentials or {}).items() if v is not None}
        self._cache: dict[tuple[str, str], Any] = {}
        register_secrets(self._credentials.get("aws_secret_access_key"), self._credentials.get("aws_session_token"))

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
        core = core_session(self.session)
        try:
            scoped = core.get_scoped_config()
        except Exception:  # noqa: BLE001 - a missing profile is reported where the client is made; no default here
            return {}
        return scoped if isinstance(scoped, dict) else {}

    def client(self, service: str, region: str | None = None) -> Any:
        region = region or self.region
        key = (service, region)
        if key not in self._cache:
            use_data_slices(self.session)
            kwargs: dict[str, Any] = {"region_name": region, "config": self.config()}
            if self.endpoint_url:
                kwargs["endpoint_url"] = self.endpoint_url
            kwargs.update(self._credentials)
            # boto3.Session.client is this same call on the botocore session it wraps.
            core = core_session(self.session)
            client = core.create_client(service, **kwargs)
            if not self._credentials:
                _register_session_secrets(core)
            for event, handler in self._event_hooks:
                client.meta.events.register(event, handler)
            self._cache[key] = client
        return self._cache[key]

    def partition(self) -> str:
        """The partition of this region, by botocore's region patterns (roleops.arns; no call)."""
        from roleops.arns import partition_of_region

        return partition_of_region(self.region)

    def iam(self) -> Any:
        return self.client("iam")

    def ec2(self) -> Any:
        return self.client("ec2")

    def sts(self, region: str | None = None) -> Any:
        return self.client("sts", region)

    def ssm(self) -> Any:
        return self.client("ssm")
