// The official release binaries, for machines with internet access and no Go toolchain. Every
// file is checked against the checksum the release publishes before it is made executable.
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { chmod, mkdtemp, rename, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { extract } from "tar";
import { devclusterError } from "./errors.ts";
import { ETCD_VERSION, KUBERNETES_VERSION } from "./versions.ts";

function goArch(): string {
  switch (process.arch) {
    case "x64":
      return "amd64";
    case "arm64":
      return "arm64";
    default:
      throw devclusterError(
        "WASMLET_ERR_DOWNLOAD_FAILED",
        `no official control-plane binaries for ${process.arch}`,
      );
  }
}

async function fetchOk(url: string): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(url, { redirect: "follow", signal: AbortSignal.timeout(300_000) });
  } catch (error) {
    throw devclusterError(
      "WASMLET_ERR_DOWNLOAD_FAILED",
      `cannot download ${url}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  if (!response.ok || !response.body) {
    throw devclusterError(
      "WASMLET_ERR_DOWNLOAD_FAILED",
      `cannot download ${url}: HTTP ${response.status}`,
    );
  }
  return response;
}

/** Streams `url` to `path` and returns its sha256 (hex). */
async function downloadTo(url: string, path: string): Promise<string> {
  const response = await fetchOk(url);
  const hash = createHash("sha256");
  const body = Readable.fromWeb(response.body as import("node:stream/web").ReadableStream);
  body.on("data", (chunk: Buffer) => hash.update(chunk));
  await pipeline(body, createWriteStream(path, { mode: 0o600 }));
  return hash.digest("hex");
}

function verify(url: string, actual: string, expected: string | undefined): void {
  if (!expected || actual !== expected.toLowerCase()) {
    throw devclusterError(
      "WASMLET_ERR_DOWNLOAD_FAILED",
      `checksum mismatch for ${url}: expected ${expected ?? "(none published)"}, got ${actual}`,
    );
  }
}

/** Downloads the four binaries of the pinned versions into `binDir`, verifying each checksum. */
export async function downloadControlPlane(
  binDir: string,
  onProgress: (line: string) => void = () => {},
): Promise<void> {
  const arch = goArch();
  const staging = await mkdtemp(join(tmpdir(), "wasmlet-download-"));
  try {
    for (const name of ["kube-apiserver", "kube-controller-manager", "kube-scheduler"]) {
      const url = `https://dl.k8s.io/release/${KUBERNETES_VERSION}/bin/linux/${arch}/${name}`;
      onProgress(`downloading ${url}`);
      const expected = (await (await fetchOk(`${url}.sha256`)).text()).trim().split(/\s+/)[0];
      verify(url, await downloadTo(url, join(staging, name)), expected);
      await chmod(join(staging, name), 0o755);
      await rename(join(staging, name), join(binDir, name));
    }
    const tarball = `etcd-${ETCD_VERSION}-linux-${arch}.tar.gz`;
    const base = `https://github.com/etcd-io/etcd/releases/download/${ETCD_VERSION}`;
    onProgress(`downloading ${base}/${tarball}`);
    const sums = await (await fetchOk(`${base}/SHA256SUMS`)).text();
    const expected = sums
      .split("\n")
      .map((line) => line.trim().split(/\s+/))
      .find(([, file]) => file === tarball)?.[0];
    verify(
      `${base}/${tarball}`,
      await downloadTo(`${base}/${tarball}`, join(staging, tarball)),
      expected,
    );
    await extract({
      file: join(staging, tarball),
      cwd: staging,
      strip: 1,
      filter: (path) => path.endsWith("/etcd"),
    });
    await rename(join(staging, "etcd"), join(binDir, "etcd"));
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}
