"""Unit tests for roleops.redact: secrets registered by value, and the patterns as the second net.

The log lines are the shapes botocore 1.3x/1.4x really writes at DEBUG (endpoint, auth, parsers), with moto-like
and AWS-like secrets in them.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from roleops import redact as redact_module
from roleops.redact import REDACTED, RedactingFilter, RedactingStream, redact, register

# Shaped like moto's (prefix + base64, with + / =) and AWS's session tokens, a secret key and an IMDS token.
SESSION_TOKEN = (
    "FQoGZXIvYXdzEBYaD6ik/P8i0nmzOtQ+7Wr6uHdyLk5cEcqjFG2OoG1cGccf346ld6saawtoqPcXFeK9q92USkmrtUPuO75rW+N97CeXKHw22"
    "xg3kYyef9GXT7dUDfQSRGqmAnsnH4WgV/Ji3nzKu=="
)
AWS_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLETOKEN//////////wEaCXVzLWVhc3QtMSJHMEUCIQD+abc/def=="
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
IMDS_TOKEN = "AQAEAFx7Bq-VxQ3nBrk5Y-EXAMPLE_IMDS_TOKEN-4d3Dd8Y6h0uQ=="
ACCESS_KEY_ID = "ASIARZPUZDIKM3IMFCBU"


@pytest.fixture(autouse=True)
def empty_registry() -> Iterator[None]:
    """Each test starts with no registered secret (the registry is process-wide)."""
    redact_module.clear()
    yield
    redact_module.clear()


def assert_no_fragment(text: str, secret: str, window: int = 12) -> None:
    """Not the secret, and not any `window`-character piece of it: a half-redacted token is a leaked token."""
    assert secret not in text
    pieces = [secret[i : i + window] for i in range(len(secret) - window + 1)]
    survivors = [p for p in pieces if p in text]
    assert not survivors, f"fragments of the secret survive: {survivors[:3]} in {text!r}"


def sending_line(token_value: str) -> str:
    """botocore.endpoint's `Sending http request` line; header values are bytes once signed (token_value is
    the repr as botocore prints it, e.g. b'...' or '...')."""
    return (
        "Sending http request: <AWSPreparedRequest stream_output=False, method=POST, "
        "url=https://sts.us-east-1.amazonaws.com/, headers={'Content-Type': b'application/x-www-form-urlencoded; "
        "charset=utf-8', 'User-Agent': b'Botocore/1.44.8 ua/2.1 os/linux#6.8 md/arch#x86_64 lang/python#3.11.7 "
        "m/e,b,Z,E,N cfg/retry-mode#standard', 'X-Amz-Date': b'20260101T000000Z', "
        f"'X-Amz-Security-Token': {token_value}, 'Authorization': b'AWS4-HMAC-SHA256 "
        f"Credential={ACCESS_KEY_ID}/20260101/us-east-1/sts/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, "
        "Signature=15b8e83869b3fd9f6394990eea976ce019563f7880be99405bf28e94487487b5', 'Content-Length': '43'}>"
    )


# --- the issue: botocore's request line with a bytes header value -----------------------------------------


@pytest.mark.parametrize("registered", [False, True], ids=["by-pattern", "by-value"])
def test_sending_http_request_line_with_bytes_token_is_redacted_whole(registered: bool) -> None:
    if registered:
        register(SESSION_TOKEN)
    line = sending_line(f"b'{SESSION_TOKEN}'")
    out = redact(line)
    assert_no_fragment(out, SESSION_TOKEN)
    assert f"'X-Amz-Security-Token': b'{REDACTED}'" in out
    # Nothing else in the line was taken for a secret.
    assert "'X-Amz-Date': b'20260101T000000Z'" in out and ACCESS_KEY_ID in out


@pytest.mark.parametrize("registered", [False, True], ids=["by-pattern", "by-value"])
def test_sending_http_request_line_with_str_token_is_redacted(registered: bool) -> None:
    if registered:
        register(AWS_TOKEN)
    out = redact(sending_line(f"'{AWS_TOKEN}'"))
    assert_no_fragment(out, AWS_TOKEN)
    assert f"'X-Amz-Security-Token': '{REDACTED}'" in out


@pytest.mark.parametrize("registered", [False, True], ids=["by-pattern", "by-value"])
def test_imds_token_header_is_redacted(registered: bool) -> None:
    if registered:
        register(IMDS_TOKEN)
    for line in (
        f"headers={{'x-aws-ec2-metadata-token': b'{IMDS_TOKEN}'}}",
        f"headers={{'X-aws-ec2-metadata-token': '{IMDS_TOKEN}', 'User-Agent': 'Botocore/1.44.8'}}",
        f"X-aws-ec2-metadata-token: {IMDS_TOKEN}",
    ):
        assert_no_fragment(redact(line), IMDS_TOKEN)
    # The TTL header is not a secret.
    ttl = "'x-aws-ec2-metadata-token-ttl-seconds': b'21600'"
    assert redact(ttl) == ttl


@pytest.mark.parametrize("registered", [False, True], ids=["by-pattern", "by-value"])
def test_canonical_request_is_redacted(registered: bool) -> None:
    if registered:
        register(SESSION_TOKEN)
    canonical = (
        "CanonicalRequest:\nPOST\n/\n\ncontent-type:application/x-www-form-urlencoded; charset=utf-8\n"
        f"host:127.0.0.1:37737\nx-amz-date:20260101T000000Z\nx-amz-security-token:{SESSION_TOKEN}\n\n"
        "content-type;host;x-amz-date;x-amz-security-token\nab821ae955788b0e33ebd34c208442ccfc2d406e"
    )
    out = redact(canonical)
    assert_no_fragment(out, SESSION_TOKEN)
    assert "content-type;host;x-amz-date;x-amz-security-token\n" in out


@pytest.mark.parametrize("registered", [False, True], ids=["by-pattern", "by-value"])
def test_dict_reprs_and_json_documents_are_redacted(registered: bool) -> None:
    if registered:
        register(SECRET_KEY, SESSION_TOKEN)
    parsed = (
        "Response: {'Credentials': {'AccessKeyId': 'ASIARZPUZDIKM3IMFCBU', "
        f"'SecretAccessKey': '{SECRET_KEY}', 'SessionToken': '{SESSION_TOKEN}', "
        "'Expiration': datetime.datetime(2026, 1, 1, 1, 0, tzinfo=tzutc())}}"
    )
    imds_document = (
        '{\n  "Code" : "Success",\n  "AccessKeyId" : "ASIARZPUZDIKM3IMFCBU",\n'
        f'  "SecretAccessKey" : "{SECRET_KEY}",\n  "Token" : "{SESSION_TOKEN}",\n'
        '  "Expiration" : "2026-01-01T06:00:00Z"\n}'
    )
    escaped_json = (  # a JSON document inside a JSON string, as a repr of a request body shows it
        f'"{{\\"AccessKeyId\\": \\"{ACCESS_KEY_ID}\\", \\"SecretAccessKey\\": \\"{SECRET_KEY}\\", '
        f'\\"Token\\": \\"{SESSION_TOKEN}\\"}}"'
    )
    for text in (parsed, imds_document, repr(imds_document.encode()), escaped_json):
        out = redact(text)
        assert_no_fragment(out, SECRET_KEY)
        assert_no_fragment(out, SESSION_TOKEN)
        assert ACCESS_KEY_ID in out  # key ids are not secrets


@pytest.mark.parametrize("registered", [False, True], ids=["by-pattern", "by-value"])
def test_xml_bodies_are_redacted(registered: bool) -> None:
    if registered:
        register(SECRET_KEY, SESSION_TOKEN)
    body = (
        '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials>'
        f"<AccessKeyId>{ACCESS_KEY_ID}</AccessKeyId><SecretAccessKey>{SECRET_KEY}</SecretAccessKey>"
        f"<SessionToken>{SESSION_TOKEN}</SessionToken><Expiration>2026-01-01T01:00:00Z</Expiration>"
        "</Credentials></AssumeRoleResult></AssumeRoleResponse>"
    )
    for text in (body, "Response body:\n" + repr(body.encode())):
        out = redact(text)
        assert_no_fragment(out, SECRET_KEY)
        assert_no_fragment(out, SESSION_TOKEN)
        assert f"<AccessKeyId>{ACCESS_KEY_ID}</AccessKeyId>" in out


@pytest.mark.parametrize("registered", [False, True], ids=["by-pattern", "by-value"])
def test_query_strings_are_redacted(registered: bool) -> None:
    if registered:
        register(SESSION_TOKEN)
    url = (
        "https://sts.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256"
        f"&X-Amz-Credential={ACCESS_KEY_ID}%2F20260101%2Fus-east-1%2Fsts%2Faws4_request"
        f"&X-Amz-Security-Token={quote(SESSION_TOKEN, safe='')}&X-Amz-Signature=15b8e83869b3fd9f63"
    )
    out = redact(url)
    assert_no_fragment(out, SESSION_TOKEN)
    assert_no_fragment(out, quote(SESSION_TOKEN, safe=""))
    assert "&X-Amz-Signature=" + REDACTED in out and "Action=GetCallerIdentity" in out


def test_env_and_ini_lines_are_redacted_by_pattern() -> None:
    text = (
        f"export AWS_SECRET_ACCESS_KEY={SECRET_KEY}\nexport AWS_SESSION_TOKEN='{SESSION_TOKEN}'\n"
        f"aws_secret_access_key = {SECRET_KEY}\naws_session_token={AWS_TOKEN}\n"
    )
    out = redact(text)
    for secret in (SECRET_KEY, SESSION_TOKEN, AWS_TOKEN):
        assert_no_fragment(out, secret)


# --- by value: any context ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "{s}",
        "prefix{s}suffix",  # glued to other characters: no pattern could tell where it starts
        "Traceback (most recent call last):\n  ValueError: bad credential {s!r}",
        "('ASIA', {s!r}, None)",
        "<p>{s}</p>",
        "key={s}&next=1",
        "value: {s}; other: {s}",  # every occurrence
        "b'{s}'",
    ],
)
def test_registered_values_are_redacted_in_any_context(template: str) -> None:
    register(SESSION_TOKEN, SECRET_KEY, IMDS_TOKEN)
    for secret in (SESSION_TOKEN, SECRET_KEY, IMDS_TOKEN):
        out = redact(template.format(s=secret))
        assert_no_fragment(out, secret)
        assert REDACTED in out


def test_registered_values_are_redacted_url_encoded() -> None:
    register(SESSION_TOKEN)
    for encoded in (quote(SESSION_TOKEN, safe=""), quote(SESSION_TOKEN)):
        assert encoded != SESSION_TOKEN
        out = redact(f"Body=Token%3D{encoded}%26x")
        assert encoded not in out


def test_overlapping_values_leave_no_tail() -> None:
    first, second = "abcdefgh12345678", "12345678ZYXWVUTSRQ"
    register(first, second)
    assert redact(f"[{first[:8]}{second}]") == f"[{REDACTED}]"  # they share 12345678
    contained = "X" * 10 + first + "Y" * 10
    register(contained)
    assert redact(f"<{contained}>") == f"<{REDACTED}>"  # one value inside another: one marker
    assert redact(f"{first} and {second}") == f"{REDACTED} and {REDACTED}"


def test_none_and_short_values_are_ignored() -> None:
    before = redact_module.registered()
    register(None, "", "short", "1234567")
    assert redact_module.registered() == before
    assert redact("a short word and 1234567") == "a short word and 1234567"
    register(12345678)  # type: ignore[arg-type]  # not a string: ignored, not an error
    assert redact_module.registered() == before


def test_registration_is_thread_safe() -> None:
    values = [f"secret-{n:04d}-{'x' * 20}" for n in range(400)]
    threads = [threading.Thread(target=register, args=tuple(values[i::8])) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out = redact(" ".join(values))
    assert not [v for v in values if v in out]


def test_redaction_is_idempotent_and_ordinary_text_is_left_alone() -> None:
    register(SESSION_TOKEN)
    once = redact(sending_line(f"b'{SESSION_TOKEN}'"))
    assert redact(once) == once
    message = "ExpiredToken: The security token included in the request is expired"
    assert redact(message) == message
    assert redact("token_requests=3 get_requests=4") == "token_requests=3 get_requests=4"


# --- the logging filter and the stream ------------------------------------------------------------------


def emit(logger_name: str, *, exc: bool = False, msg: object, args: object = ()) -> str:
    """Log one DEBUG record through a handler with RedactingFilter; what the handler wrote."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger(logger_name)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        if exc:
            try:
                raise ValueError(f"refused {SESSION_TOKEN}")
            except ValueError:
                logger.debug(msg, *args if isinstance(args, tuple) else (args,), exc_info=True)
        else:
            logger.debug(msg, *args if isinstance(args, tuple) else (args,))
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_filter_redacts_bytes_args() -> None:
    body = f"<SessionToken>{SESSION_TOKEN}</SessionToken>".encode()
    out = emit("roleops.test.bytes", msg="Response body:\n%r", args=(body,))
    assert_no_fragment(out, SESSION_TOKEN)
    out = emit("roleops.test.headers", msg="Sending http request: %s", args=(sending_line(f"b'{SESSION_TOKEN}'"),))
    assert_no_fragment(out, SESSION_TOKEN)


