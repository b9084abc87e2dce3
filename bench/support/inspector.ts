// A full GC of a Node process started with --inspect on loopback, over its inspector; returns the
// heap then in use: what the process really keeps (a heap figure read without a GC includes garbage).
export async function forceGc(inspectPort: number): Promise<number> {
  const targets = (await (await fetch(`http://127.0.0.1:${inspectPort}/json/list`)).json()) as {
    webSocketDebuggerUrl: string;
  }[];
  const ws = new WebSocket(targets[0]!.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  const pending = new Map<number, (result: unknown) => void>();
  ws.onmessage = (event) => {
    const message = JSON.parse(String(event.data)) as { id?: number; result?: unknown };
    if (message.id !== undefined) pending.get(message.id)?.(message.result);
  };
  let id = 0;
  const call = (method: string) =>
    new Promise<unknown>((resolve) => {
      pending.set(++id, resolve);
      ws.send(JSON.stringify({ id, method, params: {} }));
    });
  await call("HeapProfiler.collectGarbage");
  const usage = (await call("Runtime.getHeapUsage")) as { usedSize?: number };
  ws.close();
  return usage.usedSize ?? Number.NaN;
}
