import { createWriteStream } from "node:fs";

// A session over the inspector of a Node process started with --inspect on loopback.
async function session(inspectPort: number) {
  const targets = (await (await fetch(`http://127.0.0.1:${inspectPort}/json/list`)).json()) as {
    webSocketDebuggerUrl: string;
  }[];
  const ws = new WebSocket(targets[0]!.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  const pending = new Map<number, (result: unknown) => void>();
  const listeners = new Map<string, (params: unknown) => void>();
  ws.onmessage = (event) => {
    const message = JSON.parse(String(event.data)) as {
      id?: number;
      result?: unknown;
      method?: string;
      params?: unknown;
    };
    if (message.id !== undefined) {
      pending.get(message.id)?.(message.result);
      pending.delete(message.id);
    } else if (message.method !== undefined) listeners.get(message.method)?.(message.params);
  };
  let id = 0;
  const call = (method: string, params: object = {}) =>
    new Promise<unknown>((resolve) => {
      pending.set(++id, resolve);
      ws.send(JSON.stringify({ id, method, params }));
    });
  return {
    call,
    on: (method: string, f: (params: unknown) => void) => listeners.set(method, f),
    close: () => ws.close(),
  };
}

// A full GC of a Node process started with --inspect on loopback, over its inspector; returns the
// heap then in use: what the process really keeps (a heap figure read without a GC includes garbage).
export async function forceGc(inspectPort: number): Promise<number> {
  const s = await session(inspectPort);
  await s.call("HeapProfiler.collectGarbage");
  const usage = (await s.call("Runtime.getHeapUsage")) as { usedSize?: number };
  s.close();
  return usage.usedSize ?? Number.NaN;
}

// Writes a V8 heap snapshot of the process to path (for leak hunts: compare two with a script).
export async function takeHeapSnapshot(inspectPort: number, path: string): Promise<void> {
  const s = await session(inspectPort);
  const out = createWriteStream(path);
  s.on("HeapProfiler.addHeapSnapshotChunk", (params) => {
    out.write((params as { chunk: string }).chunk);
  });
  await s.call("HeapProfiler.enable");
  await s.call("HeapProfiler.collectGarbage");
  await s.call("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
  await new Promise<void>((resolve, reject) =>
    out.end((err?: Error | null) => (err ? reject(err) : resolve())),
  );
  await s.call("HeapProfiler.disable");
  s.close();
}
