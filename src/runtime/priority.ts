// CPU requests to thread nice values. The kernel gives a nice-0 thread a weight of 1024 and each
// nice step about 1.25 times less, the same scale as cgroup cpu.shares (1024 per CPU): so a
// request of `m` millicores maps to the nice value whose weight is closest to m * 1024 / 1000.
// Values below 0 would need CAP_SYS_NICE and would rank above wasmlet's own threads, so requests
// of a whole CPU or more all get nice 0.

/** Nice value (0-19) for a CPU request in millicores; undefined leaves the thread as it is. */
export function niceForCpuRequest(millis: number | undefined): number | undefined {
  if (millis === undefined) return undefined;
  if (!(millis > 0)) return 19;
  const nice = Math.round(Math.log(1000 / millis) / Math.log(1.25));
  return Math.min(19, Math.max(0, nice));
}
