"""Policy documents (pure layer): build the walkthrough's documents and compare them structurally.

Nothing here calls AWS. "Is this statement already there?" is decided on normalised statements, so it never
depends on JSON formatting, key order, list order or the string-or-list forms IAM accepts.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from typing import Any

VERSION = "2012-10-17"
EC2_SERVICE = "ec2.amazonaws.com"
ASSUME_ACTION = "sts:AssumeRole"
ASSUME_SID = "RoleopsAssumeRoles"

Statement = dict[str, Any]
Document = dict[str, Any]


def ec2_trust_statement() -> Statement:
    """The walkthrough's trust: EC2 may assume the instance role."""
    return {"Effect": "Allow", "Principal": {"Service": EC2_SERVICE}, "Action": ASSUME_ACTION}


def role_trust_statement(role_arn: str) -> Statement:
    """The walkthrough's secondary-role trust: the instance role may assume this role."""
    return {"Effect": "Allow", "Principal": {"AWS": role_arn}, "Action": ASSUME_ACTION}


def trust_policy(*statements: Statement) -> Document:
    return {"Version": VERSION, "Statement": [copy.deepcopy(s) for s in statements]}


def assume_permission_policy(role_arns: Iterable[str]) -> Document:
    """The walkthrough's permission: sts:AssumeRole on exactly these role ARNs, nothing wider."""
    arns = sorted(set(role_arns))
    if not arns:
        raise ValueError("at least one role ARN is needed")
    return {
        "Version": VERSION,
        "Statement": [{"Sid": ASSUME_SID, "Effect": "Allow", "Action": [ASSUME_ACTION], "Resource": arns}],
    }


def parse_document(doc: str | Mapping[str, Any] | None) -> Document | None:
    """A policy document as a dict, from what IAM (or moto, storing it) hands back: a dict (boto3), JSON text, or
    URL-encoded JSON text. None for nothing; ValueError for text that is no JSON object either way."""
    if doc is None:
        return None
    if isinstance(doc, Mapping):
        return copy.deepcopy(dict(doc))
    from urllib.parse import unquote

    for text in dict.fromkeys((doc, unquote(doc))):
        try:
            parsed = json.loads(text)
        except ValueError:
            continue
        if isinstance(parsed, dict):
            return parsed
    raise ValueError("not a JSON policy document")


def statements(doc: Mapping[str, Any] | None) -> list[Statement]:
    """The Statement element as a list (IAM accepts a single object too)."""
    if not doc:
        return []
    stmt = doc.get("Statement", [])
    if isinstance(stmt, Mapping):
        return [dict(stmt)]
    return [dict(s) for s in stmt]


def _as_set(value: Any, *, fold_case: bool = False) -> frozenset[str]:
    if value is None:
        return frozenset()
    items = [value] if isinstance(value, str) else list(value)
    return frozenset(i.lower() if fold_case else i for i in items)


def normalise_statement(stmt: Mapping[str, Any]) -> dict[str, Any]:
    """A comparable form of a statement. Sid is a label, not semantics, so it is left out.

    Actions compare case-insensitively (IAM does); resources and principals exactly.
    """
    out: dict[str, Any] = {"Effect": stmt.get("Effect")}
    for key in ("Action", "NotAction"):
        if key in stmt:
            out[key] = _as_set(stmt[key], fold_case=True)
    for key in ("Resource", "NotResource"):
        if key in stmt:
            out[key] = _as_set(stmt[key])
    for key in ("Principal", "NotPrincipal"):
        if key in stmt:
            value = stmt[key]
            if isinstance(value, str):  # "Principal": "*"
                out[key] = value
            else:
                out[key] = {k: _as_set(v) for k, v in value.items()}
    if stmt.get("Condition"):
        out["Condition"] = json.dumps(stmt["Condition"], sort_keys=True)
    return out


