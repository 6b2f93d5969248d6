"""Sandbox (product, offline): the `/_roleops/...` control endpoints, as one route table over the Sandbox's API.

Each route maps HTTP methods to a handler that returns the JSON payload; a handler refuses bad input by raising
ValueError (or RuntimeError for a limit), which becomes a 400 `{"error": ...}` here, in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .wire import Response, json_response, read_json_body

if TYPE_CHECKING:
    from .server import Sandbox

PREFIX = "/_roleops"
Handler = Callable[["Sandbox", dict], Any]


def _json_object(environ: dict, allowed: set[str], shape: str) -> dict[str, Any]:
    body = read_json_body(environ)
    if not isinstance(body, dict) or set(body) - allowed:
        raise ValueError(f"the body must be {shape}")
    return body


def _set_faults(sandbox: Sandbox, environ: dict) -> Any:
    changes = read_json_body(environ)
    if not isinstance(changes, dict):
        raise ValueError("the body must be a JSON object of fault settings")
    return sandbox.set_faults(**changes).to_json()


def _add_instance(sandbox: Sandbox, environ: dict) -> Any:
    from .server import InstanceOptions

    body = _json_object(
        environ, {"ssm_agent", "roleops", "tags"}, 'empty or {"ssm_agent": B, "roleops": B, "tags": {"KEY": "VALUE"}}'
    )
    return sandbox.add_instance(InstanceOptions.from_json(body)).to_json()


def _reset(sandbox: Sandbox, environ: dict) -> Any:
    body = _json_object(environ, {"seed"}, 'empty or {"seed": N}')
    sandbox.reset(seed=body.get("seed"))
    return sandbox.info()


def _hold(sandbox: Sandbox, environ: dict) -> Any:
    body = _json_object(
        environ, {"after_mutations", "timeout", "apply"}, '{"after_mutations": N|null, "timeout": S, "apply": B}'
    )
    return sandbox.hold(body.get("after_mutations"), timeout=body.get("timeout", 30.0), apply=body.get("apply", False))


ROUTES: dict[str, dict[str, Handler]] = {
    "/info": {"GET": lambda sb, _env: sb.info()},
    "/instances": {
        "POST": _add_instance,
        "GET": lambda sb, _env: {"instances": [i.to_json() for i in sb.instances]},
    },
    "/faults": {"GET": lambda sb, _env: sb.faults.to_json(), "POST": _set_faults},
    "/secrets": {"GET": lambda sb, _env: {"secrets": sorted(sb.issued_secrets())}},
    "/reset": {"POST": _reset},
    "/calls": {"GET": lambda sb, _env: sb.call_counts()},
    "/hold": {"GET": lambda sb, _env: sb.calls.hold_json(), "POST": _hold},
}


def is_control_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def handle(sandbox: Sandbox, environ: dict, path: str) -> Response:
    method = environ.get("REQUEST_METHOD", "GET").upper()
    route = path[len(PREFIX) :].rstrip("/") or "/"
    methods = ROUTES.get(route)
    if methods is None:
        return json_response(404, {"error": f"no such control endpoint: {path}", "endpoints": sorted(ROUTES)})
    handler = methods.get(method)
    if handler is None:
        return json_response(405, {"error": f"{method} not allowed on {path}; use {' or '.join(methods)}"})
    try:
        return json_response(200, handler(sandbox, environ))
    except (ValueError, RuntimeError) as exc:
        return json_response(400, {"error": str(exc)})
