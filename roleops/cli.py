"""Command line (composition root): parses arguments, builds sessions and clients, maps errors to exit codes.

Only this module (and scripts/, examples/) creates sessions. Heavy imports (botocore, rich) happen inside
the command functions so that `roleops --help` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from roleops import __version__
from roleops.errors import EnvironmentProblem, RoleOpsError, UsageError

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE, EXIT_ENV, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
FORMATS_EXPORT = ("cloudformation",)  # roleops.export.FORMATS, repeated here so that --help imports nothing


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error becomes our one-line UsageError (exit 2) instead of a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message, "", f"see `{self.prog} --help`")


def arg(check: str, field: str) -> Callable[[str], Any]:
    """An argparse `type=` converter: roleops.validate's `check` for `field`, imported on first use (not for --help).

    A bad value raises ValidationError out of the parse itself: exit 2, one line naming the flag.
    """

    def convert(text: str) -> Any:
        from roleops import validate

        return getattr(validate, check)(text, field)

    convert.__name__ = field  # argparse names the converter in its own messages
    return convert


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    # Sub-parsers repeat the globals with SUPPRESS defaults, so they are accepted before or after the command
    # without the sub-parser's defaults overwriting what was given before it.
    def d(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    g = parser.add_argument_group("global options")
    g.add_argument("--profile", default=d(None), help="AWS profile to use (default: the standard chain)")
    g.add_argument(
        "--region",
        type=arg("validate_region", "--region"),
        default=d(None),
        help="AWS region (default: the profile's or AWS_DEFAULT_REGION)",
    )
    g.add_argument(
        "--endpoint-url",
        type=arg("validate_endpoint_url", "--endpoint-url"),
        default=d(None),
        help="send AWS calls here (AWS_ENDPOINT_URL works too)",
    )
    g.add_argument("--output", choices=("table", "json"), default=d("table"), help="table (default) or json")
    g.add_argument("--debug", action="store_true", default=d(False), help="log AWS calls and show tracebacks")


def build_parser() -> argparse.ArgumentParser:
    instance_role = arg("validate_role_name", "--instance-role")
    instance_id = arg("validate_instance_id", "--instance-id")
    role_arn = arg("validate_role_arn", "--assume")
    propagation_timeout = arg("validate_propagation_timeout", "--propagation-timeout")
    parser = _Parser(
        prog="roleops",
        description="Give an EC2 instance a role, assume a secondary role from it, and prove every link.",
    )
    parser.add_argument("--version", action="version", version=f"roleops {__version__}")
    _global_options(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        _global_options(p, suppress=True)
        return p

    def assumable_role_option(p: argparse.ArgumentParser, *, required: bool) -> None:
        p.add_argument(
            "--assumable-role",
            action="append",
            required=required,
            default=None if required else [],
            type=arg("validate_assumable_role", "--assumable-role"),
            metavar="NAME|ARN",
            dest="assumable_roles",
            help="a secondary role the instance role may assume: a name, or the ARN of a role in another account "
            "(repeatable; give all of them)",
        )

    def target_profile_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--target-profile",
            action="append",
            default=[],
            type=arg("validate_target_profile", "--target-profile"),
            metavar="[ACCOUNT_ID=]PROFILE",
            dest="target_profiles",
            help="credentials for roles in other accounts: PROFILE serves every account it reaches, "
            "ACCOUNT_ID=PROFILE that account (repeatable)",
        )

    def fleet_options(p: argparse.ArgumentParser, what: str, *, concurrency: bool = True) -> None:
        p.add_argument(
            "--instance-id",
            action="append",
            default=[],
            type=instance_id,
            metavar="ID",
            dest="instance_ids",
            help=f"{what} (repeatable)",
        )
        p.add_argument(
            "--instances-tagged",
            action="append",
            default=[],
            type=arg("validate_tag_filter", "--instances-tagged"),
            metavar="KEY=VALUE",
            help="every running or stopped instance with this tag (repeatable: ANDed)",
        )
        if not concurrency:  # smoke: SSM's own --max-concurrency governs the instances
            return
        p.add_argument(
            "--concurrency",
            type=arg("validate_concurrency", "--concurrency"),
            default=8,
            metavar="N",
            help="instances handled at once (1-32, default 8)",
        )

    p = command("setup", "converge the instance role, its profile, the assumable roles and the association")
    p.add_argument(
        "--instance-role", required=True, type=instance_role, metavar="NAME", help="the role EC2 gives the instance"
    )
    assumable_role_option(p, required=True)
    target_profile_option(p)
    fleet_options(p, "associate the profile with this instance")
    p.add_argument(
        "--launch-template",
        type=arg("validate_launch_template", "--launch-template"),
        metavar="NAME_OR_ID",
        help="a new default version of this launch template carries the profile (instances launched later)",
    )
    p.add_argument(
        "--require-imdsv2",
        action="store_true",
        help="set HttpTokens=required on the instances (and in the launch template)",
    )
    p.add_argument(
        "--max-session-duration",
        type=arg("validate_max_session_duration", "--max-session-duration"),
        metavar="SECONDS",
        help="MaxSessionDuration of the assumable roles",
    )
    p.add_argument("--adopt", action="store_true", help="add statements to existing roles roleops did not make")
    p.add_argument("--dry-run", action="store_true", help="print the plan; call no mutating API")
    p.add_argument("--wait", action="store_true", help="return once the association is associated")
    p.add_argument(
        "--propagation-timeout",
        type=propagation_timeout,
        metavar="SECONDS",
        help="how long to wait for IAM (default 60)",
    )
    p.set_defaults(func=cmd_setup)

    p = command("associate", "associate an instance profile with an instance (replacing another)")
    fleet_options(p, "the instance to associate")
    p.add_argument(
        "--instance-profile", required=True, type=arg("validate_profile_name", "--instance-profile"), metavar="NAME"
    )
    p.add_argument("--wait", action="store_true", help="return once the association is associated")
    p.add_argument("--dry-run", action="store_true", help="print the plan; call no mutating API")
    p.add_argument("--propagation-timeout", type=propagation_timeout, metavar="SECONDS")
    p.set_defaults(func=cmd_associate)

    p = command("teardown", "remove what setup made (only roleops:managed resources)")
    p.add_argument("--instance-role", required=True, type=arg("validate_role_name", "--instance-role"), metavar="NAME")
    assumable_role_option(p, required=False)
    target_profile_option(p)
    fleet_options(p, "disassociate the profile from this instance first")
    p.add_argument("--dry-run", action="store_true")
    p.set_defaults(func=cmd_teardown)

    def on_instance_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--assume",
            action="append",
            default=[],
            type=role_arn,
            metavar="ROLE_ARN",
            help="role to assume (repeatable)",
        )
        # No default here: each command's own (verify's, creds') applies when --session-name is not given.
        p.add_argument(
            "--session-name",
            type=arg("validate_session_name", "--session-name"),
            metavar="NAME",
            help="RoleSessionName",
        )
        p.add_argument(
            "--external-id",
            type=arg("validate_external_id", "--external-id"),
            metavar="ID",
            help="sts:ExternalId to pass to AssumeRole",
        )
        p.add_argument(
            "--duration",
            type=arg("validate_duration_seconds", "--duration"),
            metavar="SECONDS",
            help="AssumeRole DurationSeconds (900-43200)",
        )
        p.add_argument(
            "--imds-endpoint",
            type=arg("validate_endpoint_url", "--imds-endpoint"),
            metavar="URL",
            help="default: AWS_EC2_METADATA_SERVICE_ENDPOINT or EC2's",
        )
        p.add_argument("--no-imdsv1", action="store_true", help="never fall back to IMDSv1")

    p = command("verify", "on the instance: walk IMDS -> GetCallerIdentity -> AssumeRole -> GetCallerIdentity")
    on_instance_options(p)
    p.add_argument(
        "--expect-role",
        type=arg("validate_role_name", "--expect-role"),
        metavar="NAME",
        help="fail unless the instance role is NAME",
    )
    p.set_defaults(func=cmd_verify)

    p = command("creds", "print credentials of the instance role (or an assumed role); prints secrets")
    on_instance_options(p)
    p.add_argument(
        "--format",
        choices=("env", "env-no-export", "json", "process", "profile"),
        default="env",
        help="profile: the ~/.aws/config block (credential_source = Ec2InstanceMetadata) that assumes --assume "
        "by itself; no secret in it",
    )
    p.add_argument(
        "--profile-name",
        type=arg("validate_config_profile_name", "--profile-name"),
        metavar="NAME",
        help="with --format profile: its name (default: the role's)",
    )
    p.set_defaults(func=cmd_creds)

    p = command("doctor", "from an operator's machine: find the broken link and the command that mends it")
    p.add_argument("--instance-id", required=True, type=instance_id, metavar="ID")
    p.add_argument("--assume", action="append", default=[], type=role_arn, metavar="ROLE_ARN")
    p.add_argument("--containers", action="store_true", help="containers on the instance need the role (hop limit)")
    target_profile_option(p)
    p.set_defaults(func=cmd_doctor)

    p = command("smoke", "from an operator's machine: verify every instance's chain through SSM Run Command")
    fleet_options(p, "an instance to check", concurrency=False)
    p.add_argument("--assume", action="append", default=[], type=role_arn, metavar="ROLE_ARN")
    p.add_argument("--expect-role", type=arg("validate_role_name", "--expect-role"), metavar="NAME")
    p.add_argument("--session-name", type=arg("validate_session_name", "--session-name"), metavar="NAME")
    p.add_argument("--max-concurrency", type=arg("validate_rate", "--max-concurrency"), metavar="N|N%")
    p.add_argument("--max-errors", type=arg("validate_rate", "--max-errors"), metavar="N|N%")
    p.add_argument(
        "--timeout",
        type=arg("validate_smoke_timeout", "--timeout"),
        metavar="SECONDS",
        help="how long each instance may take (default 300)",
    )
    p.add_argument("--remote", choices=("auto", "roleops", "aws-cli"), default="auto")
    p.set_defaults(func=cmd_smoke)

    p = command("export", "print a CloudFormation template of what setup converges (for a stack or a StackSet)")
    p.add_argument("--instance-role", required=True, type=instance_role, metavar="NAME")
    assumable_role_option(p, required=True)
    p.add_argument("--require-imdsv2", action="store_true", help="noted in the template: stacks cannot set it")
    p.add_argument(
        "--max-session-duration",
        type=arg("validate_max_session_duration", "--max-session-duration"),
        metavar="SECONDS",
    )
    p.add_argument(
        "--target-account",
        type=arg("validate_account_id", "--target-account"),
        metavar="ID",
        help="the template of that account's assumable roles (trusting the instance role ARN, a parameter)",
    )
    p.add_argument("--format", required=True, choices=FORMATS_EXPORT)
    p.set_defaults(func=cmd_export)

    p = command("sandbox", "run the local sandbox (IAM, EC2, STS and per-instance IMDS) on 127.0.0.1")
    from roleops.sandbox.cli import add_arguments as sandbox_arguments  # argparse only: --help stays fast

    sandbox_arguments(p)
    p.set_defaults(func=cmd_sandbox)

    p = command("demo", "the whole walkthrough, offline, on a private sandbox")
    p.add_argument(
        "--cross-account",
        action="store_true",
        help="a second act: the secondary role in a second sandbox account",
    )
    p.set_defaults(func=cmd_demo)
    return parser


# --- composition root --------------------------------------------------------------------------------


def make_session(args: argparse.Namespace, profile: str | None = None, flag: str = "--profile / AWS_PROFILE") -> Any:
    """The botocore Session of a command, for --profile (or `profile`: a --target-profile) and --region.

    botocore's, not boto3's: boto3.Session is a thin wrapper whose clients are the same botocore calls, and roleops
    uses nothing else of boto3, and not importing it is measurably faster (README, Benchmarks).
    """
    import botocore.session
    from botocore.exceptions import ConfigParseError, ProfileNotFound

    try:
        session = botocore.session.Session(profile=profile if profile is not None else args.profile)
        if args.region is not None:
            session.set_config_variable("region", args.region)
        # A missing profile or an unreadable config file fails here, before any call (verify and creds make the
        # session before reading IMDS, so it is exit 2, not a failed step).
        session.get_scoped_config()
    except ProfileNotFound as err:
        raise UsageError(
            f"profile {err.kwargs.get('profile', args.profile)!r} not found",  # --profile or AWS_PROFILE
            "it is in neither ~/.aws/config nor ~/.aws/credentials (AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE)",
            f"check {flag}; nothing was changed",
        ) from err
    except ConfigParseError as err:
        raise UsageError(
            "cannot read the AWS config file",
            str(err),
            "fix it, or point AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE at a valid one; nothing was changed",
        ) from err
    return session


def make_clients(args: argparse.Namespace, session: Any = None) -> Any:
    from roleops.clients import Clients

    return Clients(session or make_session(args), endpoint_url=args.endpoint_url, region=args.region)


def target_access(args: argparse.Namespace) -> Any:
    """--target-profile's clients, made on first use (a profile is read only when a role of its account needs it)."""
    from roleops.accounts import TargetAccess

    def clients_of(profile: str) -> Any:
        return make_clients(args, make_session(args, profile, "--target-profile"))

    return TargetAccess(profiles=tuple(args.target_profiles), make_clients=clients_of)


