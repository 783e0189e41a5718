{{- define "trailship.name" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "trailship.component" -}}
{{- if eq .Values.mode "daemonset" -}}node-agent{{- else -}}queue-consumer{{- end -}}
{{- end -}}

{{- define "trailship.selector" -}}
app.kubernetes.io/name: trailship
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: {{ include "trailship.component" . }}
{{- end -}}

{{- define "trailship.labels" -}}
{{ include "trailship.selector" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{- define "trailship.serviceAccount" -}}
{{- default (include "trailship.name" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* The pod template both modes share; only volumes and resources differ. */}}
{{- define "trailship.pod" -}}
metadata:
  labels:
    {{- include "trailship.selector" . | nindent 4 }}
  annotations:
    prometheus.io/scrape: "true"
    prometheus.io/port: "8686"
    prometheus.io/path: /metrics
    checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "trailship.serviceAccount" . }}
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  securityContext:
    runAsNonRoot: true
    runAsUser: 10001
    runAsGroup: 10001
    fsGroup: 10001
    seccompProfile:
      type: RuntimeDefault
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if eq .Values.mode "daemonset" }}
  initContainers:
    - name: data-dir-owner
      image: busybox:1.37
      command: ["sh", "-c", "chown 10001:10001 /var/lib/trailship && chmod 0700 /var/lib/trailship"]
      securityContext:
        runAsNonRoot: false
        runAsUser: 0
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities:
          drop: ["ALL"]
          add: ["CHOWN", "FOWNER"]
      resources:
        requests: { cpu: 10m, memory: 8Mi }
        limits: { cpu: 100m, memory: 32Mi }
      volumeMounts:
        - { name: data, mountPath: /var/lib/trailship }
  {{- end }}
  containers:
    - name: trailship
      image: "{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}"
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args: ["run", "--config", "/etc/trailship/trailship.toml", "--watch-config", "--log-format", "json"]
      env:
        {{- with .Values.env }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        - name: POD_NAME
          valueFrom: { fieldRef: { fieldPath: metadata.name } }
        - name: POD_NAMESPACE
          valueFrom: { fieldRef: { fieldPath: metadata.namespace } }
        - name: POD_UID
          valueFrom: { fieldRef: { fieldPath: metadata.uid } }
        - name: NODE_NAME
          valueFrom: { fieldRef: { fieldPath: spec.nodeName } }
      ports:
        - { name: api, containerPort: 8686, protocol: TCP }
      livenessProbe:
        httpGet: { path: /health, port: api }
        initialDelaySeconds: 5
        periodSeconds: 10
        failureThreshold: 3
      readinessProbe:
        httpGet: { path: /ready, port: api }
        periodSeconds: 10
        failureThreshold: 3
      resources:
        {{- toYaml (get .Values.resources .Values.mode) | nindent 8 }}
      securityContext:
        runAsNonRoot: true
        allowPrivilegeEscalation: false
        privileged: false
        readOnlyRootFilesystem: true
        capabilities:
          drop: ["ALL"]
      volumeMounts:
        - { name: config, mountPath: /etc/trailship, readOnly: true }
        - { name: data, mountPath: /var/lib/trailship }
        {{- if eq .Values.mode "daemonset" }}
        - { name: trails, mountPath: /var/log/cloudtrail, readOnly: true }
        {{- end }}
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap: { name: {{ include "trailship.name" . }} }
    {{- if eq .Values.mode "daemonset" }}
    - name: trails
      hostPath: { path: {{ .Values.trailsHostPath }}, type: Directory }
    - name: data
      hostPath: { path: {{ .Values.dataHostPath }}, type: DirectoryOrCreate }
    {{- else }}
    - name: data
      emptyDir: { sizeLimit: 1Gi }
    {{- end }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}
