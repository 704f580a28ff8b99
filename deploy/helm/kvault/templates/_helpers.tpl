{{/* Names and the shared pod spec of every kvault job. */}}
{{- define "kvault.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{- define "kvault.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "kvault.secretName" -}}
{{- if .Values.secret.create -}}{{ include "kvault.fullname" . }}{{- else -}}{{ .Values.secret.existingName }}{{- end -}}
{{- end -}}

{{/* The pod template of one kvault command: .args is the command line. */}}
{{- define "kvault.podSpec" -}}
{{- $ := .root -}}
serviceAccountName: {{ $.Values.serviceAccount.name }}
restartPolicy: Never
terminationGracePeriodSeconds: 900
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  fsGroup: 65532
  seccompProfile:
    type: RuntimeDefault
containers:
  - name: kvault
    image: "{{ $.Values.image.repository }}:{{ $.Values.image.tag }}"
    imagePullPolicy: {{ $.Values.image.pullPolicy }}
    args:
      {{- toYaml .args | nindent 6 }}
    env:
      - name: KVAULT_CONFIG
        value: /etc/kvault/config/config.toml
      - name: KVAULT_RETRY_LOCK
        value: {{ $.Values.retryLock | quote }}
      {{- with $.Values.metricsPush }}
      - name: KVAULT_METRICS_PUSH
        value: {{ . | quote }}
      {{- end }}
      {{- with .extraEnv }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
      {{- with $.Values.env }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    {{- with $.Values.resources }}
    resources:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities:
        drop: ["ALL"]
    volumeMounts:
      - name: config
        mountPath: /etc/kvault/config
        readOnly: true
      - name: secrets
        mountPath: /etc/kvault/secrets
        readOnly: true
      - name: state
        mountPath: /home/kvault/.local/state
      - name: tmp
        mountPath: /tmp
volumes:
  - name: config
    configMap:
      name: {{ include "kvault.fullname" $ }}
  - name: secrets
    secret:
      secretName: {{ include "kvault.secretName" $ }}
      defaultMode: 0400
  - name: state
    {{- with .stateClaim }}
    persistentVolumeClaim:
      claimName: {{ . }}
    {{- else }}
    emptyDir: {}
    {{- end }}
  - name: tmp
    emptyDir: {}
{{- with $.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $.Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* A CronJob running one kvault command. */}}
{{- define "kvault.cronJob" -}}
{{- $ := .root -}}
apiVersion: batch/v1
kind: CronJob
metadata:
  name: {{ include "kvault.fullname" $ }}-{{ .name }}
  labels:
    {{- include "kvault.labels" $ | nindent 4 }}
    app.kubernetes.io/component: {{ .name }}
spec:
  schedule: {{ .schedule | quote }}
  # A run still going when the next is due is left alone; a lock held
  # by another command (prune during a snapshot) is waited for up to
  # retryLock.
  concurrencyPolicy: Forbid
  startingDeadlineSeconds: 3600
  successfulJobsHistoryLimit: 3
  failedJobsHistoryLimit: 5
  jobTemplate:
    spec:
      backoffLimit: {{ .backoffLimit | default 1 }}
      {{- with .activeDeadlineSeconds }}
      activeDeadlineSeconds: {{ . }}
      {{- end }}
      template:
        metadata:
          labels:
            {{- include "kvault.labels" $ | nindent 12 }}
            app.kubernetes.io/component: {{ .name }}
        spec:
          {{- include "kvault.podSpec" (dict "root" $ "args" .args) | nindent 10 }}
{{- end -}}
