#!/usr/bin/env python3
"""Regenerate roleops/data/: slices of botocore service models holding only the operations roleops calls.

Why: botocore parses a service's whole model when a client is created. EC2's has 830 operations and costs
~100 ms per `roleops setup` (bench/); roleops calls six of them. A slice on the loader's search path (botocore's
documented data-path mechanism, like ~/.aws/models) is found first; everything else (endpoint rule sets,
paginators) still comes from botocore. The API version is fixed (2016-11-15), so a slice stays a valid
description of those operations; tests/unit/test_model_slice.py checks it against the installed botocore.

    python scripts/slice_botocore_model.py
"""

from __future__ import annotations

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
    ),
}
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


def main() -> None:
    import botocore.session

    loader = botocore.session.get_session().get_component("data_loader")
    for service, operations in SLICES.items():
        version = loader.determine_latest_version(service, "service-2")
        model = loader.load_service_model(service, "service-2", version)
        target = DATA / service / version / "service-2.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(slice_model(model, operations), sort_keys=True, separators=(",", ":")) + "\n")
        print(f"{target.relative_to(DATA.parents[1])}: {len(operations)} operations")


if __name__ == "__main__":
    main()
