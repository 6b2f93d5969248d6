"""Suite-wide: record every output the tests see and, at the end, search it for every secret the sandbox issued.

Each test's captured stdout/stderr/log lands in tests/leakcheck.py automatically (a report hook). Tests that run
roleops in a subprocess pass its output to `record_output`. Output of `roleops creds`, the only command allowed
to print secrets, is recorded with `secrets_allowed=True`; so are tests marked `prints_secrets` (test-side reads
of the sandbox's credential documents, which are not roleops output).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from leakcheck import RECORDED, SECRETS, leaked, record


@pytest.fixture
def record_output() -> Callable[..., None]:
    return record


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    outcome = yield
    report = outcome.get_result()
    allowed = item.get_closest_marker("prints_secrets") is not None
    for name, content in report.sections:
        record(f"{item.nodeid} [{report.when}] {name}", content, secrets_allowed=allowed)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "prints_secrets: this test's captured output may hold secrets on purpose")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not RECORDED:
        return
    # Run even when no sandbox reported secrets (a unit-only run, the demo's private sandbox): the shapes still apply.
    sources = leaked(SECRETS)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    checked = sum(1 for r in RECORDED if not r.secrets_allowed)
    if sources:
        if reporter:
            reporter.write_line(
                f"SECRET LEAK: one of {len(SECRETS)} sandbox-issued secrets, or a sandbox session token, found in:",
                red=True,
            )
            for source in sorted(set(sources)):
                reporter.write_line(f"  {source}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif reporter and SECRETS:
        reporter.write_line(
            f"leak check: {len(SECRETS)} sandbox-issued secrets, {checked} outputs searched, none found"
        )
