//go:build tools

// Package tools pins fortio, Istio's load generator, for the end-to-end
// tests (see e2e/src/k8s_tools.rs); `go mod tidy` keeps go.mod and go.sum
// complete for it. v1.66.5 is the newest release whose dependencies the
// module proxy serves here (later ones need grol.io modules). Nothing
// imports this package.
package tools

import (
	_ "fortio.org/fortio"
)
