#!/usr/bin/env bash
# The consumer examples as one container image, for pods on the test node
# (scripts/control-plane.sh up DIR --node): Debian's python3.11 and OpenJDK 17 runtime,
# taken from this host's installed packages (no registry, nothing downloaded), plus
# python/clear_consumer.py and the compiled Java classes under /app.
#
#   examples/consumers/image.sh OUT.tar [NAME]    NAME defaults to localhost/clear-consumers:1
#
# Writes an OCI archive for `ctr -n k8s.io images import`. Pods name the command:
#   python3.11 /app/python/clear_consumer.py --every 0.2
#   java -cp /app/java ClearClient --every 200
# Needs the Debian packages python3.11 and openjdk-17-jre-headless, and a JDK's javac.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="${1:?usage: image.sh OUT.tar [NAME]}"
name="${2:-localhost/clear-consumers:1}"
work="$(mktemp -d "${TMPDIR:-/tmp}/consumer-image.XXXXXX")"
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"

# Files of the packages and of everything they depend on, as installed here.
packages=(python3.11-minimal libpython3.11-stdlib openjdk-17-jre-headless)
closure="$(apt-cache depends --recurse --installed --no-recommends --no-suggests \
	--no-conflicts --no-breaks --no-replaces --no-enhances "${packages[@]}" 2>/dev/null |
	grep -v '^[ <]' | sort -u)"
for package in $closure; do
	dpkg -L "$package" 2>/dev/null || true
done | sort -u | while read -r path; do
	if [ -L "$path" ] || [ -f "$path" ]; then echo "${path#/}"; fi
done | grep -v -E '^usr/share/(doc|man|locale|info)/' >"$work/files"

# Debian's merged-/usr layout, so /bin/x and /usr/bin/x (both appear in dpkg's lists) agree.
mkdir -p "$rootfs/usr/bin" "$rootfs/usr/lib" "$rootfs/usr/lib64" "$rootfs/usr/sbin" "$rootfs/tmp" "$rootfs/etc"
chmod 1777 "$rootfs/tmp"
for dir in bin lib lib64 sbin; do ln -s "usr/$dir" "$rootfs/$dir"; done
tar -C / --no-recursion -cf - -T "$work/files" | tar -C "$rootfs" --keep-directory-symlink -xf -
# `java` is an alternatives link (made by maintainer scripts, in no package's list).
ln -sf /usr/lib/jvm/java-17-openjdk-amd64/bin/java "$rootfs/usr/bin/java"
printf 'root:x:0:0:root:/root:/nonexistent\nconsumer:x:1000:1000:consumer:/tmp:/nonexistent\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nconsumer:x:1000:\n' >"$rootfs/etc/group"

mkdir -p "$rootfs/app/python" "$rootfs/app/java"
cp "$here/python/clear_consumer.py" "$rootfs/app/python/"
javac --release 17 -Xlint:all -Werror -d "$rootfs/app/java" "$here/java/ClearClient.java"

python3 "$repo/scripts/oci-archive.py" "$name" "$rootfs" "$out" '[]'
echo "$name"
