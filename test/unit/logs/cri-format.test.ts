import assert from "node:assert/strict";
import { test } from "node:test";
import { formatTimestamp, parseCriLine, parseTimestamp } from "../../../src/logs/cri-format.ts";

test("timestamps are RFC 3339 UTC with nine fraction digits and round-trip", () => {
  const ns = 1_700_000_000_123_456_789n;
  const text = formatTimestamp(ns);
  assert.equal(text, "2023-11-14T22:13:20.123456789Z");
  assert.equal(parseTimestamp(text), ns);
  assert.equal(formatTimestamp(1_700_000_000_000_000_000n), "2023-11-14T22:13:20.000000000Z");
  // Shorter fractions and offsets, as other writers produce them.
  assert.equal(parseTimestamp("2023-11-14T22:13:20.5Z"), 1_700_000_000_500_000_000n);
  assert.equal(parseTimestamp("2023-11-14T23:13:20+01:00"), 1_700_000_000_000_000_000n);
  assert.equal(parseTimestamp("yesterday"), undefined);
});

test("timestamps sort as strings in time order", () => {
  const a = formatTimestamp(1_700_000_000_999_999_999n);
  const b = formatTimestamp(1_700_000_001_000_000_000n);
  assert.ok(a < b);
});

test("CRI lines parse into stream, tag and raw content", () => {
  const line = Buffer.from("2023-11-14T22:13:20.123456789Z stderr P half a line ");
  const record = parseCriLine(line);
  assert.ok(record);
  assert.equal(record.stream, "stderr");
  assert.equal(record.tag, "P");
  assert.equal(record.content.toString(), "half a line ");
  assert.equal(parseCriLine(Buffer.from("2023-11-14T22:13:20Z stdout F"))?.content.length, 0);
  assert.equal(parseCriLine(Buffer.from("2023-11-14T22:13:20Z stdin F x")), undefined);
  assert.equal(parseCriLine(Buffer.from("2023-11-14T22:13:20Z stdout X x")), undefined);
  assert.equal(parseCriLine(Buffer.from("garbage")), undefined);
});
