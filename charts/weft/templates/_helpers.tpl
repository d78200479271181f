{{/*
The chart name, or .Values.nameOverride.
*/}}
{{- define "weft.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's resources: .Values.fullnameOverride, the
release name if it contains the chart name, else "<release>-<chart>".
*/}}
{{- define "weft.fullname" -}}
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

{{/*
chart label: name-version.
*/}}
{{- define "weft.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels that select the release's pods.
*/}}
{{- define "weft.selectorLabels" -}}
app.kubernetes.io/name: {{ include "weft.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels on every resource of the release.
*/}}
{{- define "weft.labels" -}}
helm.sh/chart: {{ include "weft.chart" . }}
{{ include "weft.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
The ServiceAccount `weft operator` runs as.
*/}}
{{- define "weft.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "weft.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The MutatingWebhookConfiguration's name (cluster-scoped).
*/}}
{{- define "weft.injectorName" -}}
{{- printf "%s-sidecar-injector-%s" (include "weft.fullname" .) .Release.Namespace | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The ValidatingWebhookConfiguration's name (cluster-scoped).
*/}}
{{- define "weft.validatorName" -}}
{{- printf "%s-validator-%s" (include "weft.fullname" .) .Release.Namespace | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The control-plane image.
*/}}
{{- define "weft.proxyImage" -}}
{{- printf "%s:%s" .Values.proxy.image.repository (default .Chart.AppVersion .Values.proxy.image.tag) }}
{{- end }}

{{- define "weft.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
What both injection webhooks share: the Service's /inject, pods at
creation, the opt-out label, the failure policy.
*/}}
{{- define "weft.injectionWebhook" -}}
clientConfig:
  service:
    name: {{ include "weft.fullname" . }}
    namespace: {{ .Release.Namespace }}
    path: /inject
    port: 443
rules:
  - apiGroups: [""]
    apiVersions: ["v1"]
    operations: ["CREATE"]
    resources: ["pods"]
    scope: Namespaced
objectSelector:
  matchExpressions:
    - key: sidecar.istio.io/inject
      operator: NotIn
      values: ["false"]
failurePolicy: {{ .Values.webhooks.injection.failurePolicy }}
sideEffects: None
admissionReviewVersions: ["v1"]
reinvocationPolicy: Never
timeoutSeconds: {{ .Values.webhooks.timeoutSeconds }}
{{- end }}
