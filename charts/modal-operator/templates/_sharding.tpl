{{/* Standalone sharded mode (values `sharding`): "true" when the chart renders a StatefulSet of
     exporters, one shard per pod, instead of the Deployment. */}}
{{- define "modal-operator.sharded" -}}
{{- if and .Values.sharding.enabled .Values.exporter.enabled (not .Values.operator.enabled) }}true{{ end }}
{{- end }}

{{/* Pod anti-affinity of the shards: spread them over sharding.topologyKey, preferred (soft)
     or required (hard). The `affinity` value, when set, replaces it. */}}
{{- define "modal-operator.shardAntiAffinity" -}}
{{- $term := dict "topologyKey" .Values.sharding.topologyKey "labelSelector" (dict "matchLabels" (include "modal-operator.selectorLabels" . | fromYaml)) }}
{{- if eq .Values.sharding.podAntiAffinity "hard" }}
podAntiAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    {{- toYaml (list $term) | nindent 4 }}
{{- else if eq .Values.sharding.podAntiAffinity "soft" }}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        {{- toYaml $term | nindent 8 }}
{{- end }}
{{- end }}
