"""Sandbox (product, offline): the AWS API port — what the sandbox decides or mends before and after moto.

Like moto's own responses layer, a refusal anywhere below is raised as an `ApiError` and turned into the
service's error document in one place (`ApiInterceptor.handle`), in EC2's, the query protocol's or the JSON
protocol's shape. SSM Run Command is the sandbox's own (ssm.py), behind a SigV4 check: it runs commands on
this host. What the sandbox reads or records about IAM and EC2 is read in the request's account, found as moto
finds it (see `ApiInterceptor._account_of`).
"""

from __future__ import annotations

import functools
import os
import random
import time
from typing import Any

from werkzeug.test import run_wsgi_app

from roleops import arns

from .calls import CallLedger
from .ssm import ACTIONS as SSM_ACTIONS
from .ssm import RunCommand
from .state import World, now_utc
from .sts import check_assume_role
from .wire import (
    ApiError,
    ApiRequest,
    Response,
    SigningKey,
    aws_json,
    error_response,
    read_api_request,
    verify_sigv4,
)

THROTTLED_SERVICES = ("iam", "ec2", "sts")
_PROFILE_ACTIONS = ("AssociateIamInstanceProfile", "ReplaceIamInstanceProfileAssociation", "RunInstances")
_METADATA_OPTION_PARAMS = {
    "HttpTokens": "http_tokens",
    "HttpPutResponseHopLimit": "http_put_response_hop_limit",
    "HttpEndpoint": "http_endpoint",
    "HttpProtocolIpv6": "http_protocol_ipv6",
    "InstanceMetadataTags": "instance_metadata_tags",
}
SSM_TARGET_PREFIX = "AmazonSSM."
# CloudFormation calls that change nothing (the stack waits of SDKs poll DescribeStacks).
_READ_PREFIXES = ("Describe", "List", "Get", "Validate", "Estimate", "Detect")
TEMPLATE_DATA = "LaunchTemplateData"


