{{/* vim: set filetype=mustache: */}}

{{/* Chart name (nameOverride). */}}
{{- define "cyclone-sse.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name, truncated to leave room for the longest suffix ("-publisher-metrics",
18 characters) within the 63-character DNS label limit. A release name that already contains the
chart name is used as is.
*/}}
{{- define "cyclone-sse.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 45 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Name of one component's objects: <fullname>-<component>. Call with (dict "root" $ "component" "edge"). */}}
{{- define "cyclone-sse.componentName" -}}
{{- printf "%s-%s" (include "cyclone-sse.fullname" .root) .component }}
{{- end }}

{{- define "cyclone-sse.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cyclone-sse.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Standard labels. Call with (dict "root" $ "component" "edge"). */}}
{{- define "cyclone-sse.labels" -}}
helm.sh/chart: {{ include "cyclone-sse.chart" .root }}
{{ include "cyclone-sse.selectorLabels" . }}
app.kubernetes.io/version: {{ (default .root.Chart.AppVersion .root.Values.image.tag) | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: cyclone-sse
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels (immutable): name, instance, component. */}}
{{- define "cyclone-sse.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cyclone-sse.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
metadata.annotations from commonAnnotations plus extra: emits "\n  annotations: ..." (indented for
metadata) or nothing. Use as `{{- include "cyclone-sse.annotations" (dict "root" $ "extra" map) }}`.
*/}}
{{- define "cyclone-sse.annotations" -}}
{{- $a := merge (deepCopy (default (dict) .extra)) (deepCopy .root.Values.commonAnnotations) }}
{{- with $a }}
{{- printf "\n  annotations:\n%s" (toYaml . | indent 4) }}
{{- end }}
{{- end }}

{{- define "cyclone-sse.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cyclone-sse.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Image reference. Call with (dict "image" .Values.image "default" .Chart.AppVersion). */}}
{{- define "cyclone-sse.imageRef" -}}
{{- $repo := .image.repository }}
{{- if .image.registry }}{{ $repo = printf "%s/%s" .image.registry .image.repository }}{{ end }}
{{- if .image.digest }}
{{- printf "%s@%s" $repo .image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (toString (default .default .image.tag)) }}
{{- end }}
{{- end }}

{{- define "cyclone-sse.image" -}}
{{ include "cyclone-sse.imageRef" (dict "image" .Values.image "default" .Chart.AppVersion) }}
{{- end }}

{{/* Each component's bin shim inside the image (the Dockerfile's WORKDIR is /app; its NODE_OPTIONS carries the V8 flags). */}}
{{- define "cyclone-sse.entrypoint" -}}
{{- if eq . "edge" }}/app/packages/edge/bin/cyclone-sse-edge.js{{ else if eq . "publisher" }}/app/packages/publisher/bin/cyclone-sse-publisher.js{{ else }}{{ fail (printf "unknown component %s" .) }}{{ end }}
{{- end }}

{{- define "cyclone-sse.secretName" -}}
{{- include "cyclone-sse.fullname" . }}
{{- end }}

{{/* True when the chart creates its own Secret (auth.httpSecret or amqp.url given as values). */}}
{{- define "cyclone-sse.createSecret" -}}
{{- if or .Values.auth.httpSecret .Values.amqp.url }}true{{ end }}
{{- end }}

{{- define "cyclone-sse.redisServiceName" -}}
{{- printf "%s-redis" (include "cyclone-sse.fullname" .) }}
{{- end }}

{{/* Redis URL written to the config file; empty when it comes from redis.existingSecret. */}}
{{- define "cyclone-sse.redisUrl" -}}
{{- if .Values.redis.url }}
{{- .Values.redis.url }}
{{- else if .Values.redis.embedded.enabled }}
{{- printf "redis://%s:6379/0" (include "cyclone-sse.redisServiceName" .) }}
{{- end }}
{{- end }}

{{/* Cross-field checks the JSON schema cannot express. Included by every component template. */}}
{{- define "cyclone-sse.validate" -}}
{{- $r := .Values.redis }}
{{- $sources := 0 }}
{{- if $r.url }}{{ $sources = add1 $sources }}{{ end }}
{{- if $r.existingSecret }}{{ $sources = add1 $sources }}{{ end }}
{{- if $r.embedded.enabled }}{{ $sources = add1 $sources }}{{ end }}
{{- if and (or .Values.edge.enabled .Values.publisher.enabled) (ne $sources 1) }}
{{- fail (printf "cyclone-sse needs exactly one Redis: set redis.url, redis.existingSecret or redis.embedded.enabled=true (%d set)" $sources) }}
{{- end }}
{{- if and .Values.amqp.url .Values.amqp.existingSecret }}
{{- fail "set amqp.url or amqp.existingSecret, not both" }}
{{- end }}
{{- if and .Values.auth.httpSecret .Values.auth.existingSecret }}
{{- fail "set auth.httpSecret or auth.existingSecret, not both" }}
{{- end }}
{{- if eq (int .Values.ports.http) (int .Values.ports.internal) }}
{{- fail "ports.http and ports.internal must differ" }}
{{- end }}
{{- range $c := list "edge" "publisher" }}
{{- $v := index $.Values $c }}
{{- if $v.enabled }}
{{- $grace := include "cyclone-sse.gracePeriod" (dict "values" $v) | int }}
{{- $need := add $v.drainSeconds $v.preStopSleepSeconds | int }}
{{- if le $grace $need }}
{{- fail (printf "%s.terminationGracePeriodSeconds (%d) must be greater than %s.drainSeconds + %s.preStopSleepSeconds (%d), or the drain is cut short by SIGKILL" $c $grace $c $c $need) }}
{{- end }}
{{- if and $v.autoscaling.enabled (gt (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) }}
{{- fail (printf "%s.autoscaling.minReplicas must not exceed maxReplicas" $c) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* terminationGracePeriodSeconds: explicit, or drain + preStop + 10 s margin. (dict "values" .Values.edge) */}}
{{- define "cyclone-sse.gracePeriod" -}}
{{- if kindIs "invalid" .values.terminationGracePeriodSeconds }}
{{- add .values.drainSeconds .values.preStopSleepSeconds 10 }}
{{- else }}
{{- .values.terminationGracePeriodSeconds | int }}
{{- end }}
{{- end }}

{{/*
The JSON config file of one component (mounted at /etc/cyclone-sse/<component>.json, passed with
--config). Shared `config`, then `<component>.config`, then the options the chart owns.
Call with (dict "root" $ "component" "edge").
*/}}
{{- define "cyclone-sse.configJson" -}}
{{- $root := .root }}
{{- $v := index $root.Values .component }}
{{- $managed := dict
  "port" (int $root.Values.ports.http)
  "listen" "0.0.0.0"
  "metrics-port" (int $root.Values.ports.internal)
  "metrics-listen" "0.0.0.0"
  "drain-seconds" $v.drainSeconds
  "redis-prefix" $root.Values.redis.prefix
}}
{{- $url := include "cyclone-sse.redisUrl" $root }}
{{- if $url }}{{ $_ := set $managed "redis-url" $url }}{{ end }}
{{- if eq .component "publisher" }}
{{- $_ := set $managed "amqp-exchange" $root.Values.amqp.exchange }}
{{- $_ := set $managed "amqp-exchange-type" $root.Values.amqp.exchangeType }}
{{- $_ := set $managed "amqp-queue" $root.Values.amqp.queue }}
{{- $_ := set $managed "amqp-prefetch" (int $root.Values.amqp.prefetch) }}
{{- $_ := set $managed "amqp-dead-letter-exchange" $root.Values.amqp.deadLetterExchange }}
{{- end }}
{{- $cfg := mustMergeOverwrite (dict) (deepCopy $root.Values.config) (deepCopy $v.config) $managed }}
{{- toPrettyJson $cfg }}
{{- end }}

{{/* Secret-backed environment of one component. (dict "root" $ "component" "edge") */}}
{{- define "cyclone-sse.secretEnv" -}}
{{- $root := .root }}
{{- with $root.Values.redis.existingSecret }}
- name: CYCLONE_SSE_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $root.Values.redis.existingSecretKey }}
{{- end }}
{{- if eq .component "publisher" }}
{{- include "cyclone-sse.httpSecretEnv" $root }}
{{- if $root.Values.amqp.existingSecret }}
- name: CYCLONE_SSE_AMQP_URL
  valueFrom:
    secretKeyRef:
      name: {{ $root.Values.amqp.existingSecret }}
      key: {{ $root.Values.amqp.existingSecretKey }}
{{- else if $root.Values.amqp.url }}
- name: CYCLONE_SSE_AMQP_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "cyclone-sse.secretName" $root }}
      key: amqp-url
{{- end }}
{{- end }}
{{- end }}

{{- define "cyclone-sse.httpSecretEnv" -}}
{{- if .Values.auth.existingSecret }}
- name: CYCLONE_SSE_HTTP_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ .Values.auth.existingSecret }}
      key: {{ .Values.auth.existingSecretKey }}
{{- else if .Values.auth.httpSecret }}
- name: CYCLONE_SSE_HTTP_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "cyclone-sse.secretName" . }}
      key: http-secret
{{- end }}
{{- end }}

{{/* Hash of the chart-created Secret's data (pods restart when it changes). */}}
{{- define "cyclone-sse.secretChecksum" -}}
{{- printf "%s|%s" .Values.auth.httpSecret .Values.amqp.url | sha256sum }}
{{- end }}
