"""Demo (composition root for the offline story): the walkthrough end to end on a private sandbox.

It drives the very code paths used against AWS (converge, the IMDS client, verify) against the embedded
sandbox, and prints each step beside the aws CLI command the walkthrough used for it. No AWS account, no
network beyond 127.0.0.1, and no secret is printed: credential documents are shown with their secrets masked.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from roleops.accounts import TargetAccess

INSTANCE_ROLE = "ExampleRole"
ASSUMED_ROLE = "ExampleAssumedRole"
SESSION_NAME = "MySession"
TARGET_PROFILE = "account-b"  # how the second act names the second account's profile in its commands


@contextlib.contextmanager
def _instance_environment(metadata_endpoint: str) -> Iterator[None]:
    """Make this process look like code on the instance: no keys in the environment or in files, only IMDS.

    The default credential chain check of verify then resolves to the instance role, as on EC2.
    """
    names = (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_EC2_METADATA_DISABLED",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_CONFIG_FILE",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    )
    saved = {n: os.environ.get(n) for n in names}
    with tempfile.TemporaryDirectory(prefix="roleops-demo-") as empty:
        try:
            for n in names:
                os.environ.pop(n, None)
            os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.path.join(empty, "credentials")
            os.environ["AWS_CONFIG_FILE"] = os.path.join(empty, "config")
            os.environ["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = metadata_endpoint
            yield
        finally:
            for n, v in saved.items():
                if v is None:
                    os.environ.pop(n, None)
                else:
                    os.environ[n] = v


def _masked_document(doc: dict[str, Any]) -> dict[str, Any]:
    from roleops.results import mask_key

    shown = dict(doc)
    for key in ("SecretAccessKey", "Token"):
        if key in shown:
            shown[key] = "****(secret, not shown: `roleops creds` prints it)"
    if "AccessKeyId" in shown:
        shown["AccessKeyId"] = mask_key(shown["AccessKeyId"])
    return shown


def run_demo(
    *,
    output: str = "table",
    stdout: TextIO,
    stderr: TextIO,
    before_stop: Callable[[Any], None] | None = None,
    cross_account: bool = False,
) -> int:
    """Run the story; `before_stop(sandbox)` lets a test read the private sandbox (e.g. the secrets it issued).

    With `cross_account`, a second act runs the same story with the secondary role in a second sandbox account,
    converged there with that account's credentials (`--target-profile`), as a tools account deploying into prod.
    """
    import boto3

    from roleops.clients import Clients
    from roleops.converge import Context
    from roleops.render import Renderer
    from roleops.sandbox import Sandbox

    r = Renderer(output, stdout=stdout, stderr=stderr)
    story: list[dict[str, Any]] = []

    def chapter(title: str, aws_cli: str) -> None:
        story.append({"step": title, "aws": aws_cli})
        if not r.json_mode:
            r.out.rule(f"[bold]{len(story)}. {title}[/]", align="left")
            r.out.print(f"the walkthrough: [dim]{aws_cli}[/]", markup=True, soft_wrap=True)

    def clients_of(access_key_id: str, secret_access_key: str) -> Clients:
        keys = boto3.Session(
            aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key, region_name=sb.region
        )
        return Clients(keys, endpoint_url=sb.endpoint_url, region=sb.region)

    with Sandbox(port=0, instances=1, accounts=2 if cross_account else 1) as sb:
        instance = sb.instances[0]
        if not r.json_mode:
            others = "".join(f", account {a.account_id}" for a in sb.accounts[1:])
            r.out.print(
                f"sandbox: AWS at {sb.endpoint_url} (account {sb.account_id}{others}, {sb.region}); "
                f"instance {instance.instance_id}, metadata at {instance.metadata_endpoint}",
                markup=False,
                soft_wrap=True,
            )
        ctx = Context(clients=clients_of(sb.access_key_id, sb.secret_access_key), reporter=r)
        ok = _act(r, chapter, story, sb, ctx, instance, target_account=None)
        if cross_account:
            other = sb.accounts[1]
            if not r.json_mode:
                r.out.rule(f"[bold]Second act: the secondary role in account {other.account_id}[/]")
            access = TargetAccess(
                profiles=((other.account_id, TARGET_PROFILE),),
                make_clients=lambda _profile: clients_of(other.access_key_id, other.secret_access_key),
            )
            ok = _act(r, chapter, story, sb, ctx, instance, target_account=other.account_id, access=access) and ok
        if before_stop is not None:
            before_stop(sb)

    if r.json_mode:
        r.json({"ok": ok, "steps": story})
    else:
        r.out.rule()
        r.out.print(
            "[bold green]demo passed[/]: every link of the walkthrough holds"
            if ok
            else "[bold red]demo failed[/]: see the verify table above"
        )
    return 0 if ok else 1


def _act(
    r: Any,
    chapter: Callable[[str, str], None],
    story: list[dict[str, Any]],
    sb: Any,
    ctx: Any,
    instance: Any,
    *,
    target_account: str | None,
    access: TargetAccess | None = None,
) -> bool:
    """The walkthrough once: setup, what the instance sees, verify, teardown. `target_account`: the secondary
    role's account when it is not the instance role's (the aws commands of its side then run with its profile)."""
    import boto3

    from roleops.converge import run_setup, run_teardown, setup_request, teardown_request
    from roleops.imds import ImdsClient
    from roleops.verify import VerifyOptions, run_verify

    account = target_account or sb.account_id
    target_arn = f"arn:aws:iam::{account}:role/{ASSUMED_ROLE}"
    assumable = target_arn if target_account else ASSUMED_ROLE
    there = f" --profile {TARGET_PROFILE}" if target_account else ""
    flags = f" --target-profile {account}={TARGET_PROFILE}" if target_account else ""

    chapter(
        "Give the instance a role, trust EC2, let it assume the secondary role"
        + (f" in account {account}" if target_account else ""),
        f"aws iam create-role --role-name {INSTANCE_ROLE} --assume-role-policy-document file://ec2-trust.json; "
        f"aws iam create-instance-profile ...; aws iam put-role-policy ...; "
        f"aws iam create-role --role-name {ASSUMED_ROLE} ...{there}; "
        f"aws ec2 associate-iam-instance-profile --instance-id {instance.instance_id} "
        f'--iam-instance-profile Name="{INSTANCE_ROLE}"',
    )
    req = setup_request(
        instance_role=INSTANCE_ROLE,
        assumable_roles=[assumable],
        instance_id=instance.instance_id,
        require_imdsv2=True,
        wait=True,
    )
    setup_report = run_setup(ctx, req, access=access)
    story[-1]["roleops"] = f"roleops setup --instance-role {INSTANCE_ROLE} --assumable-role {assumable}{flags} " + (
        f"--instance-id {instance.instance_id} --require-imdsv2 --wait"
    )
    story[-1]["changes"] = [c.to_json() for c in setup_report.changes]
    if not r.json_mode:
        r.plan(setup_report, "roleops setup")

    imds = ImdsClient(instance.metadata_endpoint)
    if target_account is None:  # what the instance sees does not depend on where the secondary role lives
        chapter(
            "On the instance: which role does the metadata service list?",
            "curl http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        )
        roles = imds.role_names()
        story[-1]["result"] = roles
        if not r.json_mode:
            r.out.print("\n".join(roles) or "(none)", markup=False)

        chapter(
            "On the instance: the role's keys",
            f"curl http://169.254.169.254/latest/meta-data/iam/security-credentials/{INSTANCE_ROLE}",
        )
        doc = _masked_document(imds.credentials(INSTANCE_ROLE) or {})
        story[-1]["result"] = doc
        if not r.json_mode:
            import json

            r.out.print(json.dumps(doc, indent=2, ensure_ascii=False), markup=False)

    chapter(
        "Who am I, then assume the secondary role and ask again" + (f" (account {account})" if target_account else ""),
        f"aws sts get-caller-identity; aws sts assume-role --role-arn {target_arn} "
        f"--role-session-name {SESSION_NAME}; aws sts get-caller-identity",
    )
    opts = VerifyOptions(
        assume=(target_arn,), session_name=SESSION_NAME, expect_role=INSTANCE_ROLE, endpoint_url=sb.endpoint_url
    )
    with _instance_environment(instance.metadata_endpoint):
        # Made inside the instance environment: the default-chain check reads it as an instance would.
        report = run_verify(opts, imds=imds, session=boto3.Session(), on_step=r.identity)
    story[-1]["verify"] = report.to_json()
    if not r.json_mode:
        r.verify(report)

    chapter(
        "Clean up what roleops made" + (" in both accounts" if target_account else ""),
        f"aws ec2 disassociate-iam-instance-profile ...; aws iam delete-role --role-name {ASSUMED_ROLE} ...{there}",
    )
    td = run_teardown(
        ctx,
        teardown_request(instance_role=INSTANCE_ROLE, assumable_roles=[assumable], instance_id=instance.instance_id),
        access=access,
    )
    story[-1]["changes"] = [c.to_json() for c in td.changes]
    if not r.json_mode:
        r.plan(td, "roleops teardown")
    return report.ok
