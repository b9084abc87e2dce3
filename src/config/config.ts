// The one configuration schema. Every option has a flag (`--node-name`), an environment variable
// (`WASMLET_NODE_NAME`) and a config-file key (`nodeName`, the flag in camelCase); flags win over
// the environment, the environment over the file, the file over defaults. The Config fields name
// their units (`nodeLeaseRenewIntervalMs` is set by `--node-lease-renew-interval 10s`). Components
// take only the slice they use: `Pick<Config, "nodeName" | "nodeIP">`.
import { availableParallelism } from "node:os";
import { parsePodCidr } from "../network/cidr.ts";
import type { PodNetworkMode } from "../network/pod-network.ts";
import type { HostDefaults } from "./host-defaults.ts";
import {
  parseBoolean,
  parseBytes,
  parseDnsSubdomain,
  parseDuration,
  parseInteger,
  parseIP,
  parseLabels,
  parsePercent,
  parsePort,
  parseRegistryHosts,
  parseReservation,
  parseString,
  parseTaints,
  type Reservation,
  type TaintSpec,
  ValueError,
} from "./values.ts";

export type { Reservation, TaintSpec } from "./values.ts";

export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace";

export interface Config {
  /** Kubeconfig file; undefined means in-cluster (service account) credentials. */
  kubeconfig: string | undefined;
  /** Credentials to request the node's client certificate with (TLS bootstrapping). */
  bootstrapKubeconfig: string | undefined;
  /** Timeout of one API request (watches excepted). */
  apiRequestTimeoutMs: number;
  nodeName: string;
  nodeIP: string;
  dataDir: string;
  /** Address the kubelet API listens on. */
  address: string;
  port: number;
  tlsCertFile: string | undefined;
  tlsPrivateKeyFile: string | undefined;
  /** Without cert files: request a kubernetes.io/kubelet-serving certificate from the cluster. */
  tlsBootstrap: boolean;
  /** Serve a self-signed certificate when no other is (yet) available. */
  allowSelfSigned: boolean;
  /** CA bundle that verifies client certificates; default: the kubeconfig's cluster CA. */
  clientCAFile: string | undefined;
  /** Plain-HTTP, unauthenticated /healthz for liveness probes; 0 turns it off. */
  healthzPort: number;
  healthzBindAddress: string;
  nodeLabels: Record<string, string>;
  registerWithTaints: TaintSpec[];
  reserved: Reservation;
  maxPods: number;
  memoryPressureThresholdBytes: number;
  diskPressureThresholdPercent: number;
  pidPressureThresholdPercent: number;
  allowHostPath: boolean;
  /** Compile modules with V8's optimizing tier before their first instance. */
  eagerCompile: boolean;
  containerLogMaxSizeBytes: number;
  containerLogMaxFiles: number;
  crashLoopBackoffBaseMs: number;
  crashLoopBackoffMaxMs: number;
  /** How often mounted ConfigMap, Secret, downwardAPI and projected volumes are re-projected. */
  syncFrequencyMs: number;
  insecureRegistries: string[];
  /** containerd's `certs.d` layout: `<dir>/<host[:port]>/hosts.toml` (mirrors, CAs, client certs). */
  registryConfigDir: string | undefined;
  imageCredentialFile: string | undefined;
  /** The kubelet's CredentialProviderConfig, and where its plugins are. */
  imageCredentialProviderConfig: string | undefined;
  imageCredentialProviderBinDir: string | undefined;
  /** Image garbage collection starts when the data dir's filesystem is fuller than this… */
  imageGcHighThresholdPercent: number;
  /** …and frees images no pod uses, least recently used first, down to this. */
  imageGcLowThresholdPercent: number;
  nodeLeaseDurationSeconds: number;
  nodeLeaseRenewIntervalMs: number;
  nodeStatusUpdateFrequencyMs: number;
  nodeStatusReportFrequencyMs: number;
  shutdownGracePeriodMs: number;
  /** Shared worker threads hosting the guests. */
  runtimeWorkers: number;
  /** Where pods get their addresses (see src/network/pod-network.ts). */
  podNetwork: PodNetworkMode;
  /** The pod CIDR of pod-cidr mode; undefined: the Node's spec.podCIDR. */
  podCIDR: string | undefined;
  /** Connections one container may hold at once. */
  maxPodConnections: number;
  logLevel: LogLevel;
}

