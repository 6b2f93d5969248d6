"""IMDS client (AWS layer): instance identity, iam/info and role credentials from the EC2 metadata service.

Settings follow botocore's, read through a botocore Session's ``get_config_variable`` so that both the
environment and the shared config profile work: ``AWS_EC2_METADATA_SERVICE_ENDPOINT`` /
``ec2_metadata_service_endpoint`` (a path prefix is kept), ``AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE``
(ipv4|ipv6), ``AWS_METADATA_SERVICE_TIMEOUT`` (1 s), ``AWS_METADATA_SERVICE_NUM_ATTEMPTS`` (1),
``AWS_EC2_METADATA_V1_DISABLED``; ``AWS_EC2_METADATA_DISABLED`` is environment-only, as in botocore.

What is botocore's and what is ours: botocore's ``IMDSFetcher`` picks and validates the base URL (custom
endpoint > IPv6 mode > 169.254.169.254) and its ``URLLib3Session`` is the transport (proxy handling,
exception mapping). The token handshake and the GET loop are ours, because botocore's cannot say *why* it
failed: ``_fetch_metadata_token`` returns ``None`` alike for 403/404/405, a read timeout, a refused
connection and exhausted 5xx, so after a refused or timed-out connect it still falls back to IMDSv1 against
the same dead host (doubling the wait); ``_get_request`` retries a 401 with the same stale token and ends in
a bare ``_RetriesExceededError`` without the status; ``InstanceMetadataFetcher.retrieve_iam_role_credentials``
never reads ``iam/info`` and turns a document whose ``Code`` is not ``Success`` into ``{}``, losing the
``Code``/``Message`` that say what is wrong (e.g. the role does not trust ec2.amazonaws.com).
"""

# DESIGN NOTE (IMDS): roleops reuses botocore's IMDS endpoint resolution (IMDSFetcher.get_base_url) and HTTP
# transport (URLLib3Session), and writes only what botocore's fetcher lacks: a token handshake that tells
# "no such API" (403/404/405 -> IMDSv1, unless v1 is disabled) from "nobody there" (refused / connect
# timeout -> fail at once, no second wait on IMDSv1); a short IMDSv1 probe when the token PUT was accepted but
# never answered (the hop-limit-1 container case), so a silent host costs timeout + 0.2 s, not 2 x timeout;
# one fresh token on a 401; 5xx/429 retried within AWS_METADATA_SERVICE_NUM_ATTEMPTS; and documents kept
# whole, so iam/info and the credential document's Code/Message reach the user.

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from roleops import arns
from roleops.arns import iso_z
from roleops.errors import EnvironmentProblem, UsageError
from roleops.redact import register as register_secrets
from roleops.results import mask_key

if TYPE_CHECKING:  # botocore is imported lazily so that `roleops --help` stays fast
    from botocore.awsrequest import AWSResponse
    from botocore.httpsession import URLLib3Session

log = logging.getLogger(__name__)

TOKEN_PATH = "latest/api/token"
TOKEN_TTL_SECONDS = 21600  # what botocore asks for: 6 hours, the maximum
IDENTITY_PATH = "latest/dynamic/instance-identity/document"
IAM_INFO_PATH = "latest/meta-data/iam/info"
CREDENTIALS_PATH = "latest/meta-data/iam/security-credentials/"
DEFAULT_TIMEOUT = 1.0
DEFAULT_ATTEMPTS = 1
MAX_TIMEOUT = 60.0  # botocore sets no upper bound; roleops refuses settings that would stall it for hours
MAX_ATTEMPTS = 10
# After a token PUT that was accepted but never answered, IMDSv1 gets this much of the timeout: a real IMDS
# answers a GET in milliseconds, and a host that is merely silent must not cost a second full timeout.
V1_PROBE_SHARE = 0.2
V1_PROBE_MIN = 0.2
RETRY_PAUSE = 0.1  # first pause after a 5xx/429/refused answer; doubles, capped at 1 s
SETTINGS_HELP = (
    "AWS_EC2_METADATA_SERVICE_ENDPOINT (or --imds-endpoint), AWS_METADATA_SERVICE_TIMEOUT, "
    "AWS_METADATA_SERVICE_NUM_ATTEMPTS"
)
HOP_LIMIT_HINT = (
    "inside a container the IMDSv2 token answer needs a hop limit of 2: "
    "aws ec2 modify-instance-metadata-options --instance-id ID --http-put-response-hop-limit 2"
)
_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
_CREDENTIAL_FIELDS = ("AccessKeyId", "SecretAccessKey", "Token", "Expiration")


