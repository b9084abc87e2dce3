// The gRPC health check's bytes: framing, headers and the two protobuf messages, by hand.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  firstMessage,
  grpcFrame,
  grpcMessage,
  grpcTimeout,
  healthCheckRequest,
  servingStatus,
} from "../../../src/pods/grpc-wire.ts";

test("HealthCheckRequest: field 1 as a length-delimited string, left out when empty", () => {
  assert.deepEqual(healthCheckRequest(""), Buffer.alloc(0));
  assert.deepEqual(healthCheckRequest("svc"), Buffer.from([0x0a, 3, 0x73, 0x76, 0x63]));
  const long = healthCheckRequest("a".repeat(200));
  assert.deepEqual([...long.subarray(0, 3)], [0x0a, 0xc8, 0x01], "a two-byte varint length");
  assert.equal(long.length, 203);
});

test("HealthCheckResponse: the status of field 1, other fields skipped, UNKNOWN when absent", () => {
  assert.equal(servingStatus(Buffer.from([0x08, 0x01])), 1);
  assert.equal(
    servingStatus(Buffer.from([0x12, 0x02, 0x61, 0x62, 0x08, 0x02, 0x1d, 1, 2, 3, 4])),
    2,
  );
  assert.equal(servingStatus(Buffer.alloc(0)), 0);
  assert.throws(() => servingStatus(Buffer.from([0x08])), /truncated/);
  assert.throws(() => servingStatus(Buffer.from([0x12, 0x05, 0x61])), /truncated/);
});

test("gRPC framing, grpc-timeout and grpc-message", () => {
  const frame = grpcFrame(Buffer.from([0x08, 0x01]));
  assert.deepEqual([...frame], [0, 0, 0, 0, 2, 0x08, 0x01]);
  assert.deepEqual(firstMessage(frame), Buffer.from([0x08, 0x01]));
  assert.equal(firstMessage(frame.subarray(0, 6)), undefined, "cut short");
  assert.equal(grpcTimeout(1000), "1000000u");
  assert.equal(grpcTimeout(50), "50000000n");
  assert.equal(grpcTimeout(200_000), "200000m");
  assert.equal(grpcMessage("unknown%20service"), "unknown service");
  assert.equal(grpcMessage("100%"), "100%");
});
