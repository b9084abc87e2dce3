// The gRPC health check on the wire, by hand (no protobuf or gRPC library): gRPC's length-prefixed
// message framing, its grpc-timeout and grpc-message headers, and the two protobuf messages of
// grpc.health.v1 — HealthCheckRequest { string service = 1; } and
// HealthCheckResponse { ServingStatus status = 1; }.

/** grpc-message is percent-encoded. */
export function grpcMessage(value: string | string[] | undefined): string {
  const raw = Array.isArray(value) ? (value[0] ?? "") : (value ?? "");
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/** grpc-timeout as grpc-go writes it: the finest unit whose value has at most 8 digits. */
export function grpcTimeout(ms: number): string {
  const units: [string, number][] = [
    ["n", 1e-6],
    ["u", 1e-3],
    ["m", 1],
    ["S", 1e3],
    ["M", 6e4],
    ["H", 3.6e6],
  ];
  for (const [unit, msPerUnit] of units) {
    const value = Math.ceil(ms / msPerUnit);
    if (value <= 99_999_999) return `${value}${unit}`;
  }
  return "99999999H";
}

/** A message in gRPC's length-prefixed framing: uncompressed flag, 4-byte big-endian length. */
export function grpcFrame(message: Buffer): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, 5);
  return frame;
}

/** The first framed message of a response body, undefined when there is none in full. */
export function firstMessage(body: Buffer): Buffer | undefined {
  if (body.length < 5) return undefined;
  const length = body.readUInt32BE(1);
  if (body.length < 5 + length) return undefined;
  return body.subarray(5, 5 + length);
}

/** HealthCheckRequest { string service = 1; }, proto3: an empty service is not written. */
export function healthCheckRequest(service: string): Buffer {
  if (service === "") return Buffer.alloc(0);
  const text = Buffer.from(service, "utf8");
  return Buffer.concat([Buffer.from([(1 << 3) | 2]), varint(text.length), text]);
}

/** HealthCheckResponse { ServingStatus status = 1; }: absent means UNKNOWN (0). */
export function servingStatus(message: Buffer): number {
  let status = 0;
  let offset = 0;
  while (offset < message.length) {
    const [key, afterKey] = readVarint(message, offset);
    const field = Math.floor(key / 8);
    const wireType = key % 8;
    offset = afterKey;
    if (wireType === 0) {
      const [value, after] = readVarint(message, offset);
      if (field === 1) status = value;
      offset = after;
    } else if (wireType === 1) {
      offset += 8;
    } else if (wireType === 2) {
      const [length, after] = readVarint(message, offset);
      offset = after + length;
    } else if (wireType === 5) {
      offset += 4;
    } else {
      throw new Error(`wire type ${wireType}`);
    }
    if (offset > message.length) throw new Error("truncated");
  }
  return status;
}

function varint(value: number): Buffer {
  const bytes: number[] = [];
  let rest = value;
  while (rest > 0x7f) {
    bytes.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}

function readVarint(buffer: Buffer, start: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (let offset = start; offset < buffer.length && offset - start < 10; offset++) {
    const byte = buffer[offset]!;
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return [value, offset + 1];
    scale *= 0x80;
  }
  throw new Error("truncated varint");
}
