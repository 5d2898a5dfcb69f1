#!/usr/bin/env bash
# Regenerates go.mod for the pinned Kubernetes release. k8s.io/kubernetes requires its
# staging modules at v0.0.0 and replaces them with ./staging paths, which a consumer
# ignores; so we pin each one to v0.N.M ourselves, reading the list from upstream's
# own go.mod instead of typing it (1.36 adds modules). etcd's server is pinned to the
# version Kubernetes itself lists, so grpc and otel agree.
# Usage: tools/control-plane/gen-go-mod.sh 1.35.4 (then commit go.mod and go.sum)
set -euo pipefail
export GOTOOLCHAIN=local
cd "$(dirname "${BASH_SOURCE[0]}")"
kube="${1:?usage: gen-go-mod.sh KUBERNETES_VERSION (e.g. 1.35.4)}"
staging="v0.${kube#*.}"
upstream_mod="$(go mod download -json "k8s.io/kubernetes@v${kube}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
etcd="$(awk '$1 == "go.etcd.io/etcd/server/v3" {print $2}' "$upstream_mod")"
go_line="$(awk '$1 == "go" {print $2; exit}' "$upstream_mod")"
{
	echo "module clear-operator.io/tools/control-plane"
	echo
	echo "go ${go_line}"
	echo
	echo "godebug default=go${go_line%.*}"
	echo
	echo "require ("
	echo "	k8s.io/kubernetes v${kube}"
	echo "	go.etcd.io/etcd/server/v3 ${etcd}"
	echo ")"
	echo
	echo "replace ("
	awk '$2 == "=>" && $3 ~ /^\.\/staging\// {print "\t" $1 " => " $1 " '"${staging}"'"}' "$upstream_mod"
	echo ")"
} > go.mod
echo "${kube}" > KUBERNETES_VERSION
go mod tidy
