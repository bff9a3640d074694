{{/*
Objects shared by the edge and the publisher. Each is called with (dict "root" $ "component" "edge").
*/}}

{{- define "cyclone-sse.deployment" -}}
{{- $root := .root }}
{{- $c := .component }}
{{- $v := index $root.Values $c }}
{{- $name := include "cyclone-sse.componentName" . }}
{{- $grace := include "cyclone-sse.gracePeriod" (dict "values" $v) | int }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  namespace: {{ include "cyclone-sse.namespace" $root }}
  labels:
    {{- include "cyclone-sse.labels" . | nindent 4 }}
  {{- include "cyclone-sse.annotations" (dict "root" $root) }}
spec:
  {{- if not $v.autoscaling.enabled }}
  replicas: {{ $v.replicaCount }}
  {{- end }}
  revisionHistoryLimit: {{ $v.revisionHistoryLimit }}
  minReadySeconds: {{ $v.minReadySeconds }}
  selector:
    matchLabels:
      {{- include "cyclone-sse.selectorLabels" . | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: {{ $v.updateStrategy.maxSurge }}
      maxUnavailable: {{ $v.updateStrategy.maxUnavailable }}
  template:
    metadata:
      labels:
        {{- include "cyclone-sse.labels" . | nindent 8 }}
        {{- with $v.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        checksum/config: {{ include "cyclone-sse.configJson" . | sha256sum }}
        {{- if include "cyclone-sse.createSecret" $root }}
        checksum/secret: {{ include "cyclone-sse.secretChecksum" $root }}
        {{- end }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "cyclone-sse.serviceAccountName" $root }}
      automountServiceAccountToken: {{ $root.Values.serviceAccount.automountServiceAccountToken }}
      enableServiceLinks: false
      terminationGracePeriodSeconds: {{ $grace }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      {{- with $root.Values.podSecurityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ $c }}
          image: {{ include "cyclone-sse.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          # args, not command: the image's ENTRYPOINT (tini) stays PID 1 and forwards SIGTERM.
          args:
            - node
            - {{ include "cyclone-sse.entrypoint" $c }}
            - --config
            - /etc/cyclone-sse/{{ $c }}.json
            {{- range $v.extraArgs }}
            - {{ . | quote }}
            {{- end }}
          {{- $env := include "cyclone-sse.secretEnv" . }}
          {{- if or $env $v.extraEnv }}
          env:
            {{- with $env }}
            {{- . | trim | nindent 12 }}
            {{- end }}
            {{- with $v.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- end }}
          ports:
            - name: http
              containerPort: {{ $root.Values.ports.http }}
              protocol: TCP
            - name: internal
              containerPort: {{ $root.Values.ports.internal }}
              protocol: TCP
          startupProbe:
            httpGet:
              path: /livez
              port: internal
            {{- toYaml $v.probes.startup | nindent 12 }}
          livenessProbe:
            httpGet:
              path: /livez
              port: internal
            {{- toYaml $v.probes.liveness | nindent 12 }}
          readinessProbe:
            httpGet:
              path: /readyz
              port: internal
            {{- toYaml $v.probes.readiness | nindent 12 }}
          {{- if gt (int $v.preStopSleepSeconds) 0 }}
          lifecycle:
            preStop:
              # Let endpoint controllers and load balancers drop the pod before SIGTERM starts
              # the drain (readiness 503, listen socket closed, streams ended with retry:).
              exec:
                command: ["sleep", "{{ $v.preStopSleepSeconds }}"]
          {{- end }}
          {{- with $v.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with $root.Values.containerSecurityContext }}
          securityContext:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          volumeMounts:
            - name: config
              mountPath: /etc/cyclone-sse
              readOnly: true
            - name: tmp
              mountPath: /tmp
            {{- with $v.extraVolumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        - name: config
          configMap:
            name: {{ include "cyclone-sse.fullname" $root }}
            items:
              - key: {{ $c }}.json
                path: {{ $c }}.json
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
        {{- with $v.extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.topologySpreadConstraints }}
      {{- $sel := dict "matchLabels" (include "cyclone-sse.selectorLabels" $ | fromYaml) }}
      {{- $list := list }}
      {{- range . }}{{ $list = append $list (merge (deepCopy .) (dict "labelSelector" $sel)) }}{{ end }}
      topologySpreadConstraints:
        {{- toYaml $list | nindent 8 }}
      {{- end }}
{{- end }}

{{- define "cyclone-sse.service" -}}
{{- $root := .root }}
{{- $v := index $root.Values .component }}
{{- $s := $v.service }}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "cyclone-sse.componentName" . }}
  namespace: {{ include "cyclone-sse.namespace" $root }}
  labels:
    {{- include "cyclone-sse.labels" . | nindent 4 }}
  {{- include "cyclone-sse.annotations" (dict "root" $root "extra" $s.annotations) }}
spec:
  type: {{ $s.type }}
  {{- if and (ne $s.type "ClusterIP") $s.externalTrafficPolicy }}
  externalTrafficPolicy: {{ $s.externalTrafficPolicy }}
  {{- end }}
  {{- if and (eq $s.type "LoadBalancer") $s.loadBalancerSourceRanges }}
  loadBalancerSourceRanges:
    {{- toYaml $s.loadBalancerSourceRanges | nindent 4 }}
  {{- end }}
  ports:
    - name: http
      port: {{ $s.port }}
      targetPort: http
      protocol: TCP
      appProtocol: http
      {{- if and (ne $s.type "ClusterIP") (not (kindIs "invalid" $s.nodePort)) }}
      nodePort: {{ $s.nodePort }}
      {{- end }}
  selector:
    {{- include "cyclone-sse.selectorLabels" . | nindent 4 }}
{{- end }}

{{/* Internal-port Service, only for ServiceMonitor scraping (the public Service never exposes /metrics). */}}
{{- define "cyclone-sse.metricsService" -}}
{{- $root := .root }}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "cyclone-sse.componentName" . }}-metrics
  namespace: {{ include "cyclone-sse.namespace" $root }}
  labels:
    {{- include "cyclone-sse.labels" . | nindent 4 }}
    cyclone-sse/service: metrics
  {{- include "cyclone-sse.annotations" (dict "root" $root) }}
spec:
  type: ClusterIP
  ports:
    - name: metrics
      port: {{ $root.Values.ports.internal }}
      targetPort: internal
      protocol: TCP
  selector:
    {{- include "cyclone-sse.selectorLabels" . | nindent 4 }}
{{- end }}

{{- define "cyclone-sse.serviceMonitor" -}}
{{- $root := .root }}
{{- $sm := $root.Values.metrics.serviceMonitor }}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "cyclone-sse.componentName" . }}
  namespace: {{ default (include "cyclone-sse.namespace" $root) $sm.namespace }}
  labels:
    {{- include "cyclone-sse.labels" . | nindent 4 }}
    {{- with $sm.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- include "cyclone-sse.annotations" (dict "root" $root) }}
spec:
  jobLabel: app.kubernetes.io/component
  namespaceSelector:
    matchNames:
      - {{ include "cyclone-sse.namespace" $root }}
  selector:
    matchLabels:
      {{- include "cyclone-sse.selectorLabels" . | nindent 6 }}
      cyclone-sse/service: metrics
  endpoints:
    - port: metrics
      path: /metrics
      interval: {{ $sm.interval }}
      scrapeTimeout: {{ $sm.scrapeTimeout }}
      {{- with $sm.relabelings }}
      relabelings:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $sm.metricRelabelings }}
      metricRelabelings:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}