def _renderer(args: argparse.Namespace) -> Any:
    from roleops.render import Renderer

    return Renderer(args.output)


def _context(args: argparse.Namespace, renderer: Any) -> Any:
    from roleops.converge import Context

    return Context(clients=make_clients(args), reporter=renderer)


# --- commands ---------------------------------------------------------------------------------------


def _given(args: argparse.Namespace, **names: str) -> dict[str, Any]:
    """keyword -> value for the options that were given: the library's own defaults apply to the rest."""
    return {kw: getattr(args, attr) for kw, attr in names.items() if getattr(args, attr) is not None}


def _plan_done(renderer: Any, report: Any, title: str) -> int:
    """Print the plan; exit 3 when any target instance failed (each named with AWS's reason on stderr)."""
    renderer.plan(report, title)
    if not report.failures:
        return EXIT_OK
    named = "; ".join(f"{f.instance_id}: {f.error}" for f in report.failures)
    _print_error(f"{len(report.failures)} instance(s) failed ({named}); the rest is done, re-run to converge")
    return EXIT_ENV


def cmd_setup(args: argparse.Namespace) -> int:
    from roleops.converge import run_setup, setup_request

    req = setup_request(
        instance_role=args.instance_role,
        assumable_roles=args.assumable_roles,
        instance_ids=args.instance_ids,
        instances_tagged=args.instances_tagged,
        concurrency=args.concurrency,
        launch_template=args.launch_template,
        require_imdsv2=args.require_imdsv2,
        max_session_duration=args.max_session_duration,
        adopt=args.adopt,
        wait=args.wait,
        **_given(args, propagation_timeout="propagation_timeout"),
    )
    renderer = _renderer(args)
    report = run_setup(_context(args, renderer), req, dry_run=args.dry_run, access=target_access(args))
    return _plan_done(renderer, report, "roleops setup")


