#!/usr/bin/env bash
# Prints the host state a node of scripts/control-plane.sh (`up DIR --node`) may change, one
# fact a line, sorted, so that two snapshots taken before `up` and after `down` compare with
# diff: scripts/node-suite.sh asserts that they are equal (`down` restores the host exactly,
# also with pods still running).
#
#   scripts/node-host-state.sh > before; ...up, pods, down...; scripts/node-host-state.sh | diff before -
#
# Covered: the kubelet's log symlinks (/var/log/containers, and /var/log/pods), every mount,
# the top-level cgroups of every hierarchy, the kubelet's sysctls and the kernel's network
# and vm settings, iptables and ip6tables chains and rules (when the tools exist), network
# namespaces and links, CNI state (/var/lib/cni, /etc/cni, /run/netns), containerd's and
# runc's fixed host paths (/run/containerd, /var/lib/containerd, /run/runc), the kubelet's
# default directories (/var/lib/kubelet, /etc/kubernetes, /usr/libexec/kubernetes),
# libmount's /run/mount and shim processes. Root needed.
set -uo pipefail

listing() { # label dir: every entry below dir, symlinks with their target
	local label="$1" dir="$2"
	if [ ! -e "$dir" ]; then
		echo "$label absent"
		return
	fi
	echo "$label present"
	find "$dir" -mindepth 1 -printf "$label %P %y -> %l\n" 2>/dev/null | sort
}

listing logs /var/log/containers
listing pod-logs /var/log/pods
listing cni-state /var/lib/cni
listing cni-conf /etc/cni
listing netns-files /run/netns
listing containerd-run /run/containerd
listing containerd-lib /var/lib/containerd
listing runc-run /run/runc
listing kubelet-lib /var/lib/kubelet
listing kubernetes-etc /etc/kubernetes
listing kubelet-plugins /usr/libexec/kubernetes
listing mount-run /run/mount

awk '{print "mount " $2 " " $3}' /proc/self/mounts | sort
for hierarchy in /sys/fs/cgroup/*/; do
	find "$hierarchy" -mindepth 1 -maxdepth 1 -type d -printf "cgroup $hierarchy%P\n"
done | sort
# The kubelet's sysctls (pkg/kubelet/cm setupKernelTunables) and what networking would touch.
sysctl -a 2>/dev/null | grep -E '^(vm\.(overcommit_memory|panic_on_oom)|kernel\.(panic|panic_on_oops|keys\.root_max(keys|bytes))|net\.ipv4\.(ip_forward|conf\.all\.route_localnet)|net\.bridge\.) ' |
	sed 's/^/sysctl /' | sort
for tool in iptables-save ip6tables-save; do
	if command -v "$tool" >/dev/null; then
		# Rules and chains, without the counters and the timestamps.
		"$tool" 2>/dev/null | grep -v '^#' | sed -e 's/\[[0-9]*:[0-9]*\]//' -e "s/^/$tool /"
	fi
done
ip -o link show 2>/dev/null | awk '{print "link " $2}' | sort
ip netns list 2>/dev/null | sed 's/^/netns /' | sort
for pid in /proc/[0-9]*; do
	tr '\0' ' ' 2>/dev/null <"$pid/cmdline" | grep -q '^/usr/bin/containerd-shim' && echo "shim ${pid#/proc/}"
done | sort
exit 0