# --- errors ---------------------------------------------------------------------------------------


class ImdsError(EnvironmentProblem):
    """The metadata service answered, but not with what roleops needs (exit 3 outside `verify`)."""

    def __init__(
        self, what: str, why: str = "", next_step: str = "", *, status: int | None = None, path: str = ""
    ) -> None:
        self.status = status
        self.path = path
        super().__init__(what, why, next_step)


class ImdsUnreachable(ImdsError):
    """No metadata service answered within the timeout (or it is disabled): exit 3."""


class ImdsTokenError(ImdsError):
    """An IMDSv2 token was needed and could not be had (or was refused)."""


class ImdsBadDocument(ImdsError):
    """A document is not the JSON object it should be."""


# --- typed results --------------------------------------------------------------------------------


def parse_time(value: object) -> datetime | None:
    """Parse IMDS/STS timestamps (``2018-01-26T05:40:31Z``) into aware UTC datetimes; None if unreadable."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"  # fromisoformat accepts "Z" only from Python 3.11
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class InstanceIdentity:
    """The parts of dynamic/instance-identity/document roleops uses."""

    instance_id: str
    region: str
    account_id: str
    availability_zone: str | None = None
    instance_type: str | None = None
    image_id: str | None = None
    private_ip: str | None = None

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> InstanceIdentity:
        missing = [k for k in ("instanceId", "region", "accountId") if not doc.get(k)]
        if missing:
            raise ImdsBadDocument("the instance identity document is incomplete", "it lacks " + ", ".join(missing))
        return cls(
            instance_id=str(doc["instanceId"]),
            region=str(doc["region"]),
            account_id=str(doc["accountId"]),
            availability_zone=doc.get("availabilityZone"),
            instance_type=doc.get("instanceType"),
            image_id=doc.get("imageId"),
            private_ip=doc.get("privateIp"),
        )


@dataclass(frozen=True)
class IamInfo:
    """iam/info: which instance profile the instance holds, as IMDS sees it."""

    code: str
    instance_profile_arn: str | None = None
    instance_profile_id: str | None = None
    last_updated: datetime | None = None
    message: str | None = None

    @property
    def ok(self) -> bool:
        return self.code == "Success"

    @property
    def profile_name(self) -> str | None:
        arn = self.instance_profile_arn or ""
        return arns.name_of(arn) if ":instance-profile/" in arn else None

    @property
    def partition(self) -> str | None:
        return arns.partition_of(self.instance_profile_arn)

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> IamInfo:
        return cls(
            code=str(doc.get("Code") or "Unknown"),
            instance_profile_arn=doc.get("InstanceProfileArn"),
            instance_profile_id=doc.get("InstanceProfileId"),
            last_updated=parse_time(doc.get("LastUpdated")),
            message=doc.get("Message"),
        )


@dataclass(frozen=True, repr=False)
class RoleCredentials:
    """iam/security-credentials/ROLE, typed. Holds secrets: its repr shows only the masked key id."""

    role: str
    code: str
    message: str | None = None
    type: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, compare=False)
    session_token: str | None = field(default=None, compare=False)
    expiration: datetime | None = None
    last_updated: datetime | None = None
    missing: tuple[str, ...] = ()  # required fields the document lacks (or could not be read)

    @property
    def ok(self) -> bool:
        return self.code == "Success"

    def __repr__(self) -> str:
        return (
            f"RoleCredentials(role={self.role!r}, code={self.code!r}, "
            f"access_key_id={mask_key(self.access_key_id)!r}, expiration={iso_z(self.expiration)!r})"
        )

    @classmethod
    def from_document(cls, role: str, doc: dict[str, Any]) -> RoleCredentials:
        # Where the instance role's secrets enter roleops: from here on, no log line may carry them.
        register_secrets(doc.get("SecretAccessKey"), doc.get("Token"))
        expiration = parse_time(doc.get("Expiration"))
        missing = [k for k in _CREDENTIAL_FIELDS if not doc.get(k)]
        if doc.get("Expiration") and expiration is None:
            missing.append("Expiration (unreadable)")
        return cls(
            role=role,
            code=str(doc.get("Code") or "Unknown"),
            message=doc.get("Message"),
            type=doc.get("Type"),
            access_key_id=doc.get("AccessKeyId"),
            secret_access_key=doc.get("SecretAccessKey"),
            session_token=doc.get("Token"),
            expiration=expiration,
            last_updated=parse_time(doc.get("LastUpdated")),
            missing=tuple(missing),
        )


# --- settings -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImdsSettings:
    """Resolved settings and where each came from (for error messages)."""

    endpoint: str  # base URL, ends with "/"
    timeout: float
    attempts: int
    v1_fallback: bool
    disabled: bool
    endpoint_explicit: bool  # given as an argument (e.g. --imds-endpoint) rather than botocore's config


def _truthy(value: object) -> bool:
    return str(value).strip().lower() == "true"


def resolve_settings(
    endpoint: str | None = None,
    *,
    timeout: float | None = None,
    attempts: int | None = None,
    v1_fallback: bool | None = None,
    endpoint_mode: str | None = None,
    profile: str | None = None,
    session: Any = None,
) -> ImdsSettings:
    """Fill every None from botocore's configuration (environment, then the config profile).

    `session` (boto3's or botocore's) is read when given, so a command reads its configuration once;
    otherwise a botocore session for `profile` is made.
    """
    from botocore.exceptions import BotoCoreError, InvalidIMDSEndpointError
    from botocore.utils import IMDSFetcher

    core = None
    if endpoint is None or timeout is None or attempts is None or v1_fallback is None or endpoint_mode is None:
        if session is not None:
            from roleops.clients import core_session

            core = core_session(session)
        else:
            import botocore.session

            core = botocore.session.Session(profile=profile)

    def config(name: str, env_name: str) -> Any:
        assert core is not None
        try:
            return core.get_config_variable(name)
        except ValueError as err:  # botocore converts with int(); "0.5" or "x" lands here
            raise UsageError(f"invalid {env_name}", str(err), "give a whole number") from err
        except BotoCoreError as err:  # e.g. ProfileNotFound
            raise UsageError(f"cannot read the IMDS setting {name}", str(err)) from err

    if endpoint is None:
        endpoint = config("ec2_metadata_service_endpoint", "AWS_EC2_METADATA_SERVICE_ENDPOINT") or None
        explicit = False
    else:
        explicit = True
    if endpoint_mode is None:
        endpoint_mode = config("ec2_metadata_service_endpoint_mode", "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE")
        if endpoint_mode is None and _truthy(config("imds_use_ipv6", "AWS_IMDS_USE_IPV6")):
            endpoint_mode = "ipv6"
    mode = (endpoint_mode or "ipv4").lower()
    if mode not in ("ipv4", "ipv6"):
        raise UsageError(f"invalid AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE {endpoint_mode!r}", "it is ipv4 or ipv6")
    timeout_from, attempts_from = "IMDS timeout", "IMDS attempts"  # given as arguments
    if timeout is None:
        timeout = float(config("metadata_service_timeout", "AWS_METADATA_SERVICE_TIMEOUT"))
        timeout_from = "AWS_METADATA_SERVICE_TIMEOUT"
    if attempts is None:
        attempts = int(config("metadata_service_num_attempts", "AWS_METADATA_SERVICE_NUM_ATTEMPTS"))
        attempts_from = "AWS_METADATA_SERVICE_NUM_ATTEMPTS"
    if v1_fallback is None:
        v1_fallback = not _truthy(config("ec2_metadata_v1_disabled", "AWS_EC2_METADATA_V1_DISABLED"))
    # Upper bounds too: every wait roleops makes is bounded, and attempts x timeout is the longest one.
    if not 0 < timeout <= MAX_TIMEOUT:
        raise UsageError(f"invalid {timeout_from} {timeout:g}", f"use 1 to {MAX_TIMEOUT:g} seconds", "nothing was read")
    if not 1 <= attempts <= MAX_ATTEMPTS:
        raise UsageError(f"invalid {attempts_from} {attempts}", f"use 1 to {MAX_ATTEMPTS}", "nothing was read")

    # botocore's own choice and validation of the base URL (custom endpoint > ipv6 > ipv4).
    try:
        fetcher = IMDSFetcher(
            timeout=timeout,
            num_attempts=attempts,
            env={},
            config={"ec2_metadata_service_endpoint": endpoint, "ec2_metadata_service_endpoint_mode": mode},
        )
    except InvalidIMDSEndpointError as err:
        raise UsageError(
            f"invalid instance metadata endpoint {endpoint!r}",
            "it must be a URL like http://169.254.169.254/",
        ) from err
    base = fetcher.get_base_url()
    if not base.endswith("/"):
        base += "/"
    return ImdsSettings(
        endpoint=base,
        timeout=float(timeout),
        attempts=int(attempts),
        v1_fallback=bool(v1_fallback),
        disabled=_truthy(os.environ.get("AWS_EC2_METADATA_DISABLED", "false")),
        endpoint_explicit=explicit,
    )


# --- the client -----------------------------------------------------------------------------------


class ImdsClient:
    """Reads the instance metadata service the way botocore would, but reports precisely what went wrong.

    None for any setting means "botocore's setting". The IMDSv2 token is fetched once and reused; the
    client is meant for one short-lived command.
    """

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        timeout: float | None = None,
        attempts: int | None = None,
        v1_fallback: bool | None = None,
        endpoint_mode: str | None = None,
        profile: str | None = None,
        session: Any = None,
    ) -> None:
        self.settings = resolve_settings(
            endpoint,
            timeout=timeout,
            attempts=attempts,
            v1_fallback=v1_fallback,
            endpoint_mode=endpoint_mode,
            profile=profile,
            session=session,
        )
        self._http: URLLib3Session | None = None
        self._probe_http: URLLib3Session | None = None
        self._token: str | None = None
        self._mode: str | None = None  # "v2" or "v1" once the token handshake is done
        self._probe_pending = False  # next GET is the short IMDSv1 probe after an unanswered token PUT
        self.fallback_reason: str | None = None  # why IMDSv1 is in use
        self.fallback_hint: str | None = None  # what mends the token request, when its answer says (403, 404, 405)
        self._fallback_status: int | None = None  # the token request's answer that sent us to IMDSv1
        self.token_requests = 0
        self.get_requests = 0

    # public settings, for messages and for pointing boto3's own chain at the same endpoint
    @property
    def endpoint(self) -> str:
        return self.settings.endpoint

    @property
    def timeout(self) -> float:
        return self.settings.timeout

    @property
    def attempts(self) -> int:
        return self.settings.attempts

    @property
    def v1_fallback(self) -> bool:
        return self.settings.v1_fallback

    @property
    def token_mode(self) -> str | None:
        """The protocol in use: "v2" (token), "v1" (no token), or None before the first request."""
        return self._mode

    # --- raw documents --------------------------------------------------------------------------

    def instance_identity(self) -> dict[str, Any]:
        """dynamic/instance-identity/document, parsed."""
        resp = self._get(IDENTITY_PATH)
        if resp is None:
            raise ImdsError(
                f"the metadata service at {self.endpoint} has no instance identity document (404)",
                "it does not look like EC2's instance metadata service",
                f"check {SETTINGS_HELP}",
                status=404,
                path=IDENTITY_PATH,
            )
        return self._json(resp, "the instance identity document", IDENTITY_PATH)

    def iam_info(self) -> dict[str, Any] | None:
        """iam/info, parsed; None (404) when no instance profile is associated."""
        resp = self._get(IAM_INFO_PATH)
        return None if resp is None else self._json(resp, "iam/info", IAM_INFO_PATH)

    def role_names(self) -> list[str]:
        """The roles listed under iam/security-credentials/ (at most one on EC2); [] when none."""
        resp = self._get(CREDENTIALS_PATH)
        if resp is None:
            return []
        return [line.strip().rstrip("/") for line in resp.text.splitlines() if line.strip()]

    def credentials(self, role: str) -> dict[str, Any] | None:
        """iam/security-credentials/ROLE, parsed (it holds secrets); None (404) when IMDS has no such role."""
        path = CREDENTIALS_PATH + quote(role, safe="")
        resp = self._get(path)
        if resp is None:
            return None
        doc = self._json(resp, f"the credential document of role {role}", path)
        # Registered for redaction as soon as parsed (the raw document is used by the demo, too).
        register_secrets(doc.get("SecretAccessKey"), doc.get("Token"))
        return doc

    # --- typed ----------------------------------------------------------------------------------

    def identity(self) -> InstanceIdentity:
        return InstanceIdentity.from_document(self.instance_identity())

    def iam_profile(self) -> IamInfo | None:
        doc = self.iam_info()
        return None if doc is None else IamInfo.from_document(doc)

    def role_credentials(self, role: str) -> RoleCredentials | None:
        doc = self.credentials(role)
        return None if doc is None else RoleCredentials.from_document(role, doc)

    # --- HTTP -----------------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return self.endpoint + path  # endpoint always ends with "/": a path prefix is kept

    def _session(self, probe: bool = False) -> URLLib3Session:
        from botocore.httpsession import URLLib3Session
        from botocore.utils import get_environ_proxies

        if probe:
            if self._probe_http is None:
                t = min(self.timeout, max(V1_PROBE_MIN, self.timeout * V1_PROBE_SHARE))
                self._probe_http = URLLib3Session(timeout=t, proxies=get_environ_proxies(self.endpoint))
            return self._probe_http
        if self._http is None:
            self._http = URLLib3Session(timeout=self.timeout, proxies=get_environ_proxies(self.endpoint))
        return self._http

    def _send(self, method: str, path: str, headers: dict[str, str], *, probe: bool = False) -> AWSResponse:
        from botocore.awsrequest import AWSRequest
        from botocore.exceptions import HTTPClientError
        from urllib3.exceptions import LocationParseError

        request = AWSRequest(method=method, url=self._url(path), headers=headers)
        try:
            return self._session(probe).send(request.prepare())
        except HTTPClientError as err:
            if isinstance(err.kwargs.get("error"), LocationParseError):
                raise UsageError(f"invalid instance metadata endpoint {self.endpoint!r}", str(err)) from err
            raise

    def _assert_enabled(self) -> None:
        if self.settings.disabled:
            raise ImdsUnreachable(
                "instance metadata is disabled",
                "AWS_EC2_METADATA_DISABLED=true",
                "unset AWS_EC2_METADATA_DISABLED to read the instance role",
            )

    def _unreachable(self, detail: str) -> ImdsUnreachable:
        n = self.attempts
        return ImdsUnreachable(
            f"no instance metadata service answered at {self.endpoint}",
            f"{detail} (timeout {self.timeout:g} s, {n} attempt{'s' if n != 1 else ''})",
            f"run this on an EC2 instance, or set {SETTINGS_HELP}; {HOP_LIMIT_HINT}",
        )

    @staticmethod
    def _pause(attempt: int) -> None:
        time.sleep(min(RETRY_PAUSE * (2**attempt), 1.0))

    def _fetch_token(self) -> None:
        """IMDSv2 handshake; sets the mode. Falls back to IMDSv1 only where botocore would, and never
        after a refused or timed-out connect: IMDSv1 would go to the same dead host."""
        from botocore.exceptions import (
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ProxyConnectionError,
            ReadTimeoutError,
        )

        self._assert_enabled()
        headers = {"x-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_SECONDS)}
        last_status: int | None = None
        failure = "nothing answered"
        for attempt in range(self.attempts):
            self.token_requests += 1
            try:
                resp = self._send("PUT", TOKEN_PATH, headers)
            except ReadTimeoutError:
                # Connected, but the answer never came: what a container behind hop limit 1 sees. botocore
                # falls back to IMDSv1 at once; so do we, with a short probe (see V1_PROBE_SHARE).
                self._fall_back(
                    f"the IMDSv2 token request was accepted but not answered within {self.timeout:g} s",
                    probe=True,
                )
                return
            except ConnectTimeoutError:
                failure = "the connection timed out"
                continue
            except (EndpointConnectionError, ProxyConnectionError, ConnectionClosedError) as err:
                failure = "the connection was refused or closed"
                log.debug("IMDS token request to %s failed: %s", self.endpoint, err)
                if attempt + 1 < self.attempts:
                    self._pause(attempt)
                continue
            status = resp.status_code
            if status == 200 and resp.text.strip():
                self._token = resp.text.strip()
                # The token opens this instance's metadata (its role's keys included) for hours: a secret in logs.
                register_secrets(self._token)
                self._mode = "v2"
                return
            if status in (403, 404, 405):  # no token API here (or not allowed): botocore falls back to v1
                self._fallback_status = status
                self._fall_back(
                    f"the IMDSv2 token request was answered HTTP {status}", probe=False, hint=self._token_hint(status)
                )
                return
            if status == 400:
                raise ImdsTokenError(
                    f"the metadata service at {self.endpoint} refused the IMDSv2 token request (HTTP 400)",
                    "it found the request invalid (a proxy adding X-Forwarded-For is refused too)",
                    "check that nothing between roleops and IMDS rewrites the request",
                    status=400,
                    path=TOKEN_PATH,
                )
            last_status = status  # 401, 5xx, 429, empty 200: retried, then v1 (as botocore)
            if attempt + 1 < self.attempts:
                self._pause(attempt)
        if last_status is None:
            raise self._unreachable(f"the IMDSv2 token request failed: {failure}")
        self._fall_back(f"the IMDSv2 token request kept failing (HTTP {last_status})", probe=False)

    def _token_hint(self, status: int) -> str:
        """What mends a token request EC2's IMDS answered with `status` (it serves the token API whenever
        instance metadata is on, so requiring IMDSv2 on the instance mends none of these)."""
        if status == 403:
            host = urlsplit(self.endpoint).hostname or self.endpoint
            return (
                "IMDS answers 403 to a token request that carries X-Forwarded-For (one sent through an HTTP proxy) "
                f"and when instance metadata is turned off: exempt the metadata address from the proxy "
                f"(NO_PROXY={host}) and check that metadata is on: aws ec2 modify-instance-metadata-options "
                "--instance-id ID --http-endpoint enabled"
            )
        return (
            f"what answers at {self.endpoint} offers no IMDSv2 token API (EC2's always does): check "
            "AWS_EC2_METADATA_SERVICE_ENDPOINT (or --imds-endpoint) and any proxy in between"
        )

    def _fall_back(self, reason: str, *, probe: bool, hint: str | None = None) -> None:
        if not self.v1_fallback:
            if probe:  # nothing answered and v1 may not be tried: that is unreachable
                raise self._unreachable(f"{reason}, and IMDSv1 is disabled")
            raise ImdsTokenError(
                f"no IMDSv2 token from {self.endpoint}",
                f"{reason}, and IMDSv1 is disabled (AWS_EC2_METADATA_V1_DISABLED / ec2_metadata_v1_disabled)",
                hint or "IMDS kept failing the token request: retry, or raise AWS_METADATA_SERVICE_NUM_ATTEMPTS",
                path=TOKEN_PATH,
            )
        log.debug("IMDS: falling back to IMDSv1: %s", reason)
        self._token = None
        self._mode = "v1"
        self._probe_pending = probe
        self.fallback_reason = reason
        self.fallback_hint = hint

    def _get(self, path: str) -> AWSResponse | None:
        """GET a metadata path; None on 404. Retries 5xx/429/connection errors within `attempts`, and
        fetches a fresh token once on a 401."""
        from botocore.exceptions import (
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ProxyConnectionError,
            ReadTimeoutError,
        )

        self._assert_enabled()
        if self._mode is None:
            self._fetch_token()
        refreshed = False
        failures = 0
        while True:
            headers = {"x-aws-ec2-metadata-token": self._token} if self._token else {}
            probe, self._probe_pending = self._probe_pending, False
            self.get_requests += 1
            try:
                resp = self._send("GET", path, headers, probe=probe)
            except (ReadTimeoutError, ConnectTimeoutError) as err:
                if probe:
                    raise self._unreachable(
                        f"{self.fallback_reason}, and the IMDSv1 request was not answered either"
                    ) from err
                failures += 1
                if failures >= self.attempts:
                    raise self._unreachable(f"GET {path} timed out") from err
                continue
            except (EndpointConnectionError, ProxyConnectionError, ConnectionClosedError) as err:
                failures += 1
                if probe or failures >= self.attempts:
                    raise self._unreachable(f"GET {path}: the connection was refused or closed") from err
                self._pause(failures - 1)
                continue
            status = resp.status_code
            if status == 200:
                return resp
            if status == 404:
                return None
            if status == 401:
                if self._token is None:
                    raise ImdsTokenError(
                        f"the metadata service at {self.endpoint} requires IMDSv2 tokens (HTTP 401 on IMDSv1)",
                        f"but no token could be had: {self.fallback_reason}",
                        # a 403 has known causes (a proxy, metadata off); otherwise most likely a lost token
                        # answer, the container case
                        self.fallback_hint
                        if self.fallback_hint and self._fallback_status == 403
                        else "if this runs in a container, " + HOP_LIMIT_HINT,
                        status=401,
                        path=path,
                    )
                if refreshed:
                    raise ImdsTokenError(
                        f"the metadata service at {self.endpoint} rejected a fresh IMDSv2 token (HTTP 401)",
                        f"GET {path}",
                        "check that nothing between roleops and IMDS strips the X-aws-ec2-metadata-token header",
                        status=401,
                        path=path,
                    )
                refreshed = True  # the token expired or IMDS restarted: one fresh token, then give up
                self._mode, self._token = None, None
                self._fetch_token()
                continue
            if status in _RETRYABLE_STATUS:
                failures += 1
                if failures >= self.attempts:
                    raise ImdsError(
                        f"the metadata service at {self.endpoint} kept failing",
                        f"GET {path} answered HTTP {status} on each of {self.attempts} attempt(s)",
                        "IMDS throttles per instance: retry later, or raise AWS_METADATA_SERVICE_NUM_ATTEMPTS",
                        status=status,
                        path=path,
                    )
                self._pause(failures - 1)
                continue
            if status == 403:
                raise ImdsError(
                    f"the metadata service at {self.endpoint} refused GET {path} (HTTP 403)",
                    "instance metadata is turned off for this instance, or the request is not allowed",
                    "aws ec2 modify-instance-metadata-options --instance-id ID --http-endpoint enabled",
                    status=403,
                    path=path,
                )
            raise ImdsError(
                f"the metadata service at {self.endpoint} answered GET {path} with HTTP {status}",
                status=status,
                path=path,
            )

    @staticmethod
    def _json(resp: AWSResponse, what: str, path: str) -> dict[str, Any]:
        # Never quote the body: a credential document holds SecretAccessKey and Token.
        try:
            doc = json.loads(resp.text)
        except ValueError as err:
            why = (
                f"{err.msg} (line {err.lineno}, column {err.colno})"
                if isinstance(err, json.JSONDecodeError)
                else "it could not be decoded"
            )
            raise ImdsBadDocument(
                f"{what} is not valid JSON",
                why,
                "retry; if it persists, check what answers at the endpoint",
                path=path,
            ) from err
        if not isinstance(doc, dict):
            raise ImdsBadDocument(f"{what} is not a JSON object", f"got {type(doc).__name__}", path=path)
        return doc
