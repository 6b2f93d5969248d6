"""Suite-wide: record every output the tests see, so a session-end check can search it for leaked secrets.

Each test's captured stdout/stderr/log lands here automatically (a report hook). Tests that run roleops in a
subprocess pass its output to `record_output` (the e2e `run_roleops` helper does). Output of `roleops creds`,
the only command allowed to print secrets, is recorded with `secrets_allowed=True`; so are test-side reads of
the sandbox's credential documents, which are not roleops output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Recorded:
    source: str
    text: str
    secrets_allowed: bool = False


RECORDED: list[Recorded] = []


def record(source: str, text: str | bytes | None, *, secrets_allowed: bool = False) -> None:
    if not text:
        return
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    RECORDED.append(Recorded(source, text, secrets_allowed))


@pytest.fixture
def record_output() -> Callable[..., None]:
    return record


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    outcome = yield
    report = outcome.get_result()
    for name, content in report.sections:
        # The tests that print credential documents on purpose mark themselves.
        allowed = item.get_closest_marker("prints_secrets") is not None
        record(f"{item.nodeid} [{report.when}] {name}", content, secrets_allowed=allowed)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "prints_secrets: this test's captured output may hold secrets on purpose")


def leaked(secrets: set[str]) -> list[str]:
    """Where any secret appears in output not allowed to hold it (names the source, never the secret)."""
    found = []
    for rec in RECORDED:
        if rec.secrets_allowed:
            continue
        if any(s and s in rec.text for s in secrets):
            found.append(rec.source)
    return found
