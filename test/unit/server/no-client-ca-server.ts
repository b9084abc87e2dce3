// Started by no-client-ca.test.ts as a child process, with NODE_EXTRA_CA_CERTS naming a CA the
// test controls: the kubelet API built as a node builds it (app.ts's kubeletServer) without a
// client CA, against a fake API server that authorizes everyone and knows one token. Prints
// {"port", "extraCAs"} on a line, and serves until its stdin ends.
import { join } from "node:path";
import { getCACertificates } from "node:tls";
import type { V1SubjectAccessReview, V1TokenReview } from "@kubernetes/client-node";
import { pino } from "pino";
import { kubeletServer } from "../../../src/app/app.ts";
import type { Config } from "../../../src/config/config.ts";
import type { KubeClient } from "../../../src/kube/client.ts";
import { ServingCertificates } from "../../../src/server/serving-certificates.ts";

const dir = process.argv[2] as string;
const logger = pino({ level: "silent" });
const kube = {
  authentication: {
    createTokenReview: async ({ body }: { body: V1TokenReview }): Promise<V1TokenReview> => ({
      ...body,
      status:
        body.spec.token === "good-token"
          ? { authenticated: true, user: { username: "robot", groups: ["robots"] } }
          : { authenticated: false },
    }),
  },
  authorization: {
    createSubjectAccessReview: async ({ body }: { body: V1SubjectAccessReview }) => ({
      ...body,
      status: { allowed: true },
    }),
  },
} as unknown as KubeClient;
const certificates = new ServingCertificates({
  config: {
    tlsCertFile: join(dir, "tls.crt"),
    tlsPrivateKeyFile: join(dir, "tls.key"),
    tlsBootstrap: false,
    allowSelfSigned: false,
    dataDir: dir,
  },
  identity: { nodeName: "n1", dnsNames: ["n1"], ipAddresses: ["127.0.0.1"] },
  logger,
});
await certificates.load();
const server = kubeletServer({
  config: { address: "127.0.0.1", port: 0, nodeName: "n1" } as Config,
  logger,
  kube,
  clientCA: undefined,
  certificates,
});
server.route({
  method: "GET",
  url: "/whoami",
  handler: (_request, _reply, context) => context.user,
});
await server.start();
process.stdout.write(
  `${JSON.stringify({ port: server.port, extraCAs: getCACertificates("extra").length })}\n`,
);
process.stdin.on("end", () => {
  void server.close().then(() => certificates.close());
});
process.stdin.resume();
