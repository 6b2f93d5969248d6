"""cfn-lint over every template the tests produce (unit and e2e): its findings, every severity."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def lint(template: Mapping[str, Any] | str) -> list[str]:
    """cfn-lint's findings as "RULE message at path" lines; [] for a clean template."""
    from cfnlint.api import ManualArgs
    from cfnlint.api import lint as cfn_lint

    text = template if isinstance(template, str) else json.dumps(template)
    matches = cfn_lint(text, config=ManualArgs(regions=["us-east-1"]))
    return [f"{m.rule.id} {m.message} at {'/'.join(map(str, m.path))}" for m in matches]
