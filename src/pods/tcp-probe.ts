// tcpSocket probes as the kubelet runs them (pkg/probe/tcp/tcp.go): success when a TCP connection
// opens within the timeout; it is closed at once, nothing is sent.
import { connect } from "node:net";
import { dialErrorText } from "./go-net-errors.ts";
import type { ProbeOutcome } from "./net-probe.ts";
import { joinHostPort } from "./probe-target.ts";

export function tcpProbe(host: string, port: number, timeoutMs: number): Promise<ProbeOutcome> {
  const address = joinHostPort(host, port);
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ result: "failure", output: `dial tcp ${address}: i/o timeout` });
    }, timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ result: "success", output: "" });
    });
    socket.once("error", (error) => {
      clearTimeout(timer);
      resolve({ result: "failure", output: dialErrorText(error, host, address) });
    });
  });
}
