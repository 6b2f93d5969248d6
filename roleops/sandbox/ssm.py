"""Sandbox (product, offline): SSM Run Command — commands, invocations, the runner, the six API handlers.

moto's SSM only records commands; here AWS-RunShellScript really runs on the sandbox instance. Each invocation
is `/bin/sh _script.sh` in a process group of its own, on this host, with the instance's metadata endpoint, the
sandbox's endpoint, no credentials and a HOME of its own: what an operator's `aws ssm send-command` gets from a
real instance's agent. Statuses, limits, truncation markers and response codes are AWS's (AWS-FACTS "SSM Run
Command"; the markers and the 137 are amazon-ssm-agent's); where AWS's documentation leaves a choice open, the
choice is named where it is made.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

from .state import World, now_utc
from .wire import ApiError

ACTIONS = frozenset(
    {
        "SendCommand",
        "ListCommands",
        "ListCommandInvocations",
        "GetCommandInvocation",
        "CancelCommand",
        "DescribeInstanceInformation",
    }
)
DOCUMENT_NAME = "AWS-RunShellScript"
PLUGIN_NAME = "aws:runShellScript"
_DOCUMENT_ARN_RE = re.compile(r"^arn:aws[\w-]*:ssm:[\w-]*:(\d{12})?:document/AWS-RunShellScript$")
_DOCUMENT_PARAMETERS = ("commands", "workingDirectory", "executionTimeout")

# Limits (botocore's model; AWS-FACTS "SSM Run Command").
MAX_INSTANCE_IDS = 50
MAX_TARGETS = 5
MAX_TARGET_VALUES = 50
MIN_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS = 30, 2_592_000
DEFAULT_TIMEOUT_SECONDS = 3600  # delivery: a command not started this long after it was sent never runs
DEFAULT_EXECUTION_TIMEOUT = 3600  # AWS-RunShellScript's executionTimeout default
MAX_EXECUTION_TIMEOUT = 172_800
DEFAULT_MAX_CONCURRENCY = "50"
DEFAULT_MAX_ERRORS = "0"
MAX_COMMENT = 100
COMMAND_RESULTS = (1, 50, 50)  # ListCommands / ListCommandInvocations MaxResults: min, max, default
INSTANCE_RESULTS = (5, 50, 10)  # DescribeInstanceInformation MaxResults: min, max, default
_CONCURRENCY_RE = re.compile(r"^([1-9][0-9]*|[1-9][0-9]%|[1-9]%|100%)$")
_ERRORS_RE = re.compile(r"^([1-9][0-9]*|[0]|[1-9][0-9]%|[0-9]%|100%)$")
_INSTANCE_ID_RE = re.compile(r"(^i-(\w{8}|\w{17})$)|(^mi-\w{17}$)")
_COMMAND_ID_LENGTH = 36

# Output limits and the agent's truncation markers (amazon-ssm-agent, iohandler): GetCommandInvocation's
# StandardOutputContent/StandardErrorContent are the first 24,000/8,000 characters and, when cut, end with
# OUTPUT_TRUNCATED within the limit; a plugin's Output (ListCommandInvocations with Details) is stdout, the
# error title and stderr, cut to 2,500 characters (the service's limit; the agent itself cuts at 2,400) with the
# agent's markers after each cut part.
STDOUT_LIMIT = 24_000
STDERR_LIMIT = 8_000
PLUGIN_OUTPUT_LIMIT = 2_500
OUTPUT_TRUNCATED = "--output truncated--"
PLUGIN_STDOUT_TRUNCATED = "\n---Output truncated---"
PLUGIN_STDERR_TRUNCATED = "\n---Error truncated----"
PLUGIN_ERROR_TITLE = "\n----------ERROR-------\n"

# amazon-ssm-agent's CommandStoppedPreemptivelyExitCode on Linux (128 + SIGKILL): the ResponseCode of a script
# killed for its execution timeout or by CancelCommand. -1: no response (not run).
STOPPED_RESPONSE_CODE = 137
NO_RESPONSE_CODE = -1

WORKERS = 8  # scripts running at once across all commands (each command also stays within its MaxConcurrency)
POLL_SECONDS = 0.05  # how often a running script's wait looks at its cancel flag and deadline
DRAIN_SECONDS = 5.0  # how long a reset or stop waits for killed scripts' workers to finish
MAX_COMMANDS = 500  # commands remembered; the oldest finished ones go first
AGENT_VERSION = "3.3.1142.0"

# Invocation states: (Status, StatusDetails). AWS's StatusDetails words, without spaces as the API writes them.
PENDING = ("Pending", "Pending")
IN_PROGRESS = ("InProgress", "InProgress")
SUCCESS = ("Success", "Success")
FAILED = ("Failed", "Failed")
EXECUTION_TIMED_OUT = ("TimedOut", "ExecutionTimedOut")
DELIVERY_TIMED_OUT = ("TimedOut", "DeliveryTimedOut")
UNDELIVERABLE = ("Failed", "Undeliverable")  # an instance whose agent does not answer (or is gone)
CANCELLED = ("Cancelled", "Cancelled")
CANCELLING = ("Cancelling", "Cancelling")
TERMINATED = ("Cancelled", "Terminated")  # not started: MaxErrors was exceeded ("canceled by the system")
_WAITING = frozenset({"Pending", "InProgress", "Cancelling"})
_ERRORS = frozenset({"Failed", "ExecutionTimedOut"})  # what counts against MaxErrors (ErrorCount)


class InstanceView(Protocol):
    """What SSM needs of a sandbox instance (server.SandboxInstance)."""

    @property
    def instance_id(self) -> str: ...

    @property
    def metadata_endpoint(self) -> str: ...

    @property
    def ssm_agent(self) -> bool: ...

    @property
    def roleops(self) -> bool: ...


# --- models ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Managed:
    """An instance SSM manages, as it is now: every sandbox-launched instance that is not terminated."""

    instance_id: str
    metadata_endpoint: str
    online: bool  # an agent that answers: launched with one, and running
    roleops: bool  # roleops on the PATH of its scripts
    tags: tuple[tuple[str, str], ...]
    ip_address: str
    computer_name: str
    iam_role: str

    def tag(self, key: str) -> str | None:
        return dict(self.tags).get(key)


@dataclass(frozen=True)
class Script:
    """AWS-RunShellScript's parameters, checked."""

    commands: tuple[str, ...]
    working_directory: str
    execution_timeout: int

    def text(self) -> str:
        # The agent writes the commands, one a line, into _script.sh and runs it with sh.
        return "\n".join(self.commands) + "\n"


