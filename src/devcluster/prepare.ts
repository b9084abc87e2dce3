// `node src/devcluster/prepare.ts [--kubectl] [--metrics-server] [--helm]`: obtains the
// control-plane binaries (cache, else build, else download) and prints where they are; `--kubectl`
// also builds kubectl of the same release, `--metrics-server` obtains metrics-server and `--helm`
// helm (cache, else build). CI runs it before the tests so a cold build is not charged to a test's
// timeout.
import { describeError } from "../errors.ts";
import { obtainControlPlaneBinaries } from "./binaries.ts";
import { buildKubectl } from "./build-from-source.ts";
import { HELM_VERSION, obtainHelm } from "./helm.ts";
import { METRICS_SERVER_VERSION, obtainMetricsServer } from "./metrics-server.ts";
import { ETCD_VERSION, KUBERNETES_VERSION } from "./versions.ts";

if (import.meta.main) {
  const started = Date.now();
  const onProgress = (line: string) =>
    process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(0)} s] ${line}\n`);
  try {
    const { dir, source } = await obtainControlPlaneBinaries({ onProgress });
    if (process.argv.includes("--kubectl")) {
      process.stderr.write("building kubectl of the same release\n");
      process.stdout.write(`kubectl: ${await buildKubectl(dir)}\n`);
    }
    if (process.argv.includes("--metrics-server")) {
      const metricsServer = await obtainMetricsServer({ onProgress });
      process.stdout.write(
        `metrics-server: ${metricsServer.binary} (${METRICS_SERVER_VERSION}, ${metricsServer.source})\n`,
      );
    }
    if (process.argv.includes("--helm")) {
      const helm = await obtainHelm({ onProgress });
      process.stdout.write(`helm: ${helm.binary} (${HELM_VERSION}, ${helm.source})\n`);
    }
    process.stdout.write(
      `control plane: Kubernetes ${KUBERNETES_VERSION}, etcd ${ETCD_VERSION}, ${source} in ${dir} (${((Date.now() - started) / 1000).toFixed(1)} s)\n`,
    );
  } catch (error) {
    process.stderr.write(`wasmlet: ${describeError(error)}\n`);
    process.exitCode = 1;
  }
}
