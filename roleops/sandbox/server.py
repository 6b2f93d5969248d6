"""Sandbox (product, offline): a 127.0.0.1 API port (moto, STS decisions, faults) and a metadata port per instance."""

from __future__ import annotations

import json
import random
import re
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from werkzeug.serving import BaseWSGIServer, ThreadedWSGIServer, WSGIRequestHandler, make_server
from werkzeug.test import run_wsgi_app

from .calls import CallLog
from .faults import Faults
from .imds import Imds
from .state import ADMIN_POLICY, ADMIN_USER, INSTANCE_TYPE, World, now_utc
from .sts import decide_assume_role
from .wire import (
    IAM_XMLNS,
    STS_XMLNS,
    ApiRequest,
    Response,
    ec2_error,
    json_response,
    query_error,
    read_api_request,
    read_json_body,
    text,
)

HOST = "127.0.0.1"  # never anything else: the sandbox hands out admin keys to whoever can reach it
MAX_INSTANCES = 64
THROTTLED_SERVICES = ("iam", "ec2", "sts")
_IMDS_PATH_RE = re.compile(r"^/imds/(?P<instance>[^/]+)(?P<rest>/.*)?$")
# What an IMDS client asks for at the root of its endpoint: `latest/` (moto's server answers `/latest/meta-data/`
# and `/latest/api/` with its own fake instance and test-key credentials), and the dated versions and `1.0`.
_METADATA_PATH_RE = re.compile(r"^/(latest|1\.0|\d{4}-\d\d-\d\d)(/|$)")
NOT_METADATA_MESSAGE = (
    "this is the sandbox's AWS API endpoint, not an instance metadata service: point "
    "AWS_EC2_METADATA_SERVICE_ENDPOINT at an instance's metadata_endpoint (GET /_roleops/instances)\n"
)
# How often the metadata listener loop looks at its stop flag.
_SELECT_SECONDS = 0.2
# Binds tried for a port no earlier instance of this sandbox had (see _MetadataPorts._fresh_socket).
_PORT_TRIES = 32
_PROFILE_ACTIONS = ("AssociateIamInstanceProfile", "ReplaceIamInstanceProfileAssociation", "RunInstances")
_METADATA_OPTION_PARAMS = {
    "HttpTokens": "http_tokens",
    "HttpPutResponseHopLimit": "http_put_response_hop_limit",
    "HttpEndpoint": "http_endpoint",
    "HttpProtocolIpv6": "http_protocol_ipv6",
    "InstanceMetadataTags": "instance_metadata_tags",
}

_active_lock = threading.Lock()
_active: Sandbox | None = None


@dataclass(frozen=True)
class SandboxInstance:
    instance_id: str
    metadata_endpoint: str

    def to_json(self) -> dict[str, str]:
        return {"instance_id": self.instance_id, "metadata_endpoint": self.metadata_endpoint}


def _quiet_handler() -> type:
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    class QuietHandler(MotoRequestHandler):
        # Own class attribute, so werkzeug's HTTP/1.1 switch does not touch moto's handler class.
        protocol_version = "HTTP/1.1"

        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass  # request lines would carry access key ids; the sandbox logs nothing per request

    return QuietHandler


class _QuietImdsHandler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as EC2's IMDS

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass  # the sandbox logs nothing per request


class _MetadataServer(ThreadedWSGIServer):
    """One instance's metadata service at the root of its own port; one thread per connection."""

    # Closing the listener must not wait for the client's keep-alive connections (their threads are daemons).
    block_on_close = False

    def __init__(self, sock: socket.socket, app: Callable[[dict, Any], Any]) -> None:
        # Handed a bound socket (werkzeug dups its descriptor), werkzeug leaves bind errors to us: binding by
        # itself, it would print them and sys.exit().
        super().__init__(HOST, sock.getsockname()[1], app, _QuietImdsHandler, fd=sock.fileno())
        # Non-blocking: a connection reset between select and accept must not block the one accepting thread.
        self.socket.setblocking(False)


