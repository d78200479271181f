//go:build tools

// Package tools pins the CNI plugins the e2e node runs pods with (see
// e2e/src/node.rs): bridge, host-local and loopback. A module of its own, so
// it does not inherit the Kubernetes module's replaces.
package tools

import (
	_ "github.com/containernetworking/plugins/plugins/ipam/host-local"
	_ "github.com/containernetworking/plugins/plugins/main/bridge"
	_ "github.com/containernetworking/plugins/plugins/main/loopback"
)
