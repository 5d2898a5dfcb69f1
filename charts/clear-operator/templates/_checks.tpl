{{/*
Values the chart refuses, each with the fix in the message. Included once, from the
Deployment, so `helm install`, `helm upgrade`, `helm template` and `helm lint` all stop
before anything reaches the cluster.
*/}}
{{- define "clear-operator.checks" -}}
{{- include "clear-operator.checkImage" . -}}
{{- include "clear-operator.checkServiceAccount" . -}}
{{- include "clear-operator.checkDisruptionBudget" . -}}
{{- include "clear-operator.checkTimeouts" . -}}
{{- include "clear-operator.checkExtraArgs" . -}}
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

{{/*
On SIGTERM the operator lets in-flight reconciles run for --shutdown-grace-secs, then
releases the Lease; the kubelet sends SIGKILL after terminationGracePeriodSeconds.
- A grace shorter than a call to Clear plus the writes after it drops calls on shutdown:
  the call may have minted (revoking the token in the Secret) and its answer is lost.
- A termination grace period shorter than that grace plus the release of the Lease turns
  SIGTERM into SIGKILL mid-call: the next leader cannot trust the stored token and mints
  once more.
*/}}
{{- define "clear-operator.checkTimeouts" -}}
{{- $margin := include "clear-operator.timeoutMarginSeconds" . | int -}}
{{- $timeout := int .Values.operator.clearTimeoutSeconds -}}
{{- $grace := include "clear-operator.shutdownGraceSeconds" . | int -}}
{{- $period := include "clear-operator.terminationGracePeriodSeconds" . | int -}}
{{- if lt $grace (add $timeout $margin) -}}
{{- fail (printf "operator.shutdownGraceSeconds=%d is shorter than operator.clearTimeoutSeconds=%d plus %d s for the writes after a call: on SIGTERM a call to Clear still in flight would be dropped, and the token it minted lost (minting revokes the one in the Secret). Set operator.shutdownGraceSeconds to at least %d, or leave it null to derive it" $grace $timeout $margin (add $timeout $margin)) -}}
{{- end -}}
{{- if lt $period (add $grace $margin) -}}
{{- fail (printf "terminationGracePeriodSeconds=%d leaves less than %d s after the operator's shutdown grace (operator.shutdownGraceSeconds=%d) to release its Lease: the kubelet would SIGKILL it in the middle of a call to Clear, and the next leader would mint once more. Set terminationGracePeriodSeconds to at least %d, or leave it null to derive it" $period $margin $grace (add $grace $margin)) -}}
{{- end -}}
{{- end -}}

{{/*
A flag the chart already passes, given again in operator.extraArgs, makes the binary exit
at start ("cannot be used multiple times"): a crash loop after an upgrade that starts
passing it. Refused here, naming the value to set instead.
*/}}
{{- define "clear-operator.checkExtraArgs" -}}
{{- $owned := dict "--metrics-addr" "metrics.port" "--leader-election-namespace" "the release namespace (helm --namespace)" "--lease-name" "operator.leaseName" "--mint-budget" "operator.mintBudget" "--concurrency" "operator.concurrency" "--kube-api-concurrency" "operator.kubeApiConcurrency" "--clear-timeout-secs" "operator.clearTimeoutSeconds" "--shutdown-grace-secs" "operator.shutdownGraceSeconds" "--log-format" "operator.logFormat" -}}
{{- range .Values.operator.extraArgs -}}
{{- $flag := regexReplaceAll "=.*$" (toString .) "" -}}
{{- if hasKey $owned $flag -}}
{{- fail (printf "operator.extraArgs passes %s, which the chart already sets from %s: the operator would refuse the flag twice and not start. Set %s instead" $flag (get $owned $flag) (get $owned $flag)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
