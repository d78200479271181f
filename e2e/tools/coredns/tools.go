//go:build tools

// Package tools pins CoreDNS, the cluster DNS of the e2e node (see
// e2e/src/node.rs). A module of its own, so it does not inherit the
// Kubernetes module's replaces.
package tools

import (
	_ "github.com/coredns/coredns"
)
