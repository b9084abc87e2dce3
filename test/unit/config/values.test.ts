import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  parseBytes,
  parseCpuMillis,
  parseDnsSubdomain,
  parseDuration,
  parseLabels,
  parsePercent,
  parseRegistryHosts,
  parseReservation,
  parseTaints,
  ValueError,
} from "../../../src/config/values.ts";

describe("config values", () => {
  it("parses Go-style durations into milliseconds", () => {
    assert.equal(parseDuration("500ms"), 500);
    assert.equal(parseDuration("10s"), 10_000);
    assert.equal(parseDuration("1m30s"), 90_000);
    assert.equal(parseDuration("1.5h"), 5_400_000);
    assert.throws(() => parseDuration("10"), /is not a duration/);
    assert.throws(() => parseDuration("10 s"), /is not a duration/);
    assert.throws(() => parseDuration("0s"), /longer than zero/);
    assert.equal(parseDuration("0s", { allowZero: true }), 0);
  });

  it("parses byte and CPU quantities the Kubernetes way", () => {
    assert.equal(parseBytes("512"), 512);
    assert.equal(parseBytes("100Mi"), 100 * 2 ** 20);
    assert.equal(parseBytes("1.5Gi"), 1.5 * 2 ** 30);
    assert.equal(parseBytes("2G"), 2e9);
    assert.equal(parseBytes("1k"), 1000);
    assert.throws(() => parseBytes("1MB"), /not a byte quantity/);
    // The one quantity grammar: exponents and exa, fractions of a byte rounded up, no negatives.
    assert.equal(parseBytes("1e3"), 1000);
    assert.equal(parseBytes("1Ei"), 2 ** 60);
    assert.equal(parseBytes("2.4"), 3);
    assert.throws(() => parseBytes("-1Mi"), /not a byte quantity/);
    assert.throws(() => parseCpuMillis("-1"), /not a CPU quantity/);
    assert.equal(parseCpuMillis("1.2m"), 2);
    assert.equal(parseCpuMillis("100m"), 100);
    assert.equal(parseCpuMillis("0.5"), 500);
    assert.equal(parseCpuMillis(2), 2000);
    assert.throws(() => parseCpuMillis("1 core"), /not a CPU quantity/);
  });

  it("checks node names, percentages and registry hosts", () => {
    assert.equal(parseDnsSubdomain("wasm-1.example"), "wasm-1.example");
    assert.throws(() => parseDnsSubdomain("Wasm_1"), /not a valid node name/);
    assert.throws(() => parseDnsSubdomain("-a"), /not a valid node name/);
    assert.equal(parsePercent("10%"), 10);
    assert.equal(parsePercent("7.5"), 7.5);
    assert.throws(() => parsePercent("120%"), /between 0% and 100%/);
    assert.deepEqual(parseRegistryHosts("localhost:5000, registry.local"), [
      "localhost:5000",
      "registry.local",
    ]);
    assert.throws(() => parseRegistryHosts("http://x"), /not a registry host/);
  });

  it("parses labels from text and from YAML maps, validating keys and values", () => {
    assert.deepEqual(parseLabels("a=b, example.com/tier=edge"), {
      a: "b",
      "example.com/tier": "edge",
    });
    assert.deepEqual(parseLabels({ zone: "z1", empty: null }), { zone: "z1", empty: "" });
    assert.throws(() => parseLabels("novalue"), /is not key=value/);
    assert.throws(() => parseLabels("a=b c"), /not a valid label value/);
    assert.throws(() => parseLabels("bad key=x"), /not a valid label key/);
  });

  it("parses taints as key[=value]:Effect or YAML objects", () => {
    assert.deepEqual(parseTaints("dedicated=wasm:NoExecute,gpu:PreferNoSchedule"), [
      { key: "dedicated", value: "wasm", effect: "NoExecute" },
      { key: "gpu", value: undefined, effect: "PreferNoSchedule" },
    ]);
    assert.deepEqual(parseTaints([{ key: "a", effect: "NoSchedule" }, "b=c:NoSchedule"]), [
      { key: "a", value: undefined, effect: "NoSchedule" },
      { key: "b", value: "c", effect: "NoSchedule" },
    ]);
    assert.throws(
      () => parseTaints("a=b:Sometimes"),
      /is not one of NoSchedule, PreferNoSchedule, NoExecute/,
    );
    assert.throws(() => parseTaints("a=b"), /is not a taint/);
  });

  it("parses reservations and names an unknown resource", () => {
    assert.deepEqual(parseReservation("cpu=250m,memory=1Gi,ephemeral-storage=2Gi"), {
      cpuMillis: 250,
      memoryBytes: 2 ** 30,
      ephemeralStorageBytes: 2 * 2 ** 30,
    });
    assert.deepEqual(parseReservation({ memory: "256Mi" }), {
      cpuMillis: 0,
      memoryBytes: 256 * 2 ** 20,
      ephemeralStorageBytes: 0,
    });
    const error = (() => {
      try {
        parseReservation("gpu=1");
      } catch (e) {
        return e;
      }
    })();
    assert.ok(error instanceof ValueError);
    assert.match(error.message, /"gpu" is not a reservable resource/);
  });
});