class ApiInterceptor:
    """Every API request: faults (throttling, the hold), AWS's decisions moto lacks, then moto (or ssm.py)."""

    def __init__(self, world: World, calls: CallLedger, moto_app: Any, ssm: RunCommand, *, seed: int = 0) -> None:
        self.world = world
        self.calls = calls
        self._moto_app = moto_app
        self._ssm = ssm
        self._throttle_rng = random.Random(seed)

    def reset(self, seed: int) -> None:
        """The throttling dice restart (a fresh account)."""
        self._throttle_rng = random.Random(seed)

    def handle(self, environ: dict) -> Response:
        request = read_api_request(environ)
        try:
            return self._handle(request)
        except ApiError as err:
            return error_response(err, request)

    # --- faults -----------------------------------------------------------------------------------------

    def _handle(self, request: ApiRequest) -> Response:
        self._throttle(request)
        held = self.calls.count(request.service, request.action)
        if held is None:
            return self._dispatch(request)
        self.calls.wait(held)  # outside the world lock: the rest of the sandbox keeps serving
        if held.apply and self.calls.still_current(held):
            self._dispatch(request)
        message = "the sandbox held this request (hold fault)" + ("" if held.apply else "; it was not applied")
        code = "Unavailable" if request.service == "ec2" else "ServiceUnavailable"
        raise ApiError(code, message, status=503, sender=False)

    def _throttle(self, request: ApiRequest) -> None:
        fraction = self.world.faults.throttle_fraction
        if fraction <= 0 or request.service not in THROTTLED_SERVICES:
            return
        with self.world.lock:  # one seeded stream, drawn in arrival order
            if self._throttle_rng.random() >= fraction:
                return
        self.calls.count_throttled()
        if request.service == "ec2":
            raise ApiError("RequestLimitExceeded", "Request limit exceeded.", status=503)
        raise ApiError("Throttling", "Rate exceeded")

    # --- decisions ----------------------------------------------------------------------------------------

    def _dispatch(self, request: ApiRequest) -> Response:
        service, action = request.service, request.action
        world = self.world
        target = request.target or ""
        if target.startswith(SSM_TARGET_PREFIX) and action in SSM_ACTIONS:
            return self._run_command(request, action)
        with world.lock:
            if service == "sts" and action == "AssumeRole":
                check_assume_role(world, request)
                response = self._forward(request)
                world.harvest_secrets()
                return response
            if service == "ec2" and action in _PROFILE_ACTIONS:
                return self._associate(request)
            if service == "ec2" and action == "ModifyInstanceMetadataOptions":
                self._complete_metadata_options(request)
                return self._forward(request)
            if service == "ec2" and action == "CreateLaunchTemplateVersion":
                self._inherit_source_version(request)
            if service == "iam" and action == "RemoveRoleFromInstanceProfile":
                self._check_role_in_profile(request, self._account_of(request))
            response = self._forward(request)
            if response.status == 200 and service == "iam":
                self._after_iam(request)
            elif response.status == 200 and service == "cloudformation" and not action.startswith(_READ_PREFIXES):
                self._after_cloudformation()  # only after calls that can make IAM entities, not on every poll
            return response

    def _run_command(self, request: ApiRequest, action: str) -> Response:
        """SSM Run Command, answered by the sandbox (not moto, which only records). It runs commands on this host,
        so nothing is read or started before the SigV4 signature proves keys the sandbox issued signed it."""
        verify_sigv4(request, "ssm", self._signing_key)
        return aws_json(self._ssm.handle(action, request.json_body()))

    def _signing_key(self, access_key_id: str) -> SigningKey | None:
        with self.world.lock:
            return self.world.signing_key(access_key_id)

    def _account_of(self, request: ApiRequest) -> str:
        """The account moto serves this request in, decided as moto decides it: its MOTO_ACCOUNT_ID override,
        then the `x-moto-account-id` header, then the account holding the signing key, else the default one."""
        override = os.environ.get("MOTO_ACCOUNT_ID") or request.header("x-moto-account-id")
        if override:
            return override
        found = self.world.account_of_key(request.access_key_id) if request.access_key_id else None
        return found or self.world.account_id

    def _forward(self, request: ApiRequest) -> Response:
        try:
            app_iter, status, headers = run_wsgi_app(self._moto_app, request.environ, buffered=True)
        except Exception as exc:
            if request.target is None and not request.action:
                raise  # a REST protocol's call: the server's catch-all answers it
            # moto crashes on input it does not validate (e.g. a CloudFormation role without its
            # AssumeRolePolicyDocument), input AWS refuses or rolls back. Answer in the protocol's shape, so that an
            # SDK reads the error instead of failing to parse the body, and as a refusal (400), so that it does not
            # retry into what moto may have half applied.
            raise ApiError(
                "ValidationError",
                f"the sandbox's moto could not serve {request.action} ({type(exc).__name__}: {exc}); "
                "it may be half applied",
            ) from exc
        try:
            body = b"".join(app_iter)
        finally:
            if hasattr(app_iter, "close"):
                app_iter.close()
        return Response(int(status.split()[0]), body, tuple(headers.to_wsgi_list()))

    def _check_role_in_profile(self, request: ApiRequest, account: str) -> None:
        """IAM answers NoSuchEntity for a role the profile does not hold; moto crashes on list.remove."""
        profile_name, role_name = request.params.get("InstanceProfileName", ""), request.params.get("RoleName", "")
        profile = self.world.profile_by_name(profile_name, account)
        if profile is None or any(r.name == role_name for r in profile.roles):
            return  # moto answers a missing profile itself
        raise ApiError(
            "NoSuchEntity",
            f"The role with name {role_name} cannot be found in instance profile {profile_name}.",
            status=404,
        )

    def _after_iam(self, request: ApiRequest) -> None:
        world, params = self.world, request.params
        if request.action in ("CreateRole", "UpdateAssumeRolePolicy"):
            # The role of the request's account: a role of the same name elsewhere is another role.
            role = world.role_by_name(params.get("RoleName", ""), self._account_of(request))
            if role is not None:
                world.record_trust(role)
        elif request.action == "CreateInstanceProfile":
            key = _profile_key(self._account_of(request), params.get("InstanceProfileName", ""))
            world.profile_created[key] = time.monotonic()
        elif request.action == "CreateAccessKey":
            world.harvest_secrets()

    def _after_cloudformation(self) -> None:
        """CloudFormation (stacks, StackSet instances in any account) makes IAM entities inside moto, past IAM's
        API and _after_iam: mend what moto stores unlike IAM, and let STS's trust propagation see the new trusts."""
        self.world.mend_inline_policies()
        self.world.record_unseen_trusts()

    def _associate(self, request: ApiRequest) -> Response:
        """EC2 calls that name an instance profile: IAM's propagation delay, then moto."""
        world, params = self.world, request.params
        account = self._account_of(request)
        name, by_arn = params.get("IamInstanceProfile.Name"), False
        if not name and params.get("IamInstanceProfile.Arn"):
            name, by_arn = arns.name_of(params["IamInstanceProfile.Arn"]), True
        created = world.profile_created.get(_profile_key(account, name or ""))
        if created is not None and time.monotonic() - created < world.faults.profile_propagation_delay:
            value = params["IamInstanceProfile.Arn"] if by_arn else name
            field, what = ("arn", "ARN") if by_arn else ("name", "name")
            raise ApiError(
                "InvalidParameterValue",
                f"Value ({value}) for parameter iamInstanceProfile.{field} is invalid. "
                f"Invalid IAM Instance Profile {what}",
            )
        instance_id = params.get("InstanceId")
        replaced = None
        if request.action == "ReplaceIamInstanceProfileAssociation":
            for association in world.ec2(account).iam_instance_profile_associations.values():
                if association.association_id == params.get("AssociationId"):
                    instance_id, replaced = association.instance_id, association
        response = self._forward(request)
        if response.status == 200 and replaced is not None:
            response = self._new_association_id(replaced, response)
        if response.status == 200 and instance_id and request.action != "RunInstances":
            world.associated_at[instance_id] = time.monotonic()
            world.associated_wall[instance_id] = now_utc()
        return response

    @staticmethod
    def _new_association_id(association: Any, response: Response) -> Response:
        """EC2's Replace makes a new association with a new id (moto keeps the old one): a retried Replace
        with the old id then fails, as it does on AWS."""
        from moto.ec2.utils import random_iam_instance_profile_association_id

        old, new = association.association_id, random_iam_instance_profile_association_id()
        association.association_id = new
        return Response(response.status, response.body.replace(old.encode(), new.encode()), response.headers)

    def _inherit_source_version(self, request: ApiRequest) -> None:
        """EC2 makes a version with SourceVersion from the source's launch parameters, those sent overriding the
        corresponding ones; moto ignores SourceVersion (the new version holds only what was sent). Sending the
        source's other top-level parameters along gives EC2's behaviour. A sent block (MetadataOptions,
        IamInstanceProfile, ...) replaces the source's whole block: "corresponding launch parameters" are the
        top-level ones, as the API documents them."""
        params = request.params
        source = params.get("SourceVersion")
        if not source or not request.form:
            return
        from moto.ec2.exceptions import InvalidLaunchTemplateVersionNotFound

        ec2 = self.world.ec2(self._account_of(request))
        template_id = params.get("LaunchTemplateId") or ec2.launch_template_name_to_ids.get(
            params.get("LaunchTemplateName", "")
        )
        template = ec2.launch_templates.get(template_id or "")
        if template is None:
            return  # moto answers the unknown template itself
        numbered = source.isdigit() and int(source) >= 1
        if not numbered and source.lower() not in ("$latest", "$default"):
            raise ApiError("InvalidLaunchTemplateId.VersionNotFound", f"The version {source} is not valid.")
        try:
            version = template.get_version(source)
        except InvalidLaunchTemplateVersionNotFound as err:
            raise ApiError(err.code, err.message) from err
        sent = {key.split(".")[1] for key in params if key.startswith(TEMPLATE_DATA + ".")}
        inherited: dict[str, str] = {}
        for member, value in version.data.items():
            flat = _template_params(member, value)
            if flat and not {key.split(".")[1] for key in flat} & sent:
                inherited.update(flat)
        if inherited:
            request.replace_params({**params, **inherited})

    def _complete_metadata_options(self, request: ApiRequest) -> None:
        # moto replaces ALL metadata options with what the call names (the rest become None);
        # EC2 changes only the named ones. Filling in the current values gives EC2's behaviour.
        if not request.form:
            return
        try:
            instance = self.world.ec2(self._account_of(request)).get_instance(request.params.get("InstanceId", ""))
        except Exception:  # noqa: BLE001 - moto answers the unknown instance itself
            return
        params = dict(request.params)
        current = instance.metadata_options
        for param, attribute in _METADATA_OPTION_PARAMS.items():
            if param not in params and getattr(current, attribute, None) is not None:
                params[param] = str(getattr(current, attribute))
        request.replace_params(params)


