//go:build tools

// Package tools pins helm for the end-to-end tests (see
// e2e/src/k8s_tools.rs); `go mod tidy` keeps go.mod and go.sum complete for
// it. Helm's module has no replaces, so it needs no wrapper of its own
// beyond this pin. Nothing imports this package.
package tools

import (
	_ "helm.sh/helm/v4/cmd/helm"
)
