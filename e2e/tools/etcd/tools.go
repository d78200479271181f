//go:build tools

// Package tools pins etcd, which the end-to-end tests build (see
// e2e/src/k8s_tools.rs). It is a module of its own because it must not
// inherit the Kubernetes module's replace directives and dependency versions.
package tools

import _ "go.etcd.io/etcd/server/v3"
