"""E2E: the sandbox's SSM Run Command really runs AWS-RunShellScript on its instances, over real HTTP with boto3."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError
from conftest import (
    ACCOUNT,
    REPO,
    assumed_admin_env,
    http,
    launch_instance,
    run_shell,
    ssm_invocations,
    ssm_wait,
    start_sandbox_process,
    stop_process,
)

IMDS_INSTANCE_ID = (
    'E="${AWS_EC2_METADATA_SERVICE_ENDPOINT%/}"; '
    'T=$(curl -s -X PUT "$E/latest/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 60"); '
    'curl -s -H "X-aws-ec2-metadata-token: $T" "$E/latest/meta-data/instance-id"'
)
INSTANCE_ENV = {
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "AWS_ENDPOINT_URL",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "HOME",
    "PATH",
    "LANG",
}
SHELL_OWN = {"PWD", "OLDPWD", "SHLVL", "_"}  # what /bin/sh sets in its own environment


def error_code(err: pytest.ExceptionInfo[ClientError]) -> str:
    return err.value.response["Error"]["Code"]


def by_instance(invocations: list[dict]) -> dict[str, dict]:
    return {i["InstanceId"]: i for i in invocations}


def outputs(ssm, command_id: str, instance_ids: list[str], record) -> dict[str, dict]:
    """GetCommandInvocation for each instance, every output recorded for the leak check."""
    answers = {}
    for instance_id in instance_ids:
        answer = ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
        record(f"ssm {command_id} {instance_id} stdout", answer["StandardOutputContent"])
        record(f"ssm {command_id} {instance_id} stderr", answer["StandardErrorContent"])
        answers[instance_id] = answer
    return answers


# --- running ------------------------------------------------------------------------------------------------


def test_send_by_instance_ids_runs_on_each_instance_with_its_own_metadata_and_nothing_else(sb, record):
    ids = [sb.instance_id, sb.new_instance()["instance_id"], sb.new_instance()["instance_id"]]
    ssm = sb.client("ssm")
    command_id = run_shell(ssm, [IMDS_INSTANCE_ID, "echo", "env | cut -d= -f1 | sort"], instance_ids=ids)

    invocations = ssm_wait(ssm, command_id, page_size=1)  # paged one by one: three pages
    assert sorted(i["InstanceId"] for i in invocations) == sorted(ids)
    assert {(i["Status"], i["StatusDetails"]) for i in invocations} == {("Success", "Success")}
    for instance_id, answer in outputs(ssm, command_id, ids, record).items():
        first, _, env = answer["StandardOutputContent"].partition("\n")
        assert first == instance_id  # its own metadata service, over IMDSv2
        names = set(env.split())
        assert names - SHELL_OWN == INSTANCE_ENV  # no keys, nothing of the sandbox's environment
        assert answer["ResponseCode"] == 0 and answer["PluginName"] == "aws:runShellScript"
        assert answer["ExecutionStartDateTime"] and answer["ExecutionElapsedTime"].startswith("PT")
    command = ssm.list_commands(CommandId=command_id)["Commands"][0]
    assert (command["Status"], command["StatusDetails"]) == ("Success", "Success")
    assert (command["TargetCount"], command["CompletedCount"], command["ErrorCount"]) == (3, 3, 0)
    assert command["InstanceIds"] == ids and command["Targets"] == []


def test_tag_target_runs_the_aws_cli_as_the_instance_role(sb, record):
    blue = [launch_instance(sb, tags={"team": "blue"})["instance_id"] for _ in range(2)]
    red = launch_instance(sb, tags={"team": "red"})["instance_id"]
    sb.create_instance_role("ExampleRole")
    for instance_id in blue:
        sb.associate("ExampleRole", instance_id)
    # Real EC2 tags: DescribeInstances filters see them too.
    reservations = sb.client("ec2").describe_instances(Filters=[{"Name": "tag:team", "Values": ["blue"]}])
    assert sorted(i["InstanceId"] for r in reservations["Reservations"] for i in r["Instances"]) == sorted(blue)
    ssm = sb.client("ssm")
    command_id = run_shell(
        ssm,
        ["aws sts get-caller-identity --query Arn --output text"],
        Targets=[{"Key": "tag:team", "Values": ["blue"]}],
    )

    invocations = by_instance(ssm_wait(ssm, command_id))
    assert sorted(invocations) == sorted(blue) and red not in invocations
    for instance_id, answer in outputs(ssm, command_id, blue, record).items():
        assert answer["Status"] == "Success", answer["StandardErrorContent"]
        assert (
            answer["StandardOutputContent"].strip() == f"arn:aws:sts::{ACCOUNT}:assumed-role/ExampleRole/{instance_id}"
        )
    command = ssm.list_commands(CommandId=command_id)["Commands"][0]
    assert command["Targets"] == [{"Key": "tag:team", "Values": ["blue"]}] and command["TargetCount"] == 2


def test_a_failing_script_is_failed_with_its_exit_code_and_stderr(sb, record):
    ssm = sb.client("ssm")
    command_id = run_shell(ssm, ["echo out", "echo err >&2", "exit 3"], instance_ids=[sb.instance_id])

    [invocation] = ssm_wait(ssm, command_id)
    assert (invocation["Status"], invocation["StatusDetails"]) == ("Failed", "Failed")
    plugin = invocation["CommandPlugins"][0]
    record("plugin output", plugin["Output"])
    assert plugin["ResponseCode"] == 3
    assert plugin["Output"] == "out\n\n----------ERROR-------\nerr\n"  # the agent's layout
    answer = outputs(ssm, command_id, [sb.instance_id], record)[sb.instance_id]
    assert (answer["ResponseCode"], answer["StandardOutputContent"], answer["StandardErrorContent"]) == (
        3,
        "out\n",
        "err\n",
    )
    command = ssm.list_commands(CommandId=command_id)["Commands"][0]
    assert (command["Status"], command["ErrorCount"]) == ("Failed", 1)


def test_execution_timeout_kills_the_whole_process_group(sb, record):
    ssm = sb.client("ssm")
    script = ['sleep 30 & echo $! > "$HOME/child.pid"', "echo started", "sleep 30"]
    command_id = run_shell(ssm, script, instance_ids=[sb.instance_id], parameters={"executionTimeout": ["1"]})

    [invocation] = ssm_wait(ssm, command_id, timeout=15)
    assert (invocation["Status"], invocation["StatusDetails"]) == ("TimedOut", "ExecutionTimedOut")
    answer = outputs(ssm, command_id, [sb.instance_id], record)[sb.instance_id]
    assert answer["ResponseCode"] == 137  # the agent's code for a script it stopped (128 + SIGKILL)
    assert answer["StandardOutputContent"] == "started\n"
    assert ssm.list_commands(CommandId=command_id)["Commands"][0]["StatusDetails"] == "ExecutionTimedOut"
    # The background child went with its group.
    check = run_shell(
        ssm,
        # Gone, or a zombie nobody has reaped yet (this host's init may take its time): not running.
        [
            'S=$(cut -d" " -f3 "/proc/$(cat "$HOME/child.pid")/stat" 2>/dev/null)',
            '[ -z "$S" ] || [ "$S" = Z ] && echo gone || echo "alive ($S)"',
        ],
        instance_ids=[sb.instance_id],
    )
    ssm_wait(ssm, check)
    assert outputs(ssm, check, [sb.instance_id], record)[sb.instance_id]["StandardOutputContent"] == "gone\n"


def test_cancel_command_kills_the_running_script_and_cancels_the_waiting_one(sb, record):
    ids = [sb.instance_id, sb.new_instance()["instance_id"]]
    ssm = sb.client("ssm")
    command_id = run_shell(ssm, ["echo started", "sleep 30"], instance_ids=ids, MaxConcurrency="1")
    # The first target starts at once; MaxConcurrency 1 holds the second back.
    running = by_instance(ssm_wait(ssm, command_id, until={"InProgress", "Pending"}))
    for _ in range(100):
        if running[ids[0]]["Status"] == "InProgress":
            break
        time.sleep(0.05)
        running = by_instance(ssm_invocations(ssm, command_id))
    assert (running[ids[0]]["Status"], running[ids[1]]["Status"]) == ("InProgress", "Pending")

    assert ssm.cancel_command(CommandId=command_id)["ResponseMetadata"]["HTTPStatusCode"] == 200
    done = by_instance(ssm_wait(ssm, command_id, timeout=10))
    assert (done[ids[0]]["Status"], done[ids[0]]["CommandPlugins"][0]["ResponseCode"]) == ("Cancelled", 137)
    assert (done[ids[1]]["Status"], done[ids[1]]["CommandPlugins"][0]["ResponseCode"]) == ("Cancelled", -1)
    record("cancelled output", done[ids[0]]["CommandPlugins"][0]["Output"])
    assert ssm.list_commands(CommandId=command_id)["Commands"][0]["Status"] == "Cancelled"
    with pytest.raises(ClientError) as err:
        ssm.cancel_command(CommandId="00000000-0000-0000-0000-000000000000")
    assert error_code(err) == "InvalidCommandId"


# --- instances --------------------------------------------------------------------------------------------


def test_an_instance_without_an_agent_is_connection_lost_and_undeliverable(sb, record):
    agentless = launch_instance(sb, ssm_agent=False)["instance_id"]
    ssm = sb.client("ssm")
    info = {i["InstanceId"]: i for i in ssm.describe_instance_information()["InstanceInformationList"]}
    assert (info[sb.instance_id]["PingStatus"], info[agentless]["PingStatus"]) == ("Online", "ConnectionLost")
    online = ssm.describe_instance_information(Filters=[{"Key": "PingStatus", "Values": ["Online"]}])
    assert [i["InstanceId"] for i in online["InstanceInformationList"]] == [sb.instance_id]

    command_id = run_shell(ssm, ["echo hello"], instance_ids=[sb.instance_id, agentless])
    invocations = by_instance(ssm_wait(ssm, command_id))
    assert (invocations[agentless]["Status"], invocations[agentless]["StatusDetails"]) == ("Failed", "Undeliverable")
    assert invocations[agentless]["CommandPlugins"][0]["ResponseCode"] == -1
    assert invocations[sb.instance_id]["Status"] == "Success"
    record("hello", invocations[sb.instance_id]["CommandPlugins"][0]["Output"])
    command = ssm.list_commands(CommandId=command_id)["Commands"][0]
    # Undeliverable invocations do not count against MaxErrors (0 here): one success makes the command a success.
    assert (command["Status"], command["ErrorCount"], command["CompletedCount"]) == ("Success", 0, 2)


def test_describe_instance_information_pages_and_refuses_a_page_size_below_five(sb):
    expected = [sb.instance_id] + [sb.new_instance()["instance_id"] for _ in range(5)]
    ssm = sb.client("ssm")
    first = ssm.describe_instance_information(MaxResults=5)
    assert len(first["InstanceInformationList"]) == 5 and first["NextToken"]
    second = ssm.describe_instance_information(MaxResults=5, NextToken=first["NextToken"])
    assert "NextToken" not in second
    seen = [i["InstanceId"] for i in first["InstanceInformationList"] + second["InstanceInformationList"]]
    assert seen == expected
    assert {i["PingStatus"] for i in first["InstanceInformationList"]} == {"Online"}
    paginated = ssm.get_paginator("describe_instance_information").paginate(PaginationConfig={"PageSize": 5})
    assert [i["InstanceId"] for page in paginated for i in page["InstanceInformationList"]] == expected

    unchecked = sb.client("ssm", validate=False)  # botocore checks the minimum itself; the service does too
    with pytest.raises(ClientError) as err:
        unchecked.describe_instance_information(MaxResults=4)
    assert error_code(err) == "ValidationException"
    with pytest.raises(ClientError) as err:
        ssm.describe_instance_information(NextToken="not-a-token")
    assert error_code(err) == "InvalidNextToken"


def test_an_instance_without_roleops_has_the_aws_cli_only(sb, record):
    bare = launch_instance(sb, roleops=False)["instance_id"]
    ssm = sb.client("ssm")
    command_id = run_shell(
        ssm, ["command -v roleops || echo no-roleops", "aws --version 2>&1"], instance_ids=[sb.instance_id, bare]
    )
    ssm_wait(ssm, command_id)
    answers = outputs(ssm, command_id, [sb.instance_id, bare], record)
    assert answers[bare]["StandardOutputContent"].startswith("no-roleops\naws-cli/")
    with_roleops = answers[sb.instance_id]["StandardOutputContent"]
    assert with_roleops.split("\n")[0].endswith("/bin/roleops") and "aws-cli/" in with_roleops
    missing = run_shell(ssm, ["roleops --help"], instance_ids=[bare])
    [invocation] = ssm_wait(ssm, missing)
    record("roleops --help without roleops", invocation["CommandPlugins"][0]["Output"])
    # POSIX sh: a command not found exits 127, and that is the invocation's ResponseCode.
    assert (invocation["Status"], invocation["CommandPlugins"][0]["ResponseCode"]) == ("Failed", 127)


def test_instance_options_are_checked_before_anything_launches(sb, record):
    before = len(sb.control("GET", "instances")["instances"])
    for body in (
        {"ssm_agent": "yes"},
        {"roleops": 1},
        {"tags": ["team", "blue"]},
        {"tags": {"aws:owner": "me"}},
        {"tags": {"": "empty key"}},
        {"colour": "blue"},
    ):
        status, text = http(
            "POST",
            f"{sb.endpoint_url}/_roleops/instances",
            headers={"Content-Type": "application/json"},
            body=json.dumps(body).encode(),
        )
        record(f"POST /_roleops/instances {body}", text)
        assert status == 400 and json.loads(text)["error"], body
    assert len(sb.control("GET", "instances")["instances"]) == before


def test_the_sandbox_takes_0_to_200_instances_and_ssm_manages_them_all(tmp_path, record):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    refused = subprocess.run(
        [sys.executable, "-m", "roleops.sandbox", "--instances", "201"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=env,
    )
    record("sandbox --instances 201", refused.stdout + refused.stderr)
    assert refused.returncode == 2 and "0-200" in refused.stderr and not refused.stdout

    started = time.monotonic()
    stderr_path = tmp_path / "stderr.log"
    proc, lines = start_sandbox_process(
        "--port", "0", "--output", "json", "--instances", "200", stderr_path=stderr_path
    )
    try:
        elapsed = time.monotonic() - started
        assert lines, stderr_path.read_text()[-2000:]
        info = json.loads(lines[0])
        assert len(info["instances"]) == 200
        assert elapsed < 30, f"200 instances took {elapsed:.1f}s to start"  # a generous bound: a start must stay fast
        ssm = boto3.client(
            "ssm",
            endpoint_url=info["endpoint_url"],
            region_name=info["region"],
            aws_access_key_id=info["access_key_id"],
            aws_secret_access_key=info["secret_access_key"],
        )
        pages = ssm.get_paginator("describe_instance_information").paginate(PaginationConfig={"PageSize": 50})
        listed = [i["InstanceId"] for page in pages for i in page["InstanceInformationList"]]
        assert listed == [i["instance_id"] for i in info["instances"]]
    finally:
        stop_process(proc)
        record("sandbox stderr (200 instances)", stderr_path.read_text(errors="replace"))
        if proc.stdout is not None:
            proc.stdout.close()


# --- limits and refusals --------------------------------------------------------------------------------


def test_ssm_refuses_what_aws_refuses_and_starts_nothing(sb, record):
    ssm = sb.client("ssm")
    unmanaged = sb.client("ec2").run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]
    refusals = {
        "unknown id": ({"InstanceIds": ["i-0123456789abcdef0"]}, "InvalidInstanceId"),
        "launched by RunInstances, no agent": ({"InstanceIds": [unmanaged["InstanceId"]]}, "InvalidInstanceId"),
        "51 instance ids": ({"InstanceIds": [f"i-{n:017x}" for n in range(51)]}, "ValidationException"),
        "6 targets": ({"Targets": [{"Key": f"tag:k{n}", "Values": ["v"]} for n in range(6)]}, "ValidationException"),
        "51 target values": (
            {"Targets": [{"Key": "tag:k", "Values": [f"v{n}" for n in range(51)]}]},
            "ValidationException",
        ),
        "MaxConcurrency 0": ({"InstanceIds": [sb.instance_id], "MaxConcurrency": "0"}, "ValidationException"),
        "MaxErrors 101%": ({"InstanceIds": [sb.instance_id], "MaxErrors": "101%"}, "ValidationException"),
        "TimeoutSeconds too long": (
            {"InstanceIds": [sb.instance_id], "TimeoutSeconds": 2_592_001},
            "ValidationException",
        ),
    }
    for name, (kwargs, code) in refusals.items():
        with pytest.raises(ClientError) as err:
            run_shell(ssm, ["touch /tmp/never"], **kwargs)
        record(f"refusal {name}", str(err.value))
        assert error_code(err) == code, name
    with pytest.raises(ClientError) as err:
        run_shell(ssm, ["true"], instance_ids=[sb.instance_id], parameters={"executionTimeout": ["0"]})
    assert error_code(err) == "InvalidParameters"
    with pytest.raises(ClientError) as err:
        ssm.send_command(
            DocumentName="AWS-RunPowerShellScript", InstanceIds=[sb.instance_id], Parameters={"commands": ["x"]}
        )
    assert error_code(err) == "InvalidDocument"
    with pytest.raises(ClientError) as err:
        ssm.get_command_invocation(CommandId="00000000-0000-0000-0000-000000000000", InstanceId=sb.instance_id)
    assert error_code(err) == "InvocationDoesNotExist"
    assert ssm.list_commands()["Commands"] == []


def test_output_is_truncated_as_aws_truncates_it(sb, record):
    ssm = sb.client("ssm")
    script = ["head -c 30000 /dev/zero | tr '\\0' o", "head -c 10000 /dev/zero | tr '\\0' e >&2"]
    command_id = run_shell(ssm, script, instance_ids=[sb.instance_id])
    [invocation] = ssm_wait(ssm, command_id)
    answer = outputs(ssm, command_id, [sb.instance_id], record)[sb.instance_id]
    stdout, stderr = answer["StandardOutputContent"], answer["StandardErrorContent"]
    assert len(stdout) == 24_000 and stdout == "o" * (24_000 - 20) + "--output truncated--"
    assert len(stderr) == 8_000 and stderr == "e" * (8_000 - 20) + "--output truncated--"
    output = invocation["CommandPlugins"][0]["Output"]
    record("plugin output", output)
    assert len(output) == 2_500
    assert output.startswith("o" * 100) and "\n---Output truncated---\n----------ERROR-------\ne" in output
    assert output.endswith("e\n---Error truncated----")


def test_max_concurrency_bounds_how_many_run_at_once(sb, record):
    ids = [sb.instance_id] + [sb.new_instance()["instance_id"] for _ in range(2)]
    ssm = sb.client("ssm")
    script = ["date +%s.%N", "sleep 0.4", "date +%s.%N"]

    def intervals(command_id: str) -> list[tuple[float, float]]:
        ssm_wait(ssm, command_id)
        spans = []
        for answer in outputs(ssm, command_id, ids, record).values():
            start, end = (float(t) for t in answer["StandardOutputContent"].split())
            spans.append((start, end))
        return sorted(spans)

    one_by_one = intervals(run_shell(ssm, script, instance_ids=ids, MaxConcurrency="1"))
    assert all(earlier[1] <= later[0] for earlier, later in zip(one_by_one, one_by_one[1:], strict=False))
    together = intervals(run_shell(ssm, script, instance_ids=ids, MaxConcurrency="100%"))
    assert max(start for start, _ in together) < min(end for _, end in together)  # all three ran at once


def test_max_errors_stops_sending_to_targets_not_yet_started(sb, record):
    ids = [sb.instance_id] + [sb.new_instance()["instance_id"] for _ in range(2)]
    ssm = sb.client("ssm")
    strict = run_shell(ssm, ["exit 1"], instance_ids=ids, MaxConcurrency="1")  # MaxErrors defaults to 0
    done = by_instance(ssm_wait(ssm, strict))
    assert [(done[i]["Status"], done[i]["StatusDetails"]) for i in ids] == [
        ("Failed", "Failed"),
        ("Cancelled", "Terminated"),
        ("Cancelled", "Terminated"),
    ]
    assert [done[i]["CommandPlugins"][0]["ResponseCode"] for i in ids] == [1, -1, -1]
    command = ssm.list_commands(CommandId=strict)["Commands"][0]
    assert (command["Status"], command["ErrorCount"], command["CompletedCount"]) == ("Failed", 1, 3)

    lenient = run_shell(ssm, ["exit 1"], instance_ids=ids, MaxConcurrency="1", MaxErrors="1")
    done = by_instance(ssm_wait(ssm, lenient))
    assert [done[i]["StatusDetails"] for i in ids] == ["Failed", "Failed", "Terminated"]
    record("invocations", json.dumps(list(done.values()), default=str))


# --- who may run anything ---------------------------------------------------------------------------------


def test_only_requests_signed_with_issued_keys_run_anything(sb, tmp_path, record):
    marker = tmp_path / "pwned"
    script = [f"touch {marker}", 'touch "$HOME/pwned"']
    ssm = sb.client("ssm")
    operator = assumed_admin_env(sb)  # an assumed role's session: keys the sandbox issued, with their token
    unsigned = boto3.client(
        "ssm",
        endpoint_url=sb.endpoint_url,
        region_name=sb.info["region"],
        config=Config(signature_version=UNSIGNED, retries={"mode": "standard", "total_max_attempts": 1}),
    )
    refused = {
        "wrong secret": (sb.client("ssm", secret_access_key="x" * 40), "InvalidSignatureException"),
        "unknown key": (
            sb.client("ssm", access_key_id="AKIAIOSFODNN7EXAMPLE", secret_access_key="x" * 40),
            "UnrecognizedClientException",
        ),
        "no Authorization": (unsigned, "MissingAuthenticationTokenException"),
        # A session's keys without its token are not keys the sandbox issued on their own.
        "session keys, no token": (
            sb.client(
                "ssm", access_key_id=operator["AWS_ACCESS_KEY_ID"], secret_access_key=operator["AWS_SECRET_ACCESS_KEY"]
            ),
            "UnrecognizedClientException",
        ),
    }
    for name, (client, code) in refused.items():
        with pytest.raises(ClientError) as err:
            run_shell(client, script, instance_ids=[sb.instance_id])
        record(f"refused: {name}", str(err.value))
        assert (error_code(err), err.value.response["ResponseMetadata"]["HTTPStatusCode"]) == (code, 400), name

    assert not marker.exists()
    assert ssm.list_commands()["Commands"] == []
    # Signed with the session (keys and token) a command runs, and finds that nothing ran before it.
    session = sb.client(
        "ssm",
        access_key_id=operator["AWS_ACCESS_KEY_ID"],
        secret_access_key=operator["AWS_SECRET_ACCESS_KEY"],
        session_token=operator["AWS_SESSION_TOKEN"],
    )
    check = run_shell(session, ['test -e "$HOME/pwned" && echo present || echo absent'], instance_ids=[sb.instance_id])
    ssm_wait(ssm, check)
    assert outputs(ssm, check, [sb.instance_id], record)[sb.instance_id]["StandardOutputContent"] == "absent\n"
    assert not marker.exists()


# --- launch templates -----------------------------------------------------------------------------------


def test_a_launch_template_version_from_a_source_version_keeps_the_source_data(sb):
    ec2 = sb.client("ec2")
    source = {
        "ImageId": "ami-12c6146b",
        "InstanceType": "t3.micro",
        "UserData": "ZWNobyBoaQ==",
        "MetadataOptions": {"HttpTokens": "optional", "HttpPutResponseHopLimit": 2},
        "TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "team", "Value": "blue"}]}],
    }
    ec2.create_launch_template(LaunchTemplateName="fleet", LaunchTemplateData=source)
    sent = {"IamInstanceProfile": {"Name": "ExampleRole"}, "MetadataOptions": {"HttpTokens": "required"}}
    created = ec2.create_launch_template_version(LaunchTemplateName="fleet", SourceVersion="1", LaunchTemplateData=sent)
    data = created["LaunchTemplateVersion"]["LaunchTemplateData"]
    expected = {**source, **sent}  # top-level parameters override; a sent block replaces the source's block
    assert data == expected
    stored = ec2.describe_launch_template_versions(LaunchTemplateName="fleet", Versions=["2"])
    assert stored["LaunchTemplateVersions"][0]["LaunchTemplateData"] == expected
    from_latest = ec2.create_launch_template_version(
        LaunchTemplateName="fleet", SourceVersion="$Latest", LaunchTemplateData={"InstanceType": "t3.small"}
    )
    assert from_latest["LaunchTemplateVersion"]["LaunchTemplateData"] == {**expected, "InstanceType": "t3.small"}
    alone = ec2.create_launch_template_version(LaunchTemplateName="fleet", LaunchTemplateData={"ImageId": "ami-1"})
    assert alone["LaunchTemplateVersion"]["LaunchTemplateData"] == {"ImageId": "ami-1"}  # no source: only what was sent
    with pytest.raises(ClientError) as err:
        ec2.create_launch_template_version(LaunchTemplateName="fleet", SourceVersion="9", LaunchTemplateData=sent)
    assert error_code(err) == "InvalidLaunchTemplateId.VersionNotFound"