def _profile_key(account: str, name: str) -> tuple[str, str]:
    # Instance profile names are case-insensitive and unique per account, not across accounts.
    return account, name.lower()


@functools.lru_cache(maxsize=1)
def _create_version_model() -> Any:
    """botocore's CreateLaunchTemplateVersion model (the full EC2 model, loaded once and only when needed)."""
    import botocore.session

    return botocore.session.get_session().get_service_model("ec2").operation_model("CreateLaunchTemplateVersion")


def _template_params(member: str, value: Any) -> dict[str, str]:
    """One top-level launch parameter of a version (moto keeps them as the model's members) as the EC2 query
    parameters a client sends for it, written by botocore's own EC2 serializer; {} for what it cannot write."""
    from botocore.serialize import EC2Serializer

    try:
        body = EC2Serializer().serialize_to_request({TEMPLATE_DATA: {member: _plain(value)}}, _create_version_model())
    except (KeyError, TypeError, ValueError):
        return {}  # not a member of the model (or not of its type): nothing EC2 would carry over either
    return {k: str(v) for k, v in body["body"].items() if k.startswith(TEMPLATE_DATA + ".")}


def _plain(value: Any) -> Any:
    """moto's stored values as the serializer takes them (moto wraps UserData in a Base64EncodedString)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
