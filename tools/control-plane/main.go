// Command control-plane is one multi-call binary holding the real etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler and kubelet of the Kubernetes release pinned in
// go.mod. Each runs as its own process (`control-plane etcd ...`, `control-plane
// kube-apiserver ...`, ...) because the components share global state (flags, metrics
// registries) that must not meet in one process. One binary rather than five: linking
// Kubernetes is the slow, memory-hungry step, and doing it once saves minutes on a
// two-core machine. The scheduler and the kubelet serve `scripts/control-plane.sh up DIR
// --node` (a real node for pods).
package main

import (
	"context"
	"fmt"
	"os"
	_ "time/tzdata" // CronJob time zones, as upstream's main packages do

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	component, rest := os.Args[1], os.Args[2:]
	// NB: cobra reads os.Args[1:]; drop the component name so each command sees only
	// its own flags, exactly as the upstream binary would.
	os.Args = append([]string{component}, rest...)
	switch component {
	case "etcd":
		os.Exit(runEtcd(rest))
	case "kube-apiserver":
		os.Exit(cli.Run(apiserver.NewAPIServerCommand()))
	case "kube-controller-manager":
		os.Exit(cli.Run(controllermanager.NewControllerManagerCommand()))
	case "kube-scheduler":
		os.Exit(cli.Run(scheduler.NewSchedulerCommand()))
	case "kubelet":
		os.Exit(cli.Run(kubelet.NewKubeletCommand(context.Background())))
	case "version":
		fmt.Println(kubernetesVersion())
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: control-plane etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kubelet|version [flags]")
	os.Exit(2)
}
