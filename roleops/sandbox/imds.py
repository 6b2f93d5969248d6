"""Sandbox (product, offline): the instance metadata service, one per sandbox instance, as EC2 serves it."""

from __future__ import annotations

import json
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta, timezone
from typing import Any

from roleops.arns import iso_z
from roleops.evaluator import Principal, PrincipalKind, evaluate_trust

from .state import World, now_utc
from .wire import Response, text

TOKEN_HEADER = "HTTP_X_AWS_EC2_METADATA_TOKEN"
TTL_HEADER = "HTTP_X_AWS_EC2_METADATA_TOKEN_TTL_SECONDS"
TTL_RESPONSE_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
MAX_TOKEN_TTL = 21600
EC2_SERVICE = "ec2.amazonaws.com"
# EC2 delivers instance-role sessions of 6 hours and offers new ones at least 5 minutes before expiry.
CREDENTIAL_SECONDS = 6 * 3600
RENEW_BEFORE = timedelta(minutes=5)
IDENTITY_DOCUMENT_VERSION = "2017-09-30"

_NOT_FOUND = text(404, "Not Found")


def _document(payload: dict[str, Any]) -> str:
    # IMDS pretty-prints its JSON with " : " separators (see the walkthrough's credential document).
    return json.dumps(payload, indent=2, separators=(",", " : "))


@dataclass(frozen=True)
class _Association:
    """What EC2's association state says about an instance's profile, resolved against live IAM."""

    profile_arn: str
    profile_id: str
    live_profile: Any | None  # None: the associated profile was deleted or re-created
    updated: str


