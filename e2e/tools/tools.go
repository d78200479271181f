//go:build tools

// Package tools pins the Kubernetes commands the end-to-end tests build
// (see e2e/src/k8s_tools.rs and e2e/src/node.rs); `go mod tidy` keeps go.mod
// and go.sum complete for them. Nothing imports this package.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
