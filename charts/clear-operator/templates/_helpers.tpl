{{/*
Names and labels shared by every template of the chart.
*/}}

{{/* Chart name, overridable. */}}
{{- define "clear-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Full name of the release's objects. Kept within 63 characters (a DNS label), and not
doubled when the release name already contains the chart name.
*/}}
{{- define "clear-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "clear-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that select the operator pods; never change them on upgrade. */}}
{{- define "clear-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "clear-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Standard labels on every object. */}}
{{- define "clear-operator.labels" -}}
helm.sh/chart: {{ include "clear-operator.chart" . }}
{{ include "clear-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: clear-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "clear-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "clear-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The metrics Service; the ServiceMonitor makes its name the scrape's `job`. */}}
{{- define "clear-operator.metricsServiceName" -}}
{{- printf "%s-metrics" (include "clear-operator.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "clear-operator.leaseName" -}}
{{- default (include "clear-operator.fullname" .) .Values.operator.leaseName -}}
{{- end -}}

{{/* repository:tag, or repository@digest when a digest is given. */}}
{{- define "clear-operator.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* Where the CA bundle is mounted, and the file passed to --ca-bundle. */}}
{{- define "clear-operator.caBundleDir" -}}
/etc/clear-operator/ca
{{- end -}}
{{- define "clear-operator.caBundlePath" -}}
{{- printf "%s/%s" (include "clear-operator.caBundleDir" .) .Values.caBundle.key -}}
{{- end -}}

{{/*
Rights on the namespaced objects the operator works with, shared by the ClusterRole (all
namespaces) and the per-namespace Roles (watchNamespaces). Least privilege:
- clearapiclients: read and watch; patch/update for the regenerate annotation bookkeeping
  and finalizers; status through its own subresource.
- secrets: the operator writes the target Secrets and reads the client secrets (metadata
  watches for both, a GET of the client secret when a mint needs it).
- events: both APIs, create/patch only.
- workloads: get/patch only, to roll out restarts after a new token.
*/}}
{{- /*
Exactly what the operator calls, no more (tests/real_cluster checks this against
kube-apiserver's audit log in both directions):
- clearapiclients: list/watch (controller), get (each reconcile reads the resource fresh,
  not from the cache),
  patch (the revokeOnDelete finalizer);
  status: patch (server-side apply).
- secrets: get (client secret and token Secret, read only when needed), list/watch
  (metadata only), patch (server-side apply of the token Secret) and create (what the
  apiserver also checks when that apply creates the Secret). No update, no delete.
- events.k8s.io events: create, and patch for a repeated event's series.
- apps workloads: patch, only with rbac.rolloutRestart.enabled (rolloutRestartTargets).
- pods: list/watch (the pod index) and patch (the nudge annotation), only with
  nudgePods.enabled.
*/}}
{{- define "clear-operator.namespacedRules" -}}
- apiGroups: ["clear-operator.io"]
  resources: ["clearapiclients"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["clear-operator.io"]
  resources: ["clearapiclients/status"]
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if .Values.rbac.rolloutRestart.enabled }}
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets", "daemonsets"]
  verbs: ["patch"]
{{- end }}
{{- if .Values.nudgePods.enabled }}
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch", "patch"]
{{- end }}
{{- end -}}

{{/*
The three shutdown timeouts, derived from each other unless set (clear-operator.checkTimeouts
refuses values that break the chain):
  clearTimeoutSeconds (one call to Clear)
  + 5 s (the Secret, status and Event writes after it) <= shutdownGraceSeconds
  + 5 s (releasing the Lease, exiting)                   <= terminationGracePeriodSeconds
*/}}
{{- define "clear-operator.timeoutMarginSeconds" -}}
5
{{- end -}}

{{- define "clear-operator.shutdownGraceSeconds" -}}
{{- $grace := .Values.operator.shutdownGraceSeconds -}}
{{- if kindIs "invalid" $grace -}}
{{- add (int .Values.operator.clearTimeoutSeconds) (include "clear-operator.timeoutMarginSeconds" . | int) -}}
{{- else -}}
{{- int $grace -}}
{{- end -}}
{{- end -}}

{{- define "clear-operator.terminationGracePeriodSeconds" -}}
{{- $period := .Values.terminationGracePeriodSeconds -}}
{{- if kindIs "invalid" $period -}}
{{- add (include "clear-operator.shutdownGraceSeconds" . | int) (include "clear-operator.timeoutMarginSeconds" . | int) -}}
{{- else -}}
{{- int $period -}}
{{- end -}}
{{- end -}}

{{/*
A probe from values; with metrics.secure.enabled the port speaks TLS only, so an httpGet
probe without a scheme gets HTTPS (the kubelet does not verify the certificate).
*/}}
{{- define "clear-operator.probe" -}}
{{- $probe := deepCopy .probe -}}
{{- if and .root.Values.metrics.secure.enabled $probe.httpGet (not $probe.httpGet.scheme) -}}
{{- $_ := set $probe.httpGet "scheme" "HTTPS" -}}
{{- end -}}
{{- toYaml $probe -}}
{{- end -}}
