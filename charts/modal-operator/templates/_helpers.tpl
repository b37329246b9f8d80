{{/* Chart name (app.kubernetes.io/name): "modal-operator" unless overridden. */}}
{{- define "modal-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name when it already contains the chart name (so the usual
     `helm install modal-operator ...` gives Service/Deployment "modal-operator", as the
     operator's documentation assumes), else "<release>-<chart>". */}}
{{- define "modal-operator.fullname" -}}
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

{{- define "modal-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modal-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "modal-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "modal-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels of the objects Prometheus selects on: the common labels + metrics.labels. */}}
{{- define "modal-operator.metricsLabels" -}}
{{ include "modal-operator.labels" . }}
{{- with .Values.metrics.labels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "modal-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "modal-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "modal-operator.tokenSecretName" -}}
{{- default (printf "%s-modal-token" (include "modal-operator.fullname" .)) .Values.modal.tokenSecret.name }}
{{- end }}

{{- define "modal-operator.exporterImage" -}}
{{- printf "%s:%s" .Values.exporter.image.repository (default .Chart.AppVersion .Values.exporter.image.tag) }}
{{- end }}

{{/* Telemetry path the ServiceMonitor scrapes: the one the exporter serves. */}}
{{- define "modal-operator.telemetryPath" -}}
{{- (((.Values.exporter.config).web).telemetry_path) | default "/metrics" }}
{{- end }}

{{/* The exporter's config file: exporter.config plus the keys the chart owns. */}}
{{- define "modal-operator.exporterConfig" -}}
{{- $cfg := deepCopy (.Values.exporter.config | default dict) }}
{{- $web := get $cfg "web" | default dict }}
{{- $_ := set $web "listen_address" (printf ":%d" (int .Values.exporter.port)) }}
{{- $_ := set $cfg "web" $web }}
{{- $_ := set $cfg "state_file" "/var/lib/modal-exporter/state.json" }}
{{- $sources := get $cfg "sources" | default dict }}
{{- $kube := get $sources "kubernetes" | default dict }}
{{- $_ := set $kube "namespaces" (.Values.exporter.namespaces | default list) }}
{{- $_ := set $kube "operator_container" .Values.operator.name }}
{{- $_ := set $sources "kubernetes" $kube }}
{{- $modal := get $sources "modal" | default dict }}
{{- $_ := set $modal "environment" .Values.modal.environment }}
{{- $_ := set $sources "modal" $modal }}
{{- $_ := set $cfg "sources" $sources }}
{{- toYaml $cfg }}
{{- end }}

{{/* MODAL_TOKEN_ID / MODAL_TOKEN_SECRET (+ MODAL_SERVER_URL) from the shared Secret. */}}
{{- define "modal-operator.modalEnv" -}}
- name: MODAL_TOKEN_ID
  valueFrom:
    secretKeyRef:
      name: {{ include "modal-operator.tokenSecretName" . }}
      key: {{ .Values.modal.tokenSecret.tokenIdKey }}
      optional: {{ .Values.modal.tokenSecret.optional }}
- name: MODAL_TOKEN_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "modal-operator.tokenSecretName" . }}
      key: {{ .Values.modal.tokenSecret.tokenSecretKey }}
      optional: {{ .Values.modal.tokenSecret.optional }}
{{- with .Values.modal.serverUrl }}
- name: MODAL_SERVER_URL
  value: {{ . | quote }}
{{- end }}
{{- end }}

{{/* Namespaces that get a Role when the exporter watches a list of namespaces: the watched
     ones plus the release namespace (the exporter GETs its own/the operator's Pod there). */}}
{{- define "modal-operator.roleNamespaces" -}}
{{- $nss := list .Release.Namespace }}
{{- range .Values.exporter.namespaces }}
{{- $nss = append $nss . }}
{{- end }}
{{- toYaml (uniq $nss) }}
{{- end }}
