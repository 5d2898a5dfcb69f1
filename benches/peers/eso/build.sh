#!/usr/bin/env bash
# Builds External Secrets Operator from its Go module (nothing prebuilt is downloaded) and
# prints the binary's path. The binary is cached in $ESO_CACHE/<version>/ (default
# .tools/eso), so only the first run pays for the build.
#
# Why not `go install ...@version`: ESO's go.mod has a `replace` (sprig), which `go install`
# refuses for a module it is not building in place, so the module's source tree is copied
# and built as the main module.
set -euo pipefail
export GOTOOLCHAIN=local

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
version="${ESO_VERSION:-v0.16.2}"
cache="${ESO_CACHE:-$root/.tools/eso}"
out="$cache/$version/external-secrets"

say() { echo "eso-build: $*" >&2; }

if [ -x "$out" ]; then
	echo "$out"
	exit 0
fi
# NB: Go is installed in /usr/local/go on our machines; a non-login shell may lack it on PATH.
command -v go >/dev/null || PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || { say "go is not installed; ESO is built from Go modules"; exit 1; }

module=github.com/external-secrets/external-secrets
src="$(go mod download -json "$module@$version" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
mkdir -p "$cache/$version"
work="$(mktemp -d "$cache/$version/src.XXXXXX")"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
# The module cache is read-only; go may want to touch go.sum, so build from a writable copy.
cp -r "$src/." "$work/"
chmod -R u+w "$work"
started=$SECONDS
say "building ESO $version (core controller binary) from Go modules; a cold build takes several minutes"
# -mod=mod: the copy has no vendor directory and go.sum may lack entries for the test-only
# modules; the go.sum of the release still pins every module the binary links.
(cd "$work" && GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$out.tmp" .)
mv "$out.tmp" "$out"
say "built in $((SECONDS - started)) s: $out"
echo "$out"
