// E2E client (AWS SDK for JavaScript v3): walk the instance-role chain as Node code on a sandbox instance would.
//
//   node chain.mjs default ROLE_ARN SESSION_NAME
//     the default chain (fromNodeProviderChain: here, instance metadata) -> GetCallerIdentity;
//     AssumeRole into ROLE_ARN with those credentials -> GetCallerIdentity with the result
//   node chain.mjs profile
//     AWS_PROFILE names a config profile with role_arn + credential_source = Ec2InstanceMetadata:
//     fromIni() and the default chain each resolve it -> GetCallerIdentity
//
// Prints one "label ARN" line per identity and nothing else: never a key or a token (the suite's leak check
// searches this output). Endpoints come from the environment only (AWS_ENDPOINT_URL,
// AWS_EC2_METADATA_SERVICE_ENDPOINT), as they would for any program on the instance.
import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import { fromIni, fromNodeProviderChain } from "@aws-sdk/credential-providers";

async function callerArn(credentials) {
  const sts = new STSClient({ credentials });
  try {
    return (await sts.send(new GetCallerIdentityCommand({}))).Arn;
  } finally {
    sts.destroy();
  }
}

async function defaultChain(roleArn, sessionName) {
  const instance = fromNodeProviderChain();
  console.log(`default-chain ${await callerArn(instance)}`);
  const sts = new STSClient({ credentials: instance });
  let assumed;
  try {
    assumed = await sts.send(new AssumeRoleCommand({ RoleArn: roleArn, RoleSessionName: sessionName }));
  } finally {
    sts.destroy();
  }
  console.log(`assume-role ${assumed.AssumedRoleUser.Arn}`);
  const { AccessKeyId, SecretAccessKey, SessionToken } = assumed.Credentials;
  console.log(
    `assumed-caller ${await callerArn({ accessKeyId: AccessKeyId, secretAccessKey: SecretAccessKey, sessionToken: SessionToken })}`,
  );
}

async function profile() {
  console.log(`from-ini ${await callerArn(fromIni())}`);
  console.log(`default-chain ${await callerArn(fromNodeProviderChain())}`);
}

const [mode, ...args] = process.argv.slice(2);
try {
  if (mode === "default" && args.length === 2) {
    await defaultChain(args[0], args[1]);
  } else if (mode === "profile" && args.length === 0) {
    await profile();
  } else {
    console.error("usage: node chain.mjs default ROLE_ARN SESSION_NAME | node chain.mjs profile");
    process.exit(2);
  }
} catch (err) {
  // The error's name and message only: SDK errors carry no secrets there, and the test shows them on failure.
  console.error(`error: ${err?.name}: ${err?.message}`);
  process.exit(1);
}
