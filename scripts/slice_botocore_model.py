#!/usr/bin/env python3
"""Regenerate roleops/data/: slices of botocore data holding only what roleops' clients use.

Why: botocore parses whole files when a client is created. EC2's model has 830 operations and costs ~100 ms
per `roleops setup` (bench/); roleops calls six of them. endpoints.json describes every service in every
partition (1.2 MB, ~14 ms per command); roleops makes clients for three. A slice on the loader's search path
(botocore's documented data-path mechanism, like ~/.aws/models) is found first; everything else (endpoint rule
sets, partitions.json, paginators) still comes from botocore.

- models/: the EC2 API version is fixed (2016-11-15), so its slice stays a valid description of those
  operations; tests/unit/test_model_slice.py checks it against the installed botocore.
- endpoints/: endpoints.json changes with botocore releases, so source.json records the SHA-256 of the file it
  was cut from, and roleops.clients uses the slice only when the endpoints.json botocore would load is that
  very file; otherwise botocore's own file is used (correct, ~14 ms slower). Re-run this script after
  upgrading botocore to get the speed back.

    python scripts/slice_botocore_model.py
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

SLICES = {
    "ec2": (
        "DescribeInstances",
        "DescribeIamInstanceProfileAssociations",
        "AssociateIamInstanceProfile",
        "ReplaceIamInstanceProfileAssociation",
        "DisassociateIamInstanceProfile",
        "ModifyInstanceMetadataOptions",
        "DescribeLaunchTemplates",
        "DescribeLaunchTemplateVersions",
        "CreateLaunchTemplateVersion",
        "ModifyLaunchTemplate",
    ),
}
# The services roleops makes clients for (roleops.clients.Clients: iam, ec2, sts).
ENDPOINT_SERVICES = ("ec2", "iam", "sts")
DATA = Path(__file__).resolve().parents[1] / "roleops" / "data"


def _strip_docs(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_docs(v) for k, v in value.items() if k not in ("documentation", "documentationUrl")}
    if isinstance(value, list):
        return [_strip_docs(v) for v in value]
    return value


def shape_closure(model: dict[str, Any], operations: tuple[str, ...]) -> set[str]:
    todo: list[str] = []
    for name in operations:
        op = model["operations"][name]
        todo += [op[k]["shape"] for k in ("input", "output") if k in op]
        todo += [e["shape"] for e in op.get("errors", [])]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        shape = model["shapes"][name]
        todo += [m["shape"] for m in shape.get("members", {}).values()]
        todo += [shape[k]["shape"] for k in ("member", "key", "value") if k in shape]
    return seen


def slice_model(model: dict[str, Any], operations: tuple[str, ...]) -> dict[str, Any]:
    shapes = shape_closure(model, operations)
    return _strip_docs(
        {
            "version": model.get("version", "2.0"),
            "metadata": model["metadata"],
            "operations": {name: model["operations"][name] for name in operations},
            "shapes": {name: model["shapes"][name] for name in sorted(shapes)},
        }
    )


def slice_endpoints(endpoints: dict[str, Any], services: tuple[str, ...] = ENDPOINT_SERVICES) -> dict[str, Any]:
    """endpoints.json with every partition (regions, defaults, regex) kept whole and only `services` listed."""
    return {
        **endpoints,
        "partitions": [
            {**partition, "services": {k: v for k, v in partition["services"].items() if k in services}}
            for partition in endpoints["partitions"]
        ],
    }


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n"


def main() -> None:
    import botocore
    import botocore.session

    loader = botocore.session.get_session().get_component("data_loader")
    for service, operations in SLICES.items():
        version = loader.determine_latest_version(service, "service-2")
        model = loader.load_service_model(service, "service-2", version)
        target = DATA / "models" / service / version / "service-2.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_dump(slice_model(model, operations)))
        print(f"{target.relative_to(DATA.parents[1])}: {len(operations)} operations")

    source = Path(botocore.__file__).parent / "data" / "endpoints.json"
    raw = source.read_bytes()
    target = DATA / "endpoints" / "endpoints.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(_dump(slice_endpoints(json.loads(raw))))
    record = {"sha256": hashlib.sha256(raw).hexdigest(), "botocore": botocore.__version__}
    (DATA / "endpoints" / "source.json").write_text(json.dumps({**record, "services": ENDPOINT_SERVICES}) + "\n")
    print(f"{target.relative_to(DATA.parents[1])}: {', '.join(ENDPOINT_SERVICES)} (botocore {botocore.__version__})")


if __name__ == "__main__":
    main()
