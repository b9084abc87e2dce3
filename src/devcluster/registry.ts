// A local OCI registry (Debian's `docker-registry`, CNCF distribution 2.8) on a free loopback
// port with its own storage; optionally behind htpasswd basic auth, optionally over TLS (with
// client certificates required when given client CAs). Used by `wasmlet dev` and the tests. It can be stopped and started again on the same address, its content kept (fault tests).
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { ManagedProcess } from "./managed-process.ts";
import { assertPortFree, freePort } from "./ports.ts";
import { findExecutable } from "./tools.ts";

const run = promisify(execFile);

export interface RegistryOptions {
  /** Directory for storage, config and log; a temp dir (removed on stop) when absent. */
  dir?: string;
  host?: string;
  port?: number;
  /** Require these credentials (htpasswd, bcrypt). */
  basicAuth?: { username: string; password: string };
  /** Delegate auth to a token server (the Docker Hub / GHCR flow). */
  tokenAuth?: { realm: string; service: string; issuer: string; rootCertBundle: string };
  /**
   * Serve HTTPS with this certificate and key (PEM); with `clientCAs` (PEM), only clients
   * presenting a certificate one of them signed are served (distribution's `http.tls.clientcas`).
   */
  tls?: { cert: string; key: string; clientCAs?: string[] };
  readyTimeoutMs?: number;
}

export class LocalRegistry {
  readonly host: string;
  readonly port: number;
  readonly dir: string;
  readonly tls: boolean;
  #process: ManagedProcess;
  #ownsDir: boolean;
  readonly #binary: string;
  readonly #readyTimeoutMs: number;

  private constructor(
    host: string,
    port: number,
    dir: string,
    ownsDir: boolean,
    binary: string,
    readyTimeoutMs: number,
    tls: boolean,
  ) {
    this.host = host;
    this.tls = tls;
    this.port = port;
    this.dir = dir;
    this.#ownsDir = ownsDir;
    this.#binary = binary;
    this.#readyTimeoutMs = readyTimeoutMs;
    this.#process = this.#launch();
  }

  /** `host:port`, the registry part of image references. */
  get address(): string {
    return `${this.host}:${this.port}`;
  }

  get url(): string {
    return `${this.tls ? "https" : "http"}://${this.address}`;
  }

  static async start(options: RegistryOptions = {}): Promise<LocalRegistry> {
    const binary = await findExecutable("docker-registry", "apt-get install docker-registry");
    const host = options.host ?? "127.0.0.1";
    const port = options.port ?? (await freePort(host));
    if (options.port !== undefined) await assertPortFree(host, port, "registry");
    const ownsDir = options.dir === undefined;
    const dir = options.dir ?? (await mkdtemp(join(tmpdir(), "wasmlet-registry-")));
    await mkdir(join(dir, "storage"), { recursive: true });

    const config = [
      "version: 0.1",
      "log: {level: warn}",
      "storage:",
      `  filesystem: {rootdirectory: ${JSON.stringify(join(dir, "storage"))}}`,
      "  delete: {enabled: true}",
    ];
    if (options.tls) {
      const file = (name: string) => JSON.stringify(join(dir, name));
      await writeFile(join(dir, "tls.crt"), options.tls.cert);
      await writeFile(join(dir, "tls.key"), options.tls.key, { mode: 0o600 });
      const clientCAs = options.tls.clientCAs ?? [];
      for (const [i, pem] of clientCAs.entries())
        await writeFile(join(dir, `client-ca-${i}.crt`), pem);
      const cas = clientCAs.map((_, i) => file(`client-ca-${i}.crt`));
      config.push(
        `http: {addr: "${host}:${port}", tls: {certificate: ${file("tls.crt")}, key: ${file("tls.key")}${cas.length ? `, clientcas: [${cas.join(", ")}]` : ""}}}`,
      );
    } else {
      config.push(`http: {addr: "${host}:${port}"}`);
    }
    if (options.basicAuth) {
      const htpasswd = await findExecutable("htpasswd", "apt-get install apache2-utils");
      const { stdout } = await run(htpasswd, [
        "-Bbn",
        options.basicAuth.username,
        options.basicAuth.password,
      ]);
      await writeFile(join(dir, "htpasswd"), stdout);
      config.push(
        `auth: {htpasswd: {realm: wasmlet-test, path: ${JSON.stringify(join(dir, "htpasswd"))}}}`,
      );
    } else if (options.tokenAuth) {
      const t = options.tokenAuth;
      config.push(
        `auth: {token: {realm: ${JSON.stringify(t.realm)}, service: ${JSON.stringify(t.service)}, issuer: ${JSON.stringify(t.issuer)}, rootcertbundle: ${JSON.stringify(t.rootCertBundle)}}}`,
      );
    }
    await writeFile(join(dir, "config.yml"), `${config.join("\n")}\n`);

    const registry = new LocalRegistry(
      host,
      port,
      dir,
      ownsDir,
      binary,
      options.readyTimeoutMs ?? 15_000,
      options.tls !== undefined,
    );
    try {
      await registry.#serving();
    } catch (error) {
      await registry.stop();
      throw error;
    }
    return registry;
  }

  #launch(): ManagedProcess {
    return new ManagedProcess({
      name: "docker-registry",
      command: this.#binary,
      args: ["serve", join(this.dir, "config.yml")],
      logFile: join(this.dir, "registry.log"),
    });
  }

  #serving(): Promise<void> {
    return this.#process.waitUntil(async () => {
      // Over TLS (perhaps wanting client certificates), listening is what tells it serves.
      if (this.tls) return listening(this.host, this.port);
      const response = await fetch(`${this.url}/v2/`);
      await response.body?.cancel();
      return response.status === 200 || response.status === 401;
    }, this.#readyTimeoutMs);
  }

  /** Stops the registry process and keeps its storage: `resume()` serves the same content again. */
  async suspend(): Promise<void> {
    await this.#process.stop();
  }

  /** Starts the registry again after suspend(), on the same address with the same content. */
  async resume(): Promise<void> {
    if (!this.#process.running) this.#process = this.#launch();
    await this.#serving();
  }

  async stop(): Promise<void> {
    await this.#process.stop();
    if (this.#ownsDir) await rm(this.dir, { recursive: true, force: true });
  }
}

function listening(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}
