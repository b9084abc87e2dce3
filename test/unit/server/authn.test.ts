import assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import { describe, it } from "node:test";
import type { V1TokenReview } from "@kubernetes/client-node";
import { RequestAuthenticator } from "../../../src/server/authn.ts";

/** A request over TLS whose peer presented a certificate the TLS layer verified (authorized). */
function verifiedPeer(token?: string): IncomingMessage {
  return {
    headers: token ? { authorization: `Bearer ${token}` } : {},
    socket: {
      authorized: true,
      getPeerCertificate: () => ({ subject: { CN: "admin", O: ["system:masters"] } }),
    },
  } as unknown as IncomingMessage;
}

const tokens = {
  review: async (token: string): Promise<V1TokenReview> => ({
    spec: { token },
    status:
      token === "good-token"
        ? { authenticated: true, user: { username: "robot", groups: ["robots"] } }
        : { authenticated: false },
  }),
};

describe("RequestAuthenticator", () => {
  it("takes a verified client certificate's CN and O when a client CA verifies them", async () => {
    const authn = new RequestAuthenticator({ tokens, clientCertificates: true });
    assert.deepEqual(await authn.authenticate(verifiedPeer()), {
      username: "admin",
      groups: ["system:masters"],
      via: "x509",
    });
  });

  it("without a client CA, no certificate authenticates, however the TLS layer judged it", async () => {
    // With no `ca`, Node verifies client certificates against its default roots and
    // NODE_EXTRA_CA_CERTS: `authorized` then says nothing about the cluster.
    const authn = new RequestAuthenticator({ tokens, clientCertificates: false });
    assert.equal(await authn.authenticate(verifiedPeer()), undefined);
    assert.equal(await authn.authenticate(verifiedPeer("bad-token")), undefined);
    assert.deepEqual(await authn.authenticate(verifiedPeer("good-token")), {
      username: "robot",
      uid: undefined,
      groups: ["robots"],
      extra: undefined,
      via: "token",
    });
    const unset = { tokens } as unknown as ConstructorParameters<typeof RequestAuthenticator>[0];
    assert.equal(
      await new RequestAuthenticator(unset).authenticate(verifiedPeer()),
      undefined,
      "certificates are trusted only when asked to",
    );
  });
});
