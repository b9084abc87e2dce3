// /healthz, as the kubelet serves it: `ok` when every check passes; otherwise 500 with one line per
// check (`[+]name ok` / `[-]name failed: why`). `/healthz/<name>` runs one check, `?verbose` lists
// them all. Parts of wasmlet add their own checks (the node adds its heartbeat).
import type { FastifyReply, FastifyRequest } from "fastify";
import { serverError } from "./errors.ts";
import type { KubeletRoute } from "./server.ts";

/** Resolves to undefined when healthy, or to why not. */
export type HealthCheck = () => string | undefined | Promise<string | undefined>;

export class HealthChecks {
  readonly #checks = new Map<string, HealthCheck>([["ping", () => undefined]]);

  add(name: string, check: HealthCheck): void {
    if (this.#checks.has(name))
      throw serverError("WASMLET_ERR_HEALTH_CHECK", `health check ${name} is registered twice`);
    this.#checks.set(name, check);
  }

  names(): string[] {
    return [...this.#checks.keys()];
  }

  async run(only?: string): Promise<Array<{ name: string; problem: string | undefined }>> {
    const selected = [...this.#checks].filter(([name]) => only === undefined || name === only);
    return Promise.all(
      selected.map(async ([name, check]) => {
        try {
          return { name, problem: await check() };
        } catch (error) {
          return { name, problem: error instanceof Error ? error.message : String(error) };
        }
      }),
    );
  }
}

function answer(
  results: Array<{ name: string; problem: string | undefined }>,
  verbose: boolean,
  reply: FastifyReply,
) {
  const healthy = results.every((r) => r.problem === undefined);
  reply.type("text/plain; charset=utf-8").code(healthy ? 200 : 500);
  if (healthy && !verbose) return "ok";
  const lines = results.map((r) =>
    r.problem === undefined ? `[+]${r.name} ok` : `[-]${r.name} failed: ${r.problem}`,
  );
  lines.push(healthy ? "healthz check passed" : "healthz check failed");
  return `${lines.join("\n")}\n`;
}

export function healthzRoutes(checks: HealthChecks): KubeletRoute[] {
  return [
    {
      method: "GET",
      url: "/healthz",
      handler: async (request: FastifyRequest, reply) =>
        answer(await checks.run(), "verbose" in (request.query as object), reply),
    },
    {
      method: "GET",
      url: "/healthz/:check",
      handler: async (request: FastifyRequest, reply) => {
        const { check } = request.params as { check: string };
        const results = await checks.run(check);
        if (results.length === 0)
          return reply
            .code(404)
            .type("text/plain; charset=utf-8")
            .send(`no health check named ${check}\n`);
        return answer(results, false, reply);
      },
    },
  ];
}
