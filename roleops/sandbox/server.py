"""Sandbox (product, offline): a 127.0.0.1 API port (moto, STS, SSM, faults) and a metadata port per instance."""

from __future__ import annotations

import atexit
import contextlib
import gzip
import json
import os
import re
import sys
import tempfile
import threading
from dataclasses import dataclass
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

from . import control
from .api import ApiInterceptor
from .calls import CallLedger
from .cli import MAX_INSTANCES
from .faults import Faults
from .imds import Imds
from .ports import HOST, MetadataPorts
from .ssm import RunCommand
from .state import ADMIN_POLICY, ADMIN_USER, INSTANCE_TYPE, World
from .wire import json_response, text

_IMDS_PATH_RE = re.compile(r"^/imds/(?P<instance>[^/]+)(?P<rest>/.*)?$")
# What an IMDS client asks for at the root of its endpoint: `latest/` (moto's server answers `/latest/meta-data/`
# and `/latest/api/` with its own fake instance and test-key credentials), and the dated versions and `1.0`.
_METADATA_PATH_RE = re.compile(r"^/(latest|1\.0|\d{4}-\d\d-\d\d)(/|$)")
NOT_METADATA_MESSAGE = (
    "this is the sandbox's AWS API endpoint, not an instance metadata service: point "
    "AWS_EC2_METADATA_SERVICE_ENDPOINT at an instance's metadata_endpoint (GET /_roleops/instances)\n"
)

_active_lock = threading.Lock()
_active: Sandbox | None = None


# EC2's tag rules (50 per resource, the sandbox's Name among them; keys 1-128, values 0-256, no aws: prefix).
MAX_USER_TAGS = 49
MAX_TAG_KEY, MAX_TAG_VALUE = 128, 256


