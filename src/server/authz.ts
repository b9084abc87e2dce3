// What a user may do on the kubelet API, decided by the API server through SubjectAccessReviews
// on the Node object, exactly as the kubelet asks: resource `nodes`, the node's name, a
// subresource from the path (stats, metrics, log, healthz, … and proxy for everything else) and a
// verb from the HTTP method (exec, attach and portForward routes say `create` themselves).
// Answers are cached: allowed for 5 minutes, denied for 30 seconds (the kubelet's defaults).
import type { V1SubjectAccessReview } from "@kubernetes/client-node";
import { apiError } from "../kube/api-error.ts";
import type { KubeClient } from "../kube/client.ts";
import type { UserInfo } from "./authn.ts";
import { TtlCache } from "./ttl-cache.ts";

export type NodeSubresource =
  | "proxy"
  | "log"
  | "stats"
  | "metrics"
  | "healthz"
  | "configz"
  | "pods"
  | "checkpoint"
  | "spec";

export type Verb = "get" | "list" | "watch" | "create" | "update" | "patch" | "delete";

export interface NodeAccess {
  verb: Verb;
  /** Tried in order; the first one allowed wins (fine-grained first, then `proxy`, like the kubelet). */
  subresources: readonly NodeSubresource[];
}

const PREFIXES: ReadonlyArray<readonly [string, readonly NodeSubresource[]]> = [
  ["/stats", ["stats"]],
  ["/metrics", ["metrics"]],
  ["/logs", ["log"]],
  ["/checkpoint", ["checkpoint"]],
  ["/spec", ["spec"]],
  ["/healthz", ["healthz", "proxy"]],
  ["/configz", ["configz", "proxy"]],
  ["/pods", ["pods", "proxy"]],
  ["/runningpods", ["pods", "proxy"]],
];

function isSubpath(path: string, prefix: string): boolean {
  return path === prefix || path.startsWith(`${prefix}/`);
}

/** The kubelet's mapping from a request path to the `nodes` subresources that guard it. */
export function subresourcesForPath(path: string): readonly NodeSubresource[] {
  const clean = path.split("?")[0] ?? "";
  for (const [prefix, subresources] of PREFIXES) if (isSubpath(clean, prefix)) return subresources;
  return ["proxy"];
}

export function verbForMethod(method: string): Verb {
  switch (method.toUpperCase()) {
    case "POST":
      return "create";
    case "PUT":
      return "update";
    case "PATCH":
      return "patch";
    case "DELETE":
      return "delete";
    default:
      return "get";
  }
}

export interface Authorizer {
  /** The first subresource the user may use with this verb, or undefined when none (→ 403). */
  authorize(user: UserInfo, access: NodeAccess): Promise<NodeSubresource | undefined>;
}

export interface AccessReviewer {
  review(review: V1SubjectAccessReview): Promise<boolean>;
}

export function kubeAccessReviewer(kube: KubeClient): AccessReviewer {
  return {
    async review(body) {
      try {
        const result = await kube.authorization.createSubjectAccessReview({ body });
        return result.status?.allowed === true && result.status.denied !== true;
      } catch (error) {
        throw apiError(error, "asking the API server for authorization (SubjectAccessReview)");
      }
    },
  };
}

export interface NodeAuthorizerOptions {
  nodeName: string;
  reviewer: AccessReviewer;
  allowedTtlMs?: number;
  deniedTtlMs?: number;
}

export class NodeAuthorizer implements Authorizer {
  readonly #options: NodeAuthorizerOptions;
  readonly #cache = new TtlCache<boolean>();

  constructor(options: NodeAuthorizerOptions) {
    this.#options = options;
  }

  async authorize(user: UserInfo, access: NodeAccess): Promise<NodeSubresource | undefined> {
    for (const subresource of access.subresources) {
      if (await this.#allowed(user, access.verb, subresource)) return subresource;
    }
    return undefined;
  }

  async #allowed(user: UserInfo, verb: Verb, subresource: NodeSubresource): Promise<boolean> {
    const key = JSON.stringify([
      user.username,
      user.uid,
      user.groups,
      user.extra,
      verb,
      subresource,
    ]);
    const cached = this.#cache.get(key);
    if (cached !== undefined) return cached;
    const allowed = await this.#options.reviewer.review({
      apiVersion: "authorization.k8s.io/v1",
      kind: "SubjectAccessReview",
      spec: {
        user: user.username,
        uid: user.uid,
        groups: user.groups,
        extra: user.extra,
        resourceAttributes: {
          verb,
          group: "",
          version: "v1",
          resource: "nodes",
          subresource,
          name: this.#options.nodeName,
        },
      },
    });
    this.#cache.set(
      key,
      allowed,
      allowed ? (this.#options.allowedTtlMs ?? 300_000) : (this.#options.deniedTtlMs ?? 30_000),
    );
    return allowed;
  }
}