def test_filter_redacts_a_mapping_arg() -> None:
    register(SECRET_KEY)
    out = emit("roleops.test.mapping", msg="creds %(key)s for %(who)s", args=({"key": SECRET_KEY, "who": "me"},))
    assert_no_fragment(out, SECRET_KEY)
    assert "for me" in out


def test_filter_survives_a_malformed_call_and_still_redacts() -> None:
    register(SESSION_TOKEN)
    out = emit("roleops.test.malformed", msg="one placeholder %s %s", args=(SESSION_TOKEN,))
    assert_no_fragment(out, SESSION_TOKEN)
    assert "one placeholder" in out


def test_filter_redacts_the_traceback() -> None:
    register(SESSION_TOKEN)
    out = emit("roleops.test.exc", msg="failed", exc=True)
    assert "Traceback" in out and "ValueError: refused" in out
    assert_no_fragment(out, SESSION_TOKEN)


def test_stream_redacts_what_is_written() -> None:
    register(SECRET_KEY)
    target = io.StringIO()
    stream = RedactingStream(target)
    stream.write(f"Traceback...\nValueError: {SECRET_KEY}\n")
    stream.writelines([f"again {SECRET_KEY}\n"])
    stream.flush()  # delegated
    assert_no_fragment(target.getvalue(), SECRET_KEY)
    assert stream.isatty() is False
