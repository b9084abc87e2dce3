{{/* The chart's name (app.kubernetes.io/name). */}}
{{- define "wasmlet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The objects' name: the release's, or `<release>-wasmlet` when the release does not say wasmlet. */}}
{{- define "wasmlet.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "wasmlet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object: manifests/kustomization.yaml's, plus Helm's release labels. */}}
{{- define "wasmlet.labels" -}}
app.kubernetes.io/part-of: wasmlet
helm.sh/chart: {{ include "wasmlet.chart" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The workload's selector (and its pods' labels): `node` for the Deployment, `node-per-host` for the DaemonSet. */}}
{{- define "wasmlet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "wasmlet.name" . }}
app.kubernetes.io/component: {{ eq .Values.mode "daemonset" | ternary "node-per-host" "node" }}
{{- end }}

{{/* Whether the ServiceAccount and its RBAC are rendered (never for a node identity). */}}
{{- define "wasmlet.rbac" -}}
{{- if and .Values.rbac.create (not .Values.bootstrap.enabled) }}true{{ end }}
{{- end }}

{{- define "wasmlet.serviceAccountName" -}}
{{- if include "wasmlet.rbac" . }}
{{- include "wasmlet.fullname" . }}
{{- else }}
{{- default "default" .Values.rbac.serviceAccountName }}
{{- end }}
{{- end }}

{{- define "wasmlet.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion (toString .Values.image.tag)) }}
{{- end }}

{{/* Where a bootstrapping node finds its bootstrap kubeconfig, and writes its own. */}}
{{- define "wasmlet.bootstrapDir" -}}/etc/wasmlet/bootstrap{{- end }}
{{- define "wasmlet.dataDir" -}}/var/lib/wasmlet{{- end }}

{{/* The wasmlet container's image, args, and the parts both modes share. */}}
{{- define "wasmlet.container" -}}
image: {{ include "wasmlet.image" . }}
{{- with .Values.image.pullPolicy }}
imagePullPolicy: {{ . }}
{{- end }}
args:
  - run
{{- if .Values.bootstrap.enabled }}
  - --bootstrap-kubeconfig={{ include "wasmlet.bootstrapDir" . }}/kubeconfig
  - --kubeconfig={{ include "wasmlet.dataDir" . }}/kubeconfig
{{- end }}
{{- range .Values.extraArgs }}
  - {{ . | quote }}
{{- end }}
{{- end }}

{{- define "wasmlet.resources" -}}
resources:
  {{- toYaml .Values.resources | nindent 2 }}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: ["ALL"]
volumeMounts:
  - name: data
    mountPath: {{ include "wasmlet.dataDir" . }}
{{- if .Values.bootstrap.enabled }}
  - name: bootstrap
    mountPath: {{ include "wasmlet.bootstrapDir" . }}
    readOnly: true
{{- end }}
{{- end }}

{{/* Pod-level settings both modes share, before `containers`. */}}
{{- define "wasmlet.podSpec" -}}
{{- if include "wasmlet.rbac" . }}
serviceAccountName: {{ include "wasmlet.serviceAccountName" . }}
{{- else if .Values.bootstrap.enabled }}
{{- with .Values.rbac.serviceAccountName }}
serviceAccountName: {{ . }}
{{- end }}
# A node identity needs no ServiceAccount token.
automountServiceAccountToken: false
{{- else }}
serviceAccountName: {{ include "wasmlet.serviceAccountName" . }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The volumes besides `data`. */}}
{{- define "wasmlet.extraVolumes" -}}
{{- if .Values.bootstrap.enabled }}
- name: bootstrap
  secret:
    secretName: {{ required "bootstrap.secretName: the Secret with the bootstrap kubeconfig" .Values.bootstrap.secretName }}
    items:
      - key: {{ required "bootstrap.secretKey: the Secret's key holding the kubeconfig" .Values.bootstrap.secretKey }}
        path: kubeconfig
{{- end }}
{{- end }}
