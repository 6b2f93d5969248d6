"""The SDK default credential chain on the instance (pure layer): what shadows the instance role, and how a
role_arn profile reaches it — the vocabulary of verify's `default-chain` step. No AWS call, no botocore import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# What shadows the instance role when boto3's chain stops earlier (botocore provider METHOD -> words, fix).
SHADOWS: dict[str, tuple[str, str]] = {
    "env": (
        "environment variables AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY",
        "unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN",
    ),
    "shared-credentials-file": (
        "the shared credentials file (~/.aws/credentials or AWS_SHARED_CREDENTIALS_FILE)",
        "remove the profile's keys from the credentials file, or use another profile",
    ),
    "config-file": (
        "keys in the config file (~/.aws/config or AWS_CONFIG_FILE)",
        "remove aws_access_key_id / aws_secret_access_key from the config profile",
    ),
    "assume-role": (  # reached only when the profile could not be read; role_profile() decides otherwise
        "a config profile with role_arn (assume-role)",
        "give the profile credential_source = Ec2InstanceMetadata, or use a profile without role_arn",
    ),
    "assume-role-with-web-identity": (
        "web identity (AWS_WEB_IDENTITY_TOKEN_FILE / AWS_ROLE_ARN or web_identity_token_file)",
        "unset AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN",
    ),
    "custom-process": (
        "a credential_process in the config profile",
        "remove credential_process from the profile",
    ),
    "sso": ("an IAM Identity Center (SSO) profile", "use a profile without sso_* settings"),
    "login": ("an `aws login` session profile", "use a profile without login settings"),
    "container-role": (
        "the container credentials endpoint (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / _FULL_URI)",
        "unset AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ),
    "ec2-credentials-file": ("a legacy EC2 credentials file (AWS_CREDENTIAL_FILE)", "unset AWS_CREDENTIAL_FILE"),
    "boto-config": ("a legacy boto config file (/etc/boto.cfg or ~/.boto)", "remove the keys from the boto config"),
}


INSTANCE_METADATA_SOURCE = "Ec2InstanceMetadata"  # the credential_source that means "the instance role"


@dataclass(frozen=True)
class RoleProfile:
    """What a role_arn profile assumes and where its source credentials come from (shared config, as botocore reads)."""

    profiles: tuple[str, ...]  # the profile, then each source_profile followed
    role_arns: tuple[str, ...]  # the roles assumed, first to last (the last is what the SDK ends up as)
    source: str  # e.g. "credential_source = Ec2InstanceMetadata", "static keys of profile dev"

    @property
    def from_instance_role(self) -> bool:
        return self.source == f"credential_source = {INSTANCE_METADATA_SOURCE}"


def role_profile(profiles: dict[str, dict[str, Any]], name: str) -> RoleProfile | None:
    """Follow a role_arn profile's source_profile links to its source, as botocore's AssumeRoleProvider does.

    None when `name` has no role_arn. Pure: `profiles` is botocore's parsed config (`full_config["profiles"]`).
    """
    seen: list[str] = []
    arns: list[str] = []
    current = name
    for _ in range(len(profiles) + 1):  # bounded: a loop of source_profile links ends here
        config = profiles.get(current) or {}
        if "role_arn" not in config:
            if not arns:
                return None
            return RoleProfile(
                profiles=tuple(seen), role_arns=tuple(reversed(arns)), source=own_credentials(current, config)
            )
        seen.append(current)
        arns.append(config["role_arn"])
        if "credential_source" in config:
            source = f"credential_source = {config['credential_source']}"
            return RoleProfile(profiles=tuple(seen), role_arns=tuple(reversed(arns)), source=source)
        nxt = config.get("source_profile")
        if nxt is None:
            return RoleProfile(profiles=tuple(seen), role_arns=tuple(reversed(arns)), source="no source configured")
        if nxt == current:  # botocore: a profile that sources itself uses its own static keys
            return RoleProfile(
                profiles=tuple(seen), role_arns=tuple(reversed(arns)), source=own_credentials(current, config)
            )
        if nxt in seen:
            return RoleProfile(profiles=tuple(seen), role_arns=tuple(reversed(arns)), source="a source_profile loop")
        current = nxt
    return RoleProfile(profiles=tuple(seen), role_arns=tuple(reversed(arns)), source="a source_profile loop")


def own_credentials(name: str, config: dict[str, Any]) -> str:
    if "aws_access_key_id" in config:
        return f"static keys of profile {name}"
    if "credential_process" in config:
        return f"the credential_process of profile {name}"
    if "sso_session" in config or "sso_start_url" in config:
        return f"the IAM Identity Center (SSO) login of profile {name}"
    if "web_identity_token_file" in config:
        return f"the web identity token of profile {name}"
    return f"profile {name}, which has no credentials"
