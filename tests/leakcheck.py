"""The suite-wide secret leak check (test support): a registry of every output seen, and the secrets issued.

Tests record outputs here (root conftest: each test's captured output automatically; `record_output` for
subprocess output). The e2e sandbox fixture adds every secret the sandbox issued before it stops, and the root
conftest's `pytest_sessionfinish` searches every recorded output for them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Recorded:
    source: str
    text: str
    secrets_allowed: bool = False


RECORDED: list[Recorded] = []
SECRETS: set[str] = set()


def record(source: str, text: str | bytes | None, *, secrets_allowed: bool = False) -> None:
    if not text:
        return
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    RECORDED.append(Recorded(source, text, secrets_allowed))


def leaked(secrets: set[str]) -> list[str]:
    """Where any secret appears in output not allowed to hold it (names the source, never the secret)."""
    found = []
    for rec in RECORDED:
        if rec.secrets_allowed:
            continue
        if any(s and s in rec.text for s in secrets):
            found.append(rec.source)
    return found