def cmd_associate(args: argparse.Namespace) -> int:
    from roleops.converge import run_associate, targets

    renderer = _renderer(args)
    report = run_associate(
        _context(args, renderer),
        profile=args.instance_profile,
        where=targets(instance_ids=args.instance_ids, tags=args.instances_tagged, concurrency=args.concurrency),
        wait=args.wait,
        dry_run=args.dry_run,
        **_given(args, propagation_timeout="propagation_timeout"),
    )
    return _plan_done(renderer, report, "roleops associate")


def cmd_teardown(args: argparse.Namespace) -> int:
    from roleops.converge import run_teardown, teardown_request

    req = teardown_request(
        instance_role=args.instance_role,
        assumable_roles=args.assumable_roles,
        instance_ids=args.instance_ids,
        instances_tagged=args.instances_tagged,
        concurrency=args.concurrency,
    )
    renderer = _renderer(args)
    report = run_teardown(_context(args, renderer), req, dry_run=args.dry_run, access=target_access(args))
    return _plan_done(renderer, report, "roleops teardown")


def _imds(args: argparse.Namespace, session: Any) -> Any:
    from roleops.imds import ImdsClient

    # The session's profile also carries IMDS settings (metadata_service_timeout, ...), as botocore reads them.
    return ImdsClient(args.imds_endpoint, v1_fallback=False if args.no_imdsv1 else None, session=session)


