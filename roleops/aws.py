"""Thin AWS layer: one AWS call per function; the only place that catches botocore errors.

"Not found" becomes None; every other error AWS answers becomes an AwsError (exit 3) carrying the operation,
AWS's code and message, and a hint for the common ones. botocore's own failures (no endpoint, no credentials, a
TLS failure, an answer that is not AWS's) become an EnvironmentProblem (exit 3); a missing profile or a config
file it cannot parse, a UsageError (exit 2). Retries for throttling are botocore's (see clients.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from roleops import MANAGED_TAG_KEY, MANAGED_TAG_VALUE, STACK_TAG_KEY
from roleops.errors import AwsError, EnvironmentProblem, InstanceNotFound, UsageError

# Error codes that mean "the thing is not there" for the reads below.
NOT_FOUND = frozenset({"NoSuchEntity", "InvalidInstanceID.NotFound", "InvalidAssociationID.NotFound"})

# Operation name -> IAM action, for AccessDenied hints ("grant iam:CreateRole").
_SERVICE_PREFIX = {"iam": "iam", "ec2": "ec2", "sts": "sts"}


def _hint(service: str, operation: str, code: str, message: str) -> str:
    if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
        return f"the caller needs {_SERVICE_PREFIX.get(service, service)}:{operation}; grant it and re-run"
    if code == "IncorrectState":
        if "existing association" in message:
            return "the instance already has a profile; `roleops associate` replaces it"
        return "the instance must be running (replace needs a running instance); start it and re-run"
    if code == "NoSuchEntity":
        return "the named resource does not exist; check the name, or run `roleops setup` to create it"
    if code == "EntityAlreadyExists":
        return "another run created it meanwhile; re-run to converge"
    if code == "DeleteConflict":
        return "the role still has policies or profiles roleops did not add; detach them and re-run teardown"
    if code in ("InvalidClientTokenId", "SignatureDoesNotMatch", "UnrecognizedClientException"):
        return "the credentials are not valid for this endpoint; check --profile / AWS_PROFILE"
    if code == "ExpiredToken":
        return "the session expired; refresh the credentials and re-run"
    if code in ("Throttling", "RequestLimitExceeded", "ThrottlingException"):
        return "AWS kept throttling after botocore's retries; wait and re-run, or raise AWS_MAX_ATTEMPTS"
    return ""


def call(client: Any, operation: str, *, not_found: Iterable[str] = (), **kwargs: Any) -> dict[str, Any] | None:
    """Make one call; translate botocore's errors into ours.

    `operation` is the boto3 method name (snake_case); error messages use the API name.
    """
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConfigParseError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        ParamValidationError,
        ProfileNotFound,
        ReadTimeoutError,
        SSLError,
    )
    from botocore.parsers import ResponseParserError  # not a BotoCoreError

    method: Callable[..., dict[str, Any]] = getattr(client, operation)
    api_name = client.meta.method_to_api_mapping.get(operation, operation)
    service = client.meta.service_model.service_name
    try:
        return method(**kwargs)
    except ClientError as err:
        error = err.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        message = str(error.get("Message", ""))
        if code in not_found:
            return None
        raise AwsError(f"{service}:{api_name}", code, message, _hint(service, api_name, code, message)) from err
    except NoCredentialsError as err:
        raise EnvironmentProblem(
            f"{service}:{api_name} failed",
            "no AWS credentials were found",
            "set AWS_PROFILE or pass --profile, or run on a host with a role",
        ) from err
    except NoRegionError as err:
        raise EnvironmentProblem(f"{service}:{api_name} failed", "no region is set", "pass --region") from err
    except (EndpointConnectionError, ConnectionClosedError, ConnectTimeoutError, ReadTimeoutError) as err:
        raise EnvironmentProblem(
            f"{service}:{api_name} failed",
            f"could not reach the endpoint ({type(err).__name__}, after botocore's retries)",
            "check --endpoint-url and the network",
        ) from err
    except SSLError as err:
        raise EnvironmentProblem(
            f"{service}:{api_name} failed",
            "the TLS handshake with the endpoint failed (SSLError)",
            "check the scheme of --endpoint-url (http or https) and AWS_CA_BUNDLE",
        ) from err
    except ResponseParserError as err:
        # What answered is not an AWS API (a web page, a proxy's error page, the wrong port): say so rather
        # than quote botocore's parser.
        raise EnvironmentProblem(
            f"{service}:{api_name} failed",
            "the endpoint's answer is not an AWS API response",
            "check --endpoint-url / AWS_ENDPOINT_URL and any proxy in between",
        ) from err
    except ConfigParseError as err:
        raise UsageError(
            "cannot read the AWS config or credentials file",
            _first_line(str(err)),
            "fix it, or point AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE at a valid one",
        ) from err
    except ProfileNotFound as err:
        raise UsageError(
            f"profile {err.kwargs.get('profile', '')!r} not found", "it is not in ~/.aws/config", "check --profile"
        ) from err
    except ParamValidationError as err:
        # botocore refused the request before sending it: bad input, nothing was sent.
        raise UsageError(f"{service}:{api_name} refused by botocore before sending", _first_line(str(err))) from err
    except BotoCoreError as err:
        raise EnvironmentProblem(
            f"{service}:{api_name} failed",
            f"{type(err).__name__}: {_first_line(str(err))}",
            "re-run with --debug for details",
        ) from err


def _first_line(text: str) -> str:
    from roleops.redact import redact

    return redact((text.strip().splitlines() or [""])[0])[:300]


# API actions that change account state, by the first word of the action name. STS is not here: AssumeRole
# mints a session but changes nothing in the account.
MUTATING_PREFIXES: dict[str, tuple[str, ...]] = {
    "iam": (
        "Add", "Attach", "Change", "Create", "Deactivate", "Delete", "Detach", "Enable", "Disable", "Put",
        "Remove", "Reset", "Resync", "Set", "Tag", "Untag", "Update", "Upload",
    ),
    "ec2": (
        "Allocate", "Assign", "Associate", "Attach", "Authorize", "Create", "Delete", "Deregister", "Detach",
        "Disable", "Disassociate", "Enable", "Import", "Modify", "Reboot", "Register", "Release", "Replace",
        "Reset", "Revoke", "Run", "Start", "Stop", "Terminate", "Unassign",
    ),
}  # fmt: skip


def is_mutating(service: str | None, action: str | None) -> bool:
    if not service or not action:
        return False
    return action.startswith(MUTATING_PREFIXES.get(service, ()))


class CallCounter:
    """Client-side count of the API calls botocore is about to send; the tests (tests/aws) and the bench use it.

    Register the counter itself as a `before-call.*.*` handler (on a session or client): it records
    (service, operation) once per API operation, before any retry. `on_send`, registered as a `before-send`
    handler, counts HTTP attempts instead, so retries show. The sandbox counts on the server side, separately.
    """

    def __init__(self) -> None:
        self.operations: list[tuple[str, str]] = []  # (service, operation name), in the order sent
        self.sends = 0  # HTTP attempts, when `on_send` is registered

    def __call__(self, *, model: Any, **_: Any) -> None:
        self.operations.append((model.service_model.service_name, model.name))

    def on_send(self, **_: Any) -> None:
        self.sends += 1

    @property
    def calls(self) -> list[str]:
        """Every operation name sent, e.g. "GetRole"."""
        return [operation for _, operation in self.operations]

    @property
    def mutating(self) -> list[str]:
        """The operation names among `calls` that change account state (see `is_mutating`)."""
        return [operation for service, operation in self.operations if is_mutating(service, operation)]

    def clear(self) -> None:
        self.operations.clear()
        self.sends = 0


def managed_tags() -> list[dict[str, str]]:
    return [{"Key": MANAGED_TAG_KEY, "Value": MANAGED_TAG_VALUE}]


def is_managed(resource: Mapping[str, Any] | None) -> bool:
    tags = (resource or {}).get("Tags") or []
    return any(t.get("Key") == MANAGED_TAG_KEY and t.get("Value") == MANAGED_TAG_VALUE for t in tags)


def stack_of(resource: Mapping[str, Any] | None) -> str | None:
    """The CloudFormation stack that made this resource from a `roleops export` template, if one did."""
    tags = (resource or {}).get("Tags") or []
    return next((str(t.get("Value")) for t in tags if t.get("Key") == STACK_TAG_KEY), None)


# --- STS -----------------------------------------------------------------------------------------


def caller_identity(sts: Any) -> dict[str, Any]:
    return call(sts, "get_caller_identity") or {}


# --- IAM roles -----------------------------------------------------------------------------------


def get_role(iam: Any, name: str) -> dict[str, Any] | None:
    resp = call(iam, "get_role", not_found=NOT_FOUND, RoleName=name)
    return resp["Role"] if resp else None


def create_role(
    iam: Any, name: str, trust: Mapping[str, Any], *, max_session_duration: int | None = None, description: str = ""
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "RoleName": name,
        "AssumeRolePolicyDocument": json.dumps(trust),
        "Tags": managed_tags(),
        "Description": description or "Created by roleops",
    }
    if max_session_duration:
        kwargs["MaxSessionDuration"] = max_session_duration
    return call(iam, "create_role", **kwargs)["Role"]  # type: ignore[index]


def update_trust(iam: Any, name: str, trust: Mapping[str, Any]) -> None:
    call(iam, "update_assume_role_policy", RoleName=name, PolicyDocument=json.dumps(trust))


def update_max_session_duration(iam: Any, name: str, seconds: int) -> None:
    call(iam, "update_role", RoleName=name, MaxSessionDuration=seconds)


def delete_role(iam: Any, name: str) -> None:
    # Already gone counts as deleted: botocore may retry a DeleteRole whose answer was lost.
    call(iam, "delete_role", not_found=NOT_FOUND, RoleName=name)


def get_role_policy(iam: Any, role: str, policy: str) -> dict[str, Any] | None:
    resp = call(iam, "get_role_policy", not_found=NOT_FOUND, RoleName=role, PolicyName=policy)
    if resp is None:
        return None
    from roleops.policies import parse_document

    return parse_document(resp["PolicyDocument"])


def put_role_policy(iam: Any, role: str, policy: str, document: Mapping[str, Any]) -> None:
    call(iam, "put_role_policy", RoleName=role, PolicyName=policy, PolicyDocument=json.dumps(document))


def delete_role_policy(iam: Any, role: str, policy: str) -> None:
    call(iam, "delete_role_policy", not_found=NOT_FOUND, RoleName=role, PolicyName=policy)


def list_role_policies(iam: Any, role: str) -> list[str]:
    resp = call(iam, "list_role_policies", not_found=NOT_FOUND, RoleName=role)
    return list(resp["PolicyNames"]) if resp else []


def list_attached_role_policies(iam: Any, role: str) -> list[str]:
    resp = call(iam, "list_attached_role_policies", not_found=NOT_FOUND, RoleName=role)
    return [p["PolicyArn"] for p in resp["AttachedPolicies"]] if resp else []


def get_managed_policy_document(iam: Any, policy_arn: str) -> dict[str, Any] | None:
    """The default version's document of a managed policy (two calls: which version, then the text)."""
    policy = call(iam, "get_policy", not_found=NOT_FOUND, PolicyArn=policy_arn)
    if policy is None:
        return None
    version = call(
        iam,
        "get_policy_version",
        not_found=NOT_FOUND,
        PolicyArn=policy_arn,
        VersionId=policy["Policy"]["DefaultVersionId"],
    )
    if version is None:
        return None
    from roleops.policies import parse_document

    return parse_document(version["PolicyVersion"]["Document"])


