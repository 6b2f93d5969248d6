"""Sandbox (product, offline): WSGI plumbing: read AWS requests (query, JSON), check SigV4, write AWS answers."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlencode
from xml.sax.saxutils import escape

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict, StartResponse], Iterable[bytes]]

# AWS query bodies are small; anything bigger is not an IAM/EC2/STS call we need to look at.
MAX_BODY_BYTES = 10 * 1024 * 1024

_CREDENTIAL_RE = re.compile(r"Credential=([^/,\s]+)/[^/]*/([^/]*)/([^/]*)/")

STS_XMLNS = "https://sts.amazonaws.com/doc/2011-06-15/"
IAM_XMLNS = "https://iam.amazonaws.com/doc/2010-05-08/"
AWS_JSON = "application/x-amz-json-1.1"

# SigV4 as AWS checks it: the header form botocore sends, and the clock skew AWS tolerates.
_AUTHORIZATION_RE = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/,\s]+)/(?P<service>[^/,\s]+)"
    r"/aws4_request,\s*SignedHeaders=(?P<headers>[a-z0-9;._-]+),\s*Signature=(?P<signature>[0-9a-f]{64})$"
)
SIGV4_TIMESTAMP = "%Y%m%dT%H%M%SZ"
MAX_CLOCK_SKEW = timedelta(minutes=15)


@dataclass(frozen=True)
class Response:
    """A whole HTTP answer, buffered (everything the sandbox says is small)."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def __call__(self, environ: dict, start_response: StartResponse) -> list[bytes]:
        headers = [(k, v) for k, v in self.headers if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(self.body))))
        start_response(f"{self.status} {_REASONS.get(self.status, 'Status')}", headers)
        return [self.body]


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def text(status: int, body: str, *, headers: Iterable[tuple[str, str]] = ()) -> Response:
    return Response(status, body.encode(), (("Content-Type", "text/plain"), *headers))


def json_response(status: int, payload: Any) -> Response:
    return Response(status, json.dumps(payload).encode(), (("Content-Type", "application/json"),))


def query_error(status: int, code: str, message: str, *, xmlns: str, sender: bool = True) -> Response:
    """The error document of the query protocol (IAM, STS)."""
    request_id = str(uuid.uuid4())
    body = (
        f'<ErrorResponse xmlns="{xmlns}">'
        f"<Error><Type>{'Sender' if sender else 'Receiver'}</Type><Code>{escape(code)}</Code>"
        f"<Message>{escape(message)}</Message></Error>"
        f"<RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return Response(status, body.encode(), (("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)))


def ec2_error(status: int, code: str, message: str) -> Response:
    """The error document of the EC2 protocol."""
    request_id = str(uuid.uuid4())
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Response><Errors><Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"</Error></Errors><RequestID>{request_id}</RequestID></Response>"
    )
    return Response(status, body.encode(), (("Content-Type", "text/xml;charset=UTF-8"),))


class ApiError(Exception):
    """An AWS error the sandbox answers: raised where it is decided, serialised once by `error_response`
    (moto's shape: its RESTError subclasses carry code and message, its response layer writes them)."""

    def __init__(self, code: str, message: str, *, status: int = 400, sender: bool = True) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.sender = sender


def aws_json(payload: Any, *, status: int = 200) -> Response:
    """An answer of the JSON protocol (SSM): the document botocore's JSON parser reads."""
    request_id = str(uuid.uuid4())
    return Response(
        status, json.dumps(payload).encode(), (("Content-Type", AWS_JSON), ("x-amzn-RequestId", request_id))
    )


def json_error(status: int, code: str, message: str) -> Response:
    """The error document of the JSON protocol: `__type` (botocore takes the code from it) and `message`."""
    return aws_json({"__type": code, "message": message}, status=status)


