// Package api stands in for github.com/agentgateway/agentgateway/api, which
// proxy.golang.org does not serve (403). Only istiod's agentgateway
// controller imports it, and weft-e2e builds istiod from a copy of the
// istio module whose controller is replaced by
// patch/agentgateway_controller.go.txt, so nothing here is used.
package api
