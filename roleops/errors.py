"""Error types (all layers): one base class the CLI maps to an exit code, never a traceback."""

from __future__ import annotations


class RoleOpsError(Exception):
    """Base of every error roleops raises on purpose.

    The message is one line: what failed, why, and the next step.
    """

    exit_code = 3

    def __init__(self, what: str, why: str = "", next_step: str = "") -> None:
        self.what = what
        self.why = why
        self.next_step = next_step
        super().__init__(self.one_line())

    def one_line(self) -> str:
        parts = [self.what.rstrip(".")]
        if self.why:
            parts.append(self.why.rstrip("."))
        text = ": ".join(parts) + "."
        if self.next_step:
            # "; " rather than a new sentence: the next step often starts with a command that must stay verbatim.
            text = text[:-1] + "; " + self.next_step.rstrip(".") + "."
        return text


class UsageError(RoleOpsError):
    """Bad input or usage; raised before any AWS call, so nothing was changed (exit 2)."""

    exit_code = 2


class ValidationError(UsageError):
    """A field failed validation: names the field, the value and the rule."""

    def __init__(self, field: str, value: object, rule: str) -> None:
        self.field = field
        self.value = value
        self.rule = rule
        super().__init__(f"invalid {field} {value!r}", rule, "nothing was changed")


class AwsError(RoleOpsError):
    """An AWS API call failed (exit 3). Carries the operation, AWS's code and message, and a hint."""

    exit_code = 3

    def __init__(self, operation: str, code: str, message: str, hint: str = "") -> None:
        self.operation = operation
        self.code = code
        self.aws_message = message
        super().__init__(f"{operation} failed", f"{code}: {message}" if message else code, hint)


class InstanceNotFound(UsageError):
    """The instance is not in this account and region (exit 2): found while reading, before anything changes."""

    def __init__(self, instance_id: str, region: str) -> None:
        super().__init__(
            f"instance {instance_id} not found in {region}",
            "no such instance",
            "check --instance-id and --region; nothing was changed",
        )


class NotManagedError(UsageError):
    """An existing resource lacks the roleops:managed tag and --adopt was not given (exit 2)."""


class EnvironmentProblem(RoleOpsError):
    """The environment is not usable: no credentials, IMDS unreachable, retries exhausted (exit 3)."""

    exit_code = 3


class PropagationTimeout(EnvironmentProblem):
    """IAM's eventual consistency outlasted our bounded wait (exit 3)."""
