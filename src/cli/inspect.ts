// `wasmlet inspect REF`: what wasmlet sees in an image — format, digests, size, platform,
// entrypoint/cmd/env/working dir, and the module's imports and exports. Pulls the image into the
// content store first unless it is there (`--pull` to change that).
import { parseArgs } from "node:util";
import { isProvidedImport } from "../runtime/index.ts";
import {
  dataDirHelp,
  ensureImage,
  pullPolicyFlag,
  registryFlags,
  registryFlagsHelp,
  UsageError,
} from "./pull.ts";

const help = `Usage: wasmlet inspect [options] REF

Shows an image as wasmlet runs it: format, digest, image ID, size, platform, entrypoint, cmd,
env, working dir, and the module's imports and exports.

Options:
  --json                  print JSON
${dataDirHelp}
  --pull POLICY           IfNotPresent (default), Always or Never
${registryFlagsHelp}
  -h, --help              show this help`;

export async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  const parse = (args: string[]) =>
    parseArgs({
      args,
      allowPositionals: true,
      options: {
        ...registryFlags,
        "data-dir": { type: "string" },
        pull: { type: "string" },
        json: { type: "boolean" },
      },
    });
  let policy: ReturnType<typeof pullPolicyFlag>;
  try {
    parsed = parse(argv);
    if (parsed.values.help) {
      console.log(help);
      return 0;
    }
    if (parsed.positionals.length !== 1)
      throw new UsageError("expected exactly one image reference");
    policy = pullPolicyFlag(parsed.values.pull, "IfNotPresent");
  } catch (error) {
    console.error(`wasmlet inspect: ${(error as Error).message}\n\n${help}`);
    return 2;
  }
  const { service, image } = await ensureImage(parsed.values, parsed.positionals[0]!, policy);
  const module = await service.compile(image);
  await service.close();
  const imports = WebAssembly.Module.imports(module).map((i) => ({
    module: i.module,
    name: i.name,
    kind: i.kind,
    provided: isProvidedImport(i),
  }));
  const exports = WebAssembly.Module.exports(module).map((e) => ({ name: e.name, kind: e.kind }));
  const report = {
    reference: image.reference,
    format: image.format,
    digest: image.digest,
    manifestDigest: image.manifestDigest,
    imageID: image.imageID,
    platform: image.platform ? `${image.platform.os}/${image.platform.architecture}` : undefined,
    size: image.size,
    module: {
      digest: image.wasmDigest,
      size: image.wasmSize,
      path: image.imagePath,
      function: image.wasmFunction,
    },
    entrypoint: image.entrypoint,
    cmd: image.cmd,
    env: image.env,
    workingDir: image.workingDir,
    annotations: image.annotations,
    imports,
    exports,
  };
  if (parsed.values.json) {
    console.log(JSON.stringify(report, null, 2));
    return 0;
  }
  const list = (values: string[]) => (values.length === 0 ? "(none)" : JSON.stringify(values));
  const lines = [
    `Reference:    ${report.reference}`,
    `Format:       ${report.format}`,
    `Digest:       ${report.digest}`,
    ...(report.manifestDigest !== report.digest ? [`Manifest:     ${report.manifestDigest}`] : []),
    `Image ID:     ${report.imageID}`,
    `Platform:     ${report.platform ?? "(not stated)"}`,
    `Size:         ${report.size} bytes (module ${image.wasmSize} bytes, ${image.wasmDigest})`,
    ...(image.imagePath
      ? [`Module path:  ${image.imagePath}${image.wasmFunction ? `#${image.wasmFunction}` : ""}`]
      : []),
    `Entrypoint:   ${list(report.entrypoint)}`,
    `Cmd:          ${list(report.cmd)}`,
    `Env:          ${list(report.env)}`,
    `Working dir:  ${report.workingDir ?? "(default)"}`,
  ];
  for (const [key, value] of Object.entries(report.annotations))
    lines.push(`Annotation:   ${key}=${value}`);
  lines.push(`Imports (${imports.length}):`);
  for (const i of imports)
    lines.push(
      `  ${i.module}.${i.name} (${i.kind})${i.provided ? "" : " — not provided by wasmlet: a pod of this image fails"}`,
    );
  lines.push(`Exports (${exports.length}):`);
  for (const e of exports) lines.push(`  ${e.name} (${e.kind})`);
  console.log(lines.join("\n"));
  return 0;
}
