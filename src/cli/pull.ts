// `wasmlet pull REF`: pulls an image into the content store under the data dir (verified, ready
// to run) and prints its digest. Also home of the registry flags `push` and `inspect` share.
import { homedir } from "node:os";
import { join } from "node:path";
import { type ParseArgsConfig, parseArgs } from "node:util";
import {
  CredentialSet,
  ImageService,
  isPullPolicy,
  type PulledImage,
  type PullPolicy,
  parseReference,
  type RegistryClientOptions,
  RegistryHosts,
} from "../images/index.ts";

export const registryFlags = {
  "plain-http": { type: "boolean" },
  username: { type: "string", short: "u" },
  password: { type: "string", short: "p" },
  "password-stdin": { type: "boolean" },
  "docker-config": { type: "string" },
  "registry-config-dir": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const satisfies ParseArgsConfig["options"];

export const registryFlagsHelp = `Registry options:
  --plain-http            talk HTTP, not HTTPS, to the registry (loopback registries always use HTTP)
  -u, --username NAME     registry user name
  -p, --password SECRET   registry password or token (prefer --password-stdin)
  --password-stdin        read the password from standard input
  --docker-config FILE    docker config with credentials (default: $DOCKER_CONFIG/config.json or ~/.docker/config.json)
  --registry-config-dir DIR
                          registry hosts in containerd's layout (DIR/HOST[:PORT]/hosts.toml, DIR/_default):
                          mirrors, server, CA, client certificates, skip_verify, headers`;

export const dataDirHelp = `  --data-dir DIR          wasmlet's data dir (default: $WASMLET_DATA_DIR or ~/.local/share/wasmlet)`;

interface RegistryFlagValues {
  "plain-http"?: boolean;
  username?: string;
  password?: string;
  "password-stdin"?: boolean;
  "docker-config"?: string;
  "registry-config-dir"?: string;
}

export function defaultDockerConfig(): string {
  return join(process.env.DOCKER_CONFIG || join(homedir(), ".docker"), "config.json");
}

export function defaultDataDir(): string {
  return (
    process.env.WASMLET_DATA_DIR ||
    join(process.env.XDG_DATA_HOME || join(homedir(), ".local", "share"), "wasmlet")
  );
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks)
    .toString("utf8")
    .replace(/\r?\n$/, "");
}

export class UsageError extends Error {}

/** Client options and explicit credentials from the registry flags, for `reference`'s registry. */
export async function registrySettings(
  values: RegistryFlagValues,
  reference: string,
): Promise<{
  client: RegistryClientOptions;
  credentials: CredentialSet | undefined;
  dockerConfig: string;
}> {
  const ref = parseReference(reference);
  const client: RegistryClientOptions = { userAgent: "wasmlet-cli" };
  if (values["plain-http"]) client.plainHttp = [ref.registry];
  if (values["registry-config-dir"] !== undefined)
    client.hosts = RegistryHosts.load(values["registry-config-dir"]);
  let password = values.password;
  if (values["password-stdin"]) password = await readStdin();
  let credentials: CredentialSet | undefined;
  if (values.username !== undefined || password !== undefined) {
    if (values.username === undefined || password === undefined)
      throw new UsageError("--username and --password go together");
    credentials = CredentialSet.parse(
      { auths: { [ref.registry]: { username: values.username, password } } },
      "the command line",
    );
  }
  return { client, credentials, dockerConfig: values["docker-config"] ?? defaultDockerConfig() };
}

export function pullPolicyFlag(
  value: string | undefined,
  fallback: PullPolicy | undefined,
): PullPolicy | undefined {
  if (value === undefined) return fallback;
  if (!isPullPolicy(value))
    throw new UsageError(`--pull must be Always, IfNotPresent or Never, not "${value}"`);
  return value;
}

/** Builds the image service the CLI commands use and ensures `reference`. */
export async function ensureImage(
  values: RegistryFlagValues & { "data-dir"?: string },
  reference: string,
  pullPolicy: PullPolicy | undefined,
): Promise<{ service: ImageService; image: PulledImage }> {
  const settings = await registrySettings(values, reference);
  const service = new ImageService({
    dataDir: values["data-dir"] ?? defaultDataDir(),
    registry: settings.client,
    dockerConfigPath: settings.dockerConfig,
  });
  try {
    await service.start();
    const image = await service.ensure(reference, {
      ...(pullPolicy ? { pullPolicy } : {}),
      ...(settings.credentials ? { credentials: settings.credentials } : {}),
    });
    return { service, image };
  } catch (error) {
    await service.close();
    throw error;
  }
}

const help = `Usage: wasmlet pull [options] REF

Pulls REF (a CNCF wasm artifact, a wasm-to-oci image, an ordinary image whose entrypoint is a
.wasm, or an index with a wasip1/wasm platform) into wasmlet's content store, verifies every
blob against its digest and the module with WebAssembly.validate, and prints its digest.

Options:
${dataDirHelp}
  --pull POLICY           Always (default), IfNotPresent or Never
${registryFlagsHelp}
  -h, --help              show this help`;

export async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  const parse = (args: string[]) =>
    parseArgs({
      args,
      allowPositionals: true,
      options: { ...registryFlags, "data-dir": { type: "string" }, pull: { type: "string" } },
    });
  try {
    parsed = parse(argv);
    if (parsed.values.help) {
      console.log(help);
      return 0;
    }
    if (parsed.positionals.length !== 1)
      throw new UsageError("expected exactly one image reference");
  } catch (error) {
    console.error(`wasmlet pull: ${(error as Error).message}\n\n${help}`);
    return 2;
  }
  const reference = parsed.positionals[0]!;
  let policy: PullPolicy | undefined;
  try {
    policy = pullPolicyFlag(parsed.values.pull, "Always");
  } catch (error) {
    console.error(`wasmlet pull: ${(error as Error).message}`);
    return 2;
  }
  const { service, image } = await ensureImage(parsed.values, reference, policy);
  await service.close();
  const what = image.pulled ? "pulled" : "already present";
  console.log(`${image.reference}: ${what} (${image.format}, module ${image.wasmSize} bytes)`);
  console.log(`Digest: ${image.digest}`);
  console.log(`Image ID: ${image.imageID}`);
  return 0;
}
