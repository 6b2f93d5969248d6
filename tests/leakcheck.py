"""The suite-wide secret leak check (test support): a registry of every output seen, and the secrets issued.

Tests record outputs here (root conftest: each test's captured output automatically; `record_output` for
subprocess output). The e2e sandbox fixture adds every secret the sandbox issued before it stops (keys, session
tokens, IMDS tokens), and the root conftest's `pytest_sessionfinish` searches every recorded output for them and
for secret shapes (SHAPES). A check sees only what tests produce: tests/e2e/test_debug_leak.py runs every command
with --debug, whose log is the output that carries raw request headers and response bodies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Recorded:
    source: str
    text: str
    secrets_allowed: bool = False


RECORDED: list[Recorded] = []
SECRETS: set[str] = set()
# Secrets by shape, whoever issued them: moto mints every session token (instance role and AssumeRole alike) with
# this prefix and ~340 base64 characters. This catches tokens of sandboxes whose secrets never reach SECRETS (the
# demo's private sandbox, a test's own sandbox process) and a token printed after a redaction marker.
SHAPES = (re.compile(r"FQoGZXIvYXdzEBYaD[A-Za-z0-9+/]{40,}"),)


def record(source: str, text: str | bytes | None, *, secrets_allowed: bool = False) -> None:
    if not text:
        return
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    RECORDED.append(Recorded(source, text, secrets_allowed))


def holds_secret(text: str, secrets: set[str]) -> bool:
    """Whether `text` holds one of `secrets`, or anything shaped like a sandbox session token."""
    return any(s and s in text for s in secrets) or any(shape.search(text) for shape in SHAPES)


def leaked(secrets: set[str]) -> list[str]:
    """Where any secret appears in output not allowed to hold it (names the source, never the secret)."""
    return [rec.source for rec in RECORDED if not rec.secrets_allowed and holds_secret(rec.text, secrets)]
