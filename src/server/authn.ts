// Who is calling the kubelet API: a client certificate the TLS layer verified against the
// cluster's client CA (CN is the user, O the groups, as the API server reads them), or else a
// bearer token the API server vouches for through a TokenReview. Reviews are cached briefly, by a
// hash of the token, so a burst of requests costs one review.
//
// Without a client CA no certificate names anyone: bearer tokens only. (A TLS server given no CA
// verifies client certificates against Node's default roots and NODE_EXTRA_CA_CERTS — any public
// or system CA — so the TLS layer's "authorized" alone must not be taken for a cluster identity.)
import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { TLSSocket } from "node:tls";
import type { V1TokenReview } from "@kubernetes/client-node";
import { apiError } from "../kube/api-error.ts";
import type { KubeClient } from "../kube/client.ts";
import { TtlCache } from "./ttl-cache.ts";

export interface UserInfo {
  username: string;
  uid?: string;
  groups: string[];
  extra?: Record<string, string[]>;
  /** How the user was recognised. */
  via: "x509" | "token";
}

export interface Authenticator {
  /** The request's user, or undefined when it has no valid credentials (→ 401). */
  authenticate(request: IncomingMessage): Promise<UserInfo | undefined>;
}

function asList(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

/** The user a verified client certificate names, or undefined when there is none. */
export function certificateUser(socket: unknown): UserInfo | undefined {
  const tls = socket as Partial<TLSSocket>;
  if (typeof tls.getPeerCertificate !== "function" || tls.authorized !== true) return undefined;
  const cert = tls.getPeerCertificate();
  const cn = asList(cert?.subject?.CN)[0];
  if (!cn) return undefined;
  return { username: cn, groups: asList(cert.subject.O), via: "x509" };
}

export function bearerToken(request: IncomingMessage): string | undefined {
  const header = request.headers.authorization;
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

export interface TokenReviewer {
  review(token: string): Promise<V1TokenReview>;
}

export function kubeTokenReviewer(kube: KubeClient): TokenReviewer {
  return {
    async review(token) {
      try {
        return await kube.authentication.createTokenReview({
          body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token } },
        });
      } catch (error) {
        throw apiError(error, "reviewing a bearer token (TokenReview)");
      }
    },
  };
}

export interface RequestAuthenticatorOptions {
  tokens: TokenReviewer;
  /**
   * Whether the TLS layer verifies client certificates against a configured client CA (and
   * nothing else): only then does a verified certificate name the user. Off, certificates are
   * ignored and only bearer tokens authenticate.
   */
  clientCertificates: boolean;
  /** How long a successful review is trusted (default 2 min, like the kubelet). */
  successTtlMs?: number;
  /** How long a rejected token stays rejected without asking again (default 10 s). */
  failureTtlMs?: number;
}

export class RequestAuthenticator implements Authenticator {
  readonly #tokens: TokenReviewer;
  readonly #clientCertificates: boolean;
  readonly #cache = new TtlCache<UserInfo | null>();
  readonly #successTtl: number;
  readonly #failureTtl: number;

  constructor(options: RequestAuthenticatorOptions) {
    this.#tokens = options.tokens;
    this.#clientCertificates = options.clientCertificates === true;
    this.#successTtl = options.successTtlMs ?? 120_000;
    this.#failureTtl = options.failureTtlMs ?? 10_000;
  }

  async authenticate(request: IncomingMessage): Promise<UserInfo | undefined> {
    const fromCert = this.#clientCertificates ? certificateUser(request.socket) : undefined;
    if (fromCert) return fromCert;
    const token = bearerToken(request);
    if (!token) return undefined;
    const key = createHash("sha256").update(token).digest("hex");
    const cached = this.#cache.get(key);
    if (cached !== undefined) return cached ?? undefined;
    const review = await this.#tokens.review(token);
    const user = review.status?.authenticated ? review.status.user : undefined;
    if (!user?.username) {
      this.#cache.set(key, null, this.#failureTtl);
      return undefined;
    }
    const info: UserInfo = {
      username: user.username,
      uid: user.uid,
      groups: user.groups ?? [],
      extra: user.extra,
      via: "token",
    };
    this.#cache.set(key, info, this.#successTtl);
    return info;
  }
}
