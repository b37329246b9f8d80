{{/* The modal-exporter container and its volumes, one definition for both workloads: the
     sidecar/standalone Deployment (deployment.yaml) and the sharded StatefulSet
     (statefulset.yaml), so that config, state, web config (TLS, basic auth), probes and
     hardening cannot drift apart between the modes.
     exporterContainer takes (dict "root" $ "sharded" bool). */}}
{{- define "modal-operator.exporterContainer" -}}
{{- $v := .root.Values -}}
- name: {{ $v.exporter.name }}
  image: {{ include "modal-operator.exporterImage" .root | quote }}
  imagePullPolicy: {{ $v.exporter.image.pullPolicy }}
  args:
    - --config=/etc/modal-exporter/modal-exporter.yaml
    - --web.listen-address=:{{ $v.exporter.port }}
    - --state.file=/var/lib/modal-exporter/state.json
    {{- if $v.exporter.webConfig.enabled }}
    - --web.config.file=/etc/modal-exporter-web/web-config.yml
    {{- end }}
    {{- if .sharded }}
    - --total-shards={{ $v.sharding.shards }}
    - --shard.from-pod-name
    {{- end }}
    {{- with $v.exporter.extraArgs }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  env:
    {{- if .sharded }}
    # The pod's name carries its ordinal, i.e. its shard.
    {{- else }}
    # The exporter reads the restartCount of the operator container of its own Pod.
    {{- end }}
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    - name: POD_NAMESPACE
      valueFrom:
        fieldRef:
          fieldPath: metadata.namespace
    {{- include "modal-operator.modalEnv" (dict "root" .root "optional" true) | nindent 4 }}
    {{- with $v.exporter.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - name: metrics
      containerPort: {{ $v.exporter.port }}
      protocol: TCP
  {{- with $v.exporter.livenessProbe }}
  livenessProbe:
    {{- include "modal-operator.exporterProbe" (dict "probe" . "root" $.root) | nindent 4 }}
  {{- end }}
  {{- with $v.exporter.readinessProbe }}
  readinessProbe:
    {{- include "modal-operator.exporterProbe" (dict "probe" . "root" $.root) | nindent 4 }}
  {{- end }}
  resources:
    {{- toYaml $v.exporter.resources | nindent 4 }}
  securityContext:
    {{- toYaml $v.exporter.securityContext | nindent 4 }}
  volumeMounts:
    - name: exporter-config
      mountPath: /etc/modal-exporter
      readOnly: true
    - name: exporter-state
      mountPath: /var/lib/modal-exporter
    {{- if $v.exporter.webConfig.enabled }}
    - name: exporter-web-config
      mountPath: /etc/modal-exporter-web
      readOnly: true
    {{- if $v.exporter.webConfig.tls.secretName }}
    # Not a subPath mount: Secret updates (certificate renewals) reach the container.
    - name: exporter-tls
      mountPath: /etc/modal-exporter-tls
      readOnly: true
    {{- end }}
    {{- end }}
    {{- with $v.exporter.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{/* The volumes exporterContainer mounts. */}}
{{- define "modal-operator.exporterVolumes" -}}
- name: exporter-config
  configMap:
    name: {{ include "modal-operator.fullname" . }}-exporter
# Counted job UIDs survive container restarts (not pod deletion) in this emptyDir.
- name: exporter-state
  emptyDir:
    sizeLimit: {{ .Values.exporter.stateSizeLimit }}
{{- if .Values.exporter.webConfig.enabled }}
- name: exporter-web-config
  secret:
    secretName: {{ include "modal-operator.fullname" . }}-web-config
{{- if .Values.exporter.webConfig.tls.secretName }}
- name: exporter-tls
  secret:
    secretName: {{ .Values.exporter.webConfig.tls.secretName }}
{{- end }}
{{- end }}
{{- end }}

{{/* Pod metadata and the pod-level fields both workloads share. Takes (dict "root" $
     "defaultContainer" NAME). */}}
{{- define "modal-operator.podMetadata" -}}
{{- $v := .root.Values -}}
labels:
  {{- include "modal-operator.selectorLabels" .root | nindent 2 }}
  {{- with $v.commonLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  {{- with $v.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
annotations:
  # kubectl logs/exec pick this container without -c.
  kubectl.kubernetes.io/default-container: {{ .defaultContainer }}
  {{- if $v.exporter.enabled }}
  # Rolls the pod when the exporter's config changes (a mounted ConfigMap is updated in
  # place, but the exporter re-reads it only on SIGHUP).
  checksum/exporter-config: {{ include "modal-operator.exporterConfig" .root | sha256sum }}
  {{- end }}
  {{- with $v.podAnnotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/* Service account, pull secrets, priority and security context of the pod. */}}
{{- define "modal-operator.podHead" -}}
serviceAccountName: {{ include "modal-operator.serviceAccountName" . }}
automountServiceAccountToken: true
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end }}

{{/* Scheduling fields of the pod except affinity (which the sharded mode defaults). */}}
{{- define "modal-operator.podScheduling" -}}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
