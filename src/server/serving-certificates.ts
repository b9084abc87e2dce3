// The kubelet API's serving certificate, from one of three places:
// - files (--tls-cert-file/--tls-private-key-file), re-read when they change;
// - the cluster: a `kubernetes.io/kubelet-serving` CertificateSigningRequest for
//   `system:node:<name>` with the node's DNS names and IPs. Someone must approve it; until then
//   wasmlet logs the exact `kubectl certificate approve` command. The issued certificate is kept in
//   the data directory (so a restart needs no new approval) and renewed at 70–90 % of its life;
// - self-signed, only when --allow-self-signed says so (alone, or while a CSR is pending).
// Listeners hear every new certificate, so the server swaps it in without a restart.
import { chmod, mkdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";
import type { Config } from "../config/config.ts";
import { describeError } from "../errors.ts";
import { Backoff, sleep } from "../kube/backoff.ts";
import type { KubeClient } from "../kube/client.ts";
import { awaitCertificate, createCertificateRequest } from "../kube/csr.ts";
import { serverError } from "./errors.ts";
import {
  type CertificateInfo,
  checkKeyPair,
  covers,
  createSelfSigned,
  createServingCsr,
  generateKeys,
  type KeyPair,
  privateKeyPem,
  type ServingIdentity,
} from "./x509.ts";

export const KUBELET_SERVING_SIGNER = "kubernetes.io/kubelet-serving";

export type CertificateMode = "files" | "csr" | "self-signed";

export interface ServingCertificatesOptions {
  config: Pick<
    Config,
    "tlsCertFile" | "tlsPrivateKeyFile" | "tlsBootstrap" | "allowSelfSigned" | "dataDir"
  >;
  identity: ServingIdentity;
  /** Needed for the CSR mode. */
  kube?: KubeClient;
  logger: Logger;
  fileCheckIntervalMs?: number;
  csrPollIntervalMs?: number;
  /** How often the approval command is logged again while a CSR waits. */
  csrReminderIntervalMs?: number;
  /** Lifetime asked of the signer (spec.expirationSeconds, at least 600); the signer's default otherwise. */
  csrExpirationSeconds?: number;
  selfSignedLifetimeMs?: number;
  random?: () => number;
}

export interface CurrentCertificate extends KeyPair {
  source: CertificateMode;
  info: CertificateInfo;
}

type Listener = (certificate: CurrentCertificate) => void;

const MAX_TIMER_MS = 2 ** 31 - 1;

async function sleepLong(ms: number, signal: AbortSignal): Promise<void> {
  let left = ms;
  while (left > 0 && !signal.aborted) {
    const step = Math.min(left, MAX_TIMER_MS);
    await sleep(step, signal);
    left -= step;
  }
}

async function writePrivate(file: string, content: string): Promise<void> {
  const temp = `${file}.tmp`;
  await writeFile(temp, content, { mode: 0o600 });
  await chmod(temp, 0o600);
  await rename(temp, file);
}

export class ServingCertificates {
  readonly mode: CertificateMode;
  readonly #options: ServingCertificatesOptions;
  readonly #log: Logger;
  readonly #listeners: Listener[] = [];
  readonly #stop = new AbortController();
  readonly #random: () => number;
  #current: CurrentCertificate | undefined;
  #issued: CurrentCertificate | undefined;
  #background: Promise<void> | undefined;
  #fileTimer: NodeJS.Timeout | undefined;
  #fileStamp = "";
  /** The name of the CSR being waited on, if any (for logs and tests). */
  pendingRequest: string | undefined;

  constructor(options: ServingCertificatesOptions) {
    this.#options = options;
    this.#log = options.logger.child({ component: "serving-certificate" });
    this.#random = options.random ?? Math.random;
    const { config } = options;
    if (config.tlsCertFile !== undefined && config.tlsPrivateKeyFile !== undefined)
      this.mode = "files";
    else if (config.tlsBootstrap) this.mode = "csr";
    else if (config.allowSelfSigned) this.mode = "self-signed";
    else
      throw serverError(
        "WASMLET_ERR_CERTIFICATE",
        "no source for the serving certificate: give cert files, enable TLS bootstrap or allow self-signed",
      );
    if (this.mode === "csr" && !options.kube)
      throw new TypeError("the CSR mode needs a kube client");
  }

  current(): CurrentCertificate | undefined {
    return this.#current;
  }

  onChange(listener: Listener): void {
    this.#listeners.push(listener);
  }

  /**
   * Loads or makes the first certificate where that is immediate (files, self-signed, a kept
   * CSR-issued one). Fails on unusable cert files. Leaves no certificate when a CSR must first be
   * approved (see start()).
   */
  async load(): Promise<void> {
    switch (this.mode) {
      case "files":
        await this.#loadFiles(true);
        return;
      case "self-signed":
        await this.#selfSign();
        return;
      case "csr":
        await this.#loadKept();
        if (!this.#current && this.#options.config.allowSelfSigned) await this.#selfSign();
        return;
    }
  }

  /**
   * Starts keeping the certificate current in the background: re-reading changed files, or
   * requesting (and later renewing) one from the cluster. Listeners hear every new certificate.
   */
  start(): void {
    if (this.mode === "files" && !this.#fileTimer) {
      this.#fileTimer = setInterval(
        () => void this.#loadFiles(false),
        this.#options.fileCheckIntervalMs ?? 10_000,
      );
      this.#fileTimer.unref();
    }
    if (this.mode === "csr") this.#background ??= this.#renewLoop();
  }

  async close(): Promise<void> {
    this.#stop.abort();
    if (this.#fileTimer) clearInterval(this.#fileTimer);
    await this.#background;
  }

  #set(certificate: CurrentCertificate): void {
    this.#current = certificate;
    this.#log.info(
      {
        source: certificate.source,
        subject: certificate.info.subject,
        issuer: certificate.info.issuer,
        notAfter: certificate.info.notAfter.toISOString(),
        dnsNames: certificate.info.dnsNames,
        ipAddresses: certificate.info.ipAddresses,
      },
      "serving certificate in use",
    );
    for (const listener of this.#listeners) listener(certificate);
  }

  async #loadFiles(initial: boolean): Promise<void> {
    const { tlsCertFile, tlsPrivateKeyFile } = this.#options.config as {
      tlsCertFile: string;
      tlsPrivateKeyFile: string;
    };
    try {
      const [certStat, keyStat] = await Promise.all([stat(tlsCertFile), stat(tlsPrivateKeyFile)]);
      const stamp = `${certStat.mtimeMs}:${certStat.size}:${keyStat.mtimeMs}:${keyStat.size}`;
      if (stamp === this.#fileStamp) return;
      const pair = {
        cert: await readFile(tlsCertFile, "utf8"),
        key: await readFile(tlsPrivateKeyFile, "utf8"),
      };
      const info = checkKeyPair(pair, tlsCertFile);
      this.#fileStamp = stamp;
      this.#set({ ...pair, info, source: "files" });
    } catch (error) {
      const wrapped =
        error instanceof Error && "code" in error && String(error.code).startsWith("WASMLET_ERR_")
          ? error
          : serverError(
              "WASMLET_ERR_CERTIFICATE",
              `cannot read the serving certificate: ${(error as Error).message}`,
              { cause: error },
            );
      if (initial) throw wrapped;
      this.#log.warn(
        { err: describeError(wrapped) },
        "serving certificate files changed but cannot be used; keeping the previous one",
      );
    }
  }

  async #selfSign(): Promise<void> {
    const keys = await generateKeys();
    const cert = await createSelfSigned(
      keys,
      this.#options.identity,
      this.#options.selfSignedLifetimeMs ?? 365 * 86_400_000,
    );
    const pair = { cert, key: await privateKeyPem(keys) };
    this.#set({
      ...pair,
      info: checkKeyPair(pair, "self-signed certificate"),
      source: "self-signed",
    });
    this.#log.warn(
      "serving a self-signed certificate (--allow-self-signed): clients cannot verify the kubelet API",
    );
  }

  get #keptFiles(): { cert: string; key: string } {
    const dir = join(this.#options.config.dataDir, "pki");
    return { cert: join(dir, "kubelet-server.crt"), key: join(dir, "kubelet-server.key") };
  }

  async #loadKept(): Promise<void> {
    const files = this.#keptFiles;
    let pair: KeyPair;
    try {
      pair = { cert: await readFile(files.cert, "utf8"), key: await readFile(files.key, "utf8") };
    } catch {
      return;
    }
    try {
      const info = checkKeyPair(pair, files.cert);
      if (info.notAfter.getTime() <= Date.now()) {
        this.#log.info(
          { file: files.cert },
          "the kept serving certificate has expired; requesting a new one",
        );
        return;
      }
      if (!covers(info, this.#options.identity)) {
        this.#log.info(
          { file: files.cert },
          "the kept serving certificate does not name this node's current addresses; requesting a new one",
        );
        return;
      }
      this.#issued = { ...pair, info, source: "csr" };
      this.#set(this.#issued);
    } catch (error) {
      this.#log.warn(
        { err: describeError(error) },
        "the kept serving certificate is unusable; requesting a new one",
      );
    }
  }

  /** When to renew: a random point between 70 % and 90 % of the certificate's life. */
  renewalTime(info: CertificateInfo): number {
    const start = info.notBefore.getTime();
    const life = info.notAfter.getTime() - start;
    return start + life * (0.7 + 0.2 * this.#random());
  }

  async #renewLoop(): Promise<void> {
    const backoff = new Backoff({ initialMs: 5_000, maxMs: 300_000 });
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      if (this.#issued) {
        const wait = this.renewalTime(this.#issued.info) - Date.now();
        if (wait > 0) {
          this.#log.debug(
            { renewAt: new Date(Date.now() + wait).toISOString() },
            "serving certificate renewal scheduled",
          );
          await sleepLong(wait, signal);
          if (signal.aborted) return;
        }
      }
      try {
        const certificate = await this.#request(signal);
        if (!certificate) return;
        await this.#keep(certificate);
        this.#issued = certificate;
        this.#set(certificate);
        backoff.reset();
      } catch (error) {
        if (signal.aborted) return;
        const delay = backoff.next();
        this.#log.error(
          { err: describeError(error), retryInMs: delay },
          "could not obtain a serving certificate from the cluster",
        );
        await sleep(delay, signal);
      }
    }
  }

  async #keep(certificate: CurrentCertificate): Promise<void> {
    const files = this.#keptFiles;
    try {
      await mkdir(join(this.#options.config.dataDir, "pki"), { recursive: true, mode: 0o700 });
      await writePrivate(files.key, certificate.key);
      await writePrivate(files.cert, certificate.cert);
    } catch (error) {
      this.#log.warn(
        { err: (error as Error).message },
        "could not keep the serving certificate in the data directory",
      );
    }
  }

  /** Creates a CSR and waits for its certificate; undefined when stopped meanwhile. */
  async #request(signal: AbortSignal): Promise<CurrentCertificate | undefined> {
    const kube = this.#options.kube as KubeClient;
    const identity = this.#options.identity;
    const keys = await generateKeys();
    const name = await createCertificateRequest(kube, {
      csrPem: await createServingCsr(keys, identity),
      generateName: `csr-${identity.nodeName.slice(0, 200)}-`,
      signerName: KUBELET_SERVING_SIGNER,
      usages: ["digital signature", "server auth"],
      ...(this.#options.csrExpirationSeconds
        ? { expirationSeconds: this.#options.csrExpirationSeconds }
        : {}),
    });
    this.pendingRequest = name;
    const approve = `kubectl certificate approve ${name}`;
    this.#log.warn(
      { csr: name, signer: KUBELET_SERVING_SIGNER, approve },
      `the kubelet API waits for its serving certificate; approve the request with: ${approve}`,
    );
    const reminder = this.#options.csrReminderIntervalMs ?? 60_000;
    let lastReminder = Date.now();
    const key = await privateKeyPem(keys);
    try {
      const cert = await awaitCertificate(kube, name, {
        signal,
        pollMs: this.#options.csrPollIntervalMs ?? 2_000,
        onReadError: (error) =>
          this.#log.warn(
            { csr: name, err: describeError(error) },
            "cannot check the serving certificate request; retrying",
          ),
        onPending: () => {
          if (Date.now() - lastReminder < reminder) return;
          lastReminder = Date.now();
          this.#log.warn(
            { csr: name, approve },
            `still waiting for approval of the serving certificate: ${approve}`,
          );
        },
      });
      if (cert === undefined) return undefined;
      const pair = { cert, key };
      const info = checkKeyPair(pair, `the certificate issued for ${name}`);
      this.#log.info({ csr: name }, "serving certificate issued");
      return { ...pair, info, source: "csr" };
    } finally {
      this.pendingRequest = undefined;
    }
  }
}