# --- IAM instance profiles -----------------------------------------------------------------------


def get_instance_profile(iam: Any, name: str) -> dict[str, Any] | None:
    resp = call(iam, "get_instance_profile", not_found=NOT_FOUND, InstanceProfileName=name)
    return resp["InstanceProfile"] if resp else None


def create_instance_profile(iam: Any, name: str) -> dict[str, Any]:
    return call(iam, "create_instance_profile", InstanceProfileName=name, Tags=managed_tags())["InstanceProfile"]  # type: ignore[index]


def add_role_to_instance_profile(iam: Any, profile: str, role: str) -> None:
    call(iam, "add_role_to_instance_profile", InstanceProfileName=profile, RoleName=role)


def remove_role_from_instance_profile(iam: Any, profile: str, role: str) -> None:
    call(iam, "remove_role_from_instance_profile", not_found=NOT_FOUND, InstanceProfileName=profile, RoleName=role)


def delete_instance_profile(iam: Any, name: str) -> None:
    call(iam, "delete_instance_profile", not_found=NOT_FOUND, InstanceProfileName=name)


# --- EC2 -----------------------------------------------------------------------------------------


def describe_instance(ec2: Any, instance_id: str) -> dict[str, Any] | None:
    resp = call(
        ec2, "describe_instances", not_found=NOT_FOUND | {"InvalidInstanceID.Malformed"}, InstanceIds=[instance_id]
    )
    if not resp:
        return None
    for reservation in resp.get("Reservations", []):
        for instance in reservation.get("Instances", []):
            if instance.get("InstanceId") == instance_id:
                # The owning account rides on the reservation; keep it with the instance (setup uses it as the
                # account id, which saves an STS client and call).
                return {"OwnerId": reservation.get("OwnerId"), **instance}
    return None


