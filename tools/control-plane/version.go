package main

import "k8s.io/component-base/version"

// kubernetesVersion is what the servers report; set by the build's -ldflags -X, since
// a module build carries no git tree to read it from.
func kubernetesVersion() string { return version.Get().GitVersion }