def error_response(err: ApiError, request: ApiRequest) -> Response:
    """The error document of the request's protocol: JSON (an `X-Amz-Target` call), EC2's own, or the query
    protocol's (IAM, STS)."""
    if request.target is not None:
        return json_error(err.status, err.code, err.message)
    if request.service == "ec2":
        return ec2_error(err.status, err.code, err.message)
    xmlns = STS_XMLNS if request.service == "sts" else IAM_XMLNS
    return query_error(err.status, err.code, err.message, xmlns=xmlns, sender=err.sender)


@dataclass
class ApiRequest:
    """An AWS API call as the middleware sees it: signer, service and flattened query parameters."""

    environ: dict
    body: bytes
    access_key_id: str | None
    service: str | None  # the SigV4 signing name, e.g. "sts", "iam", "ec2"
    params: dict[str, str] = field(default_factory=dict)
    form: bool = False  # the parameters came in an x-www-form-urlencoded body
    target: str | None = None  # the JSON protocol's `X-Amz-Target`, e.g. "AmazonSSM.SendCommand"

    @property
    def action(self) -> str | None:
        if self.target is not None:
            return self.target.rpartition(".")[2] or None
        return self.params.get("Action")

    def json_body(self) -> dict[str, Any]:
        """The JSON protocol's request document (AWS answers a body that is not one with SerializationException)."""
        if not self.body:
            return {}
        try:
            document = json.loads(self.body)
        except (UnicodeDecodeError, ValueError) as err:
            raise ApiError("SerializationException", "the request body is not a JSON document") from err
        if not isinstance(document, dict):
            raise ApiError("SerializationException", "the request body must be a JSON object")
        return document

    def header(self, name: str) -> str | None:
        return self.environ.get("HTTP_" + name.upper().replace("-", "_"))

    def replace_params(self, params: dict[str, str]) -> None:
        """Rewrite the form body (moto runs with authorization off, so the signature is not re-checked)."""
        self.params = dict(params)
        self.body = urlencode(params).encode()
        self.environ["CONTENT_LENGTH"] = str(len(self.body))
        self.environ["wsgi.input"] = io.BytesIO(self.body)


