#!/usr/bin/env bash
# Writes the workspace's dependency skeleton: Cargo.lock, every member's Cargo.toml, and an
# empty stand-in for every target cargo knows of (bins, lib, benches, tests, examples,
# build scripts). The Dockerfile builds the dependencies from this skeleton in a layer that
# changes only when a manifest or the lock does, not on a source edit.
#
# NB: the target list comes from `cargo metadata` on the full sources, not from a list
# typed into the Dockerfile: a new bench or member cannot be forgotten (a forgotten one
# failed the image build, "can't find `scale` bench"). tests/dockerfile.rs checks that
# cargo loads the skeleton with the same targets as the workspace.
#
#   scripts/cargo-skeleton.sh SRC_DIR OUT_DIR
set -euo pipefail
src="$(cd "${1:?usage: cargo-skeleton.sh SRC_DIR OUT_DIR}" && pwd)"
out="${2:?usage: cargo-skeleton.sh SRC_DIR OUT_DIR}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

# One line of JSON; paths are absolute and hold no quotes, so grep is enough (the builder
# image has no jq or python).
meta="$(cd "$src" && "${CARGO:-cargo}" metadata --no-deps --format-version 1 --offline)"
field() { grep -o "\"$1\":\"[^\"]*\"" <<<"$meta" | sed "s/^\"$1\":\"//; s/\"\$//"; }
relative() { # absolute path inside $src -> path relative to it
	case "$1" in
	"$src"/*) echo "${1#"$src"/}" ;;
	*)
		echo "cargo-skeleton: $1 is outside $src" >&2
		exit 1
		;;
	esac
}

root="$(field workspace_root | head -n1)"
cp "$root/Cargo.toml" "$out/Cargo.toml"
cp "$root/Cargo.lock" "$out/Cargo.lock"
while read -r manifest; do
	rel="$(relative "$manifest")"
	mkdir -p "$out/$(dirname "$rel")"
	cp "$manifest" "$out/$rel"
done < <(field manifest_path | sort -u)
while read -r target; do
	rel="$(relative "$target")"
	mkdir -p "$out/$(dirname "$rel")"
	# One stand-in fits every kind: a lib with an unused private fn, a bin/bench/test with main.
	printf '#![allow(dead_code)]\nfn main() {}\n' >"$out/$rel"
done < <(field src_path | sort -u)

# Fixed modification times: the skeleton is byte-identical, metadata included, for the
# same manifests, so an image builder that hashes file headers reuses the cached layer.
find "$out" -exec touch -h -d @0 {} +
