{{/* Names and labels. */}}
{{- define "parity.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "parity.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "parity.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "parity.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "parity.selectorLabels" -}}
app.kubernetes.io/name: {{ include "parity.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "parity.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "parity.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: parity
{{- end }}

{{- define "parity.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "parity.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "parity.secretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else }}
{{- include "parity.fullname" . }}
{{- end }}
{{- end }}

{{- define "parity.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Whether a Secret is mounted at all. */}}
{{- define "parity.hasSecret" -}}
{{- if or .Values.secrets.existingSecret .Values.secrets.create .Values.secrets.files }}true{{ end }}
{{- end }}

{{/* Environment shared by the daemon and the reconcile job: VAR_FILE for each secret, then env. */}}
{{- define "parity.env" -}}
{{- if include "parity.hasSecret" . }}
{{- range $var, $key := .Values.secrets.files }}
- name: {{ printf "%s_FILE" $var }}
  value: {{ printf "/etc/parity/secrets/%s" $key | quote }}
{{- end }}
{{- end }}
{{- with .Values.env }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Volumes shared by the daemon and the reconcile job (config, secrets, /tmp). */}}
{{- define "parity.commonVolumes" -}}
- name: config
  configMap:
    name: {{ include "parity.fullname" . }}-config
- name: tmp
  emptyDir:
    medium: Memory
    sizeLimit: 64Mi
{{- if include "parity.hasSecret" . }}
- name: secrets
  secret:
    secretName: {{ include "parity.secretName" . }}
    defaultMode: 0440  # root-owned, group fsGroup (10001): readable by parity only
{{- end }}
{{- end }}

{{- define "parity.commonMounts" -}}
- name: config
  mountPath: /etc/parity/parity.yaml
  subPath: parity.yaml
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- if include "parity.hasSecret" . }}
- name: secrets
  mountPath: /etc/parity/secrets
  readOnly: true
{{- end }}
{{- end }}
