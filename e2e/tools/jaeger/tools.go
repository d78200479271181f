//go:build tools

// Package tools pins Jaeger v2 (module github.com/jaegertracing/jaeger
// v1.75.0 is Jaeger v2.12.0) for the end-to-end tests (see
// e2e/src/k8s_tools.rs); `go mod tidy` keeps go.mod and go.sum complete for
// it. Nothing imports this package.
package tools

import (
	_ "github.com/jaegertracing/jaeger/cmd/jaeger"
)
