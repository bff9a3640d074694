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

{{/* Each component's V8 flags, one per line: V8_FLAGS_BY_COMPONENT in packages/common/src/runtime/v8-flags.ts (deploy/helm/test/chart.test.ts keeps them equal). */}}
{{- define "cyclone-sse.v8Flags" -}}
{{- if eq . "edge" }}--max-semi-space-size=1{{ else if eq . "publisher" }}--max-semi-space-size=16{{ else }}{{ fail (printf "unknown component %s" .) }}{{ end }}
{{- end }}

{{/* Each component's bin shim inside the image (the Dockerfile's WORKDIR is /app). */}}
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

{{/* redis-sentinels given in any config map (Sentinel mode: an external Redis). */}}
{{- define "cyclone-sse.sentinels" -}}
{{- if or (index .Values.config "redis-sentinels") (index .Values.edge.config "redis-sentinels") (index .Values.publisher.config "redis-sentinels") }}true{{ end }}
{{- end }}

{{/* redis-cluster-nodes given in any config map (a Redis Cluster: an external Redis). */}}
{{- define "cyclone-sse.clusterNodes" -}}
{{- if or (index .Values.config "redis-cluster-nodes") (index .Values.edge.config "redis-cluster-nodes") (index .Values.publisher.config "redis-cluster-nodes") }}true{{ end }}
{{- end }}

{{/* True when an external Redis is configured: redis.url, redis.existingSecret, Sentinel or a Redis Cluster. */}}
{{- define "cyclone-sse.externalRedis" -}}
{{- if or .Values.redis.url .Values.redis.existingSecret (include "cyclone-sse.sentinels" .) (include "cyclone-sse.clusterNodes" .) }}true{{ end }}
{{- end }}

{{/* True when the embedded Redis is deployed: enabled and no external Redis. */}}
{{- define "cyclone-sse.embeddedRedis" -}}
{{- if and .Values.redis.embedded.enabled (not (include "cyclone-sse.externalRedis" .)) }}true{{ end }}
{{- end }}

{{/* The Secret holding the embedded Redis password, and its key. */}}
{{- define "cyclone-sse.redisPasswordSecret" -}}
{{- default (include "cyclone-sse.redisServiceName" .) .Values.redis.embedded.auth.existingSecret }}
{{- end }}
{{- define "cyclone-sse.redisPasswordKey" -}}
{{- if .Values.redis.embedded.auth.existingSecret }}{{ .Values.redis.embedded.auth.existingSecretKey }}{{ else }}redis-password{{ end }}
{{- end }}

{{/*
The generated embedded Redis password: the one in the existing Secret (helm upgrade), or a new
random one (helm install). `helm template` and `--dry-run` cannot look up, so they show a new one.
*/}}
{{- define "cyclone-sse.generatedRedisPassword" -}}
{{- $existing := lookup "v1" "Secret" (include "cyclone-sse.namespace" .) (include "cyclone-sse.redisServiceName" .) }}
{{- $old := "" }}
{{- if and $existing $existing.data }}{{ $old = index $existing.data "redis-password" | default "" }}{{ end }}
{{- if $old }}{{ $old | b64dec }}{{ else }}{{ randAlphaNum 32 }}{{ end }}
{{- end }}

{{/* Redis URL written to the config file; empty when it comes from a Secret (or from Sentinel alone). */}}
{{- define "cyclone-sse.redisUrl" -}}
{{- if .Values.redis.url }}
{{- .Values.redis.url }}
{{- end }}
{{- end }}

{{/*
Bytes of a Kubernetes quantity (512Mi, 1Gi, 0.5Gi, 500M, 536870912). Call with
(dict "q" quantity "what" "edge.resources.limits.memory").
*/}}
{{- define "cyclone-sse.bytes" -}}
{{- $q := .q }}
{{- if or (kindIs "float64" $q) (kindIs "int" $q) (kindIs "int64" $q) }}
{{- $q | int64 }}
{{- else }}
{{- $s := toString $q }}
{{- if not (regexMatch "^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$" $s) }}
{{- fail (printf "%s: cannot read the quantity %q (use e.g. 512Mi or 2Gi)" .what $s) }}
{{- end }}
{{- $num := regexReplaceAll "^([0-9.]+)([A-Za-z]*)$" $s "${1}" | float64 }}
{{- $unit := regexReplaceAll "^([0-9.]+)([A-Za-z]*)$" $s "${2}" }}
{{- $units := dict "" 1 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 }}
{{- mulf $num (index $units $unit) | floor | int64 }}
{{- end }}
{{- end }}