@dataclass(eq=False)
class Invocation:
    """One command on one instance. Mutable; every field is read and written under RunCommand's lock."""

    target: Managed
    state: tuple[str, str] = PENDING
    response_code: int = NO_RESPONSE_CODE
    started: datetime | None = None
    finished: datetime | None = None
    stdout: str = ""
    stderr: str = ""
    submitted: bool = False  # handed to the workers (it holds one of the command's MaxConcurrency slots)
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def instance_id(self) -> str:
        return self.target.instance_id

    @property
    def details(self) -> str:
        return self.state[1]

    @property
    def waiting(self) -> bool:
        return self.details in _WAITING

    def finish(self, state: tuple[str, str], *, code: int = NO_RESPONSE_CODE) -> None:
        self.state = state
        self.response_code = code
        self.finished = now_utc()


@dataclass(eq=False)
class Command:
    """One SendCommand: what was asked, its rate controls, and an invocation per target."""

    command_id: str
    region: str
    document_version: str
    comment: str
    parameters: dict[str, list[str]]
    instance_ids: list[str]
    targets: list[dict[str, Any]]
    requested: datetime
    timeout_seconds: int
    max_concurrency: str
    max_errors: str
    concurrency: int
    error_limit: int
    script: Script
    invocations: list[Invocation] = field(default_factory=list)
    cancel_requested: bool = False
    running: int = 0  # invocations handed to the workers and not back yet

    def invocation(self, instance_id: str) -> Invocation | None:
        return next((i for i in self.invocations if i.instance_id == instance_id), None)

    def error_count(self) -> int:
        return sum(1 for i in self.invocations if i.details in _ERRORS)

    @property
    def delivery_deadline(self) -> datetime:
        return self.requested + timedelta(seconds=self.timeout_seconds)

    def state(self) -> tuple[str, str]:
        """The command's status from its invocations' (AWS "Understanding command statuses")."""
        invocations = self.invocations
        if not invocations:
            # A tag that matches no managed instance (AWS: "No Instances In Tag", a terminal state).
            return ("Success", "NoInstancesInTag")
        waiting = [i for i in invocations if i.waiting]
        if any(i.details == "Cancelling" for i in invocations) or (self.cancel_requested and waiting):
            return CANCELLING
        if waiting:
            return IN_PROGRESS if any(i.started is not None for i in invocations) else PENDING
        if self.cancel_requested:
            return CANCELLED
        details = [i.details for i in invocations]
        if all(d == "Success" for d in details):
            return SUCCESS
        errors = [d for d in details if d in _ERRORS]
        if len(errors) > self.error_limit:
            return EXECUTION_TIMED_OUT if all(d == "ExecutionTimedOut" for d in errors) else FAILED
        if details.count("DeliveryTimedOut") > self.error_limit:
            return DELIVERY_TIMED_OUT
        if all(d in ("Success", "Undeliverable") for d in details):
            # Undeliverable invocations do not count against MaxErrors: one success makes the command a success,
            # none makes it Failed (AWS's own example).
            return SUCCESS if "Success" in details else FAILED
        # Every target tried, not every one succeeded, not enough failed for Failed: AWS's "Incomplete", which
        # the Status enum has no word for (the sandbox says Failed there).
        return ("Failed", "Incomplete")

    def to_json(self) -> dict[str, Any]:
        status, details = self.state()
        timeout = self.script.execution_timeout
        return {
            "CommandId": self.command_id,
            "DocumentName": DOCUMENT_NAME,
            "DocumentVersion": self.document_version,
            "Comment": self.comment,
            "ExpiresAfter": _epoch(self.delivery_deadline + timedelta(seconds=timeout)),
            "Parameters": self.parameters,
            "InstanceIds": self.instance_ids,
            "Targets": self.targets,
            "RequestedDateTime": _epoch(self.requested),
            "Status": status,
            "StatusDetails": details,
            "OutputS3Region": self.region,
            "OutputS3BucketName": "",
            "OutputS3KeyPrefix": "",
            "MaxConcurrency": self.max_concurrency,
            "MaxErrors": self.max_errors,
            "TargetCount": len(self.invocations),
            "CompletedCount": sum(1 for i in self.invocations if not i.waiting),
            "ErrorCount": self.error_count(),
            "DeliveryTimedOutCount": sum(1 for i in self.invocations if i.details == "DeliveryTimedOut"),
            "ServiceRole": "",
            "NotificationConfig": _NO_NOTIFICATIONS,
            "CloudWatchOutputConfig": _NO_CLOUDWATCH,
            "TimeoutSeconds": self.timeout_seconds,
        }

    def invocation_json(self, invocation: Invocation, *, details: bool) -> dict[str, Any]:
        status, status_details = invocation.state
        return {
            "CommandId": self.command_id,
            "InstanceId": invocation.instance_id,
            "InstanceName": "",
            "Comment": self.comment,
            "DocumentName": DOCUMENT_NAME,
            "DocumentVersion": self.document_version,
            "RequestedDateTime": _epoch(self.requested),
            "Status": status,
            "StatusDetails": status_details,
            "TraceOutput": "",
            "StandardOutputUrl": "",
            "StandardErrorUrl": "",
            "CommandPlugins": [self._plugin_json(invocation)] if details else [],
            "ServiceRole": "",
            "NotificationConfig": _NO_NOTIFICATIONS,
            "CloudWatchOutputConfig": _NO_CLOUDWATCH,
        }

    def _plugin_json(self, invocation: Invocation) -> dict[str, Any]:
        status, details = invocation.state
        plugin: dict[str, Any] = {
            "Name": PLUGIN_NAME,
            # A plugin has no Cancelling status: it is still running until it is cancelled.
            "Status": "InProgress" if status == "Cancelling" else status,
            "StatusDetails": details,
            "ResponseCode": invocation.response_code,
            "Output": plugin_output(invocation.stdout, invocation.stderr),
            "StandardOutputUrl": "",
            "StandardErrorUrl": "",
            "OutputS3Region": self.region,
            "OutputS3BucketName": "",
            "OutputS3KeyPrefix": "",
        }
        if invocation.started is not None:
            plugin["ResponseStartDateTime"] = _epoch(invocation.started)
        if invocation.finished is not None and invocation.started is not None:
            plugin["ResponseFinishDateTime"] = _epoch(invocation.finished)
        return plugin

    def get_invocation_json(self, invocation: Invocation) -> dict[str, Any]:
        status, details = invocation.state
        started, finished = invocation.started, invocation.finished
        elapsed = ended = ""
        if started is not None and finished is not None:
            elapsed, ended = f"PT{(finished - started).total_seconds():.3f}S", _iso_ms(finished)
        return {
            "CommandId": self.command_id,
            "InstanceId": invocation.instance_id,
            "Comment": self.comment,
            "DocumentName": DOCUMENT_NAME,
            "DocumentVersion": self.document_version,
            "PluginName": PLUGIN_NAME,
            "ResponseCode": invocation.response_code,
            "ExecutionStartDateTime": _iso_ms(started) if started is not None else "",
            "ExecutionElapsedTime": elapsed,
            "ExecutionEndDateTime": ended,
            "Status": status,
            "StatusDetails": details,
            "StandardOutputContent": invocation.stdout,
            "StandardOutputUrl": "",
            "StandardErrorContent": invocation.stderr,
            "StandardErrorUrl": "",
            "CloudWatchOutputConfig": _NO_CLOUDWATCH,
        }


