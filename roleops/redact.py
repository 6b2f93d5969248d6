"""Secret redaction (pure layer): scrub secret values from any text roleops logs or shows.

Two nets. By value: every secret roleops obtains (IMDS credential documents and tokens, AssumeRole answers, the
profile's keys) is registered here, and `redact` replaces those exact strings wherever they appear, whatever the
shape of the line around them (botocore's reprs of bytes, dicts, XML, query strings, canonical requests...).
By pattern: the shapes secrets travel in, for a secret nobody registered yet. botocore logs an AssumeRole answer's
body before roleops sees the answer, so that body is the patterns' job.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from typing import Any, TextIO
from urllib.parse import quote, quote_plus

REDACTED = "***REDACTED***"
# Shorter strings would blank out ordinary words; real secrets are 40+ characters (IMDS tokens 56, session
# tokens hundreds).
MIN_SECRET_LENGTH = 8

_lock = threading.Lock()
_registered: set[str] = set()
# Snapshot read without the lock by `redact` (rebinding a name is atomic); rebuilt on every registration.
_values: tuple[str, ...] = ()


def register(*values: str | None) -> None:
    """Remember secrets for `redact` (process-wide). None, non-strings and values under 8 characters are ignored.

    Each value is also remembered URL-encoded, the ways a query string, a path or a form body carry `+`, `/`, `=`.
    """
    global _values
    forms: set[str] = set()
    for value in values:
        if not isinstance(value, str) or len(value) < MIN_SECRET_LENGTH:
            continue
        forms.update((value, quote(value, safe=""), quote(value), quote_plus(value)))
    if not forms:
        return
    with _lock:
        if forms <= _registered:
            return
        _registered.update(forms)
        _values = tuple(sorted(_registered, key=len, reverse=True))


def registered() -> int:
    """How many strings (secrets and their encoded forms) are registered: for tests and diagnostics."""
    return len(_values)


def clear() -> None:
    """Forget every registered value (tests only: a real run never un-learns a secret)."""
    global _values
    with _lock:
        _registered.clear()
        _values = ()


# A secret-looking value: what AWS secret keys, session tokens and IMDS tokens are made of (base64, URL-safe
# base64, URL-encoding). At least 8 characters, so that "ExpiredToken: The security token..." keeps its words.
_VALUE = r"[A-Za-z0-9+/=_%~-]{8,}"
# Between a name and its value: optional (escaped) closing quote, ':' or '=', optional b prefix and opening
# quote. The bytes prefix `b` belongs here: botocore logs request headers as {'X-Amz-Security-Token': b'...'}, and
# a separator without it made the value pattern take the lone `b` for the value and leave the token behind it.
_SEP = r"""\\?["']?\s*[:=]\s*(?:b?\\?["'])?"""

_PATTERNS = [
    # name/value forms: JSON and dict reprs ("Token" : "...", 'SessionToken': '...', headers {'X-Amz-Security-Token':
    # b'...'}), canonical requests (x-amz-security-token:...), env and ini lines (AWS_SESSION_TOKEN=...,
    # aws_secret_access_key = ...), query strings (X-Amz-Security-Token=...). Every "...token" name is covered.
    re.compile(rf"(?i)((?:secret_?access_?key|token){_SEP})({_VALUE})"),
    # XML forms from STS: <SecretAccessKey>...</SecretAccessKey>
    re.compile(r"(?i)(<(?:SecretAccessKey|SessionToken)>)([^<]+)"),
    # Presigned URLs: the signature is a capability for as long as the URL is valid.
    re.compile(r"(?i)(X-Amz-Signature=)([^&\s'\"]+)"),
]


def _replace_values(text: str, values: tuple[str, ...]) -> str:
    """Every occurrence of every value, overlapping ones merged, becomes one marker.

    Spans are merged rather than values replaced one after another: two secrets that overlap in the text would
    otherwise leave the second one's tail after the first one's marker.
    """
    spans: list[tuple[int, int]] = []
    for value in values:
        start = text.find(value)
        while start != -1:
            spans.append((start, start + len(value)))
            start = text.find(value, start + 1)
    if not spans:
        return text
    spans.sort()
    parts: list[str] = []
    cursor = 0
    merged_start, merged_end = spans[0]
    for start, end in spans[1:]:
        if start <= merged_end:
            merged_end = max(merged_end, end)
            continue
        parts += [text[cursor:merged_start], REDACTED]
        cursor = merged_end
        merged_start, merged_end = start, end
    parts += [text[cursor:merged_start], REDACTED, text[merged_end:]]
    return "".join(parts)


def redact(text: str) -> str:
    """`text` with every registered secret, then every secret-shaped value the patterns know, replaced."""
    values = _values
    if values:
        text = _replace_values(text, values)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


def _text_of(obj: object) -> str:
    try:
        return str(obj)
    except Exception:  # noqa: BLE001 - an object whose __str__ raises must not break the log call
        return f"<unprintable {type(obj).__name__}>"


class RedactingFilter(logging.Filter):
    """Applied to the --debug handler: botocore's DEBUG logs include security tokens and IMDS bodies.

    The record is rewritten in place (message, exception and stack text), so every handler after this one, and
    any formatter, sees only redacted text.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed log call (args not matching msg) must not break the command
            # Keep what the call carried (bytes, dicts...) as text: it is redacted like the rest.
            message = f"{_text_of(record.msg)} {_text_of(record.args)}"
        record.msg = redact(message)
        record.args = ()
        if record.exc_info and not record.exc_text:
            # The formatter would render the traceback after this filter ran, unredacted; render it now.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class RedactingStream:
    """A text stream whose writes are redacted first; the rest (isatty, fileno, encoding...) is the stream's.

    For --debug's stderr: tracebacks are printed there directly (traceback.print_exc, the interpreter's
    excepthook), not logged, so the logging filter never sees them.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(redact(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)
