// `wasmlet push FILE.wasm REF`: publishes a module as a CNCF wasm artifact (config
// application/vnd.wasm.config.v0+json, one application/wasm layer) with annotations; a progress
// bar when stdout is a terminal.
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { parseArgs } from "node:util";
import {
  CredentialSet,
  DockerConfigFile,
  parseReference,
  pushWasmArtifact,
  RegistryClient,
} from "../images/index.ts";
import { registryFlags, registryFlagsHelp, registrySettings, UsageError } from "./pull.ts";

const help = `Usage: wasmlet push [options] FILE.wasm REF

Publishes FILE.wasm to REF as a CNCF wasm artifact (what wasmlet, runwasi and oras pull), with
the annotations org.opencontainers.image.created (now), .title (the file name) and, when given,
.source and .revision. Prints the pushed digest.

Options:
  --source URL            org.opencontainers.image.source (e.g. the source repository)
  --revision REV          org.opencontainers.image.revision (e.g. a git commit)
  --annotation KEY=VALUE  another manifest annotation (repeatable)
${registryFlagsHelp}
  -h, --help              show this help`;

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** A one-line progress bar redrawn in place (only used on a terminal). */
function progressBar(label: string): {
  update: (sent: number, total: number) => void;
  done: () => void;
} {
  let last = -1;
  return {
    update(sent, total) {
      const width = 30;
      const fraction = total === 0 ? 1 : sent / total;
      const percent = Math.floor(fraction * 100);
      if (percent === last) return;
      last = percent;
      const filled = Math.round(fraction * width);
      process.stdout.write(
        `\r\x1b[K${label} [${"#".repeat(filled)}${" ".repeat(width - filled)}] ${String(percent).padStart(3)}% ${formatBytes(sent)}/${formatBytes(total)}`,
      );
    },
    done() {
      if (last >= 0) process.stdout.write("\n");
    },
  };
}

export async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  const parse = (args: string[]) =>
    parseArgs({
      args,
      allowPositionals: true,
      options: {
        ...registryFlags,
        source: { type: "string" },
        revision: { type: "string" },
        annotation: { type: "string", multiple: true },
      },
    });
  const annotations: Record<string, string> = {};
  try {
    parsed = parse(argv);
    if (parsed.values.help) {
      console.log(help);
      return 0;
    }
    if (parsed.positionals.length !== 2)
      throw new UsageError("expected FILE.wasm and an image reference");
    for (const entry of parsed.values.annotation ?? []) {
      const eq = entry.indexOf("=");
      if (eq <= 0) throw new UsageError(`--annotation wants KEY=VALUE, not "${entry}"`);
      annotations[entry.slice(0, eq)] = entry.slice(eq + 1);
    }
  } catch (error) {
    console.error(`wasmlet push: ${(error as Error).message}\n\n${help}`);
    return 2;
  }
  const [file, reference] = parsed.positionals as [string, string];
  if (parsed.values.source) annotations["org.opencontainers.image.source"] = parsed.values.source;
  if (parsed.values.revision)
    annotations["org.opencontainers.image.revision"] = parsed.values.revision;
  const settings = await registrySettings(parsed.values, reference);
  const ref = parseReference(reference);
  const credentials = (
    settings.credentials ??
    (await new DockerConfigFile(settings.dockerConfig).load()) ??
    CredentialSet.empty()
  ).lookup(ref.registry, ref.repository);
  const module = await readFile(file);
  const bar = process.stdout.isTTY ? progressBar(`pushing ${basename(file)}`) : undefined;
  const client = new RegistryClient(settings.client);
  try {
    const result = await pushWasmArtifact(module, reference, {
      client,
      credentials,
      annotations,
      title: basename(file),
      ...(bar ? { onProgress: bar.update } : {}),
    });
    bar?.done();
    const layer = result.uploadedLayer ? "uploaded" : "already in the registry";
    console.log(
      `${result.reference}: pushed ${basename(file)} (${formatBytes(module.length)}, layer ${layer})`,
    );
    console.log(`Digest: ${result.digest}`);
    return 0;
  } catch (error) {
    bar?.done();
    throw error;
  } finally {
    await client.close();
  }
}
