"""Sandbox (product, offline): run the sandbox in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

import json
import shlex
import signal
import threading
from typing import Any, TextIO

from .faults import Faults
from .server import Sandbox

# How often the foreground loop looks up from its wait; signals set the event in between.
_WAKE_SECONDS = 0.5


def render_table(info: dict[str, Any]) -> str:
    """`export` lines for a shell; the per-instance IMDS lines are commented so the user picks one
    (and unsets the admin keys, which would otherwise win over instance metadata), and so are the other
    accounts' admin keys (the exported ones are the first, default account's)."""
    lines = [
        f"export AWS_ENDPOINT_URL={shlex.quote(info['endpoint_url'])}",
        f"export AWS_DEFAULT_REGION={shlex.quote(info['region'])}",
        f"export AWS_ACCESS_KEY_ID={shlex.quote(info['access_key_id'])}",
        f"export AWS_SECRET_ACCESS_KEY={shlex.quote(info['secret_access_key'])}",
    ]
    if info["instances"]:
        lines.append("# To act as an instance: unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY, then one of:")
    for instance in info["instances"]:
        lines.append(f"# {instance['instance_id']}")
        lines.append(f"# export AWS_EC2_METADATA_SERVICE_ENDPOINT={shlex.quote(instance['metadata_endpoint'])}")
    others = info.get("accounts", [])[1:]
    if others:
        lines.append("# To act as the admin of another account, export its keys instead:")
    for account in others:
        lines.append(f"# account {account['account_id']}")
        lines.append(
            f"# export AWS_ACCESS_KEY_ID={shlex.quote(account['access_key_id'])} "
            f"AWS_SECRET_ACCESS_KEY={shlex.quote(account['secret_access_key'])}"
        )
    return "\n".join(lines) + "\n"


def run_forever(
    *,
    port: int,
    instances: int,
    output: str,
    faults: Faults | None,
    stdout: TextIO,
    stderr: TextIO,
    seed: int = 0,
    accounts: int = 1,
) -> int:
    """Serve until SIGINT or SIGTERM; a clean stop returns 0 (Ctrl-C included: it is how one stops it)."""
    if output not in ("json", "table"):
        stderr.write(f"roleops sandbox: unknown output {output!r}: use table or json. Nothing was started.\n")
        return 2
    try:
        sandbox = Sandbox(port=port, instances=instances, faults=faults, seed=seed, accounts=accounts)
    except ValueError as exc:
        stderr.write(f"roleops sandbox: {exc}. Nothing was started.\n")
        return 2
    stop = threading.Event()
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_: stop.set())
    try:
        try:
            sandbox.start()
        except OSError as exc:
            stderr.write(
                f"roleops sandbox: cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}. "
                "Pick another --port, or --port 0 for a free one.\n"
            )
            return 3
        try:
            info = sandbox.info()
            if output == "json":
                stdout.write(json.dumps(info) + "\n")
            else:
                stdout.write(render_table(info))
                stderr.write(f"roleops sandbox: serving on {info['endpoint_url']} (Ctrl-C to stop)\n")
            stdout.flush()
            stderr.flush()
            while not stop.wait(_WAKE_SECONDS):
                pass
        except KeyboardInterrupt:
            pass  # only when we could not install our own handler (not the main thread)
        finally:
            sandbox.stop()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0
