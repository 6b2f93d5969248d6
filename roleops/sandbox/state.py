"""Sandbox (product, offline): the shared state around moto's in-process backends, and lookups into them."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from roleops.evaluator import NamedPolicy, Principal, PrincipalKind
from roleops.policies import parse_document

from .faults import Faults
from .wire import SigningKey

ACCOUNT_ID = "123456789012"  # moto's default account; access keys moto mints map to it
PARTITION = "aws"
ADMIN_USER = "sandbox-admin"
ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
INSTANCE_TYPE = "t3.micro"

# Bounds on bookkeeping, so a long-running sandbox or a hammering bench cannot grow memory forever.
TRUST_HISTORY_PER_ROLE = 8
MAX_IMDS_TOKENS = 10_000


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def parse_policy(text: Any) -> dict | None:
    """A policy document as moto stores it (JSON text, sometimes still URL-encoded) → dict; None if it is none."""
    if isinstance(text, str) and not text.strip():
        return None
    try:
        return parse_document(text)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True, kw_only=True)
class Caller:
    """Who signed an STS request, with everything sts:AssumeRole is decided on."""

    principal: Principal
    identity_policies: tuple[NamedPolicy, ...]
    boundary: NamedPolicy | None
    is_role_session: bool
    expired: bool = False
    session_token: str | None = None


class World:
    """moto's backends plus what the sandbox remembers about them (timestamps, tokens, secrets).

    moto's backends are process globals and not thread-safe; every reader and writer holds `lock`.
    """

    def __init__(self, *, region: str, faults: Faults) -> None:
        self.region = region
        self.account_id = ACCOUNT_ID
        self.lock = threading.RLock()
        self.faults = faults
        self.issued: set[str] = set()
        self.clear_tracking()

    def clear_tracking(self) -> None:
        # time.monotonic() for delays: wall-clock jumps must not shorten or stretch a propagation delay.
        self.trust_history: dict[str, deque[tuple[float, dict | None]]] = {}
        self.profile_created: dict[str, float] = {}
        self.associated_at: dict[str, float] = {}
        self.associated_wall: dict[str, datetime] = {}
        self.imds_tokens: dict[str, tuple[str, float]] = {}
        self.credential_cache: dict[tuple[str, str], Any] = {}
        self.credential_minted: dict[tuple[str, str], datetime] = {}

    # --- moto backends (looked up every time: moto's reset replaces them) -------------------------

    def iam(self) -> Any:
        from moto.iam.models import iam_backends

        return iam_backends[self.account_id][PARTITION]

    def ec2(self) -> Any:
        from moto.ec2.models import ec2_backends

        return ec2_backends[self.account_id][self.region]

    def sts(self) -> Any:
        from moto.sts.models import sts_backends

        return sts_backends[self.account_id][PARTITION]

    # --- IAM lookups --------------------------------------------------------------------------------

    def role_by_name(self, name: str) -> Any | None:
        for role in list(self.iam().roles.values()):
            if role.name == name:
                return role
        return None

    def role_by_arn(self, arn: str) -> Any | None:
        for role in list(self.iam().roles.values()):
            if role.arn == arn:
                return role
        return None

    def profile_by_name(self, name: str) -> Any | None:
        return self.iam().instance_profiles.get(name)

    def managed_policy(self, arn: str) -> NamedPolicy | None:
        policy = self.iam().managed_policies.get(arn)
        if policy is None:
            return None
        for version in policy.versions:
            if version.version_id == policy.default_version_id:
                return NamedPolicy(name=f"managed:{policy.name}", document=parse_policy(version.document) or {})
        return None

    def _policies_of(self, entity: Any, label: str) -> list[NamedPolicy]:
        found = [
            NamedPolicy(name=f"{label}inline:{name}", document=parse_policy(doc) or {})
            for name, doc in entity.policies.items()
        ]
        for arn in list(entity.managed_policies):
            if (named := self.managed_policy(arn)) is not None:
                found.append(NamedPolicy(name=f"{label}{named.name}", document=named.document))
        return found

    def identity_policies_of_role(self, role: Any) -> list[NamedPolicy]:
        return self._policies_of(role, "")

    def identity_policies_of_user(self, user: Any) -> list[NamedPolicy]:
        policies = self._policies_of(user, "")
        for group in self.iam().get_groups_for_user(user.name):
            policies.extend(self._policies_of(group, f"group:{group.name}:"))
        return policies

    def boundary_of_role(self, role: Any) -> NamedPolicy | None:
        arn = role.permissions_boundary_arn
        if not arn:
            return None
        # A boundary naming a policy that no longer exists allows nothing.
        return self.managed_policy(arn) or NamedPolicy(name=f"boundary:{arn}", document={})

    def resolve_caller(self, access_key_id: str) -> Caller | None:
        """The principal behind an access key: a moto STS session or an IAM user's key."""
        session = self.sts().get_assumed_role_from_access_key(access_key_id)
        if session is not None:
            role = self.role_by_arn(session.role_arn)
            expiration = session.expiration.replace(tzinfo=timezone.utc)
            principal = Principal(
                kind=PrincipalKind.ROLE_SESSION,
                account=session.account_id,
                arn=session.role_arn,
                session_arn=session.arn,
                unique_id=role.id if role is not None else "",
                partition=PARTITION,
            )
            # A session whose role was deleted keeps no permissions.
            policies = self.identity_policies_of_role(role) if role is not None else []
            boundary = self.boundary_of_role(role) if role is not None else None
            return Caller(
                principal=principal,
                identity_policies=tuple(policies),
                boundary=boundary,
                is_role_session=True,
                expired=expiration <= now_utc(),
                session_token=session.session_token,
            )
        iam = self.iam()
        user = iam.get_user_from_access_key_id(access_key_id)
        if user is None:
            return None
        key = next(k for k in user.access_keys if k.access_key_id == access_key_id)
        if key.status != "Active":
            return None
        principal = Principal(
            kind=PrincipalKind.USER, account=user.account_id, arn=user.arn, unique_id=user.id, partition=PARTITION
        )
        return Caller(
            principal=principal,
            identity_policies=tuple(self.identity_policies_of_user(user)),
            boundary=None,  # moto keeps no user permissions boundaries
            is_role_session=False,
        )

    def signing_key(self, access_key_id: str) -> SigningKey | None:
        """The secret (and session token) a request signed with `access_key_id` must have been signed with, in any
        account: an STS session moto minted (AssumeRole, the instances' roles) or an active IAM user key (the
        admin's). None for a key id the sandbox never issued, or an inactive key."""
        from moto.iam.models import iam_backends
        from moto.sts.models import sts_backends

        for account in list(sts_backends.keys()):
            for backend in list(sts_backends[account].values()):
                session = backend.get_assumed_role_from_access_key(access_key_id)
                if session is not None:
                    expiration = session.expiration.replace(tzinfo=timezone.utc)
                    return SigningKey(session.secret_access_key, session.session_token, expiration <= now_utc())
        for account in list(iam_backends.keys()):
            for backend in list(iam_backends[account].values()):
                user = backend.get_user_from_access_key_id(access_key_id)
                if user is None:
                    continue
                for key in list(user.access_keys):
                    if key.access_key_id == access_key_id and key.status == "Active":
                        return SigningKey(key.secret_access_key)
        return None

    # --- trust propagation --------------------------------------------------------------------------

    def record_trust(self, role: Any) -> None:
        history = self.trust_history.setdefault(role.id, deque(maxlen=TRUST_HISTORY_PER_ROLE))
        history.append((time.monotonic(), parse_policy(role.assume_role_policy_document)))

    def effective_trust(self, role: Any) -> dict | None:
        """The trust policy STS honours now: the live one, or, while a change propagates, the one
        before it (None, i.e. deny, when the role itself is that new)."""
        live = parse_policy(role.assume_role_policy_document)
        delay = self.faults.trust_propagation_delay
        history = self.trust_history.get(role.id)
        if delay <= 0 or not history:
            return live
        cutoff = time.monotonic() - delay
        for changed_at, doc in reversed(history):
            if changed_at <= cutoff:
                return doc
        if len(history) == history.maxlen:
            return history[0][1]  # older changes fell out of the bounded history
        return None

    # --- secrets ------------------------------------------------------------------------------------

    def harvest_secrets(self) -> None:
        """Remember every secret moto holds now (moto's reset would forget them)."""
        from moto.sts.models import sts_backends

        for account in list(sts_backends.keys()):
            for backend in list(sts_backends[account].values()):
                for session in list(backend.assumed_roles):
                    self.issued.update((session.secret_access_key, session.session_token))
        for user in list(self.iam().users.values()):
            for key in list(user.access_keys):
                self.issued.add(key.secret_access_key)

    # --- IMDS tokens --------------------------------------------------------------------------------

    def add_imds_token(self, token: str, instance_id: str, ttl: int) -> None:
        now = time.monotonic()
        if len(self.imds_tokens) >= MAX_IMDS_TOKENS:
            for key in [k for k, (_, exp) in self.imds_tokens.items() if exp <= now]:
                del self.imds_tokens[key]
            while len(self.imds_tokens) >= MAX_IMDS_TOKENS:
                del self.imds_tokens[next(iter(self.imds_tokens))]  # oldest first (insertion order)
        self.imds_tokens[token] = (instance_id, now + ttl)
        # A token opens the instance's metadata, its role's keys included: an issued secret for the leak check
        # (kept here, at issue: the bounded table above forgets tokens, and expired ones go at lookup).
        self.issued.add(token)

    def imds_token_valid(self, token: str, instance_id: str) -> bool:
        entry = self.imds_tokens.get(token)
        if entry is None:
            return False
        owner, expires = entry
        if expires <= time.monotonic():
            del self.imds_tokens[token]
            return False
        return owner == instance_id