_NO_NOTIFICATIONS = {"NotificationArn": "", "NotificationEvents": [], "NotificationType": ""}
_NO_CLOUDWATCH = {"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": False}


def _epoch(moment: datetime) -> float:
    return round(moment.timestamp(), 3)  # the JSON protocol's timestamps: epoch seconds


def _iso_ms(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# --- pure helpers ---------------------------------------------------------------------------------------


def rate_limit(text: str, targets: int, *, at_least_one: bool) -> int:
    """MaxConcurrency / MaxErrors as a count of targets: N, or N% of them (concurrency rounds up and is at
    least 1, so a command always makes progress; errors round down, so a percentage never allows more errors
    than it says: 10% of 50 targets allows 5, and the 6th error stops the command, as AWS's example has it)."""
    if text.endswith("%"):
        share = int(text[:-1]) * targets
        return max(1, -(-share // 100)) if at_least_one else share // 100
    return int(text)


def truncate(text: str, cut: bool, limit: int) -> str:
    """`text`, or its first characters and OUTPUT_TRUNCATED within `limit` when it was cut or is longer."""
    if not cut and len(text) <= limit:
        return text
    return text[: limit - len(OUTPUT_TRUNCATED)] + OUTPUT_TRUNCATED


def plugin_output(stdout: str, stderr: str, capacity: int = PLUGIN_OUTPUT_LIMIT) -> str:
    """A plugin's Output: stdout, the error title and stderr within `capacity` characters, cut as the SSM agent's
    TruncateOutput cuts them (half each when both are long, else the long one, each cut part marked)."""
    title = PLUGIN_ERROR_TITLE if stderr else ""
    available = capacity - len(title)
    if len(stdout) + len(stderr) < available:
        return stdout + title + stderr
    half = available // 2
    if len(stdout) > half and len(stderr) > half:
        size = (available - len(PLUGIN_STDERR_TRUNCATED) - len(PLUGIN_STDOUT_TRUNCATED)) // 2
        return stdout[:size] + PLUGIN_STDOUT_TRUNCATED + title + stderr[:size] + PLUGIN_STDERR_TRUNCATED
    if len(stdout) < half:
        size = available - len(PLUGIN_STDERR_TRUNCATED) - len(stdout)
        return stdout + title + stderr[:size] + PLUGIN_STDERR_TRUNCATED
    size = available - len(PLUGIN_STDOUT_TRUNCATED) - len(stderr)
    return stdout[:size] + PLUGIN_STDOUT_TRUNCATED + title + stderr


def read_head(path: Path, limit: int) -> tuple[str, bool]:
    """The first characters of a UTF-8 output file (bad bytes replaced), and whether there was more than `limit`.
    Reads a bounded number of bytes however much the script wrote."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(limit * 4 + 4)  # a UTF-8 character is at most 4 bytes
            more = bool(handle.read(1))
    except OSError:
        return "", False
    text = raw.decode("utf-8", "replace")
    return text, more or len(text) > limit


# --- request checks ---------------------------------------------------------------------------------------


def _constraint(value: Any, member: str, rule: str) -> ApiError:
    # AWS's wording for a member that fails its model constraint.
    return ApiError(
        "ValidationException",
        f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {rule}",
    )


def _shape(message: str) -> ApiError:
    return ApiError("SerializationException", message)


def _opt_str(document: dict[str, Any], key: str) -> str | None:
    value = document.get(key)
    if value is not None and not isinstance(value, str):
        raise _shape(f"{key} must be a string")
    return value


def _opt_int(document: dict[str, Any], key: str) -> int | None:
    value = document.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise _shape(f"{key} must be an integer")
    return value


def _str_list(value: Any, key: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _shape(f"{key} must be a list of strings")
    return list(value)


def _max_results(document: dict[str, Any], bounds: tuple[int, int, int]) -> int:
    low, high, default = bounds
    value = _opt_int(document, "MaxResults")
    if value is None:
        return default
    if value < low:
        raise _constraint(value, "maxResults", f"Member must have value greater than or equal to {low}")
    if value > high:
        raise _constraint(value, "maxResults", f"Member must have value less than or equal to {high}")
    return value


def _page(
    items: Sequence[Any], document: dict[str, Any], size: int, key: Callable[[Any], str]
) -> tuple[Sequence[Any], str | None]:
    """One page of `items` from the request's NextToken, and the token of the next page (None: the last one).
    A token names the last item it returned, not an offset: a command sent between two pages (lists are newest
    first) does not shift the next page onto what the caller has seen."""
    token = _opt_str(document, "NextToken")
    start = 0
    if token:
        try:
            after = json.loads(base64.urlsafe_b64decode(token.encode()))["after"]
        except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise ApiError("InvalidNextToken", "The specified token is not valid.") from None
        keys = [key(item) for item in items]
        if after not in keys:
            raise ApiError("InvalidNextToken", "The specified token is not valid.")
        start = keys.index(after) + 1
    page = items[start : start + size]
    following = None
    if start + size < len(items) and page:
        following = base64.urlsafe_b64encode(json.dumps({"after": key(page[-1])}).encode()).decode()
    return page, following


def _command_id(document: dict[str, Any], *, required: bool) -> str | None:
    value = _opt_str(document, "CommandId")
    if value is None:
        if required:
            raise _constraint("null", "commandId", "Member must not be null")
        return None
    if len(value) != _COMMAND_ID_LENGTH:
        rule = "greater than or equal to 36" if len(value) < _COMMAND_ID_LENGTH else "less than or equal to 36"
        raise _constraint(value, "commandId", f"Member must have length {rule}")
    return value


def _instance_id(document: dict[str, Any], *, required: bool) -> str | None:
    value = _opt_str(document, "InstanceId")
    if value is None:
        if required:
            raise _constraint("null", "instanceId", "Member must not be null")
        return None
    if not _INSTANCE_ID_RE.match(value):
        raise _constraint(
            value, "instanceId", r"Member must satisfy regular expression pattern: (^i-(\w{8}|\w{17})$)|(^mi-\w{17}$)"
        )
    return value


def _script(parameters: Any) -> Script:
    """AWS-RunShellScript's parameters: `commands` (required), `workingDirectory`, `executionTimeout`."""
    if not isinstance(parameters, dict):
        raise _shape("Parameters must be a map of string lists")
    values = {name: _str_list(value, f"Parameters.{name}") for name, value in parameters.items()}
    unknown = sorted(set(values) - set(_DOCUMENT_PARAMETERS))
    if unknown:
        raise ApiError("InvalidParameters", f"Parameter {unknown[0]} is not defined in document {DOCUMENT_NAME}.")
    commands = values.get("commands") or []
    if not commands:
        raise ApiError("InvalidParameters", f"Parameter commands is required by document {DOCUMENT_NAME}.")
    working = values.get("workingDirectory") or [""]
    timeout_text = values.get("executionTimeout") or [str(DEFAULT_EXECUTION_TIMEOUT)]
    if len(working) != 1 or len(timeout_text) != 1:
        raise ApiError("InvalidParameters", "workingDirectory and executionTimeout take one value each.")
    text = timeout_text[0].strip()
    if not text.isdigit() or not 1 <= int(text) <= MAX_EXECUTION_TIMEOUT:
        raise ApiError(
            "InvalidParameters",
            f"Parameter executionTimeout must be a whole number of seconds from 1 to {MAX_EXECUTION_TIMEOUT}, "
            f"not {timeout_text[0]!r}.",
        )
    return Script(tuple(commands), working[0], int(text))


def _targets(value: Any) -> list[tuple[str, list[str]]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _shape("Targets must be a list")
    if len(value) > MAX_TARGETS:
        raise _constraint(value, "targets", f"Member must have length less than or equal to {MAX_TARGETS}")
    targets: list[tuple[str, list[str]]] = []
    for number, target in enumerate(value, 1):
        if not isinstance(target, dict) or not isinstance(target.get("Key"), str):
            raise _shape("each of Targets must be a map with Key and Values")
        key, values = target["Key"], _str_list(target.get("Values"), "Targets.Values")
        if len(values) > MAX_TARGET_VALUES:
            raise _constraint(
                values,
                f"targets.{number}.member.values",
                f"Member must have length less than or equal to {MAX_TARGET_VALUES}",
            )
        if key != "InstanceIds" and not (key.startswith("tag:") and len(key) > 4):
            # AWS also takes resource groups and tag-key; the sandbox has neither.
            raise ApiError(
                "InvalidParameters", f"the sandbox targets instances by InstanceIds or tag:KEY, not by {key!r}"
            )
        targets.append((key, values))
    return targets


# --- the service ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Paths:
    """An instance's directories: HOME, the bin directory first on its PATH, and the agent's orchestration
    directory (a run's _script.sh, stdout and stderr, removed once the run is read)."""

    home: Path
    bin: Path
    orchestration: Path


class RunCommand:
    """SSM Run Command for the sandbox's instances: the API's answers, and the runs behind them."""

    def __init__(self, world: World, instances: Callable[[], Sequence[InstanceView]]) -> None:
        self.world = world
        self._instances = instances
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # an invocation's worker is back
        self._commands: OrderedDict[str, Command] = OrderedDict()  # oldest first
        self._active: set[Invocation] = set()  # invocations whose script a worker is running
        self._registered: dict[str, datetime] = {}
        self._prepare_lock = threading.Lock()  # making an instance's directories (see _prepare)
        self._prepared: set[str] = set()
        self._root: Path | None = None
        self._endpoint_url = ""
        self._executor: ThreadPoolExecutor | None = None

    # --- lifecycle ----------------------------------------------------------------------------------

    def start(self, endpoint_url: str) -> None:
        self._endpoint_url = endpoint_url
        self._root = Path(tempfile.mkdtemp(prefix="roleops-sandbox-ssm-"))
        self._executor = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="roleops-sandbox-ssm")

    def stop(self) -> None:
        """Kill every running script, wait (bounded) for the workers, and remove the instances' directories."""
        self._abandon_all()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    def reset(self) -> None:
        """A fresh account: every command cancelled (its scripts killed) and forgotten, every instance's
        directories gone (the new instances get new ones)."""
        self._abandon_all()
        self._registered.clear()
        with self._prepare_lock:
            self._prepared.clear()
            if self._root is not None:
                for child in list(self._root.iterdir()):
                    shutil.rmtree(child, ignore_errors=True)

    def _abandon_all(self) -> None:
        with self._lock:
            commands, self._commands = list(self._commands.values()), OrderedDict()
            for command in commands:
                self._cancel(command, command.invocations)
            self._changed.wait_for(lambda: not self._active, timeout=DRAIN_SECONDS)

    def add_instance(self, instance: InstanceView) -> None:
        """A new instance registers with SSM (its directories are made when it first runs something: a start
        with many instances should not pay for filesystem work nobody may need)."""
        self._registered[instance.instance_id] = now_utc()

    def _prepare(self, target: Managed) -> _Paths:
        """An instance's HOME and its PATH's own bin directory: `roleops` (when the instance has it), `aws`,
        `python3` — this installation's, as an instance would have them installed. Made once per instance."""
        paths = self._paths(target.instance_id)
        with self._prepare_lock:
            if target.instance_id in self._prepared:
                return paths
            for directory in (paths.home, paths.bin, paths.orchestration):
                directory.mkdir(parents=True, exist_ok=True)
            scripts = Path(sys.executable).parent  # the console scripts next to this interpreter (not resolved)
            wanted = ["aws"] + (["roleops"] if target.roleops else [])
            for name in wanted:
                if (scripts / name).exists():
                    (paths.bin / name).symlink_to(scripts / name)
            # A wrapper, not a symlink: CPython finds its virtual environment from the path it was started by, so
            # a symlink elsewhere to a venv's interpreter would run without the venv's packages.
            wrapper = paths.bin / "python3"
            wrapper.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
            wrapper.chmod(0o755)
            self._prepared.add(target.instance_id)
        return paths

    def _paths(self, instance_id: str) -> _Paths:
        if self._root is None:
            raise RuntimeError("SSM Run Command is not started")
        base = self._root / instance_id
        return _Paths(base / "home", base / "bin", base / "orchestration")

    # --- API --------------------------------------------------------------------------------------------

    def handle(self, action: str, document: dict[str, Any]) -> dict[str, Any]:
        handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "SendCommand": self._send_command,
            "ListCommands": self._list_commands,
            "ListCommandInvocations": self._list_invocations,
            "GetCommandInvocation": self._get_invocation,
            "CancelCommand": self._cancel_command,
            "DescribeInstanceInformation": self._describe_instances,
        }
        return handlers[action](document)

    def _send_command(self, document: dict[str, Any]) -> dict[str, Any]:
        name = _opt_str(document, "DocumentName") or ""
        if name != DOCUMENT_NAME and not _DOCUMENT_ARN_RE.match(name):
            raise ApiError("InvalidDocument", f"the sandbox runs only {DOCUMENT_NAME}; it has no document {name!r}")
        version = _opt_str(document, "DocumentVersion") or "$DEFAULT"
        if version not in ("$DEFAULT", "$LATEST", "1"):
            raise ApiError("InvalidDocumentVersion", f"{DOCUMENT_NAME} has one version, 1, not {version!r}")
        parameters = document.get("Parameters") or {}
        script = _script(parameters)
        timeout_seconds = _opt_int(document, "TimeoutSeconds")
        if timeout_seconds is None:
            timeout_seconds = DEFAULT_TIMEOUT_SECONDS
        if timeout_seconds < MIN_TIMEOUT_SECONDS:
            raise _constraint(timeout_seconds, "timeoutSeconds", "Member must have value greater than or equal to 30")
        if timeout_seconds > MAX_TIMEOUT_SECONDS:
            raise _constraint(
                timeout_seconds, "timeoutSeconds", f"Member must have value less than or equal to {MAX_TIMEOUT_SECONDS}"
            )
        comment = _opt_str(document, "Comment") or ""
        if len(comment) > MAX_COMMENT:
            raise _constraint(comment, "comment", f"Member must have length less than or equal to {MAX_COMMENT}")
        max_concurrency = _opt_str(document, "MaxConcurrency") or DEFAULT_MAX_CONCURRENCY
        if not _CONCURRENCY_RE.match(max_concurrency):
            raise _constraint(
                max_concurrency,
                "maxConcurrency",
                f"Member must satisfy regular expression pattern: {_CONCURRENCY_RE.pattern}",
            )
        max_errors = _opt_str(document, "MaxErrors") or DEFAULT_MAX_ERRORS
        if not _ERRORS_RE.match(max_errors):
            raise _constraint(
                max_errors, "maxErrors", f"Member must satisfy regular expression pattern: {_ERRORS_RE.pattern}"
            )
        instance_ids = _str_list(document.get("InstanceIds"), "InstanceIds")
        if len(instance_ids) > MAX_INSTANCE_IDS:
            raise _constraint(
                instance_ids, "instanceIds", f"Member must have length less than or equal to {MAX_INSTANCE_IDS}"
            )
        targets = _targets(document.get("Targets"))
        if bool(instance_ids) == bool(targets):
            raise ApiError("InvalidParameters", "Specify either InstanceIds or Targets, not both and not neither.")
        if len(set(instance_ids)) != len(instance_ids):
            raise ApiError("DuplicateInstanceId", "Each instance ID can be specified only once.")

        with self.world.lock:
            managed = self._managed()
        if instance_ids:
            unmanaged = [i for i in instance_ids if i not in managed]
            if unmanaged:
                # AWS's answer for an instance SSM does not manage (or does not exist), whatever its agent.
                ids = ", ".join(unmanaged)
                raise ApiError(
                    "InvalidInstanceId", f"Instances [[{ids}]] not in a valid state for account {self.world.account_id}"
                )
            resolved = [managed[i] for i in instance_ids]
        else:
            resolved = self._resolve(targets, managed)

        count = len(resolved)
        command = Command(
            command_id=str(uuid.uuid4()),
            region=self.world.region,
            document_version=version,
            comment=comment,
            parameters={k: list(v) for k, v in parameters.items()},
            instance_ids=instance_ids,
            targets=[{"Key": key, "Values": values} for key, values in targets],
            requested=now_utc(),
            timeout_seconds=timeout_seconds,
            max_concurrency=max_concurrency,
            max_errors=max_errors,
            concurrency=rate_limit(max_concurrency, count, at_least_one=True),
            error_limit=rate_limit(max_errors, count, at_least_one=False),
            script=script,
        )
        for target in resolved:
            invocation = Invocation(target)
            if not target.online:
                invocation.finish(UNDELIVERABLE)  # sent nowhere: no agent answers (does not count against MaxErrors)
            command.invocations.append(invocation)
        with self._lock:
            if self._executor is None:
                raise ApiError("InternalServerError", "the sandbox is stopping", status=500, sender=False)
            self._expire()
            self._remember(command)
            self._pump(command)
            return {"Command": command.to_json()}

    @staticmethod
    def _resolve(targets: list[tuple[str, list[str]]], managed: dict[str, Managed]) -> list[Managed]:
        """Targets: an instance matches every entry (entries are ANDed, an entry's values ORed). An id named in
        every InstanceIds entry that SSM does not manage still gets an invocation: Undeliverable ("the managed
        node might not exist"), as AWS checks only SendCommand's own InstanceIds up front."""
        chosen = list(managed.values())
        for key, values in targets:
            wanted = set(values)
            if key == "InstanceIds":
                chosen = [m for m in chosen if m.instance_id in wanted]
            else:
                chosen = [m for m in chosen if m.tag(key[len("tag:") :]) in wanted]
        if any(key != "InstanceIds" for key, _ in targets):
            return chosen
        common = set.intersection(*(set(values) for _, values in targets))
        unknown = [i for i in dict.fromkeys(targets[0][1]) if i in common and i not in managed]
        return chosen + [Managed(i, "", False, False, (), "", "", "") for i in unknown]

    def _managed(self) -> dict[str, Managed]:
        """Every instance SSM manages (call with the world lock held): the sandbox's own, not terminated, in launch
        order. Instances launched through EC2's RunInstances have no agent: SSM does not know them."""
        ec2 = self.world.ec2()
        by_id = {i.id: i for i in ec2.all_instances()}
        domain = "ec2.internal" if self.world.region == "us-east-1" else f"{self.world.region}.compute.internal"
        found: dict[str, Managed] = {}
        for sandbox_instance in self._instances():
            instance = by_id.get(sandbox_instance.instance_id)
            if instance is None or instance.state == "terminated":
                continue
            ip = instance.private_ip or ""
            association = ec2.iam_instance_profile_associations.get(instance.id)
            roles = list(getattr(getattr(association, "iam_instance_profile", None), "roles", []) or [])
            found[instance.id] = Managed(
                instance_id=instance.id,
                metadata_endpoint=sandbox_instance.metadata_endpoint,
                online=sandbox_instance.ssm_agent and instance.state == "running",
                roleops=sandbox_instance.roleops,
                tags=tuple(sorted(ec2.tags.get(instance.id, {}).items())),
                ip_address=ip,
                computer_name=f"ip-{ip.replace('.', '-')}.{domain}" if ip else "",
                iam_role=roles[0].name if roles else "",
            )
        return found

    def _newest_first(self, command_id: str | None) -> list[Any]:
        """The unexpired commands, newest first; only `command_id`'s when given (InvalidCommandId if it is none).
        The caller holds the lock."""
        self._expire()
        commands = list(reversed(self._commands.values()))
        if command_id is None:
            return commands
        commands = [c for c in commands if c.command_id == command_id]
        if not commands:
            raise ApiError("InvalidCommandId", f"Command {command_id} does not exist.")
        return commands

    def _list_commands(self, document: dict[str, Any]) -> dict[str, Any]:
        command_id = _command_id(document, required=False)
        instance_id = _instance_id(document, required=False)
        size = _max_results(document, COMMAND_RESULTS)
        checks = _command_filters(document.get("Filters"))
        with self._lock:
            commands = self._newest_first(command_id)
            if instance_id is not None:
                commands = [c for c in commands if c.invocation(instance_id) is not None]
            commands = [c for c in commands if all(check(c, c.state()) for check in checks)]
            page, following = _page(commands, document, size, lambda c: c.command_id)
            answer: dict[str, Any] = {"Commands": [c.to_json() for c in page]}
        if following:
            answer["NextToken"] = following
        return answer

    def _list_invocations(self, document: dict[str, Any]) -> dict[str, Any]:
        command_id = _command_id(document, required=False)
        instance_id = _instance_id(document, required=False)
        size = _max_results(document, COMMAND_RESULTS)
        checks = _command_filters(document.get("Filters"))
        details = document.get("Details", False)
        if not isinstance(details, bool):
            raise _shape("Details must be true or false")
        with self._lock:
            commands = self._newest_first(command_id)
            rows = [
                (c, i)
                for c in commands
                for i in c.invocations
                if (instance_id is None or i.instance_id == instance_id) and all(check(c, i.state) for check in checks)
            ]
            page, following = _page(rows, document, size, lambda row: f"{row[0].command_id}/{row[1].instance_id}")
            answer: dict[str, Any] = {"CommandInvocations": [c.invocation_json(i, details=details) for c, i in page]}
        if following:
            answer["NextToken"] = following
        return answer

    def _get_invocation(self, document: dict[str, Any]) -> dict[str, Any]:
        command_id = _command_id(document, required=True)
        instance_id = _instance_id(document, required=True)
        plugin = _opt_str(document, "PluginName")
        if plugin is not None and plugin != PLUGIN_NAME:
            raise ApiError("InvalidPluginName", f"{DOCUMENT_NAME} has one plugin, {PLUGIN_NAME}, not {plugin!r}.")
        with self._lock:
            self._expire()
            command = self._commands.get(command_id or "")
            invocation = command.invocation(instance_id or "") if command is not None else None
            if command is None or invocation is None:
                raise ApiError(
                    "InvocationDoesNotExist", "An invocation with this command ID and instance ID does not exist."
                )
            return command.get_invocation_json(invocation)

    def _cancel_command(self, document: dict[str, Any]) -> dict[str, Any]:
        command_id = _command_id(document, required=True)
        instance_ids = _str_list(document.get("InstanceIds"), "InstanceIds")
        if len(instance_ids) > MAX_INSTANCE_IDS:
            raise _constraint(
                instance_ids, "instanceIds", f"Member must have length less than or equal to {MAX_INSTANCE_IDS}"
            )
        if len(set(instance_ids)) != len(instance_ids):
            raise ApiError("DuplicateInstanceId", "Each instance ID can be specified only once.")
        with self._lock:
            self._expire()
            command = self._commands.get(command_id or "")
            if command is None:
                raise ApiError("InvalidCommandId", f"Command {command_id} does not exist.")
            chosen = command.invocations
            if instance_ids:
                unknown = [i for i in instance_ids if command.invocation(i) is None]
                if unknown:
                    raise ApiError("InvalidInstanceId", f"Command {command_id} was not sent to {', '.join(unknown)}.")
                chosen = [i for i in command.invocations if i.instance_id in set(instance_ids)]
            else:
                command.cancel_requested = True
            self._cancel(command, chosen)
        return {}

    def _describe_instances(self, document: dict[str, Any]) -> dict[str, Any]:
        size = _max_results(document, INSTANCE_RESULTS)
        checks = _instance_filters(document)
        with self.world.lock:
            managed = self._managed()
        now = now_utc()
        rows = [m for m in managed.values() if all(check(m) for check in checks)]
        page, following = _page(rows, document, size, lambda m: m.instance_id)
        answer: dict[str, Any] = {
            "InstanceInformationList": [self._instance_json(m, now) for m in page],
        }
        if following:
            answer["NextToken"] = following
        return answer

    def _instance_json(self, managed: Managed, now: datetime) -> dict[str, Any]:
        registered = self._registered.get(managed.instance_id, now)
        info: dict[str, Any] = {
            "InstanceId": managed.instance_id,
            "PingStatus": "Online" if managed.online else "ConnectionLost",
            # A lost agent last answered when it registered (the sandbox's agent-less instances never ran one).
            "LastPingDateTime": _epoch(now if managed.online else registered),
            "AgentVersion": AGENT_VERSION,
            "IsLatestVersion": True,
            "PlatformType": "Linux",
            "PlatformName": "Amazon Linux",
            "PlatformVersion": "2023",
            "ResourceType": "EC2Instance",
            "IPAddress": managed.ip_address or "127.0.0.1",
            "ComputerName": managed.computer_name or managed.instance_id,
            "SourceId": managed.instance_id,
            "SourceType": "AWS::EC2::Instance",
        }
        if managed.iam_role:
            info["IamRole"] = managed.iam_role
        return info

    # --- scheduling (call with the lock held) ----------------------------------------------------------

    def _remember(self, command: Command) -> None:
        self._commands[command.command_id] = command
        excess = len(self._commands) - MAX_COMMANDS
        finished = [
            c for c in self._commands.values() if c is not command and not any(i.waiting for i in c.invocations)
        ]
        for old in finished:
            if excess <= 0:
                break
            del self._commands[old.command_id]
            excess -= 1
        if excess > 0:
            del self._commands[command.command_id]
            raise ApiError("ThrottlingException", f"the sandbox runs at most {MAX_COMMANDS} unfinished commands")

    def _pump(self, command: Command) -> None:
        """Hand the command's next Pending invocations to the workers, within MaxConcurrency, until MaxErrors is
        exceeded: from then on, targets not yet started are cancelled by the system (Terminated)."""
        if self._executor is None:
            return
        for invocation in command.invocations:
            if command.error_count() > command.error_limit:
                break
            if command.running >= command.concurrency:
                return
            if invocation.details != "Pending" or invocation.submitted:
                continue
            invocation.submitted = True
            command.running += 1
            self._executor.submit(self._run, command, invocation)
        if command.error_count() > command.error_limit:
            for invocation in command.invocations:
                if invocation.details == "Pending":
                    invocation.finish(TERMINATED)

    def _expire(self) -> None:
        """Invocations still Pending past their command's TimeoutSeconds are DeliveryTimedOut: they never run."""
        now = now_utc()
        for command in self._commands.values():
            if now < command.delivery_deadline:
                continue
            for invocation in command.invocations:
                if invocation.details == "Pending":
                    invocation.finish(DELIVERY_TIMED_OUT)

    def _cancel(self, command: Command, invocations: Iterable[Invocation]) -> None:
        for invocation in invocations:
            if invocation.details == "Pending":
                invocation.finish(CANCELLED)
            elif invocation.details == "InProgress":
                invocation.state = CANCELLING  # its worker kills the script and says Cancelled
                invocation.cancel.set()

    # --- running -----------------------------------------------------------------------------------------

    def _run(self, command: Command, invocation: Invocation) -> None:
        """A worker: run one invocation's script, then free its slot and start the command's next ones."""
        try:
            self._execute(command, invocation)
        finally:
            with self._lock:
                command.running -= 1
                self._active.discard(invocation)
                self._changed.notify_all()
                self._expire()
                self._pump(command)

    def _execute(self, command: Command, invocation: Invocation) -> None:
        with self._lock:
            if invocation.details != "Pending":
                return  # cancelled, terminated or expired while it waited for a worker
            if command.error_count() > command.error_limit:
                invocation.finish(TERMINATED)
                return
            if now_utc() >= command.delivery_deadline:
                invocation.finish(DELIVERY_TIMED_OUT)
                return
            invocation.state = IN_PROGRESS
            invocation.started = now_utc()
            self._active.add(invocation)
        try:
            paths = self._prepare(invocation.target)
        except OSError as exc:
            state, code, stdout, stderr = FAILED, 1, "", f"the sandbox could not prepare the instance: {exc}"
        else:
            state, code, stdout, stderr = self._run_script(command, invocation, paths)
        with self._lock:
            invocation.stdout, invocation.stderr = stdout, stderr
            invocation.finish(state, code=code)

    def _run_script(
        self, command: Command, invocation: Invocation, paths: _Paths
    ) -> tuple[tuple[str, str], int, str, str]:
        """The script in a process group of its own: (state, response code, stdout, stderr) once it exits, is
        killed at its executionTimeout, or is cancelled."""
        script = command.script
        run_dir = paths.orchestration / command.command_id
        working = Path(script.working_directory) if script.working_directory else paths.home
        if not working.is_absolute():
            working = paths.home / working  # relative to the instance's HOME
        if not working.is_dir():
            # The agent's answer for a working directory that is not there: the plugin fails before running.
            return FAILED, 1, "", f"Invalid workingDirectory {script.working_directory}, directory doesn't exist."
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            script_path = run_dir / "_script.sh"
            script_path.write_text(script.text())
            with open(run_dir / "stdout", "wb") as out, open(run_dir / "stderr", "wb") as err:
                process = subprocess.Popen(
                    ["/bin/sh", str(script_path)],
                    cwd=working,
                    env=self._environment(invocation.target, paths),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,  # its own process group: a timeout or a cancel kills all of it
                    close_fds=True,
                )
        except OSError as exc:
            shutil.rmtree(run_dir, ignore_errors=True)
            return FAILED, 1, "", f"failed to run commands: {exc}"
        outcome, code = _wait(process, invocation.cancel, script.execution_timeout)
        _kill_group(process.pid)  # what the script left running in the background goes with it
        stdout, stdout_cut = read_head(run_dir / "stdout", STDOUT_LIMIT)
        stderr, stderr_cut = read_head(run_dir / "stderr", STDERR_LIMIT)
        shutil.rmtree(run_dir, ignore_errors=True)  # the outputs live on, truncated, in the invocation
        stdout, stderr = truncate(stdout, stdout_cut, STDOUT_LIMIT), truncate(stderr, stderr_cut, STDERR_LIMIT)
        if outcome == "cancelled":
            return CANCELLED, STOPPED_RESPONSE_CODE, stdout, stderr
        if outcome == "timed-out":
            return EXECUTION_TIMED_OUT, STOPPED_RESPONSE_CODE, stdout, stderr
        return (SUCCESS if code == 0 else FAILED), code, stdout, stderr

    def _environment(self, target: Managed, paths: _Paths) -> dict[str, str]:
        """Exactly what an instance's shell would know of AWS: its metadata endpoint (credentials come from
        there, as on EC2), the sandbox's endpoint and region. No keys, nothing of the sandbox's environment."""
        return {
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": target.metadata_endpoint,
            "AWS_ENDPOINT_URL": self._endpoint_url,
            "AWS_DEFAULT_REGION": self.world.region,
            "AWS_REGION": self.world.region,
            "HOME": str(paths.home),
            "PATH": f"{paths.bin}:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
        }


def _wait(process: subprocess.Popen, cancel: threading.Event, timeout: int) -> tuple[str, int]:
    """("exited", exit code), ("timed-out", -1) or ("cancelled", -1): bounded by `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            code = process.wait(timeout=POLL_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        else:
            return "exited", code if code >= 0 else 128 - code  # killed by signal N: the shell's 128 + N
        stop = "cancelled" if cancel.is_set() else "timed-out" if time.monotonic() >= deadline else None
        if stop is not None:
            _kill_group(process.pid)
            # Unkillable (stuck in the kernel): the invocation ends all the same.
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=DRAIN_SECONDS)
            return stop, NO_RESPONSE_CODE


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone already
        os.killpg(pid, signal.SIGKILL)


# --- filters --------------------------------------------------------------------------------------------

_CommandCheck = Callable[[Command, tuple[str, str]], bool]
_InstanceCheck = Callable[[Managed], bool]


def _timestamp(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError("ValidationException", f"filter value {value!r} is not an ISO 8601 timestamp") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _command_filters(filters: Any) -> list[_CommandCheck]:
    """ListCommands / ListCommandInvocations filters; `state` is the command's or the invocation's."""
    if filters is None:
        return []
    if not isinstance(filters, list) or not all(isinstance(f, dict) for f in filters):
        raise _shape("Filters must be a list of {key, value}")
    checks: list[_CommandCheck] = []
    for item in filters:
        key, value = item.get("key"), item.get("value")
        if not isinstance(value, str):
            raise _shape("a filter's value must be a string")
        if key == "InvokedAfter":
            after = _timestamp(value)
            checks.append(lambda c, _s, t=after: c.requested >= t)
        elif key == "InvokedBefore":
            before = _timestamp(value)
            checks.append(lambda c, _s, t=before: c.requested <= t)
        elif key == "Status":
            checks.append(lambda _c, s, v=value: s[0] == v)
        elif key == "DocumentName":
            checks.append(lambda _c, _s, v=value: v == DOCUMENT_NAME)
        elif key == "ExecutionStage":
            if value not in ("Executing", "Complete"):
                raise ApiError("ValidationException", "ExecutionStage is Executing or Complete")
            checks.append(lambda _c, s, v=value: (s[1] in _WAITING) == (v == "Executing"))
        else:
            raise ApiError("InvalidFilterKey", f"{key!r} is not a filter key of this operation.")
    return checks


def _instance_filters(document: dict[str, Any]) -> list[_InstanceCheck]:
    """DescribeInstanceInformation's filters, both forms (InstanceInformationFilterList and Filters), ANDed."""
    pairs: list[tuple[Any, Any]] = []
    for item in document.get("InstanceInformationFilterList") or []:
        pairs.append((item.get("key"), item.get("valueSet")) if isinstance(item, dict) else (None, None))
    for item in document.get("Filters") or []:
        pairs.append((item.get("Key"), item.get("Values")) if isinstance(item, dict) else (None, None))
    checks: list[_InstanceCheck] = []
    for key, raw_values in pairs:
        if not isinstance(key, str):
            raise _shape("a filter needs a key")
        values = set(_str_list(raw_values, f"{key} values"))
        if not values:
            raise ApiError("InvalidInstanceInformationFilterValue", f"filter {key} needs at least one value")
        attribute = _INSTANCE_ATTRIBUTES.get(key)
        if attribute is not None:
            checks.append(lambda m, a=attribute, v=values: a(m) in v)
        elif key.startswith("tag:") and len(key) > 4:
            checks.append(lambda m, t=key[4:], v=values: m.tag(t) in v)
        elif key == "tag-key":
            checks.append(lambda m, v=values: any(k in v for k, _ in m.tags))
        elif key in ("ActivationIds", "AssociationStatus"):
            checks.append(lambda _m: False)  # EC2 instances have no activation; the sandbox runs no associations
        else:
            raise ApiError("InvalidFilterKey", f"{key!r} is not a filter key of DescribeInstanceInformation.")
    return checks


_INSTANCE_ATTRIBUTES: dict[str, Callable[[Managed], str]] = {
    "InstanceIds": lambda m: m.instance_id,
    "SourceIds": lambda m: m.instance_id,
    "PingStatus": lambda m: "Online" if m.online else "ConnectionLost",
    "PlatformTypes": lambda _m: "Linux",
    "ResourceType": lambda _m: "EC2Instance",
    "SourceTypes": lambda _m: "AWS::EC2::Instance",
    "AgentVersion": lambda _m: AGENT_VERSION,
    "IamRole": lambda m: m.iam_role,
}
