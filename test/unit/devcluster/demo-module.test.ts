import assert from "node:assert/strict";
import { test } from "node:test";
import { DEMO_GREETING, demoModule } from "../../../src/devcluster/demo-module.ts";
import { wasmKind } from "../../../src/wasm/binary.ts";

test("the demo module is a valid WASI preview1 module that imports only fd_write and poll_oneoff", () => {
  const bytes = demoModule();
  assert.equal(wasmKind(bytes), "module");
  const module = new WebAssembly.Module(bytes);
  assert.deepEqual(
    WebAssembly.Module.imports(module).map((i) => `${i.module}.${i.name}`),
    ["wasi_snapshot_preview1.fd_write", "wasi_snapshot_preview1.poll_oneoff"],
  );
  assert.deepEqual(
    WebAssembly.Module.exports(module)
      .map((e) => e.name)
      .sort(),
    ["_start", "memory"],
  );
  assert.ok(bytes.length < 400, `${bytes.length} bytes`);
});

test("the demo module writes its greeting to stdout and sleeps for its interval, forever", () => {
  const module = new WebAssembly.Module(demoModule("hi there", 250));
  let memory: WebAssembly.Memory | undefined;
  const written: string[] = [];
  const sleeps: bigint[] = [];
  const stop = new Error("enough");
  const instance = new WebAssembly.Instance(module, {
    wasi_snapshot_preview1: {
      fd_write(fd: number, iovs: number, count: number) {
        const view = new DataView(memory!.buffer);
        assert.equal(fd, 1);
        assert.equal(count, 1);
        const [ptr, len] = [view.getUint32(iovs, true), view.getUint32(iovs + 4, true)];
        written.push(new TextDecoder().decode(new Uint8Array(memory!.buffer, ptr, len)));
        return 0;
      },
      poll_oneoff(subscriptions: number, _events: number, count: number) {
        const view = new DataView(memory!.buffer);
        assert.equal(count, 1);
        assert.equal(view.getUint8(subscriptions + 8), 0, "a clock subscription");
        assert.equal(view.getUint32(subscriptions + 16, true), 1, "on the monotonic clock");
        sleeps.push(view.getBigUint64(subscriptions + 24, true));
        if (sleeps.length === 3) throw stop;
        return 0;
      },
    },
  });
  memory = instance.exports.memory as WebAssembly.Memory;
  assert.throws(() => (instance.exports._start as () => void)(), stop);
  assert.deepEqual(written, ["hi there\n", "hi there\n", "hi there\n"]);
  assert.deepEqual(sleeps, [250_000_000n, 250_000_000n, 250_000_000n]);
  assert.match(DEMO_GREETING, /wasmlet/);
});