{{- define "cyclone-sse.hpa" -}}
{{- $root := .root }}
{{- $a := (index $root.Values .component).autoscaling }}
{{- $metrics := list }}
{{- if not (kindIs "invalid" $a.targetCPUUtilizationPercentage) }}
{{- $metrics = append $metrics (dict "type" "Resource" "resource" (dict "name" "cpu" "target" (dict "type" "Utilization" "averageUtilization" (int $a.targetCPUUtilizationPercentage)))) }}
{{- end }}
{{- if and (hasKey $a "targetConnectionsPerPod") (not (kindIs "invalid" $a.targetConnectionsPerPod)) }}
{{- $metrics = append $metrics (dict "type" "Pods" "pods" (dict "metric" (dict "name" $a.connectionsMetricName) "target" (dict "type" "AverageValue" "averageValue" (toString (int $a.targetConnectionsPerPod))))) }}
{{- end }}
{{- range (default (list) $a.customMetrics) }}
{{- $metrics = append $metrics . }}
{{- end }}
{{- if not $metrics }}
{{- fail (printf "%s.autoscaling.enabled needs a metric: targetCPUUtilizationPercentage, targetConnectionsPerPod or customMetrics" .component) }}
{{- end }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "cyclone-sse.componentName" . }}
  namespace: {{ include "cyclone-sse.namespace" $root }}
  labels:
    {{- include "cyclone-sse.labels" . | nindent 4 }}
  {{- include "cyclone-sse.annotations" (dict "root" $root) }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "cyclone-sse.componentName" . }}
  minReplicas: {{ $a.minReplicas }}
  maxReplicas: {{ $a.maxReplicas }}
  metrics:
    {{- toYaml $metrics | nindent 4 }}
  {{- with $a.behavior }}
  behavior:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{- define "cyclone-sse.pdb" -}}
{{- $root := .root }}
{{- $p := (index $root.Values .component).pdb }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "cyclone-sse.componentName" . }}
  namespace: {{ include "cyclone-sse.namespace" $root }}
  labels:
    {{- include "cyclone-sse.labels" . | nindent 4 }}
  {{- include "cyclone-sse.annotations" (dict "root" $root) }}
spec:
  {{- if not (kindIs "invalid" $p.minAvailable) }}
  minAvailable: {{ $p.minAvailable }}
  {{- else if not (kindIs "invalid" $p.maxUnavailable) }}
  maxUnavailable: {{ $p.maxUnavailable }}
  {{- else }}
  maxUnavailable: 1
  {{- end }}
  selector:
    matchLabels:
      {{- include "cyclone-sse.selectorLabels" . | nindent 6 }}
{{- end }}
