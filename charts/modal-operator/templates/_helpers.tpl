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
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
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

{{/* The one Secret holding the Modal token: modal.existingSecret, else <fullname>-modal-token
     (created by the chart when modal.tokenId/tokenSecret are given). */}}
{{- define "modal-operator.tokenSecretName" -}}
{{- default (printf "%s-modal-token" (include "modal-operator.fullname" .)) .Values.modal.existingSecret }}
{{- end }}

{{/* "true" when the chart creates the token Secret from modal.tokenId/tokenSecret. */}}
{{- define "modal-operator.createTokenSecret" -}}
{{- $m := .Values.modal -}}
{{- if or $m.tokenId $m.tokenSecret }}
{{- if $m.existingSecret }}
{{- fail "modal.existingSecret and modal.tokenId/tokenSecret are both set: give one of them" }}
{{- end }}
{{- if not (and $m.tokenId $m.tokenSecret) }}
{{- fail "modal.tokenId and modal.tokenSecret must be given together" }}
{{- end -}}
true
{{- end }}
{{- end }}

{{/* "true" when the Secret is known to exist: given by name, or created by this release. */}}
{{- define "modal-operator.tokenSecretKnown" -}}
{{- if or .Values.modal.existingSecret (include "modal-operator.createTokenSecret" .) }}true{{ end }}
{{- end }}

{{/* registry/repository:tag or registry/repository@digest, from an image value. */}}
{{- define "modal-operator.image" -}}
{{- $img := .image -}}
{{- $ref := $img.repository -}}
{{- with $img.registry }}{{ $ref = printf "%s/%s" . $ref }}{{ end -}}
{{- if $img.digest }}
{{- printf "%s@%s" $ref $img.digest }}
{{- else }}
{{- printf "%s:%s" $ref (toString (default .default $img.tag)) }}
{{- end }}
{{- end }}

{{- define "modal-operator.exporterImage" -}}
{{- include "modal-operator.image" (dict "image" .Values.exporter.image "default" .Chart.AppVersion) }}
{{- end }}

{{- define "modal-operator.operatorImage" -}}
{{- include "modal-operator.image" (dict "image" .Values.operator.image "default" .Chart.AppVersion) }}
{{- end }}

{{/* "true" when ServiceMonitor/PrometheusRule may be rendered: the cluster serves
     monitoring.coreos.com/v1, or metrics.assumeMonitoringCRDs says to render them anyway. */}}
{{- define "modal-operator.monitoringApi" -}}
{{- if and .Values.metrics.enabled (or .Values.metrics.assumeMonitoringCRDs (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1")) }}true{{ end }}
{{- end }}

{{/* Telemetry path the ServiceMonitor scrapes: the one the exporter serves. */}}
{{- define "modal-operator.telemetryPath" -}}
{{- (((.Values.exporter.config).web).telemetry_path) | default "/metrics" }}
{{- end }}

{{/* The exporter's config file: files/modal-exporter.yaml (a copy of config/modal-exporter.yaml,
     kept equal by the test deploy.chart_config_copy_identical), exporter.config merged over it,
     and the keys the chart owns. */}}
{{- define "modal-operator.exporterConfig" -}}
{{- $base := .Files.Get "files/modal-exporter.yaml" | fromYaml }}
{{- if not $base.sources }}
{{- fail "files/modal-exporter.yaml is missing or has no sources" }}
{{- end }}
{{- $cfg := mergeOverwrite $base (deepCopy (.Values.exporter.config | default dict)) }}
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

{{/* MODAL_TOKEN_ID / MODAL_TOKEN_SECRET (+ MODAL_SERVER_URL) from the shared Secret. Takes
     (dict "root" $ "optional" bool). The exporter's references are always optional: without a
     token it serves the Kubernetes metrics and reports its Modal source down. */}}
{{- define "modal-operator.modalEnv" -}}
{{- $v := .root.Values -}}
- name: MODAL_TOKEN_ID
  valueFrom:
    secretKeyRef:
      name: {{ include "modal-operator.tokenSecretName" .root }}
      key: {{ $v.modal.existingSecretKeys.tokenId }}
      optional: {{ .optional }}
- name: MODAL_TOKEN_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "modal-operator.tokenSecretName" .root }}
      key: {{ $v.modal.existingSecretKeys.tokenSecret }}
      optional: {{ .optional }}
{{- with $v.modal.serverUrl }}
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

{{/* The exporter's web config (exporter-toolkit format), from exporter.webConfig. */}}
{{- define "modal-operator.webConfig" -}}
{{- $w := .Values.exporter.webConfig -}}
{{- $out := dict -}}
{{- if $w.tls.secretName }}
{{- $tls := dict "cert_file" "/etc/modal-exporter-tls/tls.crt" "key_file" "/etc/modal-exporter-tls/tls.key" "client_auth_type" $w.tls.clientAuthType "min_version" $w.tls.minVersion -}}
{{- if has $w.tls.clientAuthType (list "VerifyClientCertIfGiven" "RequireAndVerifyClientCert") }}
{{- $_ := set $tls "client_ca_file" "/etc/modal-exporter-tls/ca.crt" -}}
{{- end }}
{{- $_ := set $out "tls_server_config" $tls -}}
{{- end }}
{{- if $w.basicAuthUsers }}
{{- $_ := set $out "basic_auth_users" $w.basicAuthUsers -}}
{{- if $w.authExcludedPaths }}
{{- $_ := set $out "auth_excluded_paths" $w.authExcludedPaths -}}
{{- end }}
{{- end }}
{{- toYaml (mergeOverwrite $out (deepCopy $w.extra)) }}
{{- end }}

{{/* A probe of the exporter: HTTPS with TLS; tcpSocket when a client certificate is required. */}}
{{- define "modal-operator.exporterProbe" -}}
{{- $p := deepCopy .probe -}}
{{- $w := .root.Values.exporter.webConfig -}}
{{- if and $w.enabled $w.tls.secretName $p.httpGet }}
{{- if has $w.tls.clientAuthType (list "RequireAnyClientCert" "RequireAndVerifyClientCert") }}
{{- $port := $p.httpGet.port -}}
{{- $_ := unset $p "httpGet" -}}
{{- $_ := set $p "tcpSocket" (dict "port" $port) -}}
{{- else }}
{{- $_ := set $p.httpGet "scheme" "HTTPS" -}}
{{- end }}
{{- end }}
{{- toYaml $p }}
{{- end }}
