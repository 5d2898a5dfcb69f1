#!/usr/bin/env bash
# Builds the operator image from the Dockerfile with Debian's buildah, on a machine with no
# registry: the two base images the Dockerfile names (RUST_IMAGE, RUNTIME_IMAGE) are made
# here instead, and passed through those build arguments; the Dockerfile's production
# defaults are not used and not changed.
#
#   scripts/build-image.sh [TAG]           builds localhost/clear-operator:TAG (default: dev)
#   scripts/build-image.sh [TAG] --archive F   ...and writes it to F (docker-archive format,
#                                          named), which `ctr -n k8s.io images import` loads
#
# The stand-in bases (cached by content, rebuilt only when their inputs change):
#   localhost/clear-operator-rust     the files of the host's Debian packages a cargo build
#                                     needs (bash, coreutils, gcc, libc6-dev, ...) plus the
#                                     host's Rust toolchain (`rustup` not needed in the image)
#   localhost/clear-operator-runtime  the equivalent of distroless cc: glibc, libgcc, the CA
#                                     roots, /etc/passwd with nonroot (65532), no shell
# Crates: `cargo fetch` fills the host's registry, which is copied into the build's cargo
# cache mount; the build itself runs with no network (CARGO_NET_OFFLINE=true).
# Prints the build time and the image size. Needs root and `apt-get install buildah`.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tag="${1:-dev}"
archive_out=""
if [ "${2:-}" = "--archive" ]; then
	archive_out="${3:?--archive needs a file}"
fi
image="localhost/clear-operator:$tag"
work="$(mktemp -d "${TMPDIR:-/tmp}/build-image.XXXXXX")"
trap 'rm -rf "$work"' EXIT

say() { echo "build-image: $*" >&2; }
die() {
	say "$*"
	exit 1
}
command -v buildah >/dev/null || die "buildah is not installed (apt-get install buildah)"
[ "$(id -u)" -eq 0 ] || die "run as root (buildah's overlay storage and the cache mount)"

# ---- the stand-in base images --------------------------------------------------------
# Files of installed Debian packages and of their dependencies, as a file list for tar.
package_files() { # packages...
	local closure
	closure="$(apt-cache depends --recurse --installed --no-recommends --no-suggests \
		--no-conflicts --no-breaks --no-replaces --no-enhances "$@" 2>/dev/null |
		grep -v '^[ <]' | sort -u)"
	# NB: dpkg lists directories too; tar gets only files and links (no recursion), and
	# the directories are made as the files are extracted.
	for package in $closure; do
		dpkg -L "$package" 2>/dev/null || true
	done | sort -u | while read -r path; do
		if [ -L "$path" ] || [ -f "$path" ]; then echo "${path#/}"; fi
	done
}

# A root filesystem with Debian's merged-/usr layout, so /bin/bash and /usr/bin/bash (both
# spellings appear in dpkg's lists) land on one file.
new_rootfs() { # dir
	mkdir -p "$1/usr/bin" "$1/usr/lib" "$1/usr/lib64" "$1/usr/sbin" "$1/etc" "$1/tmp"
	chmod 1777 "$1/tmp"
	ln -s usr/bin "$1/bin"
	ln -s usr/lib "$1/lib"
	ln -s usr/lib64 "$1/lib64"
	ln -s usr/sbin "$1/sbin"
}

add_files() { # rootfs listfile
	tar -C / --no-recursion -cf - -T "$2" | tar -C "$1" --keep-directory-symlink -xf -
}

base_exists() { buildah inspect --type image "$1" >/dev/null 2>&1; }

commit_rootfs() { # rootfs image config-args...
	local rootfs="$1" name="$2" ctr
	shift 2
	ctr="$(buildah from scratch)"
	buildah add --quiet "$ctr" "$rootfs" / >/dev/null
	buildah config "$@" "$ctr"
	buildah commit --quiet --rm "$ctr" "$name" >/dev/null
}

toolchain="$(dirname "$(dirname "$(rustup which rustc 2>/dev/null || command -v rustc)")")"
rust_version="$("$toolchain/bin/rustc" --version | awk '{print $2}')"
builder_packages=(bash dash coreutils findutils grep sed gcc libc6-dev ca-certificates)
runtime_packages=(libc6 libgcc-s1)
inputs_hash="$(
	{
		"$toolchain/bin/rustc" -vV
		dpkg -l "${builder_packages[@]}" "${runtime_packages[@]}" ca-certificates 2>/dev/null
		sha256sum /etc/ssl/certs/ca-certificates.crt
		sed -n '/^# ---- the stand-in/,/^# ---- the build/p' "${BASH_SOURCE[0]}"
	} | sha256sum | cut -c1-12
)"
rust_image="localhost/clear-operator-rust:$rust_version-$inputs_hash"
runtime_image="localhost/clear-operator-runtime:$inputs_hash"

