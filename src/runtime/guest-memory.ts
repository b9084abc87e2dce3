// Bounds-checked access to a guest's linear memory. Every pointer and length a guest passes is
// untrusted: an access outside memory throws GuestFault, which the import wrapper turns into
// EFAULT for the guest instead of an exception in wasmlet.

export class GuestFault extends Error {
  constructor(pointer: number, length: number) {
    super(`guest pointer ${pointer}+${length} is outside linear memory`);
    this.name = "GuestFault";
  }
}

/** A path the guest passed is not valid UTF-8. */
export class GuestEncodingError extends Error {}

const decoder = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();

export class GuestMemory {
  readonly memory: WebAssembly.Memory;
  #buffer: ArrayBuffer;
  #view: DataView;
  #bytes: Uint8Array;

  constructor(memory: WebAssembly.Memory) {
    this.memory = memory;
    this.#buffer = memory.buffer;
    this.#view = new DataView(this.#buffer);
    this.#bytes = new Uint8Array(this.#buffer);
  }

  get byteLength(): number {
    return this.#current().byteLength;
  }

  #current(): ArrayBuffer {
    const buffer = this.memory.buffer;
    if (buffer !== this.#buffer) {
      this.#buffer = buffer;
      this.#view = new DataView(buffer);
      this.#bytes = new Uint8Array(buffer);
    }
    return buffer;
  }

  /** Checks [pointer, pointer+length) and returns the pointer as unsigned. */
  check(pointer: number, length: number): number {
    const p = pointer >>> 0;
    const n = length >>> 0;
    if (p + n > this.#current().byteLength) throw new GuestFault(p, n);
    return p;
  }

  u8(pointer: number): number {
    return this.#view.getUint8(this.check(pointer, 1));
  }
  u16(pointer: number): number {
    return this.#view.getUint16(this.check(pointer, 2), true);
  }
  u32(pointer: number): number {
    return this.#view.getUint32(this.check(pointer, 4), true);
  }
  u64(pointer: number): bigint {
    return this.#view.getBigUint64(this.check(pointer, 8), true);
  }
  setU8(pointer: number, value: number): void {
    this.#view.setUint8(this.check(pointer, 1), value);
  }
  setU16(pointer: number, value: number): void {
    this.#view.setUint16(this.check(pointer, 2), value, true);
  }
  setU32(pointer: number, value: number): void {
    this.#view.setUint32(this.check(pointer, 4), value >>> 0, true);
  }
  setU64(pointer: number, value: bigint | number): void {
    this.#view.setBigUint64(this.check(pointer, 8), BigInt.asUintN(64, BigInt(value)), true);
  }

  /** A live view (not a copy) of guest bytes. */
  bytes(pointer: number, length: number): Uint8Array {
    const p = this.check(pointer, length);
    return this.#bytes.subarray(p, p + (length >>> 0));
  }

  /** Zero-fills, for structs the guest expects cleared. */
  zero(pointer: number, length: number): void {
    this.bytes(pointer, length).fill(0);
  }

  /** A UTF-8 string (paths); throws GuestEncodingError when it is not valid UTF-8. */
  string(pointer: number, length: number): string {
    const bytes = this.bytes(pointer, length);
    try {
      return decoder.decode(bytes);
    } catch {
      throw new GuestEncodingError("path is not valid UTF-8");
    }
  }

  /** Writes as much of `text` as fits in `capacity` bytes; returns bytes written. */
  writeString(pointer: number, capacity: number, text: string | Uint8Array): number {
    const data = typeof text === "string" ? encoder.encode(text) : text;
    const n = Math.min(data.length, capacity >>> 0);
    this.bytes(pointer, n).set(data.subarray(0, n));
    return n;
  }

  /** The iovec array as views into memory (each checked). */
  iovecs(pointer: number, count: number): Uint8Array[] {
    const n = count >>> 0;
    this.check(pointer, n * 8);
    const out: Uint8Array[] = [];
    for (let i = 0; i < n; i++) {
      const base = this.u32(pointer + i * 8);
      const length = this.u32(pointer + i * 8 + 4);
      out.push(this.bytes(base, length));
    }
    return out;
  }
}

export function encodeUtf8(text: string): Uint8Array {
  return encoder.encode(text);
}