@dataclass(frozen=True)
class InstanceOptions:
    """How the sandbox launches an instance: with an SSM agent (Online in SSM, or not), with roleops on the PATH
    its Run Command scripts get, and with EC2 tags (a Name of the caller's replaces the sandbox's)."""

    ssm_agent: bool = True
    roleops: bool = True
    tags: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for name in ("ssm_agent", "roleops"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, not {getattr(self, name)!r}")
        if len(self.tags) > MAX_USER_TAGS:
            raise ValueError(f"an instance takes at most {MAX_USER_TAGS} tags besides its Name")
        for key, value in self.tags:
            if not isinstance(key, str) or not 1 <= len(key) <= MAX_TAG_KEY or key.lower().startswith("aws:"):
                raise ValueError(f"a tag key is 1-{MAX_TAG_KEY} characters and does not start with aws:, not {key!r}")
            if not isinstance(value, str) or len(value) > MAX_TAG_VALUE:
                raise ValueError(f"a tag value is a string of at most {MAX_TAG_VALUE} characters, not {value!r}")

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> InstanceOptions:
        tags = body.get("tags") or {}
        if not isinstance(tags, dict):
            raise ValueError('tags must be a JSON object {"KEY": "VALUE"}')
        return cls(ssm_agent=body.get("ssm_agent", True), roleops=body.get("roleops", True), tags=tuple(tags.items()))


@dataclass(frozen=True)
class SandboxAccount:
    """One of the sandbox's accounts and its admin's long-term keys (the same across resets)."""

    account_id: str
    access_key_id: str
    secret_access_key: str

    def to_json(self) -> dict[str, str]:
        return {
            "account_id": self.account_id,
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
        }


@dataclass(frozen=True)
class SandboxInstance:
    instance_id: str
    metadata_endpoint: str
    ssm_agent: bool = True  # its SSM agent answers (Online) or not (ConnectionLost)
    roleops: bool = True  # roleops is on the PATH its Run Command scripts get

    def to_json(self) -> dict[str, str]:
        # The launch options stay out: an instance's JSON (info, GET/POST /_roleops/instances) keeps its shape,
        # and its tags are EC2's to tell (DescribeInstances).
        return {"instance_id": self.instance_id, "metadata_endpoint": self.metadata_endpoint}


# moto fills every EC2 backend it makes with ~1,300 AMIs (its catalogue, and each region's latest and ECS-optimized
# ones): most of the time of a reset, which makes a new backend. The sandbox needs a few Amazon Linux AMIs.
_LATEST_AMIS = "ec2/resources/latest_amis/{region}.json.gz"


def use_latest_amis_only(region: str) -> None:
    """Point moto at the region's latest Amazon Linux AMIs from moto's own data (MOTO_AMIS_PATH, read once when
    moto's EC2 models load), so a reset costs milliseconds, not a second. A user's own MOTO_AMIS_PATH wins, and
    once moto's EC2 models are loaded (an embedding program imported them) nothing changes."""
    if "MOTO_AMIS_PATH" in os.environ or "moto.ec2.models.amis" in sys.modules:
        return
    from importlib import resources

    try:
        packed = (resources.files("moto") / _LATEST_AMIS.format(region=region)).read_bytes()
        amis = json.loads(gzip.decompress(packed))
    except (OSError, ValueError):  # a moto without that file (or region): its full catalogue, only slower
        return
    fd, path = tempfile.mkstemp(prefix="roleops-sandbox-amis-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(amis, f)
    # Kept until this process exits: the variable stays set (moto loads only this list while it is), and a child
    # process that inherits it and loads moto's EC2 models reads the file then.
    atexit.register(_remove, path)
    os.environ["MOTO_AMIS_PATH"] = path
    import moto.ec2.models.amis  # noqa: F401 - reads the file now, once


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _quiet_handler() -> type:
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    class QuietHandler(MotoRequestHandler):
        # Own class attribute, so werkzeug's HTTP/1.1 switch does not touch moto's handler class.
        protocol_version = "HTTP/1.1"

        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass  # request lines would carry access key ids; the sandbox logs nothing per request

    return QuietHandler


class Sandbox:
    """A local AWS for roleops: moto plus what moto lacks (see the package docstring)."""

    def __init__(
        self,
        *,
        port: int = 0,
        instances: int = 1,
        region: str = "us-east-1",
        faults: Faults | None = None,
        seed: int = 0,
        accounts: int = 1,
    ) -> None:
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be 0-65535, not {port!r}")
        if not isinstance(instances, int) or not 0 <= instances <= MAX_INSTANCES:
            raise ValueError(f"instances must be 0-{MAX_INSTANCES}, not {instances!r}")
        self.port = port
        self.region = region
        self.seed = seed
        self._initial_instances = instances
        # World owns the account ids, and refuses a count outside 1-len(ACCOUNT_IDS) (ValueError).
        self.world = World(region=region, faults=faults or Faults(), accounts=accounts)
        self.imds = Imds(self.world, seed=seed + 1)
        self.calls = CallLedger()
        self.ssm = RunCommand(self.world, lambda: self.instances)
        self._api: ApiInterceptor | None = None
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._metadata = MetadataPorts(self._serve_metadata)
        self.instances: list[SandboxInstance] = []
        self._image_id: str | None = None
        self.endpoint_url = ""
        self.accounts: list[SandboxAccount] = []  # the first is the default account (access_key_id below)

    # --- lifecycle ----------------------------------------------------------------------------------

    @property
    def account_id(self) -> str:
        return self.world.account_id

    @property
    def access_key_id(self) -> str:
        """The default account's admin key id ("" before start)."""
        return self.accounts[0].access_key_id if self.accounts else ""

    @property
    def secret_access_key(self) -> str:
        return self.accounts[0].secret_access_key if self.accounts else ""

    def start(self) -> Sandbox:
        global _active
        with _active_lock:
            if _active is not None:
                raise RuntimeError(
                    "a roleops sandbox is already running in this process (moto's state is process-global); "
                    "stop it first or run another sandbox in a separate process"
                )
            _active = self
        try:
            use_latest_amis_only(self.region)
            from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

            moto_app = DomainDispatcherApplication(create_backend_app)
            self._api = ApiInterceptor(self.world, self.calls, moto_app, self.ssm)
            with self.world.lock:
                self._fresh_account(keep_admin_keys=False)
            self._server = make_server(HOST, self.port, self, threaded=True, request_handler=_quiet_handler())
            self.port = self._server.server_port
            self.endpoint_url = f"http://{HOST}:{self.port}"
            self.ssm.start(self.endpoint_url)
            self._metadata.start()
            self.instances = self._launch_instances(self._initial_instances)
            self._thread = threading.Thread(target=self._server.serve_forever, name="roleops-sandbox", daemon=True)
            self._thread.start()
        except BaseException:
            self.ssm.stop()
            self._metadata.stop()
            if self._server is not None:
                self._server.server_close()
                self._server = None
            self._release()
            raise
        return self

    def stop(self) -> None:
        self.calls.disarm()  # a held request thread must not outlive the server
        self.ssm.stop()  # no script outlives the sandbox (nor its HOME directories)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._metadata.stop()
        self._server = None
        self._thread = None
        self._release()

    def _release(self) -> None:
        global _active
        with _active_lock:
            if _active is self:
                _active = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- public API ---------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        return {
            "endpoint_url": self.endpoint_url,
            "region": self.region,
            "account_id": self.account_id,
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            "instances": [i.to_json() for i in self.instances],
            "accounts": [a.to_json() for a in self.accounts],
        }

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
        }

    def add_instance(self, options: InstanceOptions | None = None) -> SandboxInstance:
        if len(self.instances) >= MAX_INSTANCES:
            raise RuntimeError(f"the sandbox runs at most {MAX_INSTANCES} instances")
        instance = self._launch_instances(1, options or InstanceOptions())[0]
        self.instances.append(instance)
        return instance

    def issued_secrets(self) -> set[str]:
        with self.world.lock:
            self.world.harvest_secrets()
            return set(self.world.issued)

    @property
    def faults(self) -> Faults:
        return self.world.faults

    def set_faults(self, **changes: Any) -> Faults:
        """Change fault settings live (unknown names or bad values raise ValueError, nothing changes)."""
        with self.world.lock:
            self.world.faults = self.world.faults.replace(**changes)
            return self.world.faults

    def hold(self, after_mutations: int | None, *, timeout: float = 30.0, apply: bool = False) -> dict[str, Any]:
        """Hold the mutating IAM/EC2 call that follows the next `after_mutations` ones (None: release and disarm).

        The held request is answered 503 once released (`release()`, a new hold, a reset) or after `timeout`
        seconds; it is applied first only with `apply` (a response lost after AWS did the work).
        """
        self.calls.arm(after_mutations, timeout, apply)
        return self.calls.hold_json()

    def call_counts(self) -> dict[str, Any]:
        """API calls since the last reset (throttled ones apart), every mutating one by name, and IMDS requests."""
        with self.world.lock:
            imds = {"imds_requests": self.imds.requests, "imds_errors": self.imds.errors}
        return {**self.calls.calls_json(), **imds}

    def release(self) -> dict[str, Any]:
        self.calls.disarm()
        return self.calls.hold_json()

    def reset(self, *, seed: int | None = None) -> None:
        """Fresh accounts: moto reset, the same admin keys in every account, and as many fresh instances as at
        start, each with a metadata port of its own (the old instances' ports close: they are never reused for
        another instance). Fault settings are sandbox settings, not account state: they stay. Call counts and the
        hold are the accounts': they go. The fault dice restart from `seed` (default: the sandbox's seed)."""
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise ValueError(f"seed must be a whole number, not {seed!r}")
            self.seed = seed
            self.imds.seed = seed + 1
        self.calls.reset()
        self.ssm.reset()  # the old account's scripts are killed and its instances' directories removed
        with self.world.lock:
            self.world.harvest_secrets()
            self._fresh_account(keep_admin_keys=True)
            self._metadata.close_all()
            self.instances = self._launch_instances(self._initial_instances)

    # --- account set-up (in process, through moto's backends) ---------------------------------------

    def _fresh_account(self, *, keep_admin_keys: bool) -> None:
        """moto reset (every account at once), then each account's admin user with its keys."""
        from moto.moto_api._internal.models import moto_api_backend

        moto_api_backend.reset()
        self.world.clear_tracking()
        if self._api is not None:
            self._api.reset(self.seed)
        self.imds.reset()
        previous = {a.account_id: a for a in self.accounts} if keep_admin_keys else {}
        self.accounts = [self._admin(account, previous.get(account)) for account in self.world.account_ids]

    def _admin(self, account_id: str, keep: SandboxAccount | None) -> SandboxAccount:
        """The account's admin user (ADMIN_USER, allowed everything) and its access key: `keep`'s keys when given,
        so that the keys the user already exported keep working across a reset."""
        iam = self.world.iam(account_id)
        iam.create_user(self.region, ADMIN_USER)
        iam.put_user_policy(ADMIN_USER, "sandbox-admin-all", json.dumps(ADMIN_POLICY))
        key = iam.create_access_key(ADMIN_USER)
        if keep is not None:
            # moto finds a request's account by the key id in its backend's key table: re-key the entry too, or
            # a kept key of a second account would act in the default one.
            iam.access_keys.pop(key.access_key_id, None)
            key.access_key_id, key.secret_access_key = keep.access_key_id, keep.secret_access_key
            iam.access_keys[key.access_key_id] = key
        self.world.issued.add(key.secret_access_key)
        return SandboxAccount(account_id, key.access_key_id, key.secret_access_key)

    def _launch_instances(self, count: int, options: InstanceOptions | None = None) -> list[SandboxInstance]:
        """`count` instances, each through moto's RunInstances, with a metadata port of its own, registered with SSM.
        What every launch shares (the AMI, the default subnet) is looked up once per batch, not per instance: moto
        filters its whole AMI catalogue for each lookup."""
        options = options or InstanceOptions()
        if count <= 0:
            return []
        with self.world.lock:
            ec2 = self.world.ec2()
            subnets = sorted(
                ec2.describe_subnets(filters={"default-for-az": "true"}), key=lambda s: s.availability_zone
            )
            subnet_id = subnets[0].id if subnets else None
            if self._image_id is None:
                self._image_id = _default_image_id(ec2)  # moto's catalogue is the same after every reset
        return [self._launch_instance(options, subnet_id) for _ in range(count)]

    def _launch_instance(self, options: InstanceOptions, subnet_id: str | None) -> SandboxInstance:
        with self.world.lock:
            ec2 = self.world.ec2()
            number = sum(len(r.instances) for r in ec2.reservations.values()) + 1
            tags = {"Name": f"roleops-sandbox-{number}", **dict(options.tags)}
            reservation = ec2.run_instances(
                self._image_id,
                1,
                None,
                [],
                instance_type=INSTANCE_TYPE,
                # "Default" only lets a launch template's type win (there is none): the instance is a t3.micro all
                # the same, and moto skips scanning every offering of the region for it, per launch.
                is_instance_type_default=True,
                region_name=self.region,
                subnet_id=subnet_id,
                tags={"instance": tags},  # real EC2 tags: DescribeInstances filters and SSM tag targets see them
            )
            instance_id = reservation.instances[0].id
        # Its metadata service at the root of an address of its own, as EC2's 169.254.169.254 is: SDKs that
        # keep only scheme, host and port of AWS_EC2_METADATA_SERVICE_ENDPOINT reach it too.
        port = self._metadata.open(instance_id)
        instance = SandboxInstance(instance_id, f"http://{HOST}:{port}/", options.ssm_agent, options.roleops)
        self.ssm.add_instance(instance)
        return instance

    # --- WSGI -----------------------------------------------------------------------------------

    def __call__(self, environ: dict, start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "") or "/"
        try:
            if m := _IMDS_PATH_RE.match(path):
                # The first endpoints' shape (before each instance had a port): kept so that old URLs work.
                response = self.imds(environ, m["instance"], m["rest"] or "/")
            elif control.is_control_path(path):
                response = control.handle(self, environ, path)
            elif _METADATA_PATH_RE.match(path):
                # moto would answer with its own fake instance and test-key credentials that nothing issued.
                response = text(404, NOT_METADATA_MESSAGE)
            elif self._api is not None:
                response = self._api.handle(environ)
            else:  # pragma: no cover - the server answers only once start() made the interceptor
                response = text(503, "the sandbox is not started")
        except Exception as exc:  # a sandbox bug must answer, not drop the connection
            response = json_response(500, {"error": f"sandbox error: {type(exc).__name__}: {exc}"})
        return response(environ, start_response)

    def _serve_metadata(self, instance_id: str, environ: dict, start_response: Any) -> Any:
        """WSGI for one instance's metadata port: every path is that instance's metadata, from the root."""
        try:
            response = self.imds(environ, instance_id, environ.get("PATH_INFO", "") or "/")
        except Exception as exc:  # a sandbox bug must answer, not drop the connection
            response = text(500, f"sandbox error: {type(exc).__name__}: {exc}")
        return response(environ, start_response)


def _default_image_id(ec2: Any) -> str:
    """An Amazon Linux x86_64 AMI from moto's built-in catalogue (which varies between moto releases)."""
    for pattern in ("al2023-ami-2*x86_64", "amzn2-ami-hvm-*x86_64-gp2"):
        images = sorted(ec2.describe_images(filters={"name": pattern}), key=lambda i: i.name or "")
        if images:
            return images[-1].id
    images = sorted(ec2.describe_images(), key=lambda i: i.id)
    return images[0].id if images else "ami-12c6146b"  # moto accepts any id unless AMI validation is on


__all__ = ["InstanceOptions", "Sandbox", "SandboxAccount", "SandboxInstance"]