class Imds:
    """Answers latest/... for every instance moto knows in the sandbox's region: at the root of each instance's
    own metadata port, and at /imds/<instance-id>/latest/... on the API port (see server.py)."""

    def __init__(self, world: World, *, seed: int = 0, sleep: Callable[[float], None] = time.sleep) -> None:
        self.world = world
        self.seed = seed
        self._rng = random.Random(seed)
        self._sleep = sleep
        self.requests = 0  # IMDS requests served, and how many of them the error fault answered 500
        self.errors = 0

    def reset(self) -> None:
        self._rng = random.Random(self.seed)
        self.requests = self.errors = 0

    def __call__(self, environ: dict, instance_id: str, path: str) -> Response:
        faults = self.world.faults
        if faults.imds_latency > 0:
            self._sleep(faults.imds_latency)  # outside the lock: a slow IMDS must not stall the APIs
        method = environ.get("REQUEST_METHOD", "GET").upper()
        with self.world.lock:
            self.requests += 1
            if method in ("GET", "HEAD") and faults.imds_error_rate > 0 and self._rng.random() < faults.imds_error_rate:
                self.errors += 1
                return text(500, "Internal Server Error")
            return self._answer(environ, method, instance_id, path.lstrip("/"))

    # --- request handling ---------------------------------------------------------------------------

    def _answer(self, environ: dict, method: str, instance_id: str, path: str) -> Response:
        instance = self._instance(instance_id)
        if instance is None:
            return _NOT_FOUND
        options = instance.metadata_options
        if (options.http_endpoint or "enabled") == "disabled":
            # EC2's documented answer when the metadata endpoint is turned off.
            return text(403, "Forbidden")
        if path.rstrip("/") == "latest/api/token":
            if method != "PUT":
                return text(405, "Method Not Allowed", headers=(("Allow", "PUT"),))
            return self._new_token(environ, instance_id)
        if method not in ("GET", "HEAD"):
            return text(405, "Method Not Allowed", headers=(("Allow", "GET, HEAD"),))
        token = environ.get(TOKEN_HEADER)
        if token is not None:
            if not self.world.imds_token_valid(token, instance_id):
                return text(401, "Unauthorized")
        elif (options.http_tokens or "optional") == "required":
            return text(401, "Unauthorized")
        return self._lookup(instance, path)

    def _instance(self, instance_id: str) -> Any | None:
        try:
            instance = self.world.ec2().get_instance(instance_id)
        except Exception:  # moto raises its own InvalidInstanceID error
            return None
        return None if instance.state == "terminated" else instance

    def _new_token(self, environ: dict, instance_id: str) -> Response:
        if environ.get("HTTP_X_FORWARDED_FOR"):
            return text(403, "Forbidden")  # IMDS refuses token requests that went through a proxy
        raw = environ.get(TTL_HEADER)
        try:
            ttl = int(raw) if raw is not None and raw.strip().isdigit() else 0
        except ValueError:
            ttl = 0
        if not 1 <= ttl <= MAX_TOKEN_TTL:
            return text(400, "Bad Request")
        token = secrets.token_urlsafe(42)
        self.world.add_imds_token(token, instance_id, ttl)
        return text(200, token, headers=((TTL_RESPONSE_HEADER, str(ttl)),))

    def _lookup(self, instance: Any, path: str) -> Response:
        key = path.rstrip("/")
        if key == "":
            return text(200, "latest")
        if key == "latest":
            return text(200, "dynamic\nmeta-data")
        if key == "latest/dynamic":
            return text(200, "instance-identity/")
        if key == "latest/dynamic/instance-identity":
            return text(200, "document")
        if key == "latest/dynamic/instance-identity/document":
            return text(200, _document(self._identity_document(instance)))
        if key == "latest/meta-data":
            return text(200, self._root_listing(instance))
        if not key.startswith("latest/meta-data/"):
            return _NOT_FOUND
        key = key[len("latest/meta-data/") :]
        if key == "iam" or key.startswith("iam/"):
            return self._iam(instance, key)
        value = self._simple_values(instance).get(key)
        return _NOT_FOUND if value is None else text(200, value)

    # --- plain metadata -----------------------------------------------------------------------------

    def _simple_values(self, instance: Any) -> dict[str, str]:
        ip = instance.private_ip or "172.31.0.1"
        domain = "ec2.internal" if self.world.region == "us-east-1" else f"{self.world.region}.compute.internal"
        hostname = f"ip-{ip.replace('.', '-')}.{domain}"
        return {
            "ami-id": instance.image_id,
            "ami-launch-index": str(instance.ami_launch_index),
            "hostname": hostname,
            "instance-id": instance.id,
            "instance-type": instance.instance_type,
            "local-hostname": hostname,
            "local-ipv4": ip,
            "placement": "availability-zone\nregion",
            "placement/availability-zone": instance.placement.zone or f"{self.world.region}a",
            "placement/region": self.world.region,
        }

    def _root_listing(self, instance: Any) -> str:
        names = [k for k in self._simple_values(instance) if "/" not in k]
        names = [f"{n}/" if n == "placement" else n for n in names]
        if self._association(instance) is not None:
            names.append("iam/")
        return "\n".join(sorted(names))

    def _identity_document(self, instance: Any) -> dict[str, Any]:
        return {
            "accountId": self.world.account_id,
            "architecture": instance.architecture or "x86_64",
            "availabilityZone": instance.placement.zone or f"{self.world.region}a",
            "billingProducts": None,
            "devpayProductCodes": None,
            "marketplaceProductCodes": None,
            "imageId": instance.image_id,
            "instanceId": instance.id,
            "instanceType": instance.instance_type,
            "kernelId": instance.kernel_id or None,
            "pendingTime": iso_z(instance.launch_time),
            "privateIp": instance.private_ip,
            "ramdiskId": None,
            "region": self.world.region,
            "version": IDENTITY_DOCUMENT_VERSION,
        }

    # --- iam/ ---------------------------------------------------------------------------------------

    def _association(self, instance: Any) -> _Association | None:
        """The instance's association, or None when there is none or it is still being delivered."""
        world = self.world
        assoc = world.ec2().iam_instance_profile_associations.get(instance.id)
        if assoc is None:
            return None
        since = world.associated_at.get(instance.id)
        if since is not None and time.monotonic() - since < world.faults.credentials_delay:
            return None
        profile = assoc.iam_instance_profile
        live = world.profile_by_name(profile.name)
        if live is not None and live.id != profile.id:
            live = None  # re-created under the same name: EC2 no longer finds the associated one
        updated = world.associated_wall.get(instance.id) or instance.launch_time
        return _Association(profile_arn=profile.arn, profile_id=profile.id, live_profile=live, updated=iso_z(updated))

    def _iam(self, instance: Any, key: str) -> Response:
        association = self._association(instance)
        if association is None:
            return _NOT_FOUND
        if key == "iam":
            return text(200, "info\nsecurity-credentials/")
        if key == "iam/info":
            return text(200, _document(self._info(association)))
        live = association.live_profile
        role = live.roles[0] if live is not None and live.roles else None
        if role is None:
            return _NOT_FOUND
        if key == "iam/security-credentials":
            return text(200, role.name)
        if key != f"iam/security-credentials/{role.name}":
            return _NOT_FOUND
        return text(200, self._credentials(instance, role))

    def _info(self, association: _Association) -> dict[str, Any]:
        if association.live_profile is None:
            return {
                "Code": "InstanceProfileNotFound",
                "Message": f"Instance profile {association.profile_arn} was not found.",
                "LastUpdated": association.updated,
                "InstanceProfileArn": association.profile_arn,
                "InstanceProfileId": association.profile_id,
            }
        return {
            "Code": "Success",
            "LastUpdated": association.updated,
            "InstanceProfileArn": association.live_profile.arn,
            "InstanceProfileId": association.live_profile.id,
        }

    def _credentials(self, instance: Any, role: Any) -> str:
        world = self.world
        cache_key = (instance.id, role.id)
        trust = world.effective_trust(role)
        ec2 = Principal(kind=PrincipalKind.SERVICE, service=EC2_SERVICE)
        context = {
            "aws:SourceAccount": world.account_id,
            "aws:SourceArn": f"arn:aws:ec2:{world.region}:{world.account_id}:instance/{instance.id}",
        }
        if trust is None or not evaluate_trust(trust, principal=ec2, context=context).allowed:
            world.credential_cache.pop(cache_key, None)
            return _document(
                {
                    "Code": "AssumeRoleUnauthorizedAccess",
                    "Message": (
                        f"EC2 cannot assume the role {role.name}. Please see documentation at "
                        "https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_switch-role-ec2.html"
                        "#troubleshoot_iam-ec2_errors-info-doc."
                    ),
                    "LastUpdated": iso_z(now_utc()),
                }
            )
        session = world.credential_cache.get(cache_key)
        if session is None or session.expiration.replace(tzinfo=timezone.utc) - now_utc() < RENEW_BEFORE:
            session = world.sts().assume_role(
                region_name=world.region,
                role_session_name=instance.id,
                role_arn=role.arn,
                policy=None,
                duration=CREDENTIAL_SECONDS,
                external_id=None,
            )
            world.credential_cache[cache_key] = session
            world.credential_minted[cache_key] = now_utc()
            world.issued.update((session.secret_access_key, session.session_token))
        head = {
            "Code": "Success",
            "LastUpdated": iso_z(world.credential_minted[cache_key]),
            "Type": "AWS-HMAC",
            "AccessKeyId": session.access_key_id,
        }
        if world.faults.imds_malformed:
            # Cut off where the secret would start: broken JSON that leaks nothing.
            return _document(head)[:-2] + ',\n  "SecretAccessKey" : "'
        return _document(
            {
                **head,
                "SecretAccessKey": session.secret_access_key,
                "Token": session.session_token,
                "Expiration": iso_z(session.expiration),
            }
        )