def cmd_verify(args: argparse.Namespace) -> int:
    from roleops.verify import VerifyOptions, run_verify

    opts = VerifyOptions(
        assume=tuple(args.assume),
        external_id=args.external_id,
        duration=args.duration,
        expect_role=args.expect_role,
        endpoint_url=args.endpoint_url,
        **_given(args, session_name="session_name"),
    )
    renderer = _renderer(args)
    session = make_session(args)
    report = run_verify(opts, imds=_imds(args, session), session=session, on_step=renderer.identity)
    renderer.verify(report)
    return EXIT_OK if report.ok else EXIT_CHECK_FAILED


def cmd_creds(args: argparse.Namespace) -> int:
    if len(args.assume) > 1:
        raise UsageError("creds takes one --assume", "it prints one set of credentials", "give one role ARN")
    if args.profile_name is not None and args.format != "profile":
        raise UsageError("--profile-name goes with --format profile", "only that format has a name", "drop it")
    if args.format == "profile":
        return _creds_profile(args)
    from roleops.creds import format_credentials, get_credentials

    session = make_session(args)
    creds = get_credentials(
        imds=_imds(args, session),
        session=session,
        assume=args.assume[0] if args.assume else None,
        external_id=args.external_id,
        duration=args.duration,
        endpoint_url=args.endpoint_url,
        **_given(args, session_name="session_name"),
    )
    fmt = "json" if args.output == "json" and args.format == "env" else args.format
    sys.stdout.write(format_credentials(creds, fmt))
    sys.stdout.flush()
    return EXIT_OK


