// `node src/devcluster/prepare.ts`: obtains the control-plane binaries (cache, else build, else
// download) and prints where they are. CI runs it before the tests so a cold build is not
// charged to a test's timeout.
import { describeError } from "../errors.ts";
import { obtainControlPlaneBinaries } from "./binaries.ts";
import { buildKubectl } from "./build-from-source.ts";
import { ETCD_VERSION, KUBERNETES_VERSION } from "./versions.ts";

if (import.meta.main) {
  const started = Date.now();
  try {
    const { dir, source } = await obtainControlPlaneBinaries({
      onProgress: (line) =>
        process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(0)} s] ${line}\n`),
    });
    if (process.argv.includes("--kubectl")) {
      process.stderr.write("building kubectl of the same release\n");
      process.stdout.write(`kubectl: ${await buildKubectl(dir)}\n`);
    }
    process.stdout.write(
      `control plane: Kubernetes ${KUBERNETES_VERSION}, etcd ${ETCD_VERSION}, ${source} in ${dir} (${((Date.now() - started) / 1000).toFixed(1)} s)\n`,
    );
  } catch (error) {
    process.stderr.write(`wasmlet: ${describeError(error)}\n`);
    process.exitCode = 1;
  }
}