{{/*
The edge's max-connections: edge.config / config max-connections when given, else derived from
the memory limit: (limit - base - queuedPercent of the limit) / per connection. 0 = unlimited
(no memory limit).
*/}}
{{- define "cyclone-sse.edgeMaxConnections" -}}
{{- $e := .Values.edge }}
{{- if hasKey $e.config "max-connections" }}
{{- index $e.config "max-connections" | int64 }}
{{- else }}
{{- $limit := dig "limits" "memory" "" (default (dict) $e.resources) }}
{{- if not $limit }}
{{- 0 }}
{{- else }}
{{- $b := $e.memoryBudget }}
{{- $bytes := include "cyclone-sse.bytes" (dict "q" $limit "what" "edge.resources.limits.memory") | int64 }}
{{- $base := mul $b.baseMiB 1048576 }}
{{- $queued := div (mul $bytes $b.queuedPercent) 100 }}
{{- $n := div (sub (sub $bytes $base) $queued) (mul $b.perConnectionKiB 1024) }}
{{- if lt $n 1 }}
{{- fail (printf "edge.resources.limits.memory %v leaves no room for connections after edge.memoryBudget (baseMiB %v + queuedPercent %v %%): raise the limit, or set edge.config.max-connections" $limit $b.baseMiB $b.queuedPercent) }}
{{- end }}
{{- $n }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The edge's max-queued-bytes-total: the queuedPercent share of the memory limit that the
max-connections formula reserves for bytes queued for slow readers (docs/kubernetes.md, memory
budget); 0 = not derived (no memory limit, or set in edge.config / config).
*/}}
{{- define "cyclone-sse.edgeQueuedBytesTotal" -}}
{{- $e := .Values.edge }}
{{- $limit := dig "limits" "memory" "" (default (dict) $e.resources) }}
{{- if or (hasKey $e.config "max-queued-bytes-total") (hasKey (default (dict) .Values.config) "max-queued-bytes-total") (not $limit) }}
{{- 0 }}
{{- else }}
{{- $bytes := include "cyclone-sse.bytes" (dict "q" $limit "what" "edge.resources.limits.memory") | int64 }}
{{- div (mul $bytes $e.memoryBudget.queuedPercent) 100 }}
{{- end }}
{{- end }}

{{/* True when a publish needs a credential: auth.* or a publisher-jwt-key (in config, or as an env var). */}}
{{- define "cyclone-sse.publishAuth" -}}
{{- $p := .Values.publisher }}
{{- $envs := list }}
{{- range $p.extraEnv }}{{ $envs = append $envs .name }}{{ end }}
{{- if or .Values.auth.httpSecret .Values.auth.existingSecret (index $p.config "publisher-jwt-key") (has "CYCLONE_SSE_HTTP_SECRET" $envs) (has "CYCLONE_SSE_PUBLISHER_JWT_KEY" $envs) }}true{{ end }}
{{- end }}