def _creds_profile(args: argparse.Namespace) -> int:
    if not args.assume:
        raise UsageError(
            "--format profile needs --assume ROLE_ARN", "the block names the role to assume", "add --assume ARN"
        )
    from roleops.creds import profile_for_instance

    session = make_session(args)  # its profile may carry IMDS settings, as for the other formats
    block = profile_for_instance(
        imds=_imds(args, session),
        assume=args.assume[0],
        profile_name=args.profile_name,
        session_name=args.session_name,
        external_id=args.external_id,
        duration=args.duration,
        region=args.region,
    )
    sys.stdout.write(block)
    sys.stdout.flush()
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    from roleops.doctor import run_doctor

    renderer = _renderer(args)
    report = run_doctor(
        make_clients(args),
        instance_id=args.instance_id,
        assume=tuple(args.assume),
        containers=args.containers,
        access=target_access(args),
    )
    renderer.doctor(report)
    return EXIT_OK if report.ok else EXIT_CHECK_FAILED


def cmd_smoke(args: argparse.Namespace) -> int:
    if not args.instance_ids and not args.instances_tagged:
        raise UsageError("no instance given", "smoke checks instances", "add --instance-id or --instances-tagged")
    from roleops.smoke import SmokeRequest, run_smoke

    req = SmokeRequest(
        instance_ids=tuple(args.instance_ids),
        tags=tuple(args.instances_tagged),
        assume=tuple(args.assume),
        expect_role=args.expect_role,
        remote=args.remote,
        **_given(
            args,
            session_name="session_name",
            max_concurrency="max_concurrency",
            max_errors="max_errors",
            timeout="timeout",
        ),
    )
    renderer = _renderer(args)
    report = run_smoke(make_clients(args), req, reporter=renderer)
    renderer.smoke(report)
    return EXIT_OK if report.ok else EXIT_CHECK_FAILED


