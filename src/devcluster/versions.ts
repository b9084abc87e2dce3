/** The Kubernetes release the local control plane runs (the newest that builds with Go 1.26). */
export const KUBERNETES_VERSION = "v1.37.2";
/** Staging modules (k8s.io/api, …) are published as v0.<minor>.<patch> of the same release. */
export const STAGING_VERSION = `v0${KUBERNETES_VERSION.slice(2)}`;
/** etcd built from go.etcd.io/etcd/server/v3; a 3.7 release, as Kubernetes 1.37 expects. */
export const ETCD_VERSION = "v3.7.3";

export const CONTROL_PLANE_BINARIES = [
  "etcd",
  "kube-apiserver",
  "kube-controller-manager",
  "kube-scheduler",
] as const;
export type ControlPlaneBinary = (typeof CONTROL_PLANE_BINARIES)[number];