def require_instance(ec2: Any, instance_id: str) -> dict[str, Any]:
    """The instance, or InstanceNotFound (exit 2): a mistyped id or the wrong region must stop a run before any
    change (a teardown must not take "not found" for "nothing associated")."""
    instance = describe_instance(ec2, instance_id)
    if instance is None:
        raise InstanceNotFound(instance_id, ec2.meta.region_name)
    return instance


MAX_FILTER_VALUES = 200  # EC2 accepts at most this many values in one filter: more instances go in chunks
_PAGES = 1000  # bounded paging: 1000 pages of EC2 answers is far beyond any real account


def _paged(client: Any, operation: str, key: str, **kwargs: Any) -> list[dict[str, Any]]:
    """Every item under `key` of a paged read (NextToken: EC2's and SSM's), bounded."""
    items: list[dict[str, Any]] = []
    token: str | None = None
    for _ in range(_PAGES):
        resp = call(client, operation, **kwargs, **({"NextToken": token} if token else {})) or {}
        items.extend(resp.get(key, []))
        token = resp.get("NextToken")
        if not token:
            break
    return items


def _chunks(values: list[str]) -> list[list[str]]:
    return [values[i : i + MAX_FILTER_VALUES] for i in range(0, len(values), MAX_FILTER_VALUES)] or [[]]


