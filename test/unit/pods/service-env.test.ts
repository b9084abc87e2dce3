// Service variables as the kubelet makes them (pkg/kubelet/envvars and getServiceEnvVarMap).
import assert from "node:assert/strict";
import { test } from "node:test";
import type { V1Service } from "@kubernetes/client-node";
import { resolveEnv } from "../../../src/pods/env.ts";
import { serviceEnv } from "../../../src/pods/service-env.ts";
import { FakeKube, makePod } from "./fakes.ts";

const service = (
  namespace: string,
  name: string,
  clusterIP: string | undefined,
  ports: { name?: string; port: number; protocol?: string }[],
): V1Service => ({ metadata: { namespace, name }, spec: { clusterIP, ports } });

const services = [
  service("default", "kubernetes", "10.96.0.1", [{ name: "https", port: 443 }]),
  service("default", "elsewhere", "10.96.0.7", [{ port: 80 }]),
  service("shop", "cart-db", "10.96.3.4", [
    { name: "sql", port: 5432 },
    { name: "metrics", port: 9187, protocol: "UDP" },
  ]),
  service("shop", "headless", "None", [{ port: 80 }]),
  service("shop", "external", undefined, [{ port: 80 }]),
  service("shop", "v6", "fd00::10", [{ port: 8080 }]),
];

test("the kubernetes service always; the namespace's own with cluster IPs when links are enabled", () => {
  assert.deepEqual(Object.fromEntries(serviceEnv(services, "shop", true)), {
    CART_DB_SERVICE_HOST: "10.96.3.4",
    CART_DB_SERVICE_PORT: "5432",
    CART_DB_SERVICE_PORT_SQL: "5432",
    CART_DB_SERVICE_PORT_METRICS: "9187",
    CART_DB_PORT: "tcp://10.96.3.4:5432",
    CART_DB_PORT_5432_TCP: "tcp://10.96.3.4:5432",
    CART_DB_PORT_5432_TCP_PROTO: "tcp",
    CART_DB_PORT_5432_TCP_PORT: "5432",
    CART_DB_PORT_5432_TCP_ADDR: "10.96.3.4",
    CART_DB_PORT_9187_UDP: "udp://10.96.3.4:9187",
    CART_DB_PORT_9187_UDP_PROTO: "udp",
    CART_DB_PORT_9187_UDP_PORT: "9187",
    CART_DB_PORT_9187_UDP_ADDR: "10.96.3.4",
    KUBERNETES_SERVICE_HOST: "10.96.0.1",
    KUBERNETES_SERVICE_PORT: "443",
    KUBERNETES_SERVICE_PORT_HTTPS: "443",
    KUBERNETES_PORT: "tcp://10.96.0.1:443",
    KUBERNETES_PORT_443_TCP: "tcp://10.96.0.1:443",
    KUBERNETES_PORT_443_TCP_PROTO: "tcp",
    KUBERNETES_PORT_443_TCP_PORT: "443",
    KUBERNETES_PORT_443_TCP_ADDR: "10.96.0.1",
    V6_SERVICE_HOST: "fd00::10",
    V6_SERVICE_PORT: "8080",
    V6_PORT: "tcp://[fd00::10]:8080",
    V6_PORT_8080_TCP: "tcp://[fd00::10]:8080",
    V6_PORT_8080_TCP_PROTO: "tcp",
    V6_PORT_8080_TCP_PORT: "8080",
    V6_PORT_8080_TCP_ADDR: "fd00::10",
  });
  assert.deepEqual(
    [...serviceEnv(services, "shop", false).keys()].filter((k) => !k.startsWith("KUBERNETES_")),
    [],
    "enableServiceLinks: false keeps only the kubernetes service",
  );
  assert.ok(serviceEnv(services, "default", true).has("ELSEWHERE_SERVICE_HOST"));
});

test("the container's variables win and can refer to service variables", async () => {
  const pod = makePod({ metadata: { namespace: "shop" } });
  const { env } = await resolveEnv(
    pod,
    {
      name: "app",
      env: [
        { name: "CART_DB_SERVICE_PORT", value: "1" },
        { name: "DSN", value: "pg://$(CART_DB_SERVICE_HOST):$(CART_DB_SERVICE_PORT)" },
      ],
    },
    {
      source: new FakeKube(),
      downward: { hostIPs: [], podIPs: [], nodeAllocatable: {} },
      services: serviceEnv(services, "shop", true),
    },
  );
  assert.equal(env.get("CART_DB_SERVICE_PORT"), "1");
  assert.equal(env.get("DSN"), "pg://10.96.3.4:1");
  assert.equal(env.get("KUBERNETES_SERVICE_HOST"), "10.96.0.1");
  assert.deepEqual(
    [...env.keys()].slice(0, 2),
    ["CART_DB_SERVICE_PORT", "DSN"],
    "service variables come last",
  );
});
