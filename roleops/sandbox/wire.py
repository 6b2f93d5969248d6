"""Sandbox (product, offline): WSGI plumbing: read AWS query requests, write AWS-shaped answers."""

from __future__ import annotations

import io
import json
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
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


def error_response(err: ApiError, service: str | None) -> Response:
    """The error document of `service`'s protocol: EC2's own, or the query protocol's (IAM, STS)."""
    if service == "ec2":
        return ec2_error(err.status, err.code, err.message)
    xmlns = STS_XMLNS if service == "sts" else IAM_XMLNS
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

    @property
    def action(self) -> str | None:
        return self.params.get("Action")

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
    return ApiRequest(environ, body, access_key_id, service, params, form)


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