class _MetadataPorts:
    """Every instance's metadata port on 127.0.0.1, all accepted by one thread over one selector: stop() costs
    one select timeout however many instances there are. Requests go to `serve(instance_id, environ,
    start_response)` with the instance its port was opened for. A port serves one instance for its life and,
    within one sandbox, is never handed to another instance: a stale endpoint is refused, not answered by
    somebody else's instance."""

    def __init__(self, serve: Callable[[str, dict, Any], Any]) -> None:
        self._serve = serve
        self._lock = threading.Lock()  # guards _servers and each listening socket against the loop
        self._servers: dict[str, _MetadataServer] = {}
        self._used_ports: set[int] = set()
        self._selector: selectors.BaseSelector | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stopping.clear()
        self._selector = selectors.DefaultSelector()
        self._thread = threading.Thread(
            target=self._loop, args=(self._selector,), name="roleops-sandbox-imds", daemon=True
        )
        self._thread.start()

    def open(self, instance_id: str) -> int:
        """Listen for `instance_id` on a fresh port picked by the OS; returns the port."""
        sock = self._fresh_socket()
        try:
            server = _MetadataServer(sock, partial(self._serve, instance_id))
        finally:
            sock.close()  # the server holds its own dup of the descriptor
        with self._lock:
            if self._selector is None:
                server.server_close()
                raise RuntimeError("the metadata listeners are not running")
            self._servers[instance_id] = server
            self._used_ports.add(server.port)
            self._selector.register(server.socket, selectors.EVENT_READ, (instance_id, server))
        return server.port

    def close_all(self) -> None:
        with self._lock:
            servers, self._servers = list(self._servers.values()), {}
            for server in servers:
                if self._selector is not None:
                    self._selector.unregister(server.socket)
                server.server_close()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.close_all()
        with self._lock:
            if self._selector is not None:
                self._selector.close()
                self._selector = None

    def _fresh_socket(self) -> socket.socket:
        held: list[socket.socket] = []  # ports this sandbox used before, kept bound so the OS picks others
        try:
            for _ in range(_PORT_TRIES):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                try:
                    sock.bind((HOST, 0))
                    sock.listen(128)
                except OSError:
                    sock.close()
                    raise
                if sock.getsockname()[1] not in self._used_ports:
                    return sock
                held.append(sock)
            raise OSError(f"no fresh 127.0.0.1 port for a metadata service after {_PORT_TRIES} tries")
        finally:
            for sock in held:
                sock.close()

    def _loop(self, selector: selectors.BaseSelector) -> None:
        while not self._stopping.is_set():
            if not selector.get_map():  # nothing to select on (select() on no descriptors fails on some systems)
                self._stopping.wait(_SELECT_SECONDS)
                continue
            for key, _ in selector.select(_SELECT_SECONDS):
                instance_id, server = key.data
                with self._lock:
                    # Closed while we selected: its socket is gone (and its descriptor may be another's now).
                    if self._servers.get(instance_id) is not server:
                        continue
                    try:
                        server.handle_request()  # accept one connection; a thread of its own serves it
                    except Exception:  # noqa: BLE001 - one bad accept must not end every instance's metadata
                        continue


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
    ) -> None:
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be 0-65535, not {port!r}")
        if not isinstance(instances, int) or not 0 <= instances <= MAX_INSTANCES:
            raise ValueError(f"instances must be 0-{MAX_INSTANCES}, not {instances!r}")
        self.port = port
        self.region = region
        self.seed = seed
        self._initial_instances = instances
        self.world = World(region=region, faults=faults or Faults())
        self.imds = Imds(self.world, seed=seed + 1)
        self._throttle_rng = random.Random(seed)
        self.calls = CallLog()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._moto_app: Any = None
        self._metadata = _MetadataPorts(self._serve_metadata)
        self.instances: list[SandboxInstance] = []
        self.endpoint_url = ""
        self.access_key_id = ""
        self.secret_access_key = ""

    # --- lifecycle ----------------------------------------------------------------------------------

    @property
    def account_id(self) -> str:
        return self.world.account_id

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
            from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

            self._moto_app = DomainDispatcherApplication(create_backend_app)
            with self.world.lock:
                self._fresh_account(keep_admin_keys=False)
            self._server = make_server(HOST, self.port, self, threaded=True, request_handler=_quiet_handler())
            self.port = self._server.server_port
            self.endpoint_url = f"http://{HOST}:{self.port}"
            self._metadata.start()
            self.instances = [self._launch_instance() for _ in range(self._initial_instances)]
            self._thread = threading.Thread(target=self._server.serve_forever, name="roleops-sandbox", daemon=True)
            self._thread.start()
        except BaseException:
            self._metadata.stop()
            if self._server is not None:
                self._server.server_close()
                self._server = None
            self._release()
            raise
        return self

    def stop(self) -> None:
        self.calls.disarm()  # a held request thread must not outlive the server
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
        }

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
        }

    def add_instance(self) -> SandboxInstance:
        if len(self.instances) >= MAX_INSTANCES:
            raise RuntimeError(f"the sandbox runs at most {MAX_INSTANCES} instances")
        instance = self._launch_instance()
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
        """A fresh account: moto reset, the same admin keys, and as many fresh instances as at start, each with
        a metadata port of its own (the old instances' ports close: they are never reused for another instance).
        Fault settings are sandbox settings, not account state: they stay. Call counts and the hold are the
        account's: they go. The fault dice restart from `seed` (default: the sandbox's seed)."""
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise ValueError(f"seed must be a whole number, not {seed!r}")
            self.seed = seed
            self.imds.seed = seed + 1
        self.calls.reset()
        with self.world.lock:
            self.world.harvest_secrets()
            self._fresh_account(keep_admin_keys=True)
            self._metadata.close_all()
            self.instances = [self._launch_instance() for _ in range(self._initial_instances)]

    # --- account set-up (in process, through moto's backends) ---------------------------------------

    def _fresh_account(self, *, keep_admin_keys: bool) -> None:
        from moto.moto_api._internal.models import moto_api_backend

        moto_api_backend.reset()
        self.world.clear_tracking()
        self._throttle_rng = random.Random(self.seed)
        self.imds.reset()
        iam = self.world.iam()
        iam.create_user(self.region, ADMIN_USER)
        iam.put_user_policy(ADMIN_USER, "sandbox-admin-all", json.dumps(ADMIN_POLICY))
        key = iam.create_access_key(ADMIN_USER)
        if keep_admin_keys and self.access_key_id:
            # The keys the user already exported keep working across a reset.
            key.access_key_id, key.secret_access_key = self.access_key_id, self.secret_access_key
        self.access_key_id, self.secret_access_key = key.access_key_id, key.secret_access_key
        self.world.issued.add(self.secret_access_key)

    def _launch_instance(self) -> SandboxInstance:
        with self.world.lock:
            ec2 = self.world.ec2()
            subnets = sorted(
                ec2.describe_subnets(filters={"default-for-az": "true"}), key=lambda s: s.availability_zone
            )
            number = sum(len(r.instances) for r in ec2.reservations.values()) + 1
            reservation = ec2.run_instances(
                _default_image_id(ec2),
                1,
                None,
                [],
                instance_type=INSTANCE_TYPE,
                is_instance_type_default=False,
                region_name=self.region,
                subnet_id=subnets[0].id if subnets else None,
                tags={"instance": {"Name": f"roleops-sandbox-{number}"}},
            )
            instance_id = reservation.instances[0].id
        # Its metadata service at the root of an address of its own, as EC2's 169.254.169.254 is: SDKs that
        # keep only scheme, host and port of AWS_EC2_METADATA_SERVICE_ENDPOINT reach it too.
        port = self._metadata.open(instance_id)
        return SandboxInstance(instance_id, f"http://{HOST}:{port}/")

    # --- WSGI -----------------------------------------------------------------------------------

    def __call__(self, environ: dict, start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "") or "/"
        try:
            if m := _IMDS_PATH_RE.match(path):
                # The first endpoints' shape (before each instance had a port): kept so that old URLs work.
                response = self.imds(environ, m["instance"], m["rest"] or "/")
            elif path == "/_roleops" or path.startswith("/_roleops/"):
                response = self._control(environ, path)
            elif _METADATA_PATH_RE.match(path):
                # moto would answer with its own fake instance and test-key credentials that nothing issued.
                response = text(404, NOT_METADATA_MESSAGE)
            else:
                response = self._api(environ)
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

    def _forward(self, request: ApiRequest) -> Response:
        app_iter, status, headers = run_wsgi_app(self._moto_app, request.environ, buffered=True)
        try:
            body = b"".join(app_iter)
        finally:
            if hasattr(app_iter, "close"):
                app_iter.close()
        return Response(int(status.split()[0]), body, tuple(headers.to_wsgi_list()))

    def _throttled(self, request: ApiRequest) -> Response | None:
        fraction = self.world.faults.throttle_fraction
        if fraction <= 0 or request.service not in THROTTLED_SERVICES:
            return None
        with self.world.lock:  # one seeded stream, drawn in arrival order
            if self._throttle_rng.random() >= fraction:
                return None
        if request.service == "ec2":
            return ec2_error(503, "RequestLimitExceeded", "Request limit exceeded.")
        xmlns = STS_XMLNS if request.service == "sts" else IAM_XMLNS
        return query_error(400, "Throttling", "Rate exceeded", xmlns=xmlns)

    def _api(self, environ: dict) -> Response:
        request = read_api_request(environ)
        if (throttled := self._throttled(request)) is not None:
            self.calls.count_throttled()
            return throttled
        held = self.calls.count(request.service, request.action)
        if held is None:
            return self._dispatch(request)
        self.calls.wait(held)  # outside the world lock: the rest of the sandbox keeps serving
        if held.apply and self.calls.still_current(held):
            self._dispatch(request)
        message = "the sandbox held this request (hold fault)" + ("" if held.apply else "; it was not applied")
        if request.service == "ec2":
            return ec2_error(503, "Unavailable", message)
        return query_error(503, "ServiceUnavailable", message, xmlns=IAM_XMLNS, sender=False)

    def _dispatch(self, request: ApiRequest) -> Response:
        service, action = request.service, request.action
        world = self.world
        with world.lock:
            if service == "sts" and action == "AssumeRole":
                refusal = decide_assume_role(world, request)
                if refusal is not None:
                    return refusal
                response = self._forward(request)
                world.harvest_secrets()
                return response
            if service == "ec2" and action in _PROFILE_ACTIONS:
                return self._associate(request)
            if service == "ec2" and action == "ModifyInstanceMetadataOptions":
                self._complete_metadata_options(request)
                return self._forward(request)
            if service == "iam" and action == "RemoveRoleFromInstanceProfile":
                refusal = self._role_not_in_profile(request)
                if refusal is not None:
                    return refusal
            response = self._forward(request)
            if response.status == 200 and service == "iam":
                self._after_iam(request)
            return response

    def _role_not_in_profile(self, request: ApiRequest) -> Response | None:
        """IAM answers NoSuchEntity for a role the profile does not hold; moto crashes on list.remove."""
        profile_name, role_name = request.params.get("InstanceProfileName", ""), request.params.get("RoleName", "")
        profile = self.world.profile_by_name(profile_name)
        if profile is None or any(r.name == role_name for r in profile.roles):
            return None  # moto answers a missing profile itself
        return query_error(
            404,
            "NoSuchEntity",
            f"The role with name {role_name} cannot be found in instance profile {profile_name}.",
            xmlns=IAM_XMLNS,
        )

    def _after_iam(self, request: ApiRequest) -> None:
        world, params = self.world, request.params
        if request.action in ("CreateRole", "UpdateAssumeRolePolicy"):
            role = world.role_by_name(params.get("RoleName", ""))
            if role is not None:
                world.record_trust(role)
        elif request.action == "CreateInstanceProfile":
            world.profile_created[params.get("InstanceProfileName", "").lower()] = time.monotonic()
        elif request.action == "CreateAccessKey":
            world.harvest_secrets()

    def _associate(self, request: ApiRequest) -> Response:
        """EC2 calls that name an instance profile: IAM's propagation delay, then moto."""
        world, params = self.world, request.params
        name, by_arn = params.get("IamInstanceProfile.Name"), False
        if not name and params.get("IamInstanceProfile.Arn"):
            name, by_arn = params["IamInstanceProfile.Arn"].rsplit("/", 1)[-1], True
        created = world.profile_created.get((name or "").lower())
        if created is not None and time.monotonic() - created < world.faults.profile_propagation_delay:
            value = params["IamInstanceProfile.Arn"] if by_arn else name
            field, what = ("arn", "ARN") if by_arn else ("name", "name")
            return ec2_error(
                400,
                "InvalidParameterValue",
                f"Value ({value}) for parameter iamInstanceProfile.{field} is invalid. "
                f"Invalid IAM Instance Profile {what}",
            )
        instance_id = params.get("InstanceId")
        replaced = None
        if request.action == "ReplaceIamInstanceProfileAssociation":
            for association in world.ec2().iam_instance_profile_associations.values():
                if association.association_id == params.get("AssociationId"):
                    instance_id, replaced = association.instance_id, association
        response = self._forward(request)
        if response.status == 200 and replaced is not None:
            response = self._new_association_id(replaced, response)
        if response.status == 200 and instance_id and request.action != "RunInstances":
            world.associated_at[instance_id] = time.monotonic()
            world.associated_wall[instance_id] = now_utc()
        return response

    @staticmethod
    def _new_association_id(association: Any, response: Response) -> Response:
        """EC2's Replace makes a new association with a new id (moto keeps the old one): a retried Replace
        with the old id then fails, as it does on AWS."""
        from moto.ec2.utils import random_iam_instance_profile_association_id

        old, new = association.association_id, random_iam_instance_profile_association_id()
        association.association_id = new
        return Response(response.status, response.body.replace(old.encode(), new.encode()), response.headers)

    def _complete_metadata_options(self, request: ApiRequest) -> None:
        # moto replaces ALL metadata options with what the call names (the rest become None);
        # EC2 changes only the named ones. Filling in the current values gives EC2's behaviour.
        if not request.form:
            return
        try:
            instance = self.world.ec2().get_instance(request.params.get("InstanceId", ""))
        except Exception:
            return  # moto answers the unknown instance itself
        params = dict(request.params)
        current = instance.metadata_options
        for param, attribute in _METADATA_OPTION_PARAMS.items():
            if param not in params and getattr(current, attribute, None) is not None:
                params[param] = str(getattr(current, attribute))
        request.replace_params(params)

    # --- control endpoints ------------------------------------------------------------------------

    def _control(self, environ: dict, path: str) -> Response:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        route = path[len("/_roleops") :].rstrip("/") or "/"
        allowed = {
            "/info": ("GET",),
            "/instances": ("POST", "GET"),
            "/faults": ("GET", "POST"),
            "/secrets": ("GET",),
            "/reset": ("POST",),
            "/calls": ("GET",),
            "/hold": ("GET", "POST"),
        }
        if route not in allowed:
            return json_response(404, {"error": f"no such control endpoint: {path}", "endpoints": sorted(allowed)})
        if method not in allowed[route]:
            return json_response(405, {"error": f"{method} not allowed on {path}; use {' or '.join(allowed[route])}"})
        if route == "/info":
            return json_response(200, self.info())
        if route == "/instances":
            if method == "GET":
                return json_response(200, {"instances": [i.to_json() for i in self.instances]})
            try:
                return json_response(200, self.add_instance().to_json())
            except RuntimeError as exc:
                return json_response(400, {"error": str(exc)})
        if route == "/faults":
            if method == "POST":
                try:
                    changes = read_json_body(environ)
                    if not isinstance(changes, dict):
                        raise ValueError("the body must be a JSON object of fault settings")
                    self.set_faults(**changes)
                except ValueError as exc:
                    return json_response(400, {"error": str(exc)})
            return json_response(200, self.faults.to_json())
        if route == "/secrets":
            return json_response(200, {"secrets": sorted(self.issued_secrets())})
        if route == "/reset":
            try:
                body = read_json_body(environ)
                if not isinstance(body, dict) or set(body) - {"seed"}:
                    raise ValueError('the body must be empty or {"seed": N}')
                self.reset(seed=body.get("seed"))
            except ValueError as exc:
                return json_response(400, {"error": str(exc)})
            return json_response(200, self.info())
        if route == "/calls":
            return json_response(200, self.call_counts())
        if route == "/hold":
            if method == "POST":
                try:
                    body = read_json_body(environ)
                    if not isinstance(body, dict) or set(body) - {"after_mutations", "timeout", "apply"}:
                        raise ValueError('the body must be {"after_mutations": N|null, "timeout": S, "apply": B}')
                    self.hold(
                        body.get("after_mutations"),
                        timeout=body.get("timeout", 30.0),
                        apply=body.get("apply", False),
                    )
                except ValueError as exc:
                    return json_response(400, {"error": str(exc)})
            return json_response(200, self.calls.hold_json())
        raise AssertionError(f"unrouted control endpoint {route}")  # every route in `allowed` is handled above


def _default_image_id(ec2: Any) -> str:
    """An Amazon Linux x86_64 AMI from moto's built-in catalogue (which varies between moto releases)."""
    for pattern in ("al2023-ami-2*x86_64", "amzn2-ami-hvm-*x86_64-gp2"):
        images = sorted(ec2.describe_images(filters={"name": pattern}), key=lambda i: i.name or "")
        if images:
            return images[-1].id
    images = sorted(ec2.describe_images(), key=lambda i: i.id)
    return images[0].id if images else "ami-12c6146b"  # moto accepts any id unless AMI validation is on


__all__ = ["Sandbox", "SandboxInstance"]
