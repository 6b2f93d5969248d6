#!/usr/bin/env python3
"""Example composition root: the walkthrough's setup as a short imperative script over roleops' public API.

    python scripts/bootstrap_account.py --instance-role ExampleRole --assumable-role ExampleAssumedRole \
        [--instance-id i-0123456789abcdef0] [--endpoint-url http://127.0.0.1:PORT] [--dry-run]

Each step below is one of `roleops setup`'s plan steps: read the resource, diff it (pure), apply the ops.
"""

from __future__ import annotations

import argparse
import sys

import boto3

from roleops import INLINE_POLICY_NAME, aws, policies
from roleops.clients import Clients
from roleops.converge import (
    Context,
    apply,
    diff_association,
    diff_inline_policy,
    diff_profile,
    diff_role,
    setup_request,
)
from roleops.errors import RoleOpsError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instance-role", required=True)
    parser.add_argument("--assumable-role", required=True)
    parser.add_argument("--instance-id")
    parser.add_argument("--endpoint-url")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()

    try:
        req = setup_request(
            instance_role=args.instance_role, assumable_roles=[args.assumable_role], instance_id=args.instance_id
        )
        # The composition root: one session, one client per service.
        ctx = Context(clients=Clients(boto3.Session(region_name=args.region), endpoint_url=args.endpoint_url))
        iam = ctx.clients.iam()

        # 1. The instance role, trusted by EC2 (the walkthrough's first document).
        instance_role = aws.get_role(iam, req.instance_role)
        account = aws.caller_identity(ctx.clients.sts())["Account"]
        role_arn = f"arn:aws:iam::{account}:role/{req.instance_role}"
        target_arn = f"arn:aws:iam::{account}:role/{args.assumable_role}"
        diffs = [diff_role(req.instance_role, instance_role, policies.ec2_trust_statement(), adopt=False)]
        # 2. Its instance profile, holding it.
        diffs.append(
            diff_profile(req.profile, req.instance_role, aws.get_instance_profile(iam, req.profile), adopt=False)
        )
        # 3. The secondary role, trusting the instance role (the walkthrough's third document).
        target = aws.get_role(iam, args.assumable_role)
        diffs.append(diff_role(args.assumable_role, target, policies.role_trust_statement(role_arn), adopt=False))
        # 4. sts:AssumeRole on exactly that role (the walkthrough's second document).
        current = aws.get_role_policy(iam, req.instance_role, INLINE_POLICY_NAME) if instance_role else None
        diffs.append(diff_inline_policy(req.instance_role, current, [target_arn]))
        # 5. The association with the instance.
        if args.instance_id:
            ec2 = ctx.clients.ec2()
            instance = aws.require_instance(ec2, args.instance_id)  # a wrong id stops here, before any change
            assoc = aws.get_association(ec2, args.instance_id)
            diffs.append(diff_association(args.instance_id, instance, assoc, req.profile, wait=False))

        report = apply(ctx, diffs, dry_run=args.dry_run)
    except RoleOpsError as err:
        print(f"bootstrap: {err.one_line()}", file=sys.stderr)
        return err.exit_code
    for change in report.changes:
        print(f"{change.resource:50} {change.action.value:10} {change.detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