def read_api_request(environ: dict) -> ApiRequest:
    """Read (and put back) the body, and pick out what the sandbox decides on."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body = b""
    if 0 < length <= MAX_BODY_BYTES:
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)
    auth = environ.get("HTTP_AUTHORIZATION", "")
    access_key_id = service = None
    if m := _CREDENTIAL_RE.search(auth):
        access_key_id, service = m.group(1), m.group(3).lower()
    params = _flat(parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True))
    form = False
    if body and environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        params.update(_flat(parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)))
        form = True
    target = environ.get("HTTP_X_AMZ_TARGET") or None
    return ApiRequest(environ, body, access_key_id, service, params, form, target)


def _flat(parsed: dict[str, list[str]]) -> dict[str, str]:
    return {key: values[-1] for key, values in parsed.items()}


def read_json_body(environ: dict) -> Any:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length <= 0:
        return {}
    if length > MAX_BODY_BYTES:
        raise ValueError("body too large")
    return json.loads(environ["wsgi.input"].read(length) or b"{}")


# --- SigV4 ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    """What a request must be signed with for one access key id: its secret and, for a session, its token."""

    secret_access_key: str
    session_token: str | None = None
    expired: bool = False


def _invalid_token() -> ApiError:
    return ApiError("UnrecognizedClientException", "The security token included in the request is invalid.")


def _bad_signature(detail: str = "") -> ApiError:
    message = (
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
        "Access Key and signing method. Consult the service documentation for details."
    )
    return ApiError("InvalidSignatureException", message + (f" ({detail})" if detail else ""))


def verify_sigv4(
    request: ApiRequest, service: str, signing_key: Callable[[str], SigningKey | None], *, now: datetime | None = None
) -> str:
    """Check `request`'s SigV4 signature as AWS does, or raise the ApiError AWS answers; returns the access key id.

    The signature is recomputed with botocore's own signer (SigV4Auth) over an AWSRequest rebuilt from what
    arrived: method, path and query, exactly the headers the client says it signed, the body, and its
    X-Amz-Date — with the secret the sandbox issued for that key id.
    """
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    environ = request.environ
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    if not authorization:
        raise ApiError("MissingAuthenticationTokenException", "Missing Authentication Token")
    m = _AUTHORIZATION_RE.match(authorization.strip())
    if m is None:
        raise ApiError(
            "IncompleteSignatureException", "The Authorization header is not a complete AWS4-HMAC-SHA256 one."
        )
    if m["service"] != service:
        raise _bad_signature(f"credential scope names service {m['service']!r}, not {service!r}")
    amz_date = environ.get("HTTP_X_AMZ_DATE", "")
    try:
        signed_at = datetime.strptime(amz_date, SIGV4_TIMESTAMP).replace(tzinfo=timezone.utc)
    except ValueError:
        raise ApiError("IncompleteSignatureException", "X-Amz-Date is missing or malformed.") from None
    current = now or datetime.now(timezone.utc)
    if signed_at < current - MAX_CLOCK_SKEW:
        earliest = (current - MAX_CLOCK_SKEW).strftime(SIGV4_TIMESTAMP)
        raise ApiError("InvalidSignatureException", f"Signature expired: {amz_date} is now earlier than {earliest}.")
    if signed_at > current + MAX_CLOCK_SKEW:
        latest = (current + MAX_CLOCK_SKEW).strftime(SIGV4_TIMESTAMP)
        raise ApiError(
            "InvalidSignatureException", f"Signature not yet current: {amz_date} is still later than {latest}."
        )
    key = signing_key(m["key"])
    if key is None:
        raise _invalid_token()
    if key.session_token is not None and environ.get("HTTP_X_AMZ_SECURITY_TOKEN") != key.session_token:
        raise _invalid_token()  # a session's keys are valid only together with its token
    if key.expired:
        raise ApiError("ExpiredTokenException", "The security token included in the request is expired")
    names = m["headers"].split(";")
    if "host" not in names or names != sorted(set(names)):
        raise _bad_signature("SignedHeaders must be sorted, unique and include host")
    headers: dict[str, str] = {}
    for name in names:
        value = _header(environ, name)
        if value is None:
            raise _bad_signature(f"signed header {name} is missing")
        headers[name] = value
    claimed = headers.get("x-amz-content-sha256")
    if claimed is not None and claimed != hashlib.sha256(request.body).hexdigest():
        # botocore signs that header's value instead of hashing the body: it must be the body's own hash, or a
        # valid signature would vouch for a body it never saw.
        raise _bad_signature("x-amz-content-sha256 is not the SHA-256 of the body")
    raw_path = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO") or "/"
    path, _, _ = raw_path.partition("?")
    query = environ.get("QUERY_STRING", "")
    url = f"http://{headers['host']}{path}" + (f"?{query}" if query else "")
    rebuilt = AWSRequest(method=environ.get("REQUEST_METHOD", "GET"), url=url, data=request.body, headers=headers)
    rebuilt.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(m["key"], key.secret_access_key, key.session_token), service, m["region"])
    if m["date"] != amz_date[:8]:
        raise _bad_signature("the credential scope's date is not X-Amz-Date's")
    canonical = signer.canonical_request(rebuilt)
    expected = signer.signature(signer.string_to_sign(rebuilt, canonical), rebuilt)
    if not hmac.compare_digest(expected, m["signature"]):
        raise _bad_signature()
    return m["key"]


def _header(environ: dict, name: str) -> str | None:
    if name == "content-type":
        return environ.get("CONTENT_TYPE")
    if name == "content-length":
        return environ.get("CONTENT_LENGTH")
    if name == "host":
        return environ.get("HTTP_HOST")
    return environ.get("HTTP_" + name.upper().replace("-", "_"))
