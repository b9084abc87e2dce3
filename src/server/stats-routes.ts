// The read-only kubelet endpoints about what runs here: `/metrics/resource` (metrics-server, so
// `kubectl top` works), `/stats/summary` (older tools), `/pods` (the PodList this node runs) and
// `/metrics` (wasmlet's own Prometheus metrics). Authorization follows the kubelet's path mapping:
// nodes/metrics, nodes/stats, nodes/proxy.
import { renderResourceMetrics } from "../metrics/resource-metrics.ts";
import { buildStatsSummary } from "../metrics/stats-summary.ts";
import type { NodeUsage, PodUsage } from "../metrics/usage.ts";
import type { KubeletRoute } from "./server.ts";

export interface StatsDeps {
  /** A fresh measurement of the node and of every running container. */
  usage(): Promise<{ node: NodeUsage; pods: PodUsage[] }>;
  /** The pods bound to this node, as the API server last sent them. */
  pods(): readonly object[];
  /** wasmlet's own metrics in Prometheus text, and its content type. */
  metrics(): Promise<{ contentType: string; body: string }>;
}

export function statsRoutes(deps: StatsDeps): KubeletRoute[] {
  return [
    {
      method: "GET",
      url: "/metrics/resource",
      handler: async (_request, reply) => {
        let text: string;
        try {
          const { node, pods } = await deps.usage();
          text = renderResourceMetrics(node, pods);
        } catch {
          // metrics-server reads this gauge; without usage there is nothing else to say.
          text = "# TYPE resource_scrape_error gauge\nresource_scrape_error 1\n";
        }
        return reply.type("text/plain; version=0.0.4; charset=utf-8").send(text);
      },
    },
    {
      method: "GET",
      url: "/stats/summary",
      handler: async (_request, reply) => {
        const { node, pods } = await deps.usage();
        return reply.type("application/json").send(buildStatsSummary(node, pods));
      },
    },
    {
      method: "GET",
      url: "/pods",
      handler: async (_request, reply) =>
        reply
          .type("application/json")
          .send({ kind: "PodList", apiVersion: "v1", metadata: {}, items: deps.pods() }),
    },
    {
      method: "GET",
      url: "/metrics",
      handler: async (_request, reply) => {
        const { contentType, body } = await deps.metrics();
        return reply.type(contentType).send(body);
      },
    },
  ];
}
