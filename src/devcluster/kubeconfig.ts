import { readFile, writeFile } from "node:fs/promises";
import { stringify } from "yaml";

export interface KubeconfigOptions {
  server: string;
  caFile: string;
  user: { certFile: string; keyFile: string } | { token: string };
  clusterName?: string;
  userName?: string;
  /** Embed certificate data instead of naming files (for kubeconfigs handed to users). */
  embed?: boolean;
}

const b64 = async (file: string) => (await readFile(file)).toString("base64");

export async function writeKubeconfig(path: string, options: KubeconfigOptions): Promise<string> {
  const cluster = options.clusterName ?? "wasmlet-dev";
  const userName = options.userName ?? "admin";
  const user =
    "token" in options.user
      ? { token: options.user.token }
      : options.embed
        ? {
            "client-certificate-data": await b64(options.user.certFile),
            "client-key-data": await b64(options.user.keyFile),
          }
        : { "client-certificate": options.user.certFile, "client-key": options.user.keyFile };
  const config = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [
      {
        name: cluster,
        cluster: {
          server: options.server,
          ...(options.embed
            ? { "certificate-authority-data": await b64(options.caFile) }
            : { "certificate-authority": options.caFile }),
        },
      },
    ],
    users: [{ name: userName, user }],
    contexts: [{ name: cluster, context: { cluster, user: userName } }],
    "current-context": cluster,
  };
  await writeFile(path, stringify(config), { mode: 0o600 });
  return path;
}