def documents_equal(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Same statements (in any order, any form), ignoring Sids and formatting."""
    na = sorted(repr(sorted(normalise_statement(s).items())) for s in statements(a))
    nb = sorted(repr(sorted(normalise_statement(s).items())) for s in statements(b))
    return na == nb


def statement_covers(existing: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Does `existing` grant at least what `wanted` grants, with no extra condition?

    Used for trust statements: a statement listing several principals or actions still counts as holding
    ours. A conditional statement never counts (the condition could exclude us).
    """
    e, w = normalise_statement(existing), normalise_statement(wanted)
    if e.get("Effect") != w.get("Effect") or "Condition" in e and e.get("Condition") != w.get("Condition"):
        return False
    if any(k in e for k in ("NotAction", "NotResource", "NotPrincipal")):
        return False
    if not w.get("Action", frozenset()) <= e.get("Action", frozenset()) and "*" not in e.get("Action", ()):
        return False
    if "Resource" in w and not (w["Resource"] <= e.get("Resource", frozenset())):
        return False
    wp, ep = w.get("Principal"), e.get("Principal")
    if wp is None:
        return ep is None
    if isinstance(wp, str) or isinstance(ep, str):
        return wp == ep
    return all(values <= ep.get(kind, frozenset()) for kind, values in wp.items())


def has_statement(doc: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> bool:
    return any(statement_covers(s, wanted) for s in statements(doc))


def merge_statement(doc: Mapping[str, Any] | None, wanted: Statement) -> Document:
    """Add `wanted` unless already covered. Never removes or edits another statement; Version is kept."""
    base: Document = copy.deepcopy(dict(doc)) if doc else {"Version": VERSION, "Statement": []}
    if has_statement(base, wanted):
        return base
    base.setdefault("Version", VERSION)
    base["Statement"] = statements(base) + [copy.deepcopy(wanted)]
    return base


def principals(doc: Mapping[str, Any] | None, kind: str = "AWS") -> list[str]:
    """Every principal of one kind (AWS, Service, Federated) named by Allow statements."""
    found: list[str] = []
    for s in statements(doc):
        p = s.get("Principal")
        if s.get("Effect") != "Allow" or p is None:
            continue
        if isinstance(p, str):
            found.append(p)
            continue
        value = p.get(kind)
        if value is not None:
            found.extend([value] if isinstance(value, str) else value)
    return found


def _is_roleops_trust_shape(stmt: Mapping[str, Any], action: str) -> bool:
    """The shape of the trust statements roleops writes: an unconditional Allow of exactly `action` to principals.

    Only such statements are edited by teardown; a conditional statement, one with other actions or with
    Not* elements was written (or reshaped) by someone else, and stays whole even when it names our principal.
    """
    n = normalise_statement(stmt)
    return (
        n.get("Effect") == "Allow"
        and n.get("Action") == frozenset({action.lower()})
        and "Condition" not in n
        and not any(k in n for k in ("NotAction", "NotResource", "NotPrincipal", "Resource"))
        and isinstance(stmt.get("Principal"), Mapping)
    )


def remove_principal(
    doc: Mapping[str, Any] | None, kind: str, value: str, *, action: str = ASSUME_ACTION
) -> tuple[Document, bool]:
    """Take one principal (e.g. AWS=<instance role ARN>) out of the statements roleops writes; (document, removed).

    From a list it removes that one element and keeps the rest of the statement; a statement left with no
    principal at all goes. Every other statement, and every other principal, is kept as it was.
    """
    base: Document = copy.deepcopy(dict(doc)) if doc else {"Version": VERSION, "Statement": []}
    kept: list[Statement] = []
    removed = False
    for stmt in statements(base):
        if not _is_roleops_trust_shape(stmt, action):
            kept.append(stmt)
            continue
        principal = dict(stmt["Principal"])
        values = principal.get(kind)
        listed = [values] if isinstance(values, str) else list(values or [])
        if value not in listed:
            kept.append(stmt)
            continue
        removed = True
        rest = [v for v in listed if v != value]
        if rest:
            principal[kind] = rest  # a list stays a list, however short
        else:
            del principal[kind]
        if principal:
            kept.append({**stmt, "Principal": principal})
    base["Statement"] = kept
    return base, removed


def describe_principals(doc: Mapping[str, Any] | None) -> list[str]:
    """Every principal a document names, as KIND=VALUE (or "*"), in document order, each once."""
    found: list[str] = []
    for s in statements(doc):
        p = s.get("Principal", s.get("NotPrincipal"))
        if p is None:
            continue
        if isinstance(p, str):
            found.append(p)
            continue
        for kind, values in p.items():
            found.extend(f"{kind}={v}" for v in ([values] if isinstance(values, str) else values))
    return list(dict.fromkeys(found))
