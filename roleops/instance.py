"""The instance's role as its metadata service serves it (service layer), read the same way by verify and creds.

`read_instance` walks iam/info -> security-credentials/ -> the credential document and checks each link; a broken
one raises `BrokenLink` (what is wrong, the fix, and the identity when it is known), which verify reports as the
failed `imds` step and creds as an error. No STS call happens here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from roleops import arns
from roleops.imds import ImdsClient, RoleCredentials
from roleops.results import Identity, mask_key
from roleops.sts import Keys, hint_setup

SOURCE_IMDS = "instance metadata"


class BrokenLink(Exception):
    """A link of the chain that does not hold: what is wrong and what mends it (never a secret)."""

    def __init__(self, message: str, hint: str = "", identity: Identity | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.identity = identity


@dataclass(frozen=True)
class InstanceContext:
    """What the metadata service said about the instance and its role; holds the instance credentials."""

    instance_id: str
    region: str
    account: str
    partition: str
    role: str
    profile_arn: str | None
    credentials: RoleCredentials

    @property
    def role_arn(self) -> str:
        return arns.role_arn(self.partition, self.account, self.role)

    @property
    def session_arn(self) -> str:
        """What STS must say these credentials are: EC2 names the session after the instance."""
        return arns.assumed_role_arn(self.partition, self.account, self.role, self.instance_id)

    @property
    def keys(self) -> Keys:
        creds = self.credentials
        assert creds.access_key_id and creds.secret_access_key  # read_instance checked both
        return Keys(creds.access_key_id, creds.secret_access_key, creds.session_token)

    @property
    def identity(self) -> Identity:
        return Identity(
            source=SOURCE_IMDS,
            account=self.account,
            arn=self.role_arn,
            access_key_id=mask_key(self.credentials.access_key_id),
            expiration=self.credentials.expiration,
        )


def read_instance(
    imds: ImdsClient,
    *,
    now: datetime,
    expect_role: str | None = None,
    targets: tuple[str, ...] = (),
    seen: Callable[[RoleCredentials], None] | None = None,
) -> InstanceContext:
    """The instance's identity and role credentials, each link checked; raises BrokenLink at the first that is not.

    `targets` (role names) go into the setup hints; `expect_role` fails a role of another name; `seen` is handed
    the credential document as soon as it is read (verify scrubs its secrets from every message).
    """
    ident = imds.identity()
    iid = ident.instance_id
    names = targets or ("TARGET_NAME",)
    info = imds.iam_profile()
    if info is None:
        raise BrokenLink(
            f"no instance profile is associated with instance {iid} (iam/info: 404)",
            f"roleops associate --instance-id {iid} --instance-profile {expect_role or 'NAME'}",
        )
    if not info.ok:
        raise BrokenLink(
            f"iam/info says {info.code}"
            + (f": {info.message}" if info.message else "")
            + f" (instance profile {info.instance_profile_arn or 'unknown'})",
            "the instance profile was deleted or re-created since it was associated; re-associate it: "
            f"roleops associate --instance-id {iid} --instance-profile {info.profile_name or 'NAME'}",
        )
    profile_arn = info.instance_profile_arn
    profile_name = info.profile_name or "NAME"
    roles = imds.role_names()
    if not roles:
        raise BrokenLink(
            f"instance profile {profile_arn} holds no role (iam/security-credentials/ is empty)",
            f"put a role in it: {hint_setup(profile_name, names)}, or aws iam add-role-to-instance-profile "
            f"--instance-profile-name {profile_name} --role-name ROLE",
        )
    role = roles[0]
    creds = imds.role_credentials(role)
    if creds is None:
        raise BrokenLink(
            f"IMDS lists role {role} but has no credential document for it (404)",
            "the association may be changing; retry in a few seconds",
        )
    if seen is not None:
        seen(creds)
    if not creds.ok:
        raise BrokenLink(
            f"IMDS could not get credentials for role {role}: {creds.code}"
            + (f": {creds.message}" if creds.message else ""),
            f"the role's trust policy must allow ec2.amazonaws.com to assume it: {hint_setup(role, names)}",
        )
    if creds.missing:
        raise BrokenLink(
            f"the credential document of role {role} lacks {', '.join(creds.missing)}",
            "retry; if it persists, check what answers at " + imds.endpoint,
        )
    assert creds.expiration is not None  # not in `missing`
    ctx = InstanceContext(
        instance_id=iid,
        region=ident.region,
        account=ident.account_id,
        partition=info.partition or arns.partition_of_region(ident.region),
        role=role,
        profile_arn=profile_arn,
        credentials=creds,
    )
    if creds.expiration <= now:
        raise BrokenLink(
            f"the credentials IMDS serves for role {role} expired at {arns.iso_z(creds.expiration)} "
            f"(now {arns.iso_z(now)})",
            "IMDS rotates credentials at least 5 minutes before expiry: check the instance clock and retry",
            ctx.identity,
        )
    if expect_role is not None and role.lower() != expect_role.lower():
        raise BrokenLink(
            f"instance {iid} has role {role} (instance profile {profile_arn}); --expect-role wants {expect_role}",
            f"roleops associate --instance-id {iid} --instance-profile {expect_role}",
            ctx.identity,
        )
    return ctx
