"""Sandbox (product, offline): a local AWS (moto) with per-instance IMDS, real AssumeRole, SSM Run Command, faults.

moto 5.2 alone serves one fixed `default-role` from its metadata endpoint whatever the instance's
association, never checks an IMDS token and has no `iam/info`; with authorization off every
AssumeRole succeeds; its SSM only records commands. This package wraps moto's server app (in this process, on
one 127.0.0.1 API port) and adds what the walkthrough needs: a metadata service per instance at the root of a
127.0.0.1 port of its own (as 169.254.169.254 is, so any SDK reaches it; also at `/imds/<instance-id>/...` on the
API port, where moto's own fake metadata paths are refused), STS AssumeRole decided by roleops.evaluator, SSM Run
Command that really runs AWS-RunShellScript on the instances behind a SigV4 check (ssm.py), launch template
versions that inherit their SourceVersion, `/_roleops/...` control endpoints, and IAM/EC2/IMDS faults.
`--accounts N` (1-5) serves several accounts, each with its own admin keys; cross-account AssumeRole needs the
caller account's identity policy and the target account's trust, as on AWS (moto checks neither).
`/_roleops/calls` counts API calls (every mutating one by name) and IMDS requests; `/_roleops/hold` holds back
one mutating call, so that a test can kill its caller at an exact step (see calls.py).
"""

from __future__ import annotations

from typing import Any

__all__ = ["Faults", "Sandbox", "SandboxAccount", "SandboxInstance", "run_forever"]

_HOMES = {
    "Faults": ".faults",
    "Sandbox": ".server",
    "SandboxAccount": ".server",
    "SandboxInstance": ".server",
    "run_forever": ".foreground",
}


def __getattr__(name: str) -> Any:
    # Loaded on first use (PEP 562): `roleops --help` imports the light sandbox.cli without moto or werkzeug.
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_HOMES[name], __name__), name)
