"""Presentation layer: the only module that imports rich. Renders result objects; never calls AWS.

Results go to stdout, diagnostics (errors, warnings, spinners) to stderr. With --output json, stdout carries
exactly one JSON document and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import IO, Any

from roleops.errors import RoleOpsError
from roleops.results import (
    Action,
    DoctorReport,
    Finding,
    Identity,
    PlanReport,
    Status,
    StepResult,
    VerifyReport,
    iso_z,
)

_ACTION_STYLE = {
    Action.CREATE: "green",
    Action.UPDATE: "yellow",
    Action.REPLACE: "yellow",
    Action.DELETE: "red",
    Action.UNCHANGED: "dim",
    Action.FAILED: "bold red",
}
_STATUS_STYLE = {Status.PASS: "green", Status.FAIL: "bold red", Status.WARN: "yellow", Status.SKIP: "dim"}


def time_left(expiration: datetime | None, now: datetime | None = None) -> str:
    if expiration is None:
        return ""
    now = now or datetime.now(timezone.utc)
    if expiration.tzinfo is None:
        expiration = expiration.replace(tzinfo=timezone.utc)
    seconds = int((expiration - now).total_seconds())
    if seconds <= 0:
        return "expired"
    hours, rem = divmod(seconds, 3600)
    return f"{hours}h{rem // 60:02d}m" if hours else f"{rem // 60}m{rem % 60:02d}s"


class Renderer:
    def __init__(self, output: str = "table", *, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> None:
        self.output = output
        self._stdout = stdout or sys.stdout
        self._stderr = stderr or sys.stderr
        self._out: Any = None
        self._err: Any = None

    # rich's consoles are made on first use: --output json with nothing to report on stderr never imports rich
    # (what that saves a runbook's `roleops verify --output json` is measured in the README's Benchmarks).
    @property
    def out(self) -> Any:
        if self._out is None:
            self._out = self._console(self._stdout, soft_wrap=False)
        return self._out

    @property
    def err(self) -> Any:
        if self._err is None:
            self._err = self._console(self._stderr)
        return self._err

    @staticmethod
    def _console(file: IO[str], **kwargs: Any) -> Any:
        from rich.console import Console

        # Wide when not a terminal, so ARNs in piped output are not folded mid-word.
        return Console(file=file, width=None if file.isatty() else 160, highlight=False, **kwargs)

    @property
    def json_mode(self) -> bool:
        return self.output == "json"

    # --- generic -----------------------------------------------------------------------------

    def json(self, document: Any) -> None:
        self._stdout.write(json.dumps(document, indent=2, default=str) + "\n")
        self._stdout.flush()

    def error(self, err: RoleOpsError | str) -> None:
        text = err.one_line() if isinstance(err, RoleOpsError) else str(err)
        # markup=False: messages quote user input and AWS text, which may contain [brackets].
        self.err.print(f"roleops: error: {text}", markup=False, style="red", soft_wrap=True)

    def warn(self, text: str) -> None:
        self.err.print(f"roleops: warning: {text}", markup=False, style="yellow", soft_wrap=True)

    def info(self, text: str) -> None:
        """A diagnostic line on stderr (progress of a long command)."""
        self.err.print(text, markup=False, soft_wrap=True)

    @contextlib.contextmanager
    def waiting(self, message: str) -> Iterator[None]:
        """A spinner on stderr while roleops waits for IAM/EC2 to catch up."""
        if not self._stderr.isatty():
            self.info(f"… {message}")
            yield
            return
        with self.err.status(message, spinner="dots"):
            yield

    @contextlib.contextmanager
    def progress(self, total: int, what: str) -> Iterator[Callable[[], None]]:
        """A progress bar on stderr for a fleet (a terminal, table output, more than one); otherwise silent."""
        if total <= 1 or self.json_mode or not self._stderr.isatty():
            yield lambda: None
            return
        from rich.progress import Progress

        with Progress(console=self.err, transient=True) as bar:
            task = bar.add_task(what, total=total)
            yield lambda: bar.advance(task)

    # --- setup / associate / teardown --------------------------------------------------------------

    def plan(self, report: PlanReport, title: str = "roleops setup") -> None:
        if self.json_mode:
            self.json(report.to_json())
            return
        from rich.table import Table

        suffix = " (dry run: nothing was changed)" if report.dry_run else ""
        table = Table(title=f"{title}{suffix}", title_justify="left")
        # A plan across accounts says which account each row is in; one account needs no column for it.
        accounts = len({c.account for c in report.changes if c.account}) > 1
        if accounts:
            table.add_column("account", no_wrap=True)
        table.add_column("resource", no_wrap=True)
        table.add_column("action", no_wrap=True)
        table.add_column("detail", overflow="fold")
        for change in report.changes:
            action = change.action.value
            if report.dry_run and change.action is not Action.UNCHANGED:
                action = f"{action} (planned)"
            cells = [change.resource, f"[{_ACTION_STYLE[change.action]}]{action}[/]", _escape(change.detail)]
            table.add_row(*([change.account or ""] if accounts else []), *cells)
        self.out.print(table)

    # --- verify ------------------------------------------------------------------------------------

    def identity(self, step: StepResult, now: datetime | None = None) -> None:
        """Printed as soon as a step knows who the credentials are."""
        if self.json_mode or step.identity is None:
            return
        from rich.table import Table

        ident: Identity = step.identity
        table = Table(title=f"{step.step}: {ident.source}", title_justify="left", show_header=False)
        table.add_column("field", style="bold", no_wrap=True)
        table.add_column("value", overflow="fold")
        for label, value in (
            ("account", ident.account),
            ("user id", ident.user_id),
            ("arn", ident.arn),
            ("access key id", ident.access_key_id),
            ("expires", iso_z(ident.expiration)),
            ("time left", time_left(ident.expiration, now)),
        ):
            if value:
                table.add_row(label, _escape(value))
        self.out.print(table)

    def verify(self, report: VerifyReport) -> None:
        if self.json_mode:
            self.json(report.to_json())
            return
        from rich.table import Table

        table = Table(title="roleops verify", title_justify="left")
        table.add_column("step", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("message", overflow="fold")
        for step in report.steps:
            message = step.message + (f"\nhint: {step.hint}" if step.hint else "")
            table.add_row(step.step, f"[{_STATUS_STYLE[step.status]}]{step.status.value.upper()}[/]", _escape(message))
        self.out.print(table)
        verdict = "[bold green]PASS[/]" if report.ok else "[bold red]FAIL[/]"
        failed = [s.step for s in report.steps if s.status is Status.FAIL]
        self.out.print(f"{verdict} " + (f"broken link: {failed[0]}" if failed else "every link of the chain holds"))

    # --- doctor ------------------------------------------------------------------------------------

    def doctor(self, report: DoctorReport) -> None:
        if self.json_mode:
            self.json(report.to_json())
            return
        from rich.table import Table

        table = Table(title="roleops doctor", title_justify="left")
        table.add_column("check", no_wrap=True)
        table.add_column("status", no_wrap=True)
        # fold, never "…": a cut ARN misleads and a cut command cannot be pasted
        table.add_column("detail", overflow="fold")
        table.add_column("fix", overflow="fold")
        for f in report.findings:
            table.add_row(
                f.check,
                f"[{_STATUS_STYLE[f.status]}]{f.status.value.upper()}[/]",
                _escape(f.detail),
                _escape(_fix_text(f)),
            )
        self.out.print(table)
        verdict = "[bold green]OK[/]" if report.ok else "[bold red]BROKEN[/]"
        failed = [f.check for f in report.findings if f.status is Status.FAIL]
        self.out.print(f"{verdict} " + (f"first broken link: {failed[0]}" if failed else "no broken link found"))

    # --- smoke -------------------------------------------------------------------------------------

    def smoke(self, report: Any) -> None:
        """One row per instance: its status, the broken link (the first failed step) and why."""
        if self.json_mode:
            self.json(report.to_json())
            return
        from rich.table import Table

        styles = {"pass": "green", "fail": "bold red", "error": "bold red", "undeliverable": "yellow",
                  "timed-out": "yellow"}  # fmt: skip
        table = Table(title="roleops smoke", title_justify="left")
        table.add_column("instance", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("broken link", no_wrap=True)
        table.add_column("message", overflow="fold")
        for i in report.instances:
            style = styles.get(i.status, "")
            table.add_row(i.instance_id, f"[{style}]{i.status}[/]", i.broken_link or "", _escape(i.message))
        self.out.print(table)
        counts = ", ".join(f"{n} {status}" for status, n in sorted(report.counts().items()))
        verdict = "[bold green]PASS[/]" if report.ok else "[bold red]FAIL[/]"
        self.out.print(f"{verdict} {counts}; SSM command(s) {', '.join(report.command_ids) or 'none sent'}")


def _fix_text(f: Finding) -> str:
    # When no roleops command mends a link, `fix` is the aws command itself: show it once.
    aws_line = f"aws: {f.fix_aws}" if f.fix_aws and f.fix_aws != f.fix else ""
    return "\n".join(p for p in (f.fix, aws_line) if p)


def _escape(text: str | None) -> str:
    from rich.markup import escape

    return escape(text or "")