export interface DefaultsContext {
  host: HostDefaults;
  env: NodeJS.ProcessEnv;
}

export interface OptionSpec<K extends keyof Config = keyof Config> {
  key: K;
  /** The flag without its dashes. */
  flag: string;
  env: string;
  /** The key in a config file: the flag in camelCase. */
  fileKey: string;
  /** Placeholder shown in --help; empty for a boolean switch. */
  placeholder: string;
  description: string;
  parse: (raw: unknown) => Config[K];
  defaultValue: (context: DefaultsContext) => Config[K];
  /** How --help shows the default. */
  defaultText: string;
  /** Repeated flags accumulate (lists and maps). */
  repeatable?: boolean;
  /** The value is a file that must exist; relative paths in a config file are relative to it. */
  file?: boolean;
  /** The value is a file wasmlet may create; relative paths as for `file`. */
  path?: boolean;
  /** The value is a directory; relative paths in a config file are relative to it. */
  directory?: boolean;
  group: string;
}

function envName(flag: string): string {
  return `WASMLET_${flag.replace(/-/g, "_").toUpperCase()}`;
}

function camelCase(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

function flagName(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, "$1-$2").toLowerCase();
}

function option<K extends keyof Config>(
  key: K,
  spec: Omit<OptionSpec<K>, "key" | "flag" | "env" | "fileKey" | "defaultValue" | "defaultText"> & {
    flag?: string;
    default: Config[K] | ((context: DefaultsContext) => Config[K]);
    defaultText?: string;
  },
): OptionSpec {
  const { default: def, ...rest } = spec;
  const flag = spec.flag ?? flagName(key);
  return {
    ...rest,
    key,
    flag,
    env: envName(flag),
    fileKey: camelCase(flag),
    defaultValue:
      typeof def === "function" ? (def as (c: DefaultsContext) => Config[K]) : () => def,
    defaultText:
      spec.defaultText ??
      (def === undefined ? "none" : typeof def === "function" ? "derived" : JSON.stringify(def)),
  } as unknown as OptionSpec;
}

const path = (raw: unknown) => parseString(raw);
const positiveDuration = (raw: unknown) => parseDuration(raw);
const logLevels: readonly LogLevel[] = ["fatal", "error", "warn", "info", "debug", "trace"];

