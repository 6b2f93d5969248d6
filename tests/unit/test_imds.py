"""Unit tests for roleops.imds against a real loopback HTTP server that behaves like IMDS."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from roleops.errors import EnvironmentProblem, RoleOpsError, UsageError
from roleops.imds import (
    ImdsBadDocument,
    ImdsClient,
    ImdsError,
    ImdsTokenError,
    ImdsUnreachable,
    RoleCredentials,
)

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEXAMPLETOKEN//////////wEaCXVzLWVhc3QtMSJHMEUCIQD"
ROLE = "ExampleRole"
INSTANCE_ID = "i-0123456789abcdef0"


def credential_doc(**overrides: Any) -> dict[str, Any]:
    doc = {
        "Code": "Success",
        "LastUpdated": "2030-01-01T00:00:00Z",
        "Type": "AWS-HMAC",
        "AccessKeyId": "ASIAEXAMPLEKEY123456",
        "SecretAccessKey": SECRET,
        "Token": TOKEN,
        "Expiration": "2099-01-01T06:00:00Z",
    }
    doc.update(overrides)
    return doc


@dataclass
class FakeImds:
    """A tiny IMDS on 127.0.0.1:0 with configurable behaviour; records every request."""

    prefix: str = "/"
    token_status: int = 200  # 200 issues a token; anything else is answered as is
    token_hang: bool = False  # accept the PUT, never answer it (the hop-limit-1 container case)
    require_token: bool = False  # GET without a valid token -> 401 (HttpTokens=required)
    invalidate_after_get: bool = False  # tokens die after one GET (as if they expired)
    reject_tokens: bool = False  # every token is refused with 401, even a fresh one
    fail_gets: int = 0  # this many GETs answer `fail_status` first
    fail_status: int = 500
    region: str = "eu-west-1"
    account: str = "123456789012"
    instance_id: str = INSTANCE_ID
    iam_info: dict[str, Any] | None = None  # None -> 404 (no profile associated)
    roles: dict[str, Any] = field(default_factory=dict)  # name -> dict (JSON) or str (raw body)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # (method, path, token)
    _tokens: set[str] = field(default_factory=set)
    _server: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.prefix}"

    def count(self, method: str) -> int:
        return sum(1 for m, _p, _t in self.requests if m == method)

    def with_role(self, name: str = ROLE, doc: Any = None, profile: str | None = None) -> FakeImds:
        self.roles[name] = credential_doc() if doc is None else doc
        self.iam_info = {
            "Code": "Success",
            "LastUpdated": "2030-01-01T00:00:00Z",
            "InstanceProfileArn": f"arn:aws:iam::{self.account}:instance-profile/{profile or name}",
            "InstanceProfileId": "AIPAEXAMPLEPROFILEID",
        }
        return self

    def start(self) -> FakeImds:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

            def _send(self, status: int, body: str = "", ctype: str = "text/plain") -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self) -> None:  # noqa: N802 - http.server's naming
                fake.requests.append(("PUT", self.path, None))
                if not self.path.startswith(fake.prefix) or self.path[len(fake.prefix) :] != "latest/api/token":
                    return self._send(404)
                if fake.token_hang:
                    time.sleep(3)
                    return None
                if fake.token_status != 200:
                    return self._send(fake.token_status)
                if self.headers.get("X-aws-ec2-metadata-token-ttl-seconds") != "21600":
                    return self._send(400)
                token = f"tok-{len(fake.requests)}"
                fake._tokens.add(token)
                return self._send(200, token)

            def do_GET(self) -> None:  # noqa: N802
                token = self.headers.get("X-aws-ec2-metadata-token")
                fake.requests.append(("GET", self.path, token))
                if token is not None and (fake.reject_tokens or token not in fake._tokens):
                    return self._send(401)
                if token is None and fake.require_token:
                    return self._send(401)
                if fake.invalidate_after_get and token is not None:
                    fake._tokens.discard(token)
                if fake.fail_gets > 0:
                    fake.fail_gets -= 1
                    return self._send(fake.fail_status)
                if not self.path.startswith(fake.prefix):
                    return self._send(404)
                path = self.path[len(fake.prefix) :]
                if path == "latest/dynamic/instance-identity/document":
                    doc = {
                        "accountId": fake.account,
                        "instanceId": fake.instance_id,
                        "region": fake.region,
                        "availabilityZone": fake.region + "a",
                        "instanceType": "t3.micro",
                        "imageId": "ami-0123456789abcdef0",
                        "privateIp": "10.0.0.10",
                    }
                    return self._send(200, json.dumps(doc), "application/json")
                if path == "latest/meta-data/iam/info":
                    if fake.iam_info is None:
                        return self._send(404)
                    return self._send(200, json.dumps(fake.iam_info))
                if path == "latest/meta-data/iam/security-credentials/":
                    if not fake.roles:
                        return self._send(404)
                    return self._send(200, "\n".join(fake.roles))
                prefix = "latest/meta-data/iam/security-credentials/"
                if path.startswith(prefix) and path[len(prefix) :] in fake.roles:
                    doc = fake.roles[path[len(prefix) :]]
                    return self._send(200, doc if isinstance(doc, str) else json.dumps(doc))
                return self._send(404)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@pytest.fixture(autouse=True)
def _clean_imds_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Tests see only the settings they set: no host config, no proxies."""
    for name in (
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
        "AWS_METADATA_SERVICE_TIMEOUT",
        "AWS_METADATA_SERVICE_NUM_ATTEMPTS",
        "AWS_EC2_METADATA_DISABLED",
        "AWS_EC2_METADATA_V1_DISABLED",
        "AWS_IMDS_USE_IPV6",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "HTTP_PROXY",
        "http_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))


@pytest.fixture
def fake() -> Iterator[FakeImds]:
    server = FakeImds(prefix="/imds/i-abc/").with_role().start()
    yield server
    server.stop()


def client(fake: FakeImds, **kwargs: Any) -> ImdsClient:
    kwargs.setdefault("timeout", 1.0)
    kwargs.setdefault("attempts", 1)
    return ImdsClient(fake.endpoint, **kwargs)


# --- happy path and fallbacks ----------------------------------------------------------------------


def test_v2_happy_path_keeps_the_path_prefix_and_sends_the_token(fake: FakeImds) -> None:
    imds = client(fake)
    ident = imds.identity()
    assert (ident.instance_id, ident.region, ident.account_id) == (INSTANCE_ID, "eu-west-1", "123456789012")
    assert imds.iam_info()["InstanceProfileArn"].endswith(":instance-profile/ExampleRole")
    assert imds.role_names() == [ROLE]
    assert imds.credentials(ROLE)["SecretAccessKey"] == SECRET
    creds = imds.role_credentials(ROLE)
    assert creds is not None and creds.ok and not creds.missing
    assert creds.expiration is not None and creds.expiration.year == 2099
    assert imds.token_mode == "v2"
    # one token for the whole run, every GET carries it, every path keeps the prefix
    assert fake.count("PUT") == 1
    assert all(p.startswith("/imds/i-abc/latest/") for _m, p, _t in fake.requests)
    assert all(t and t.startswith("tok-") for m, _p, t in fake.requests if m == "GET")


@pytest.mark.parametrize("status", [403, 404, 405])
def test_v1_fallback_when_the_token_api_is_absent(fake: FakeImds, status: int) -> None:
    fake.token_status = status
    imds = client(fake)
    assert imds.role_names() == [ROLE]
    assert imds.token_mode == "v1"
    assert f"HTTP {status}" in (imds.fallback_reason or "")
    assert [t for m, _p, t in fake.requests if m == "GET"] == [None]


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_no_v1_fallback_when_v1_is_disabled(fake: FakeImds, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    fake.token_status = 404
    if how == "environment":
        monkeypatch.setenv("AWS_EC2_METADATA_V1_DISABLED", "true")
        imds = ImdsClient(fake.endpoint, timeout=1.0, attempts=1)
    else:
        imds = client(fake, v1_fallback=False)
    with pytest.raises(ImdsTokenError) as info:
        imds.role_names()
    assert "IMDSv1 is disabled" in str(info.value)
    assert info.value.exit_code == 3
    assert fake.count("GET") == 0


def test_401_fetches_a_fresh_token_once(fake: FakeImds) -> None:
    fake.invalidate_after_get = True  # each token works for one GET, like an expiring token
    imds = client(fake)
    assert imds.identity().instance_id == INSTANCE_ID
    assert imds.role_names() == [ROLE]  # first try 401s, fresh token, second try works
    assert fake.count("PUT") == 2
    assert [m for m, _p, _t in fake.requests] == ["PUT", "GET", "GET", "PUT", "GET"]


def test_401_twice_is_an_error_not_a_loop(fake: FakeImds) -> None:
    imds = client(fake)
    imds.identity()
    fake.reject_tokens = True
    with pytest.raises(ImdsTokenError) as info:
        imds.role_names()
    assert "rejected a fresh IMDSv2 token" in str(info.value)
    assert fake.count("PUT") == 2  # the first handshake and exactly one refresh


def test_v1_mode_meeting_401_says_tokens_are_required(fake: FakeImds) -> None:
    fake.token_status = 405
    fake.require_token = True
    with pytest.raises(ImdsTokenError) as info:
        client(fake).identity()
    assert "requires IMDSv2 tokens" in str(info.value)
    assert "hop-limit" in info.value.next_step


def test_400_on_the_token_request_is_an_error(fake: FakeImds) -> None:
    fake.token_status = 400
    with pytest.raises(ImdsTokenError) as info:
        client(fake).identity()
    assert info.value.status == 400
    assert fake.count("GET") == 0


def test_5xx_is_retried_within_attempts(fake: FakeImds) -> None:
    fake.fail_gets = 2
    assert client(fake, attempts=3).role_names() == [ROLE]
    assert fake.count("GET") == 3


def test_5xx_beyond_attempts_is_an_error_after_exactly_attempts_tries(fake: FakeImds) -> None:
    fake.fail_gets = 10
    fake.fail_status = 503
    with pytest.raises(ImdsError) as info:
        client(fake, attempts=2).role_names()
    assert info.value.status == 503
    assert not isinstance(info.value, ImdsUnreachable)
    assert fake.count("GET") == 2


def test_token_5xx_exhausted_falls_back_to_v1_like_botocore(fake: FakeImds) -> None:
    fake.token_status = 500
    imds = client(fake, attempts=2)
    assert imds.role_names() == [ROLE]
    assert fake.count("PUT") == 2
    assert imds.token_mode == "v1"


def test_malformed_json_is_a_roleops_error_that_never_quotes_the_body(fake: FakeImds) -> None:
    fake.roles[ROLE] = '{"Code": "Success", "SecretAccessKey": "' + SECRET + '", "Token": "' + TOKEN + '"'
    with pytest.raises(ImdsBadDocument) as info:
        client(fake).credentials(ROLE)
    err = info.value
    assert isinstance(err, RoleOpsError) and err.exit_code == 3
    assert "not valid JSON" in str(err)
    assert SECRET not in str(err) and TOKEN not in str(err)
    assert SECRET not in repr(err) and TOKEN not in repr(err)


def test_not_found_means_none_or_empty(fake: FakeImds) -> None:
    fake.iam_info = None
    fake.roles.clear()
    imds = client(fake)
    assert imds.iam_info() is None
    assert imds.iam_profile() is None
    assert imds.role_names() == []
    assert imds.credentials("Nope") is None


def test_document_code_and_message_are_kept(fake: FakeImds) -> None:
    fake.roles[ROLE] = {
        "Code": "AssumeRoleUnauthorizedAccess",
        "Message": "EC2 cannot assume the role ExampleRole.",
        "LastUpdated": "2030-01-01T00:00:00Z",
    }
    creds = client(fake).role_credentials(ROLE)
    assert creds is not None and not creds.ok
    assert creds.code == "AssumeRoleUnauthorizedAccess"
    assert creds.message == "EC2 cannot assume the role ExampleRole."
    assert "AccessKeyId" in creds.missing


def test_role_credentials_repr_hides_secrets() -> None:
    creds = RoleCredentials.from_document(ROLE, credential_doc())
    text = repr(creds) + str(creds)
    assert SECRET not in text and TOKEN not in text
    assert "ASIA…3456" in text


# --- fail fast ------------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_closed_port_fails_fast_with_defaults() -> None:
    port = _closed_port()
    imds = ImdsClient(f"http://127.0.0.1:{port}/")  # botocore's defaults: 1 s, 1 attempt
    assert (imds.timeout, imds.attempts) == (1.0, 1)
    started = time.monotonic()
    with pytest.raises(ImdsUnreachable) as info:
        imds.identity()
    assert time.monotonic() - started < 1.5
    err = info.value
    assert isinstance(err, EnvironmentProblem) and err.exit_code == 3
    assert f"127.0.0.1:{port}" in str(err)
    assert "AWS_METADATA_SERVICE_TIMEOUT" in str(err) and "AWS_EC2_METADATA_SERVICE_ENDPOINT" in str(err)
    assert imds.token_requests == 1 and imds.get_requests == 0  # no IMDSv1 try against a refused port


@pytest.fixture
def silent() -> Iterator[tuple[str, list[socket.socket]]]:
    """A listener that accepts connections and never says a word; records each connection."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            accepted.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/", accepted
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_silent_listener_fails_fast_with_defaults(silent: tuple[str, list[socket.socket]]) -> None:
    endpoint, accepted = silent
    imds = ImdsClient(endpoint)
    started = time.monotonic()
    with pytest.raises(ImdsUnreachable) as info:
        imds.identity()
    elapsed = time.monotonic() - started
    assert elapsed < 1.5  # 1 s for the token PUT + a 0.2 s IMDSv1 probe, not 2 x 1 s
    assert (imds.token_requests, imds.get_requests) == (1, 1)
    assert len(accepted) == 2
    assert "IMDSv1 request was not answered" in str(info.value)


def test_silent_listener_with_v1_disabled_makes_one_request(silent: tuple[str, list[socket.socket]]) -> None:
    endpoint, accepted = silent
    imds = ImdsClient(endpoint, timeout=0.3, v1_fallback=False)
    with pytest.raises(ImdsUnreachable):
        imds.identity()
    assert (imds.token_requests, imds.get_requests) == (1, 0)
    assert len(accepted) == 1


def test_hanging_token_falls_back_to_v1_when_the_get_answers(fake: FakeImds) -> None:
    fake.token_hang = True  # hop limit 1 in a container: PUT answer lost, GETs fine
    imds = client(fake, timeout=0.5)
    assert imds.role_names() == [ROLE]
    assert imds.token_mode == "v1" and "not answered" in (imds.fallback_reason or "")


def test_connection_errors_are_retried_within_attempts() -> None:
    imds = ImdsClient(f"http://127.0.0.1:{_closed_port()}/", timeout=0.2, attempts=3)
    with pytest.raises(ImdsUnreachable) as info:
        imds.identity()
    assert imds.token_requests == 3 and imds.get_requests == 0
    assert "3 attempts" in str(info.value)


# --- settings -------------------------------------------------------------------------------------


def test_settings_come_from_botocore_environment(monkeypatch: pytest.MonkeyPatch, fake: FakeImds) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", fake.endpoint)
    monkeypatch.setenv("AWS_METADATA_SERVICE_TIMEOUT", "3")
    monkeypatch.setenv("AWS_METADATA_SERVICE_NUM_ATTEMPTS", "4")
    imds = ImdsClient()
    assert (imds.endpoint, imds.timeout, imds.attempts, imds.v1_fallback) == (fake.endpoint, 3.0, 4, True)
    assert not imds.settings.endpoint_explicit
    assert imds.role_names() == [ROLE]


def test_settings_come_from_the_config_profile(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    config = tmp_path / "config"
    config.write_text(
        "[profile onbox]\n"
        "ec2_metadata_service_endpoint = http://127.0.0.1:9/imds/\n"
        "metadata_service_num_attempts = 2\n"
        "ec2_metadata_v1_disabled = true\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    imds = ImdsClient(profile="onbox")
    assert (imds.endpoint, imds.attempts, imds.v1_fallback) == ("http://127.0.0.1:9/imds/", 2, False)
    # The CLI hands over its one session instead (boto3's or botocore's): the same settings, read from it.
    import boto3
    import botocore.session

    for session in (botocore.session.Session(profile="onbox"), boto3.Session(profile_name="onbox")):
        shared = ImdsClient(session=session)
        assert (shared.endpoint, shared.attempts, shared.v1_fallback) == ("http://127.0.0.1:9/imds/", 2, False)


def test_defaults_and_ipv6_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ImdsClient().endpoint == "http://169.254.169.254/"
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "ipv6")
    assert ImdsClient().endpoint == "http://[fd00:ec2::254]/"
    assert ImdsClient(endpoint_mode="ipv4").endpoint == "http://169.254.169.254/"
    assert ImdsClient("http://127.0.0.1:1/x").endpoint == "http://127.0.0.1:1/x/"  # explicit endpoint wins


def test_bad_settings_are_usage_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError):
        ImdsClient(endpoint_mode="ipv5")
    with pytest.raises(UsageError):
        ImdsClient("not a url")
    monkeypatch.setenv("AWS_METADATA_SERVICE_NUM_ATTEMPTS", "many")
    with pytest.raises(UsageError):
        ImdsClient()


def test_metadata_disabled_makes_no_request(monkeypatch: pytest.MonkeyPatch, fake: FakeImds) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(ImdsUnreachable) as info:
        client(fake).identity()
    assert "AWS_EC2_METADATA_DISABLED" in str(info.value)
    assert fake.requests == []