{{/* Cross-field checks the JSON schema cannot express. Included once, by configmap.yaml. */}}
{{- define "cyclone-sse.validate" -}}
{{- $r := .Values.redis }}
{{- if and $r.url $r.existingSecret }}
{{- fail "set redis.url or redis.existingSecret, not both" }}
{{- end }}
{{- if and (or .Values.edge.enabled .Values.publisher.enabled) (not (include "cyclone-sse.externalRedis" .)) (not $r.embedded.enabled) }}
{{- fail "cyclone-sse needs a Redis: set redis.url, redis.existingSecret, config.redis-sentinels or config.redis-cluster-nodes, or keep redis.embedded.enabled=true" }}
{{- end }}
{{- if and (include "cyclone-sse.sentinels" .) (include "cyclone-sse.clusterNodes" .) }}
{{- fail "set config.redis-sentinels or config.redis-cluster-nodes, not both (a Redis Cluster fails over by itself)" }}
{{- end }}
{{- if and .Values.amqp.url .Values.amqp.existingSecret }}
{{- fail "set amqp.url or amqp.existingSecret, not both" }}
{{- end }}
{{- if and .Values.auth.httpSecret .Values.auth.existingSecret }}
{{- fail "set auth.httpSecret or auth.existingSecret, not both" }}
{{- end }}
{{- $ports := list (int .Values.ports.http) (int .Values.ports.internal) }}
{{- if .Values.edge.tls.enabled }}{{ $ports = append $ports (int .Values.ports.https) }}{{ end }}
{{- if ne (len $ports) (len (uniq $ports)) }}
{{- fail "ports.http, ports.internal (and ports.https with edge.tls.enabled) must differ" }}
{{- end }}
{{- if and .Values.edge.tls.enabled (not .Values.edge.tls.existingSecret) }}
{{- fail "edge.tls.enabled needs edge.tls.existingSecret: a kubernetes.io/tls Secret with tls.crt and tls.key" }}
{{- end }}
{{- /* Nothing public that needs a credential goes without one. */}}
{{- if and .Values.publisher.enabled (not (include "cyclone-sse.publishAuth" .)) }}
{{- $public := list }}
{{- if and .Values.ingress.enabled .Values.ingress.publish }}{{ $public = append $public "ingress.publish=true" }}{{ end }}
{{- if and .Values.httpRoute.enabled .Values.httpRoute.publish }}{{ $public = append $public "httpRoute.publish=true" }}{{ end }}
{{- if ne .Values.publisher.service.type "ClusterIP" }}{{ $public = append $public (printf "publisher.service.type=%s" .Values.publisher.service.type) }}{{ end }}
{{- if $public }}
{{- fail (printf "refusing to expose POST /publish without a credential (%s): set auth.existingSecret (or auth.httpSecret), or a publisher-jwt-key in publisher.config; or keep publishing inside the cluster" (join ", " $public)) }}
{{- end }}
{{- end }}
{{- if and .Values.ingress.enabled (not .Values.ingress.controller) }}
{{- fail "ingress.enabled needs ingress.controller (ingress-nginx, f5-nginx, traefik, haproxy, contour or none): it chooses the annotations that keep streams open and unbuffered" }}
{{- end }}
{{- if and .Values.ingress.enabled (not .Values.ingress.hosts) }}
{{- fail "ingress.enabled needs at least one entry in ingress.hosts (`[{host: sse.example.com}]`, or `[{host: \"\"}]` for every host): the API server refuses an Ingress without rules" }}
{{- end }}
{{- /* Selector labels are immutable and must match the pod template: no value may override them. */}}
{{- $selectorKeys := list "app.kubernetes.io/name" "app.kubernetes.io/instance" "app.kubernetes.io/component" }}
{{- $labelValues := dict "commonLabels" .Values.commonLabels "edge.podLabels" .Values.edge.podLabels "publisher.podLabels" .Values.publisher.podLabels }}
{{- range $key := keys $labelValues | sortAlpha }}
{{- $labels := default (dict) (get $labelValues $key) }}
{{- range $k := $selectorKeys }}
{{- if hasKey $labels $k }}
{{- fail (printf "%s must not set %s: the chart sets it and its Deployments select their pods by it (the API server refuses a pod template whose labels do not match the selector)" $key $k) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and .Values.httpRoute.enabled (not .Values.httpRoute.parentRefs) }}
{{- fail "httpRoute.enabled needs httpRoute.parentRefs (the Gateway the route attaches to)" }}
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

{{/*
spec.replicas of a component's Deployment. Without autoscaling: replicaCount. With autoscaling the
HPA owns the count, but leaving the field out would let helm's three-way merge remove it on the
upgrade that turns autoscaling on (the API server then defaults it to 1 and the HPA has to scale
back up): keep the live Deployment's count (at least minReplicas); minReplicas on install, and
wherever `lookup` sees no cluster (helm template, --dry-run, Argo CD). (dict "root" $ "component" "edge")
*/}}
{{- define "cyclone-sse.replicas" -}}
{{- $v := index .root.Values .component }}
{{- if not $v.autoscaling.enabled }}
{{- $v.replicaCount }}
{{- else }}
{{- $live := lookup "apps/v1" "Deployment" (include "cyclone-sse.namespace" .root) (include "cyclone-sse.componentName" .) }}
{{- $current := 0 }}
{{- if and $live $live.spec }}{{ $current = int (default 0 $live.spec.replicas) }}{{ end }}
{{- max $current (int $v.autoscaling.minReplicas) }}
{{- end }}
{{- end }}

