"""Sandbox (product, offline): counting mutating API calls, and holding one back so a test can kill its caller.

A hold makes "stopped after step k" deterministic: with `after_mutations=k` the (k+1)-th mutating IAM/EC2
request is not answered until it is released (or its bounded wait ends), so a test can see that the hold was
reached (`held`) and SIGKILL the caller while it waits. The held request is then answered 503 and, by
default, never applied: exactly k mutating calls took effect. With `apply=True` it is applied when released and
still answered 503: a response lost on the way back, after AWS did the work.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from roleops.aws import is_mutating

DEFAULT_HOLD_SECONDS = 30.0
MAX_HOLD_SECONDS = 300.0  # a forgotten hold must not pin a request thread for long
MAX_LOGGED = 1000  # the mutating-call log keeps the newest entries only


@dataclass(frozen=True)
class Held:
    """One request waiting in a hold: what to wait on, for how long, and whether to apply it afterwards."""

    event: threading.Event
    timeout: float
    apply: bool
    generation: int  # the account it was held in: a reset in between must not touch the new account's count


class CallLedger:
    """Counts API calls (after throttling: a throttled call reached no service) and runs the hold.

    Thread-safe: the sandbox serves each request on its own thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._release = threading.Event()
        self.after_mutations: int | None = None
        self.timeout = DEFAULT_HOLD_SECONDS
        self.apply = False
        self._base = 0
        self._generation = 0
        self.reset()

    # --- counting --------------------------------------------------------------------------------

    def reset(self) -> None:
        """Zero the counters and disarm the hold (releasing anything it holds): a fresh account."""
        with self._lock:
            self._generation += 1
            self.api_calls = 0
            self.throttled = 0
            self.mutations = 0
            self.mutating: deque[str] = deque(maxlen=MAX_LOGGED)
            self.held = 0
            self.held_action: str | None = None
            self._base = 0
            self._disarm_locked()

    def count_throttled(self) -> None:
        with self._lock:
            self.api_calls += 1
            self.throttled += 1

    def count(self, service: str | None, action: str | None) -> Held | None:
        """Count one call that reached the service; a `Held` when this is the call the hold stops."""
        with self._lock:
            self.api_calls += 1
            if not is_mutating(service, action):
                return None
            self.mutations += 1
            name = f"{service}:{action}"
            self.mutating.append(name)
            if self.after_mutations is None or self.mutations != self._base + self.after_mutations + 1:
                return None
            self.held += 1
            self.held_action = name
            return Held(self._release, self.timeout, self.apply, self._generation)

    def wait(self, held: Held) -> None:
        """Block until released or the bounded wait ends."""
        try:
            held.event.wait(held.timeout)
        finally:
            with self._lock:
                if held.generation == self._generation:
                    self.held -= 1

    def still_current(self, held: Held) -> bool:
        """False once the account was reset: a held request must not land in the next account."""
        with self._lock:
            return held.generation == self._generation

    # --- the hold --------------------------------------------------------------------------------

    def arm(self, after_mutations: Any = None, timeout: Any = DEFAULT_HOLD_SECONDS, apply: Any = False) -> None:
        """Hold the mutating call that follows the next `after_mutations` ones (counted from now); None
        disarms. Bad values raise ValueError and change nothing."""
        if after_mutations is not None and (
            isinstance(after_mutations, bool) or not isinstance(after_mutations, int) or after_mutations < 0
        ):
            raise ValueError(f"after_mutations must be a whole number >= 0 or null, not {after_mutations!r}")
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or math.isnan(timeout)
            or not 0 < timeout <= MAX_HOLD_SECONDS
        ):
            raise ValueError(f"timeout must be a number of seconds above 0 and at most {MAX_HOLD_SECONDS:g}")
        if not isinstance(apply, bool):
            raise ValueError(f"apply must be true or false, not {apply!r}")
        with self._lock:
            self._disarm_locked()  # whatever an earlier hold still holds goes now
            self.after_mutations = after_mutations
            self._base = self.mutations
            self.timeout = float(timeout)
            self.apply = apply
            self.held_action = None

    def disarm(self) -> None:
        with self._lock:
            self._disarm_locked()

    def _disarm_locked(self) -> None:
        self._release.set()
        self._release = threading.Event()
        self.after_mutations = None

    # --- reports ---------------------------------------------------------------------------------

    def calls_json(self) -> dict[str, Any]:
        with self._lock:
            return {
                "api_calls": self.api_calls,
                "throttled": self.throttled,
                "mutations": self.mutations,
                "mutating": list(self.mutating),
            }

    def hold_json(self) -> dict[str, Any]:
        with self._lock:
            return {
                "after_mutations": self.after_mutations,
                "timeout": self.timeout,
                "apply": self.apply,
                "held": self.held,
                "held_action": self.held_action,
                "mutations": self.mutations,
            }
