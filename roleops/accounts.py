"""Other accounts (AWS layer): the clients of `--target-profile`, each checked to reach the account it serves.

A secondary role in another account is read and converged there with a profile of that account: `--target-profile
NAME` serves every target account NAME's credentials reach, `--target-profile ACCOUNT_ID=NAME` (repeatable) serves
that one account. Which account a profile reaches is asked once (sts:GetCallerIdentity), during the plan's reads,
so that a profile of the wrong account stops the run before any change (exit 2, both accounts named).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from roleops import arns, aws
from roleops.errors import UsageError


def _flag(account: str | None, profile: str) -> str:
    return f"--target-profile {account}={profile}" if account else f"--target-profile {profile}"


@dataclass
class TargetAccess:
    """The target profiles of a run and the Clients made for them (by the composition root: `make_clients`)."""

    profiles: Sequence[tuple[str | None, str]] = ()  # (account or None, profile), as validate_target_profile gives
    make_clients: Callable[[str], Any] | None = None  # profile name -> Clients
    _clients: dict[str, Any] = field(default_factory=dict)
    _reached: dict[str, str] = field(default_factory=dict)  # profile -> the account its credentials reach

    def __bool__(self) -> bool:
        return bool(self.profiles)

    def _clients_of(self, profile: str) -> Any:
        if profile not in self._clients:
            assert self.make_clients is not None, "TargetAccess with profiles needs make_clients"
            self._clients[profile] = self.make_clients(profile)
        return self._clients[profile]

    def reached(self, profile: str) -> str:
        """The account `profile`'s credentials act in (one GetCallerIdentity per profile and run)."""
        if profile not in self._reached:
            ident = aws.caller_identity(self._clients_of(profile).sts())
            self._reached[profile] = ident["Account"]
        return self._reached[profile]

    def profile_for(self, account: str) -> str | None:
        """The profile that serves `account`, without a call: an ACCOUNT_ID=PROFILE for it, else the generic one."""
        for acct, profile in self.profiles:
            if acct == account:
                return profile
        return next((p for acct, p in self.profiles if acct is None), None)

    def clients_for(self, account: str, *, home: str, why: str) -> Any:
        """Clients acting in `account` (not `home`, the instance role's): checked, or UsageError (exit 2).

        `why` names what needs the account (e.g. "role arn:aws:iam::...:role/Deploy"), for the message.
        """
        explicit = [p for acct, p in self.profiles if acct == account]
        generic = [p for acct, p in self.profiles if acct is None]
        for profile in explicit:
            reached = self.reached(profile)
            if reached != account:
                raise UsageError(
                    f"{_flag(account, profile)} reaches account {reached}, not {account}",
                    f"its credentials belong to account {reached}",
                    f"give a profile of account {account} for {why}; nothing was changed",
                )
            return self._clients_of(profile)
        for profile in generic:
            if self.reached(profile) == account:
                return self._clients_of(profile)
        reached = ", ".join(f"{_flag(None, p)} reaches {self.reached(p)}" for p in generic)
        raise UsageError(
            f"{why} is in account {account}, which no --target-profile reaches",
            f"the instance role's account is {home}" + (f"; {reached}" if reached else ""),
            f"add --target-profile PROFILE (or {account}=PROFILE) with credentials of account {account}; "
            "nothing was changed",
        )

    def check_unused(self, accounts: Sequence[str]) -> None:
        """An ACCOUNT_ID=PROFILE for an account no role is in is a typo: say so before anything happens."""
        for acct, profile in self.profiles:
            if acct is not None and acct not in accounts:
                raise UsageError(
                    f"{_flag(acct, profile)} names account {acct}, but no --assumable-role is in it",
                    "a target profile serves the roles of its account",
                    "check the account id, or drop the flag; nothing was changed",
                )


def foreign_roles(
    given: Sequence[str], *, home_account: str, home_partition: str
) -> tuple[list[str], dict[str, list[arns.RoleArn]]]:
    """Split assumable roles (names or ARNs) into names in the home account and ARNs of other accounts.

    An ARN of the home account counts as its name. An ARN of another partition cannot be assumed from this one:
    UsageError (exit 2). Repeats (a name and the same role's ARN) are bad input too.
    """
    home: list[str] = []
    foreign: dict[str, list[arns.RoleArn]] = {}
    seen: dict[tuple[str, str], str] = {}
    for text in given:
        parsed = arns.parse_role_arn(text)
        if parsed is None:
            account, name = home_account, text
        else:
            if parsed.partition != home_partition:
                raise UsageError(
                    f"--assumable-role {text} is in partition {parsed.partition}",
                    f"the instance role is in {home_partition}, and a role is assumed only within its partition",
                    "give a role of the same partition; nothing was changed",
                )
            account, name = parsed.account, parsed.name
        key = (account, name.lower())
        if key in seen:
            raise UsageError(
                f"--assumable-role {text} names the same role as {seen[key]}",
                "each role is given once",
                "drop one of them; nothing was changed",
            )
        seen[key] = text
        if account == home_account:
            home.append(name)
        else:
            assert parsed is not None
            foreign.setdefault(account, []).append(parsed)
    return home, foreign
