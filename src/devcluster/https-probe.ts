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
  return httpsRequest("GET", url, tls, undefined, timeoutMs);
}

/** POST of a JSON body over HTTPS with explicit trust; resolves to status and body. */
export function httpsPostJson(
  url: string,
  tls: TlsClientFiles,
  body: object,
  timeoutMs = 10_000,
): Promise<{ status: number; body: string }> {
  return httpsRequest("POST", url, tls, JSON.stringify(body), timeoutMs);
}

function httpsRequest(
  method: string,
  url: string,
  tls: TlsClientFiles & { rejectUnauthorized?: boolean },
  body: string | undefined,
  timeoutMs: number,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers = body === undefined ? {} : { "content-type": "application/json" };
    const req = request(url, { ...tls, method, headers, timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.on("error", reject);
    req.end(body);
  });
}