if ! base_exists "$rust_image"; then
	say "making $rust_image (Debian packages of this host + Rust $rust_version)"
	rootfs="$work/rust"
	new_rootfs "$rootfs"
	package_files "${builder_packages[@]}" >"$work/rust.list"
	add_files "$rootfs" "$work/rust.list"
	# Links Debian makes in maintainer scripts (alternatives), not in the packages' lists.
	[ -e "$rootfs/usr/bin/sh" ] || ln -s dash "$rootfs/usr/bin/sh"
	[ -e "$rootfs/usr/bin/cc" ] || ln -s gcc "$rootfs/usr/bin/cc"
	# The toolchain without its docs and sources: cargo, rustc, their libraries, std.
	mkdir -p "$rootfs/usr/local/rust/bin" "$rootfs/usr/local/rust/lib/rustlib" "$rootfs/usr/local/cargo"
	cp -a "$toolchain/bin/cargo" "$toolchain/bin/rustc" "$rootfs/usr/local/rust/bin/"
	cp -a "$toolchain"/lib/*.so* "$rootfs/usr/local/rust/lib/"
	cp -a "$toolchain/lib/rustlib/x86_64-unknown-linux-gnu" "$rootfs/usr/local/rust/lib/rustlib/"
	rm -rf "$rootfs/usr/local/rust/lib/rustlib/x86_64-unknown-linux-gnu/lib/rustlib"
	echo 'root:x:0:0:root:/root:/bin/bash' >"$rootfs/etc/passwd"
	echo 'root:x:0:' >"$rootfs/etc/group"
	mkdir -p "$rootfs/root"
	commit_rootfs "$rootfs" "$rust_image" \
		--env PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		--env CARGO_HOME=/usr/local/cargo --workingdir / --cmd /bin/bash
	rm -rf "$rootfs"
fi

if ! base_exists "$runtime_image"; then
	say "making $runtime_image (glibc, libgcc, CA roots, nonroot 65532, no shell)"
	rootfs="$work/runtime"
	new_rootfs "$rootfs"
	# Shared libraries and the loader only: no binaries, so no shell.
	for package in "${runtime_packages[@]}"; do dpkg -L "$package"; done |
		grep -E '\.so(\.[0-9]+)*$|/ld-linux' | while read -r path; do
		if [ -L "$path" ] || [ -f "$path" ]; then echo "${path#/}"; fi
	done | sort -u >"$work/runtime.list"
	add_files "$rootfs" "$work/runtime.list"
	mkdir -p "$rootfs/etc/ssl/certs" "$rootfs/home/nonroot"
	cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
	printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$rootfs/etc/passwd"
	printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$rootfs/etc/group"
	chown 65532:65532 "$rootfs/home/nonroot"
	if find "$rootfs" -name sh -o -name bash -o -name busybox | grep -q .; then
		die "the runtime base holds a shell"
	fi
	commit_rootfs "$rootfs" "$runtime_image" \
		--env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt --user 65532:65532 --workingdir /home/nonroot
	rm -rf "$rootfs"
fi

# ---- the build -----------------------------------------------------------------------
# The crates, from the host's registry into the Dockerfile's cache mount. Where buildah
# keeps a cache mount on the host differs between its versions; a one-line probe build
# drops a marker into it, and the marker's location is the answer.
(cd "$root" && cargo fetch --locked -q)
marker=".probe-$$-$RANDOM"
printf 'FROM %s\nRUN --mount=type=cache,target=/usr/local/cargo/registry touch /usr/local/cargo/registry/%s\n' \
	"$rust_image" "$marker" >"$work/Probefile"
buildah bud --quiet --network none -f "$work/Probefile" "$work" >/dev/null
cache="$(find /var/tmp /tmp -maxdepth 8 -name "$marker" -path '*/usr/local/cargo/registry/*' 2>/dev/null | head -n1)"
[ -n "$cache" ] || die "could not find buildah's cache mount directory on the host"
rm -f "$cache"
cache="$(dirname "$cache")"
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
for part in index cache; do
	mkdir -p "$cache/$part"
	cp -a --update "$cargo_home/registry/$part/." "$cache/$part/"
done

say "building $image (base images $rust_image, $runtime_image)"
started=$SECONDS
buildah bud --layers --network none \
	--build-arg "RUST_IMAGE=$rust_image" \
	--build-arg "RUNTIME_IMAGE=$runtime_image" \
	--build-arg CARGO_NET_OFFLINE=true \
	--build-arg "REVISION=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
	-f "$root/Dockerfile" -t "$image" "$root" >&2
seconds=$((SECONDS - started))
size="$(buildah inspect --type image --format '{{.Size}}' "$image" 2>/dev/null || true)"
[ -n "$size" ] || size="$(buildah images --format '{{.Size}}' "$image" | head -n1)"
say "built $image in ${seconds}s; image size: $size"

if [ -n "$archive_out" ]; then
	rm -f "$archive_out"
	# NB: docker-archive, not oci-archive: containerd names an image from a docker archive's
	# RepoTags, while an OCI archive's ref annotation is only a tag to it.
	buildah push --quiet "$image" "docker-archive:$archive_out:$image" >&2
	say "wrote $archive_out"
fi
echo "$image"
