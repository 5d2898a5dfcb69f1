{{/*
Values the chart refuses, each with the fix in the message. Included once, from the
Deployment, so `helm install`, `helm upgrade`, `helm template` and `helm lint` all stop
before anything reaches the cluster.
*/}}
{{- define "clear-operator.checks" -}}
{{- include "clear-operator.checkImage" . -}}
{{- include "clear-operator.checkServiceAccount" . -}}
{{- include "clear-operator.checkDisruptionBudget" . -}}
{{- end -}}

{{/* The placeholder repository in values.yaml: no image is published for you. */}}
{{- define "clear-operator.imagePlaceholder" -}}
CHANGE-ME/clear-operator
{{- end -}}

{{- define "clear-operator.checkImage" -}}
{{- if or (eq .Values.image.repository (include "clear-operator.imagePlaceholder" .)) (hasPrefix "CHANGE-ME" .Values.image.repository) -}}
{{- fail "image.repository is still the placeholder CHANGE-ME/clear-operator: no image is published for you. Build the image from the repository's Dockerfile, push it to your registry, and set image.repository (e.g. --set image.repository=registry.example.com/platform/clear-operator)" -}}
{{- end -}}
{{- end -}}

{{/*
NB: without a name, a pod runs as the namespace's `default` ServiceAccount, and the
ClusterRoleBinding would hand the operator's rights (Secrets in every namespace) to every
other pod that runs as it.
*/}}
{{- define "clear-operator.checkServiceAccount" -}}
{{- if and (not .Values.serviceAccount.create) (not .Values.serviceAccount.name) -}}
{{- fail "serviceAccount.create=false needs serviceAccount.name: the name of an existing ServiceAccount for the operator. Without it the pods would run as the namespace's default ServiceAccount, and the chart's RBAC would grant the operator's rights to every pod using it" -}}
{{- end -}}
{{- end -}}

{{/*
A PodDisruptionBudget that allows no eviction at all blocks every node drain (kubectl drain
and cluster upgrades wait forever). Refused: minAvailable that needs every replica, or
maxUnavailable 0.
*/}}
{{- define "clear-operator.checkDisruptionBudget" -}}
{{- $pdb := .Values.podDisruptionBudget -}}
{{- if $pdb.enabled -}}
{{- $replicas := int .Values.replicaCount -}}
{{- if not (kindIs "invalid" $pdb.minAvailable) -}}
{{- $needed := 0 -}}
{{- if and (kindIs "string" $pdb.minAvailable) (hasSuffix "%" $pdb.minAvailable) -}}
{{- $percent := trimSuffix "%" $pdb.minAvailable | float64 -}}
{{- $needed = ceil (divf (mulf $percent $replicas) 100) | int -}}
{{- else -}}
{{- $needed = int $pdb.minAvailable -}}
{{- end -}}
{{- if ge $needed $replicas -}}
{{- fail (printf "podDisruptionBudget.minAvailable=%v with replicaCount=%d keeps every operator pod: no pod could ever be evicted, so node drains would block. Use podDisruptionBudget.maxUnavailable=1 (and unset minAvailable), or raise replicaCount above %d" $pdb.minAvailable $replicas $needed) -}}
{{- end -}}
{{- else if or (eq (toString $pdb.maxUnavailable) "0") (eq (toString $pdb.maxUnavailable) "0%") -}}
{{- fail "podDisruptionBudget.maxUnavailable=0 allows no eviction, so node drains would block. Use podDisruptionBudget.maxUnavailable=1" -}}
{{- end -}}
{{- end -}}
{{- end -}}
