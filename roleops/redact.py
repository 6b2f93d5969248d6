"""Secret redaction (pure layer): scrub secret values from any text roleops logs or shows."""

from __future__ import annotations

import logging
import re

_PATTERNS = [
    # JSON / dict forms: "SecretAccessKey": "...", 'Token': '...', "SessionToken": "..."
    re.compile(
        r"""(["']?(?:SecretAccessKey|SessionToken|Token|secret_access_key|session_token|aws_secret_access_key|aws_session_token)["']?\s*[:=]\s*["']?)([^"'\s,}<]+)"""
    ),
    # XML forms from STS: <SecretAccessKey>...</SecretAccessKey>
    re.compile(r"(<(?:SecretAccessKey|SessionToken)>)([^<]+)"),
    # Signed request headers
    re.compile(
        r"((?:X-Amz-Security-Token|x-amz-security-token|X-aws-ec2-metadata-token)['\"]?\s*[:=]\s*[b]?['\"]?)([^'\"\s,}]+)"
    ),
    # Query strings (presigned URLs)
    re.compile(r"((?:X-Amz-Security-Token|X-Amz-Signature)=)([^&\s'\"]+)"),
]

REDACTED = "***REDACTED***"


def redact(text: str) -> str:
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


class RedactingFilter(logging.Filter):
    """Applied to the --debug handler: botocore's DEBUG logs include security tokens and IMDS bodies."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed log call must not break the command
            message = str(record.msg)
        record.msg = redact(message)
        record.args = ()
        return True