{{/* minReadySeconds: explicit, or (edge) preStop + drain so old edges drain one after the other. (dict "values" .Values.edge) */}}
{{- define "cyclone-sse.minReadySeconds" -}}
{{- if kindIs "invalid" .values.minReadySeconds }}
{{- add .values.preStopSleepSeconds .values.drainSeconds }}
{{- else }}
{{- .values.minReadySeconds | int }}
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
{{- $derived := dict }}
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
{{- if eq .component "edge" }}
{{- $max := include "cyclone-sse.edgeMaxConnections" $root | int64 }}
{{- if gt $max 0 }}{{ $_ := set $derived "max-connections" $max }}{{ end }}
{{- $queuedTotal := include "cyclone-sse.edgeQueuedBytesTotal" $root | int64 }}
{{- if gt $queuedTotal 0 }}{{ $_ := set $derived "max-queued-bytes-total" $queuedTotal }}{{ end }}
{{- if $v.tls.enabled }}
{{- $_ := set $managed "use-ssl" true }}
{{- $_ := set $managed "ssl-port" (int $root.Values.ports.https) }}
{{- $_ := set $managed "ssl-listen" "0.0.0.0" }}
{{- $_ := set $managed "ssl-cert" "/etc/cyclone-sse-tls/tls.crt" }}
{{- $_ := set $managed "ssl-key" "/etc/cyclone-sse-tls/tls.key" }}
{{- end }}
{{- end }}
{{- if eq .component "publisher" }}
{{- $_ := set $managed "amqp-exchange" $root.Values.amqp.exchange }}
{{- $_ := set $managed "amqp-exchange-type" $root.Values.amqp.exchangeType }}
{{- $_ := set $managed "amqp-queue" $root.Values.amqp.queue }}
{{- $_ := set $managed "amqp-prefetch" (int $root.Values.amqp.prefetch) }}
{{- $_ := set $managed "amqp-dead-letter-exchange" $root.Values.amqp.deadLetterExchange }}
{{- end }}
{{- $cfg := mustMergeOverwrite $derived (deepCopy $root.Values.config) (deepCopy $v.config) $managed }}
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
{{- if include "cyclone-sse.embeddedRedis" $root }}
# the embedded Redis: its password from the Secret, put into the URL by Kubernetes ($(VAR) expansion)
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "cyclone-sse.redisPasswordSecret" $root }}
      key: {{ include "cyclone-sse.redisPasswordKey" $root }}
- name: CYCLONE_SSE_REDIS_URL
  value: {{ printf "redis://:$(REDIS_PASSWORD)@%s:6379/0" (include "cyclone-sse.redisServiceName" $root) | quote }}
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

{{/* The publisher's max-body in bytes (publisher.config, else the option's default, 1 MiB). */}}
{{- define "cyclone-sse.publisherMaxBody" -}}
{{- index .Values.publisher.config "max-body" | default 1048576 | int64 }}
{{- end }}

{{/*
Ingress annotations that keep SSE working on the named controller. (dict "root" $ "for" "edge"|"publish")
Edges: no response buffering, no total or idle timeout below the stream lifetime, a dead edge skipped.
Publish: a body limit above the publisher's max-body, no retry once a publisher answered.
*/}}
{{- define "cyclone-sse.ingressAnnotations" -}}
{{- $i := .root.Values.ingress }}
{{- $t := int $i.readTimeoutSeconds }}
{{- $bodyMiB := add1 (div (include "cyclone-sse.publisherMaxBody" .root | int64) 1048576) }}
{{- $a := dict }}
{{- if eq $i.controller "ingress-nginx" }}
{{- if eq .for "edge" }}
{{- $a = dict
  "nginx.ingress.kubernetes.io/proxy-buffering" "off"
  "nginx.ingress.kubernetes.io/proxy-read-timeout" (toString $t)
  "nginx.ingress.kubernetes.io/proxy-send-timeout" (toString $t)
  "nginx.ingress.kubernetes.io/proxy-http-version" "1.1"
  "nginx.ingress.kubernetes.io/proxy-connect-timeout" "2"
  "nginx.ingress.kubernetes.io/proxy-next-upstream" "error timeout http_502 http_503"
}}
{{- else }}
{{- $a = dict
  "nginx.ingress.kubernetes.io/proxy-body-size" (printf "%dm" $bodyMiB)
  "nginx.ingress.kubernetes.io/proxy-http-version" "1.1"
  "nginx.ingress.kubernetes.io/proxy-next-upstream" "error timeout"
}}
{{- end }}
{{- else if eq $i.controller "f5-nginx" }}
{{- if eq .for "edge" }}
{{- $a = dict
  "nginx.org/proxy-buffering" "False"
  "nginx.org/proxy-read-timeout" (printf "%ds" $t)
  "nginx.org/proxy-send-timeout" (printf "%ds" $t)
}}
{{- else }}
{{- $a = dict "nginx.org/client-max-body-size" (printf "%dm" $bodyMiB) }}
{{- end }}
{{- else if eq $i.controller "haproxy" }}
{{- if eq .for "edge" }}
{{- $a = dict "haproxy.org/timeout-server" (printf "%ds" $t) }}
{{- end }}
{{- else if eq $i.controller "contour" }}
{{- if eq .for "edge" }}
{{- /* Envoy's route timeout is 15 s by default: it would end every stream. */}}
{{- $a = dict "projectcontour.io/response-timeout" "infinity" }}
{{- end }}
{{- end }}
{{- /* traefik streams unbuffered without annotations (its entryPoint readTimeout is static configuration: docs/kubernetes.md#routing); none = no annotations */}}
{{- $a = mustMergeOverwrite $a (deepCopy $i.annotations) }}
{{- if eq .for "publish" }}{{ $a = mustMergeOverwrite $a (deepCopy $i.publishAnnotations) }}{{ end }}
{{- toYaml $a }}
{{- end }}