def describe_instances(
    ec2: Any, *, instance_ids: list[str] | tuple[str, ...] = (), tags: tuple[tuple[str, str], ...] = ()
) -> list[dict[str, Any]]:
    """Instances by id (filter instance-id: a missing id is absent from the answer, not an error) or by tags (ANDed,
    running and stopped ones, as the contract says), paged; each with its reservation's OwnerId."""
    found: list[dict[str, Any]] = []
    base: list[dict[str, Any]] = [{"Name": f"tag:{k}", "Values": [v]} for k, v in tags]
    if tags:
        base.append({"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]})
    for chunk in _chunks(list(instance_ids)) if instance_ids else [None]:
        filters = base + ([{"Name": "instance-id", "Values": chunk}] if chunk is not None else [])
        for reservation in _paged(ec2, "describe_instances", "Reservations", Filters=filters, MaxResults=1000):
            found.extend({"OwnerId": reservation.get("OwnerId"), **i} for i in reservation.get("Instances", []))
    return found


def associations_of_instances(ec2: Any, instance_ids: list[str] | tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """instance id -> its live profile association, for many instances in as few paged reads as EC2 allows."""
    live: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(list(instance_ids)):
        if not chunk:
            continue
        filters = [{"Name": "instance-id", "Values": chunk}, {"Name": "state", "Values": list(_LIVE_STATES)}]
        for a in _paged(ec2, "describe_iam_instance_profile_associations", "IamInstanceProfileAssociations",
                        Filters=filters):  # fmt: skip
            if a.get("State") in _LIVE_STATES:
                live[a["InstanceId"]] = a
    return live


_LIVE_STATES = ("associating", "associated")


def get_association(ec2: Any, instance_id: str) -> dict[str, Any] | None:
    """The instance's live profile association (EC2 allows one), or None."""
    resp = call(
        ec2,
        "describe_iam_instance_profile_associations",
        Filters=[{"Name": "instance-id", "Values": [instance_id]}, {"Name": "state", "Values": list(_LIVE_STATES)}],
    )
    live = [a for a in (resp or {}).get("IamInstanceProfileAssociations", []) if a.get("State") in _LIVE_STATES]
    return live[0] if live else None


def associations_of_profile(ec2: Any, profile_arn: str) -> list[dict[str, Any]]:
    """Every live association of one profile, across the region (EC2 has no server-side filter for it)."""
    listed = _paged(
        ec2,
        "describe_iam_instance_profile_associations",
        "IamInstanceProfileAssociations",
        Filters=[{"Name": "state", "Values": list(_LIVE_STATES)}],
    )
    return [
        a
        for a in listed
        if a.get("IamInstanceProfile", {}).get("Arn") == profile_arn and a.get("State") in _LIVE_STATES
    ]


def associate_profile(ec2: Any, instance_id: str, profile_name: str) -> dict[str, Any]:
    return call(
        ec2, "associate_iam_instance_profile", InstanceId=instance_id, IamInstanceProfile={"Name": profile_name}
    )["IamInstanceProfileAssociation"]  # type: ignore[index]


def replace_profile(ec2: Any, association_id: str, profile_name: str) -> dict[str, Any]:
    return call(
        ec2,
        "replace_iam_instance_profile_association",
        AssociationId=association_id,
        IamInstanceProfile={"Name": profile_name},
    )["IamInstanceProfileAssociation"]  # type: ignore[index]


def disassociate_profile(ec2: Any, association_id: str) -> None:
    call(ec2, "disassociate_iam_instance_profile", not_found=NOT_FOUND, AssociationId=association_id)


def require_imdsv2(ec2: Any, instance_id: str) -> None:
    call(ec2, "modify_instance_metadata_options", InstanceId=instance_id, HttpTokens="required", HttpEndpoint="enabled")


# --- EC2 launch templates ------------------------------------------------------------------------------

_TEMPLATE_NOT_FOUND = frozenset(
    {
        "InvalidLaunchTemplateName.NotFoundException",
        "InvalidLaunchTemplateId.NotFound",
        "InvalidLaunchTemplateId.Malformed",
        "InvalidLaunchTemplateName.MalformedException",
    }
)


def get_launch_template(ec2: Any, name_or_id: str) -> dict[str, Any] | None:
    """A launch template by id (lt-...) or name, or None."""
    key = "LaunchTemplateIds" if name_or_id.startswith("lt-") else "LaunchTemplateNames"
    resp = call(ec2, "describe_launch_templates", not_found=_TEMPLATE_NOT_FOUND, **{key: [name_or_id]})
    found = (resp or {}).get("LaunchTemplates", [])
    return found[0] if found else None


def get_launch_template_version(ec2: Any, template_id: str, version: str | int) -> dict[str, Any] | None:
    resp = call(
        ec2,
        "describe_launch_template_versions",
        not_found=_TEMPLATE_NOT_FOUND,
        LaunchTemplateId=template_id,
        Versions=[str(version)],
    )
    found = (resp or {}).get("LaunchTemplateVersions", [])
    return found[0] if found else None


def create_launch_template_version(
    ec2: Any, template_id: str, source_version: str | int, data: Mapping[str, Any], description: str
) -> dict[str, Any]:
    """A new version from `source_version`'s data, the top-level blocks of `data` replacing the source's."""
    return call(
        ec2,
        "create_launch_template_version",
        LaunchTemplateId=template_id,
        SourceVersion=str(source_version),
        VersionDescription=description,
        LaunchTemplateData=dict(data),
    )["LaunchTemplateVersion"]  # type: ignore[index]


def set_default_launch_template_version(ec2: Any, template_id: str, version: str | int) -> None:
    call(ec2, "modify_launch_template", LaunchTemplateId=template_id, DefaultVersion=str(version))


# --- SSM Run Command (roleops smoke) -------------------------------------------------------------------

SSM_MAX_TARGETS = 50  # InstanceIds per SendCommand (AWS-FACTS.md)
SSM_MAX_RESULTS = 50  # MaxResults of ListCommandInvocations / DescribeInstanceInformation


def ssm_online_instances(ssm: Any, instance_ids: list[str]) -> dict[str, str]:
    """instance id -> PingStatus for the given instances SSM manages (absent: not managed), paged, 50 ids a read."""
    status: dict[str, str] = {}
    for i in range(0, len(instance_ids), SSM_MAX_TARGETS):
        chunk = instance_ids[i : i + SSM_MAX_TARGETS]
        filters = [{"Key": "InstanceIds", "Values": chunk}]
        for info in _paged(ssm, "describe_instance_information", "InstanceInformationList", Filters=filters,
                           MaxResults=SSM_MAX_RESULTS):  # fmt: skip
            status[info["InstanceId"]] = info.get("PingStatus", "")
    return status


def ssm_send_shell(
    ssm: Any,
    instance_ids: list[str],
    commands: list[str],
    *,
    execution_timeout: int,
    max_concurrency: str,
    max_errors: str,
    comment: str,
) -> str:
    """AWS-RunShellScript on at most 50 instances; the command id."""
    resp = call(
        ssm,
        "send_command",
        InstanceIds=instance_ids,
        DocumentName="AWS-RunShellScript",
        Comment=comment[:100],
        Parameters={"commands": commands, "executionTimeout": [str(execution_timeout)]},
        TimeoutSeconds=max(30, execution_timeout),
        MaxConcurrency=max_concurrency,
        MaxErrors=max_errors,
    )
    return resp["Command"]["CommandId"]  # type: ignore[index]


def ssm_invocations(ssm: Any, command_id: str) -> list[dict[str, Any]]:
    """Every invocation of a command, with its plugins' (truncated) output, paged."""
    return _paged(ssm, "list_command_invocations", "CommandInvocations", CommandId=command_id, Details=True,
                  MaxResults=SSM_MAX_RESULTS)  # fmt: skip


def ssm_invocation_output(ssm: Any, command_id: str, instance_id: str) -> dict[str, Any]:
    """One invocation's standard output (up to 24,000 characters) and error (8,000)."""
    return call(ssm, "get_command_invocation", CommandId=command_id, InstanceId=instance_id) or {}


def ssm_cancel(ssm: Any, command_id: str, instance_ids: list[str]) -> None:
    """Cancel a command on the instances that have not finished it (a smoke check that outlived --timeout)."""
    call(ssm, "cancel_command", CommandId=command_id, InstanceIds=instance_ids[:SSM_MAX_TARGETS])
