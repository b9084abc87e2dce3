// A small Docker-registry token server (the Docker Hub / GHCR bearer flow) for tests: GET
// /token?service=…&scope=repository:NAME:ACTIONS with optional Basic credentials answers a JWT
// signed RS256 with an `x5c` header, which docker-registry (`auth.token`) verifies against
// `rootCertBundle`. Known users get the actions they ask for; anonymous callers get `pull` when
// `anonymousPull` is set, nothing otherwise (an empty grant, like Docker Hub for private repos).
import { createPrivateKey, createSign, webcrypto } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const algorithm = {
  name: "RSASSA-PKCS1-v1_5",
  modulusLength: 2048,
  publicExponent: new Uint8Array([1, 0, 1]),
  hash: "SHA-256",
};

export interface TokenServerOptions {
  /** Directory for the root cert bundle file. */
  dir: string;
  users: Record<string, string>;
  anonymousPull?: boolean;
  service?: string;
  issuer?: string;
  /** Token lifetime in seconds. Default 300. */
  expiresIn?: number;
}

export interface TokenRequest {
  account: string | undefined;
  scopes: string[];
  status: number;
}

function b64url(value: string | Buffer): string {
  return Buffer.from(value).toString("base64url");
}

export class TokenServer {
  readonly service: string;
  readonly issuer: string;
  readonly rootCertBundle: string;
  /** Every token request, in order. */
  readonly requests: TokenRequest[];
  readonly #server: Server;
  readonly #port: number;

  private constructor(
    server: Server,
    port: number,
    service: string,
    issuer: string,
    rootCertBundle: string,
    requests: TokenRequest[],
  ) {
    this.requests = requests;
    this.#server = server;
    this.#port = port;
    this.service = service;
    this.issuer = issuer;
    this.rootCertBundle = rootCertBundle;
  }

  get realm(): string {
    return `http://127.0.0.1:${this.#port}/token`;
  }

  /** What LocalRegistry.start({tokenAuth}) needs. */
  get registryAuth(): { realm: string; service: string; issuer: string; rootCertBundle: string } {
    return {
      realm: this.realm,
      service: this.service,
      issuer: this.issuer,
      rootCertBundle: this.rootCertBundle,
    };
  }

  static async start(options: TokenServerOptions): Promise<TokenServer> {
    const service = options.service ?? "wasmlet-test-registry";
    const issuer = options.issuer ?? "wasmlet-test-token-server";
    const keys = (await webcrypto.subtle.generateKey(algorithm, true, [
      "sign",
      "verify",
    ])) as CryptoKeyPair;
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: "01",
      name: "CN=wasmlet test token signer",
      notBefore: new Date(Date.now() - 3_600_000),
      notAfter: new Date(Date.now() + 86_400_000),
      keys,
      signingAlgorithm: algorithm,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign,
          true,
        ),
      ],
    });
    const rootCertBundle = join(options.dir, "token-root.pem");
    await writeFile(rootCertBundle, cert.toString("pem"));
    const pkcs8 = Buffer.from(
      await webcrypto.subtle.exportKey("pkcs8", keys.privateKey as webcrypto.CryptoKey),
    );
    const privateKey = createPrivateKey({ key: pkcs8, format: "der", type: "pkcs8" });
    const x5c = [Buffer.from(cert.rawData).toString("base64")];
    const expiresIn = options.expiresIn ?? 300;
    const requests: TokenRequest[] = [];

    const server = createServer((req, res) => {
      const url = new URL(req.url ?? "/", "http://localhost");
      if (url.pathname !== "/token") {
        res.writeHead(404).end();
        return;
      }
      let account: string | undefined;
      const header = req.headers.authorization;
      if (header?.startsWith("Basic ")) {
        const decoded = Buffer.from(header.slice(6), "base64").toString();
        const colon = decoded.indexOf(":");
        const user = decoded.slice(0, colon);
        if (options.users[user] === undefined || options.users[user] !== decoded.slice(colon + 1)) {
          requests.push({ account: user, scopes: url.searchParams.getAll("scope"), status: 401 });
          res
            .writeHead(401, { "content-type": "application/json" })
            .end(JSON.stringify({ details: "incorrect username or password" }));
          return;
        }
        account = user;
      }
      const scopes = url.searchParams.getAll("scope");
      const access = scopes.flatMap((scope) => {
        const [type, name, actions] = scope.split(":");
        if (type !== "repository" || !name || !actions) return [];
        const wanted = actions.split(",");
        const granted = account
          ? wanted
          : options.anonymousPull
            ? wanted.filter((a) => a === "pull")
            : [];
        return granted.length > 0 ? [{ type, name, actions: granted }] : [];
      });
      const now = Math.floor(Date.now() / 1000);
      const jwtHeader = { typ: "JWT", alg: "RS256", x5c };
      const claims = {
        iss: issuer,
        sub: account ?? "",
        aud: url.searchParams.get("service") ?? service,
        exp: now + expiresIn,
        nbf: now - 10,
        iat: now,
        jti: Math.random().toString(36).slice(2),
        access,
      };
      const input = `${b64url(JSON.stringify(jwtHeader))}.${b64url(JSON.stringify(claims))}`;
      const signature = createSign("RSA-SHA256").update(input).sign(privateKey);
      const token = `${input}.${b64url(signature)}`;
      requests.push({ account, scopes, status: 200 });
      res.writeHead(200, { "content-type": "application/json" }).end(
        JSON.stringify({
          token,
          access_token: token,
          expires_in: expiresIn,
          issued_at: new Date().toISOString(),
        }),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    const port = typeof address === "object" && address ? address.port : 0;
    return new TokenServer(server, port, service, issuer, rootCertBundle, requests);
  }

  async stop(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
