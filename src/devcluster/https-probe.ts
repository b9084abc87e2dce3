import { request } from "node:https";

export interface TlsClientFiles {
  ca: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
}

/** GET over HTTPS with explicit trust; resolves to status and body. */
export function httpsGet(
  url: string,
  tls: TlsClientFiles & { rejectUnauthorized?: boolean },
  timeoutMs = 5000,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ...tls, timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on("error", reject);
    req.end();
  });
}