export const OPTIONS: readonly OptionSpec[] = [
  option("kubeconfig", {
    group: "API server",
    placeholder: "PATH",
    description:
      "kubeconfig with the API server and wasmlet's credentials; without it, in-cluster service-account credentials. With --bootstrap-kubeconfig, wasmlet writes it",
    parse: path,
    default: undefined,
    defaultText: "in-cluster",
    path: true,
  }),
  option("bootstrapKubeconfig", {
    group: "API server",
    placeholder: "PATH",
    description:
      "TLS bootstrapping: credentials (a bootstrap token) to request the node's client certificate (system:node:NAME) with when --kubeconfig has none; wasmlet then writes --kubeconfig and renews the certificate before it expires",
    parse: path,
    default: undefined,
    file: true,
  }),
  option("apiRequestTimeoutMs", {
    group: "API server",
    flag: "api-request-timeout",
    placeholder: "DURATION",
    description: "timeout of one API request (watches excepted)",
    parse: positiveDuration,
    default: 30_000,
    defaultText: "30s",
  }),
  option("nodeName", {
    group: "Node",
    placeholder: "NAME",
    description: "name of the Node object",
    parse: parseDnsSubdomain,
    default: ({ host }) => host.hostname(),
    defaultText: "the host name",
  }),
  option("nodeIP", {
    flag: "node-ip",
    group: "Node",
    placeholder: "IP",
    description:
      "InternalIP of the node: the API server reaches the kubelet API there, and it is every pod's IP",
    parse: parseIP,
    default: ({ host }) => {
      const ip = host.primaryIP();
      if (ip === undefined)
        throw new ValueError("the host has no non-loopback address; set it explicitly");
      return ip;
    },
    defaultText: "the address of the default-route interface",
  }),
  option("dataDir", {
    group: "Node",
    placeholder: "DIR",
    description:
      "directory for wasmlet's state: certificates, images, pod volumes and logs; its filesystem is the node's ephemeral storage",
    parse: path,
    default: "/var/lib/wasmlet",
    directory: true,
  }),
  option("nodeLabels", {
    group: "Node",
    placeholder: "KEY=VALUE,...",
    description: "extra labels for the Node (repeatable)",
    parse: parseLabels,
    default: {},
    defaultText: "none",
    repeatable: true,
  }),
  option("registerWithTaints", {
    group: "Node",
    placeholder: "KEY[=VALUE]:EFFECT,...",
    description: "extra taints for the Node, besides wasmlet.io/wasm=true:NoSchedule (repeatable)",
    parse: parseTaints,
    default: [],
    defaultText: "none",
    repeatable: true,
  }),
  option("reserved", {
    group: "Node",
    placeholder: "cpu=Q,memory=Q,ephemeral-storage=Q",
    description: "resources held back from allocatable for the host and wasmlet itself",
    parse: parseReservation,
    default: { cpuMillis: 0, memoryBytes: 0, ephemeralStorageBytes: 0 },
    defaultText: "nothing",
  }),
  option("maxPods", {
    group: "Node",
    placeholder: "N",
    description: "pods this node accepts (its pods capacity)",
    parse: (raw) => parseInteger(raw, 1, 100_000),
    default: 500,
  }),
  option("memoryPressureThresholdBytes", {
    group: "Node",
    flag: "memory-pressure-threshold",
    placeholder: "BYTES",
    description: "MemoryPressure when the host's available memory falls below this",
    parse: parseBytes,
    default: 100 * 2 ** 20,
    defaultText: "100Mi",
  }),
  option("diskPressureThresholdPercent", {
    group: "Node",
    flag: "disk-pressure-threshold",
    placeholder: "PERCENT",
    description: "DiskPressure when free space on the data directory's filesystem falls below this",
    parse: parsePercent,
    default: 10,
    defaultText: "10%",
  }),
  option("pidPressureThresholdPercent", {
    group: "Node",
    flag: "pid-pressure-threshold",
    placeholder: "PERCENT",
    description: "PIDPressure when free process IDs fall below this share of the host's limit",
    parse: parsePercent,
    default: 10,
    defaultText: "10%",
  }),
  option("nodeLeaseDurationSeconds", {
    group: "Heartbeat",
    flag: "node-lease-duration",
    placeholder: "SECONDS",
    description: "leaseDurationSeconds of the node's Lease in kube-node-lease",
    parse: (raw) => parseInteger(raw, 1, 3600),
    default: 40,
  }),
  option("nodeLeaseRenewIntervalMs", {
    group: "Heartbeat",
    flag: "node-lease-renew-interval",
    placeholder: "DURATION",
    description: "how often the Lease is renewed",
    parse: positiveDuration,
    default: 10_000,
    defaultText: "10s",
  }),
  option("nodeStatusUpdateFrequencyMs", {
    group: "Heartbeat",
    flag: "node-status-update-frequency",
    placeholder: "DURATION",
    description: "how often the host is measured; node status is posted when it changed",
    parse: positiveDuration,
    default: 10_000,
    defaultText: "10s",
  }),
  option("nodeStatusReportFrequencyMs", {
    group: "Heartbeat",
    flag: "node-status-report-frequency",
    placeholder: "DURATION",
    description: "node status is posted at least this often, changed or not",
    parse: positiveDuration,
    default: 60_000,
    defaultText: "1m",
  }),
  option("address", {
    group: "Kubelet API",
    placeholder: "IP",
    description: "address the kubelet API (HTTPS) listens on",
    parse: parseIP,
    default: "0.0.0.0",
  }),
  option("port", {
    group: "Kubelet API",
    placeholder: "PORT",
    description: "port of the kubelet API, advertised in the Node's daemonEndpoints",
    parse: parsePort,
    default: 10250,
  }),
  option("tlsCertFile", {
    group: "Kubelet API",
    placeholder: "PATH",
    description:
      "serving certificate (PEM, may include intermediates); reloaded when the file changes",
    parse: path,
    default: undefined,
    file: true,
  }),
  option("tlsPrivateKeyFile", {
    group: "Kubelet API",
    placeholder: "PATH",
    description: "private key of --tls-cert-file (PEM)",
    parse: path,
    default: undefined,
    file: true,
  }),
  option("tlsBootstrap", {
    group: "Kubelet API",
    placeholder: "",
    description:
      "without cert files, request a kubernetes.io/kubelet-serving certificate from the cluster (someone must approve it), and renew it before it expires",
    parse: parseBoolean,
    default: true,
  }),
  option("allowSelfSigned", {
    group: "Kubelet API",
    placeholder: "",
    description:
      "serve a self-signed certificate when no other is available (the API server must not verify kubelet certificates)",
    parse: parseBoolean,
    default: false,
  }),
  option("clientCAFile", {
    flag: "client-ca-file",
    group: "Kubelet API",
    placeholder: "PATH",
    description:
      "CA bundle that verifies client certificates (the API server's kubelet client certificate)",
    parse: path,
    default: undefined,
    defaultText: "the kubeconfig's cluster CA",
    file: true,
  }),
  option("healthzPort", {
    group: "Kubelet API",
    placeholder: "PORT",
    description:
      "port of an unauthenticated plain-HTTP /healthz for liveness probes (0 turns it off)",
    parse: (raw) => parseInteger(raw, 0, 65535),
    default: 10248,
  }),
  option("healthzBindAddress", {
    group: "Kubelet API",
    placeholder: "IP",
    description: "address of the plain-HTTP /healthz",
    parse: parseIP,
    default: "127.0.0.1",
  }),
  option("allowHostPath", {
    group: "Pods",
    placeholder: "",
    description: "allow hostPath volumes",
    parse: parseBoolean,
    default: false,
  }),
  option("eagerCompile", {
    group: "Pods",
    placeholder: "",
    description:
      "compile every module with V8's optimizing tier before it runs: CPU-bound guests run at full speed from their first instance; compiles take longer (about 1 s for a 2.7 MB Go module, on V8's background threads) and hold more code",
    parse: parseBoolean,
    default: false,
  }),
  option("containerLogMaxSizeBytes", {
    group: "Pods",
    flag: "container-log-max-size",
    placeholder: "BYTES",
    description: "a container's log file is rotated when it reaches this size",
    parse: parseBytes,
    default: 10 * 2 ** 20,
    defaultText: "10Mi",
  }),
  option("containerLogMaxFiles", {
    group: "Pods",
    placeholder: "N",
    description: "log files kept per container, the current one included",
    parse: (raw) => parseInteger(raw, 2, 100),
    default: 5,
  }),
  option("crashLoopBackoffBaseMs", {
    group: "Pods",
    flag: "crash-loop-backoff",
    placeholder: "DURATION",
    description: "first restart delay of a crashing container; it doubles on every crash",
    parse: positiveDuration,
    default: 10_000,
    defaultText: "10s",
  }),
  option("crashLoopBackoffMaxMs", {
    group: "Pods",
    flag: "crash-loop-backoff-max",
    placeholder: "DURATION",
    description: "longest restart delay of a crashing container",
    parse: positiveDuration,
    default: 300_000,
    defaultText: "5m",
  }),
  option("syncFrequencyMs", {
    group: "Pods",
    flag: "sync-frequency",
    placeholder: "DURATION",
    description:
      "how often mounted configMap, secret, downwardAPI and projected volumes are brought up to date",
    parse: positiveDuration,
    default: 60_000,
    defaultText: "1m",
  }),
  option("shutdownGracePeriodMs", {
    group: "Pods",
    flag: "shutdown-grace-period",
    placeholder: "DURATION",
    description:
      "on SIGTERM, how long pods get to stop (each at most its terminationGracePeriodSeconds) before wasmlet exits anyway",
    parse: positiveDuration,
    default: 30_000,
    defaultText: "30s",
  }),
  option("runtimeWorkers", {
    group: "Pods",
    placeholder: "N",
    description:
      "worker threads shared by all guests (a Guaranteed pod with whole CPUs gets threads of its own besides)",
    parse: (raw) => parseInteger(raw, 1, 256),
    default: availableParallelism(),
    defaultText: "the number of cores",
  }),
  option("insecureRegistries", {
    group: "Images",
    placeholder: "HOST[:PORT],...",
    description: "registries reached over plain HTTP (repeatable)",
    parse: parseRegistryHosts,
    default: [],
    defaultText: "none",
    repeatable: true,
  }),
  option("registryConfigDir", {
    group: "Images",
    placeholder: "DIR",
    description:
      "registry hosts in containerd's layout, DIR/HOST[:PORT]/hosts.toml and DIR/_default/hosts.toml: mirrors tried before the registry (by capability: pull, resolve, push), its server, per-host CA, client certificates, skip_verify, headers; credentials go to the registry's own host only",
    parse: path,
    default: undefined,
    directory: true,
  }),
  option("imageCredentialProviderConfig", {
    group: "Images",
    placeholder: "PATH",
    description:
      "the kubelet's credential-provider configuration (CredentialProviderConfig): plugins that hand out registry credentials for matching images",
    parse: path,
    default: undefined,
    file: true,
  }),
  option("imageCredentialProviderBinDir", {
    group: "Images",
    placeholder: "DIR",
    description: "where the credential-provider plugins named in that configuration are",
    parse: path,
    default: undefined,
    directory: true,
  }),
  option("imageCredentialFile", {
    group: "Images",
    placeholder: "PATH",
    description:
      "a Docker config.json with registry credentials used for every pull, after the pod's imagePullSecrets",
    parse: path,
    default: undefined,
    file: true,
  }),
  option("imageGcHighThresholdPercent", {
    group: "Images",
    flag: "image-gc-high-threshold",
    placeholder: "PERCENT",
    description:
      "collect unused images (least recently used first, none used in the last 2 minutes) when the data directory's filesystem is fuller than this",
    parse: parsePercent,
    default: 85,
    defaultText: "85%",
  }),
  option("imageGcLowThresholdPercent", {
    group: "Images",
    flag: "image-gc-low-threshold",
    placeholder: "PERCENT",
    description: "image collection frees space down to this",
    parse: parsePercent,
    default: 80,
    defaultText: "80%",
  }),
  option("podNetwork", {
    group: "Network",
    placeholder: "node|pod-cidr",
    description:
      "node: every pod's IP is the node's and a port serves one pod per node; pod-cidr: each pod gets an address of its own from the pod CIDR",
    parse: (raw) => {
      const mode = parseString(raw);
      if (mode !== "node" && mode !== "pod-cidr")
        throw new ValueError(`${JSON.stringify(raw)} is not node or pod-cidr`);
      return mode;
    },
    default: "node",
  }),
  option("podCIDR", {
    group: "Network",
    flag: "pod-cidr",
    placeholder: "CIDR",
    description:
      "pod addresses in pod-cidr mode (IPv4, e.g. 10.244.1.0/24); wasmlet makes the block local with `ip route add local CIDR dev lo`",
    parse: (raw) => {
      try {
        return parsePodCidr(parseString(raw)).text;
      } catch (error) {
        throw new ValueError((error as Error).message);
      }
    },
    default: undefined,
    defaultText: "the Node's spec.podCIDR",
  }),
  option("maxPodConnections", {
    group: "Network",
    placeholder: "N",
    description:
      "connections one container may hold at once, accepted and waiting ones included; past it new connections are reset",
    parse: (raw) => parseInteger(raw, 1, 1_000_000),
    default: 1024,
  }),
  option("logLevel", {
    group: "Logging",
    placeholder: logLevels.join("|"),
    description: "log level (JSON lines on stdout)",
    parse: (raw) => {
      const level = parseString(raw).toLowerCase();
      if (!logLevels.includes(level as LogLevel)) {
        throw new ValueError(`${JSON.stringify(raw)} is not one of ${logLevels.join(", ")}`);
      }
      return level as LogLevel;
    },
    default: "info",
  }),
];
