// Images benchmark (not a test): pull + verify + compile time of a 2 MB and a 20 MB module from a
// local docker-registry, cold (empty store, nothing compiled), store-warm (a restarted node:
// blobs on disk, compile again) and cached (present and compiled), each as a ratio to
// `skopeo copy` of the same image from the same registry in the same run.
//
//   node bench/images/index.ts [--runs N]
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs, promisify } from "node:util";
import { LocalRegistry } from "../../src/devcluster/registry.ts";
import {
  ImageService,
  type PulledImage,
  pushWasmArtifact,
  RegistryClient,
} from "../../src/images/index.ts";
import { buildModule } from "../../test/unit/images/support/wasm.ts";

const exec = promisify(execFile);
const { values } = parseArgs({ options: { runs: { type: "string", default: "5" } } });
const runs = Number(values.runs);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function time(run: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await run();
  return performance.now() - start;
}

const registry = await LocalRegistry.start();
const work = await mkdtemp(join(tmpdir(), "wasmlet-bench-images-"));
const rows: string[][] = [];
try {
  const client = new RegistryClient();
  for (const [label, bytes] of [
    ["2 MB", 2_000_000],
    ["20 MB", 20_000_000],
  ] as const) {
    const module = buildModule({ targetBytes: bytes });
    const ref = `${registry.address}/bench/module:${label.replace(" ", "")}`;
    await pushWasmArtifact(module, ref, { client });

    const skopeo: number[] = [];
    const coldPull: number[] = [];
    const coldCompile: number[] = [];
    const warm: number[] = [];
    const cached: number[] = [];
    for (let i = 0; i < runs; i++) {
      const dest = join(work, `skopeo-${label}-${i}`);
      skopeo.push(
        await time(() =>
          exec("skopeo", [
            "copy",
            "-q",
            "--src-tls-verify=false",
            `docker://${ref}`,
            `oci:${dest}:x`,
          ]),
        ),
      );
      await rm(dest, { recursive: true, force: true });

      const dataDir = join(work, `wasmlet-${label}-${i}`);
      let image: PulledImage | undefined;
      const cold = new ImageService({ dataDir });
      await cold.start();
      coldPull.push(
        await time(async () => (image = await cold.ensure(ref, { pullPolicy: "IfNotPresent" }))),
      );
      coldCompile.push(await time(() => cold.compile(image!, { memoryLimitBytes: 64 << 20 })));
      cached.push(
        await time(async () => {
          const again = await cold.ensure(ref, { pullPolicy: "IfNotPresent" });
          await cold.compile(again, { memoryLimitBytes: 64 << 20 });
        }),
      );
      await cold.close();
      // A restarted node: blobs on disk, nothing compiled.
      const restarted = new ImageService({ dataDir });
      warm.push(
        await time(async () => {
          await restarted.start();
          const again = await restarted.ensure(ref, { pullPolicy: "IfNotPresent" });
          await restarted.compile(again, { memoryLimitBytes: 64 << 20 });
        }),
      );
      await restarted.close();
      await rm(dataDir, { recursive: true, force: true });
    }
    const base = median(skopeo);
    const total = median(coldPull.map((p, i) => p + coldCompile[i]!));
    const f = (ms: number) => `${ms.toFixed(1)} ms`;
    const r = (ms: number) => `${(ms / base).toFixed(2)}×`;
    rows.push([
      `${label} (${(module.length / 1e6).toFixed(1)} MB)`,
      f(base),
      f(median(coldPull)),
      f(median(coldCompile)),
      `${f(total)} (${r(total)})`,
      `${f(median(warm))} (${r(median(warm))})`,
      `${f(median(cached))} (${r(median(cached))})`,
    ]);
  }
} finally {
  await registry.stop();
  await rm(work, { recursive: true, force: true });
}

const header = [
  "module",
  "skopeo copy",
  "wasmlet pull+verify",
  "compile",
  "cold total (vs skopeo)",
  "store-warm (vs skopeo)",
  "cached (vs skopeo)",
];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
console.log(
  `images benchmark: median of ${runs} runs, node ${process.versions.node}, local docker-registry over loopback HTTP`,
);
console.log(line(header));
console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
for (const row of rows) console.log(line(row));
