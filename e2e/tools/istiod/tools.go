//go:build tools

// Package tools pins istiod (pilot-discovery) and istioctl so the e2e crate can build the
// real Istio control plane as a reference for benchmarks.
package tools

import (
	_ "istio.io/istio/istioctl/cmd/istioctl"
	_ "istio.io/istio/pilot/cmd/pilot-discovery"
)
