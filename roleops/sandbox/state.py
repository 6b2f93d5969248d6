"""Sandbox (product, offline): the shared state around moto's in-process backends, and lookups into them."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from roleops.evaluator import NamedPolicy, Principal, PrincipalKind
from roleops.policies import parse_document

from .faults import Faults
from .wire import SigningKey

# The sandbox's accounts, in order: the first is moto's default (where instances, IMDS and anything signed with
# an unknown key live); `--accounts N` uses the first N. Fixed, so that tests and docs can name them.
ACCOUNT_IDS: tuple[str, ...] = ("123456789012", "234567890123", "345678901234", "456789012345", "567890123456")
ACCOUNT_ID = ACCOUNT_IDS[0]
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


def _first(backends: Any, lookup: Callable[[Any], Any]) -> Any | None:
    """The first answer of `lookup` over moto's backends of every account and region (a key belongs to one)."""
    for account in list(backends.keys()):
        for backend in list(backends[account].values()):
            if (found := lookup(backend)) is not None:
                return found
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

    def __init__(self, *, region: str, faults: Faults, accounts: int = 1) -> None:
        if isinstance(accounts, bool) or not isinstance(accounts, int) or not 1 <= accounts <= len(ACCOUNT_IDS):
            raise ValueError(f"accounts must be 1-{len(ACCOUNT_IDS)}, not {accounts!r}")
        self.region = region
        self.account_ids: tuple[str, ...] = ACCOUNT_IDS[:accounts]
        self.account_id = self.account_ids[0]  # the default account: instances, IMDS, SSM
        self.lock = threading.RLock()
        self.faults = faults
        self.issued: set[str] = set()
        self.clear_tracking()

    def clear_tracking(self) -> None:
        # time.monotonic() for delays: wall-clock jumps must not shorten or stretch a propagation delay.
        self.trust_history: dict[str, deque[tuple[float, dict | None]]] = {}
        self.profile_created: dict[tuple[str, str], float] = {}  # (account, lower-case name) → created
        self.associated_at: dict[str, float] = {}
        self.associated_wall: dict[str, datetime] = {}
        self.imds_tokens: dict[str, tuple[str, float]] = {}
        self.credential_cache: dict[tuple[str, str], Any] = {}
        self.credential_minted: dict[tuple[str, str], datetime] = {}

    # --- moto backends (looked up every time: moto's reset replaces them) -------------------------

    def iam(self, account: str | None = None) -> Any:
        from moto.iam.models import iam_backends

        return iam_backends[account or self.account_id][PARTITION]

    def ec2(self, account: str | None = None) -> Any:
        from moto.ec2.models import ec2_backends

        return ec2_backends[account or self.account_id][self.region]

    def sts(self, account: str | None = None) -> Any:
        from moto.sts.models import sts_backends

        return sts_backends[account or self.account_id][PARTITION]

    def _iam_if_known(self, account: str) -> Any | None:
        """The IAM backend of an account moto already knows (a sandbox account, or one a request named): a lookup
        must not make moto build a backend (all AWS managed policies) for any account id an ARN names."""
        from moto.iam.models import iam_backends

        if account not in self.account_ids and account not in list(iam_backends.keys()):
            return None
        return self.iam(account)

    # --- accounts -----------------------------------------------------------------------------------

    def account_of_key(self, access_key_id: str) -> str | None:
        """The account an access key acts in, as moto decides it from the key: a session's is its role's account
        (moto mints it there), a user key's its user's. None for a key no account holds."""
        session = self._session_of_key(access_key_id)
        if session is not None:
            return str(session.account_id)
        user = self._user_of_key(access_key_id)
        return str(user.account_id) if user is not None else None

    # --- IAM lookups --------------------------------------------------------------------------------

    def role_by_name(self, name: str, account: str | None = None) -> Any | None:
        for role in list(self.iam(account).roles.values()):
            if role.name == name:
                return role
        return None

    def role_by_arn(self, arn: str) -> Any | None:
        """The role an ARN names, looked up in the ARN's own account (None: no such role there)."""
        parts = arn.split(":", 5)
        if len(parts) != 6 or not parts[4]:
            return None
        iam = self._iam_if_known(parts[4])
        if iam is None:
            return None
        for role in list(iam.roles.values()):
            if role.arn == arn:
                return role
        return None

    def profile_by_name(self, name: str, account: str | None = None) -> Any | None:
        return self.iam(account).instance_profiles.get(name)

    def managed_policy(self, arn: str, account: str | None = None) -> NamedPolicy | None:
        # moto keeps AWS managed policies (arn:aws:iam::aws:policy/...) in every account's backend, and customer
        # managed ones in their account's: the attaching entity's account holds both.
        policy = self.iam(account).managed_policies.get(arn)
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
            if (named := self.managed_policy(arn, entity.account_id)) is not None:
                found.append(NamedPolicy(name=f"{label}{named.name}", document=named.document))
        return found

    def identity_policies_of_role(self, role: Any) -> list[NamedPolicy]:
        return self._policies_of(role, "")

    def identity_policies_of_user(self, user: Any) -> list[NamedPolicy]:
        policies = self._policies_of(user, "")
        for group in self.iam(user.account_id).get_groups_for_user(user.name):
            policies.extend(self._policies_of(group, f"group:{group.name}:"))
        return policies

    def boundary_of_role(self, role: Any) -> NamedPolicy | None:
        arn = role.permissions_boundary_arn
        if not arn:
            return None
        # A boundary naming a policy that no longer exists allows nothing.
        return self.managed_policy(arn, role.account_id) or NamedPolicy(name=f"boundary:{arn}", document={})

    def _session_of_key(self, access_key_id: str) -> Any | None:
        """The moto STS session (of any account) an access key belongs to."""
        from moto.sts.models import sts_backends

        return _first(sts_backends, lambda backend: backend.get_assumed_role_from_access_key(access_key_id))

    def _user_of_key(self, access_key_id: str) -> Any | None:
        """The IAM user (of any account) holding an access key."""
        from moto.iam.models import iam_backends

        return _first(iam_backends, lambda backend: backend.get_user_from_access_key_id(access_key_id))

    def resolve_caller(self, access_key_id: str) -> Caller | None:
        """The principal behind an access key, in any account: a moto STS session or an IAM user's key. Its
        identity policies are its own account's (a session's role lives in the session's account)."""
        session = self._session_of_key(access_key_id)
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
        user = self._user_of_key(access_key_id)
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
        admins'). None for a key id the sandbox never issued, or an inactive key."""
        session = self._session_of_key(access_key_id)
        if session is not None:
            expiration = session.expiration.replace(tzinfo=timezone.utc)
            return SigningKey(session.secret_access_key, session.session_token, expiration <= now_utc())
        user = self._user_of_key(access_key_id)
        if user is None:
            return None
        for key in list(user.access_keys):
            if key.access_key_id == access_key_id and key.status == "Active":
                return SigningKey(key.secret_access_key)
        return None

    # --- trust propagation --------------------------------------------------------------------------

    def record_trust(self, role: Any) -> None:
        history = self.trust_history.setdefault(role.id, deque(maxlen=TRUST_HISTORY_PER_ROLE))
        history.append((time.monotonic(), parse_policy(role.assume_role_policy_document)))

    def mend_inline_policies(self) -> None:
        """Store every inline policy as the JSON text IAM's API stores. moto's CloudFormation keeps an
        AWS::IAM::Role's `Policies` as the template's dict, which GetRolePolicy then answers as Python's repr
        (single quotes: no JSON an SDK or roleops can read)."""
        from moto.iam.models import iam_backends

        for account in list(iam_backends.keys()):
            iam = self.iam(account)
            for entity in [*iam.roles.values(), *iam.users.values(), *iam.groups.values()]:
                for name, document in list(entity.policies.items()):
                    if not isinstance(document, str):
                        entity.policies[name] = json.dumps(document)

    def record_unseen_trusts(self) -> None:
        """Record the live trust of every role (of every account moto knows) that the history has not seen: roles
        made or changed inside moto (CloudFormation) rather than through IAM's API, so that STS's trust propagation
        delay applies to them as to any other new trust."""
        from moto.iam.models import iam_backends

        for account in list(iam_backends.keys()):
            for role in list(self.iam(account).roles.values()):
                history = self.trust_history.get(role.id)
                if not history or history[-1][1] != parse_policy(role.assume_role_policy_document):
                    self.record_trust(role)

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
        """Remember every secret moto holds now, in every account (moto's reset would forget them)."""
        from moto.iam.models import iam_backends
        from moto.sts.models import sts_backends

        for account in list(sts_backends.keys()):
            for backend in list(sts_backends[account].values()):
                for session in list(backend.assumed_roles):
                    self.issued.update((session.secret_access_key, session.session_token))
        for account in list(iam_backends.keys()):
            for backend in list(iam_backends[account].values()):
                for user in list(backend.users.values()):
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
