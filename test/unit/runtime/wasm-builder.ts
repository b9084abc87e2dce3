// A tiny WebAssembly module assembler for tests that need exact control over what a guest does
// (raw WASI calls with hostile arguments, traps in named functions, modules that are wrong on
// purpose). Only what the tests use: function imports, one memory, data, functions, exports and
// the function-name section.

export type ValType = "i32" | "i64";
const TYPE: Record<ValType, number> = { i32: 0x7f, i64: 0x7e };

export function uleb(value: number | bigint): number[] {
  let v = BigInt(value);
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) byte |= 0x80;
    out.push(byte);
  } while (v !== 0n);
  return out;
}

export function sleb(value: number | bigint): number[] {
  let v = BigInt(value);
  const out: number[] = [];
  for (;;) {
    const byte = Number(v & 0x7fn);
    v >>= 7n;
    const done = (v === 0n && (byte & 0x40) === 0) || (v === -1n && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

const utf8 = (text: string) => [...new TextEncoder().encode(text)];
const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];
const name = (text: string) => {
  const bytes = utf8(text);
  return [...uleb(bytes.length), ...bytes];
};
const section = (id: number, content: number[]) => [id, ...uleb(content.length), ...content];

/** Instruction helpers. */
export const op = {
  unreachable: [0x00],
  drop: [0x1a],
  end: [0x0b],
  call: (index: number) => [0x10, ...uleb(index)],
  i32: (value: number) => [0x41, ...sleb(value | 0)],
  i64: (value: number | bigint) => [0x42, ...sleb(BigInt.asIntN(64, BigInt(value)))],
  localGet: (index: number) => [0x20, ...uleb(index)],
  i32Load: (offset = 0) => [0x28, 0x02, ...uleb(offset)],
  i32Store: (offset = 0) => [0x36, 0x02, ...uleb(offset)],
  i32Add: [0x6a],
  /** loop … br 0 … end */
  loop: (body: number[]) => [0x03, 0x40, ...body, 0x0c, 0x00, 0x0b],
};

interface Func {
  name: string;
  type: number;
  locals: ValType[];
  body: number[];
}

export class ModuleBuilder {
  readonly #types: { params: ValType[]; results: ValType[] }[] = [];
  readonly #imports: { module: string; name: string; type: number }[] = [];
  readonly #functions: Func[] = [];
  readonly #exports: { name: string; kind: number; index: number }[] = [];
  readonly #data: { offset: number; bytes: number[] }[] = [];
  #memory: { min: number; max?: number } | undefined;

  #type(params: ValType[], results: ValType[]): number {
    const key = JSON.stringify([params, results]);
    const at = this.#types.findIndex((t) => JSON.stringify([t.params, t.results]) === key);
    if (at >= 0) return at;
    this.#types.push({ params, results });
    return this.#types.length - 1;
  }

  /** Imports a function; returns its function index (imports come first). */
  importFunction(module: string, field: string, params: ValType[], results: ValType[]): number {
    if (this.#functions.length > 0) throw new Error("declare imports before functions");
    this.#imports.push({ module, name: field, type: this.#type(params, results) });
    return this.#imports.length - 1;
  }

  memory(minPages: number, maxPages?: number, exportName: string | undefined = "memory"): this {
    this.#memory = { min: minPages, max: maxPages };
    if (exportName) this.#exports.push({ name: exportName, kind: 2, index: 0 });
    return this;
  }

  data(offset: number, bytes: Uint8Array | number[] | string): this {
    this.#data.push({ offset, bytes: typeof bytes === "string" ? utf8(bytes) : [...bytes] });
    return this;
  }

  /** Adds a function (body without the final `end`); returns its index. */
  function(
    fnName: string,
    params: ValType[],
    results: ValType[],
    body: number[],
    locals: ValType[] = [],
  ): number {
    this.#functions.push({ name: fnName, type: this.#type(params, results), locals, body });
    return this.#imports.length + this.#functions.length - 1;
  }

  exportFunction(exportName: string, index: number): this {
    this.#exports.push({ name: exportName, kind: 0, index });
    return this;
  }

  bytes(): Uint8Array {
    const out: number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
    out.push(
      ...section(
        1,
        vec(
          this.#types.map((t) => [
            0x60,
            ...vec(t.params.map((p) => [TYPE[p]])),
            ...vec(t.results.map((r) => [TYPE[r]])),
          ]),
        ),
      ),
    );
    if (this.#imports.length) {
      out.push(
        ...section(
          2,
          vec(
            this.#imports.map((i) => [...name(i.module), ...name(i.name), 0x00, ...uleb(i.type)]),
          ),
        ),
      );
    }
    if (this.#functions.length)
      out.push(...section(3, vec(this.#functions.map((f) => uleb(f.type)))));
    if (this.#memory) {
      const { min, max } = this.#memory;
      out.push(
        ...section(
          5,
          vec([max === undefined ? [0x00, ...uleb(min)] : [0x01, ...uleb(min), ...uleb(max)]]),
        ),
      );
    }
    if (this.#exports.length) {
      out.push(
        ...section(7, vec(this.#exports.map((e) => [...name(e.name), e.kind, ...uleb(e.index)]))),
      );
    }
    if (this.#functions.length) {
      const bodies = this.#functions.map((f) => {
        const locals = vec(f.locals.map((l) => [0x01, TYPE[l]]));
        const code = [...locals, ...f.body, 0x0b];
        return [...uleb(code.length), ...code];
      });
      out.push(...section(10, vec(bodies)));
    }
    if (this.#data.length) {
      out.push(
        ...section(
          11,
          vec(
            this.#data.map((d) => [
              0x00,
              ...op.i32(d.offset),
              0x0b,
              ...vec(d.bytes.map((b) => [b])),
            ]),
          ),
        ),
      );
    }
    const names = this.#functions.map((f, i) => [
      ...uleb(this.#imports.length + i),
      ...name(f.name),
    ]);
    const functionNames = vec(names);
    out.push(...section(0, [...name("name"), 1, ...uleb(functionNames.length), ...functionNames]));
    return new Uint8Array(out);
  }
}