def cmd_export(args: argparse.Namespace) -> int:
    from roleops import arns, aws, export

    req = export.export_request(
        instance_role=args.instance_role,
        assumable_roles=args.assumable_roles,
        max_session_duration=args.max_session_duration,
        require_imdsv2=args.require_imdsv2,
        target_account=args.target_account,
    )
    account = partition = None
    if req.target_account is not None or any(arns.parse_role_arn(r) for r in req.assumable_roles):
        # The instance role's account is the one export runs with (as for setup): one read call, made only when
        # a role ARN must be told apart from the home account's, or the StackSet's parameter needs its default.
        ident = aws.caller_identity(make_clients(args).sts())
        account, partition = ident["Account"], arns.partition_of(ident["Arn"])
    if req.target_account is not None:
        export.check_target_account(req, account)
        role = arns.role_arn(partition or "aws", account, req.instance_role) if account else None
        template = export.target_account_template(req, instance_role_arn=role)
    else:
        template = export.instance_account_template(req, account=account, partition=partition)
    sys.stdout.write(export.render(template))
    sys.stdout.flush()
    return EXIT_OK


def cmd_sandbox(args: argparse.Namespace) -> int:
    from roleops.sandbox.cli import run

    return run(args, stdout=sys.stdout, stderr=sys.stderr)


def cmd_demo(args: argparse.Namespace) -> int:
    from roleops.demo import run_demo

    return run_demo(output=args.output, stdout=sys.stdout, stderr=sys.stderr, cross_account=args.cross_account)


# --- main ---------------------------------------------------------------------------------------------


def _configure_debug() -> None:
    from roleops.redact import RedactingFilter, RedactingStream

    # Secrets roleops obtains are registered with roleops.redact by value (imds, clients, creds, verify); the
    # filter scrubs them, and secret-shaped values, from every log record. Tracebacks --debug prints bypass
    # logging, so stderr itself is redacted too.
    if not isinstance(sys.stderr, RedactingStream):
        sys.stderr = RedactingStream(sys.stderr)  # type: ignore[assignment]
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name("roleops-debug")
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    for name in ("botocore", "boto3", "roleops"):
        log = logging.getLogger(name)
        log.setLevel(logging.DEBUG)
        for old in [h for h in log.handlers if h.get_name() == "roleops-debug"]:
            log.removeHandler(old)  # main() run twice in one process (tests): one handler, on today's stderr
        log.addHandler(handler)


def _print_error(text: str) -> None:
    # Plain write: an error must reach the user even if rich itself is the problem.
    sys.stderr.write(f"roleops: error: {text}\n")
    sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
        debug = args.debug
        if debug:
            _configure_debug()
        func: Callable[[argparse.Namespace], int] = args.func
        return func(args)
    except SystemExit as exc:  # --help / --version
        return int(exc.code or 0)
    except RoleOpsError as err:
        if debug:
            import traceback

            traceback.print_exc()
        _print_error(err.one_line())
        return err.exit_code
    except KeyboardInterrupt:
        _print_error("interrupted; what was applied before the interruption stays, re-run to converge")
        return EXIT_INTERRUPTED
    except Exception as err:  # noqa: BLE001 - last resort: one line, no traceback unless --debug
        if debug:
            raise
        wrapped = EnvironmentProblem(f"unexpected {type(err).__name__}", _safe(str(err)), "re-run with --debug")
        _print_error(wrapped.one_line())
        return wrapped.exit_code


def _safe(text: str) -> str:
    from roleops.redact import redact

    return redact(text.splitlines()[0] if text else "")[:300]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
