# The proxy image the injected sidecar runs: Envoy from the official image
# plus `weft`, started as `weft agent` (certificates from Weft's CA, SDS to
# Envoy over a Unix socket; it starts and supervises Envoy), as UID 1337,
# the UID `weft agent iptables` exempts from redirection.
#
#   docker build -f docker/proxy.Dockerfile -t ghcr.io/weft-mesh/proxy:0.1.0 .
#
# The injector's init container runs the same image as
# `weft agent iptables ...` (it needs NET_ADMIN and NET_RAW, and runs as
# root, which its securityContext grants; this image's default user is
# 1337).

ARG RUST_VERSION=1.89
# The Envoy release the e2e tests run (README: Envoy 1.40.0).
ARG ENVOY_VERSION=v1.40.0

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p weft --bin weft \
    && install -D -m 0755 target/release/weft /out/weft

# Ubuntu-based, with Envoy at /usr/local/bin/envoy (on PATH, so `weft
# agent`'s default --envoy-binary finds it); its glibc is newer than
# bookworm's, so the binary above runs on it. iptables for the init
# container's `weft agent iptables`.
FROM docker.io/envoyproxy/envoy:${ENVOY_VERSION}
RUN apt-get update \
    && apt-get install -y --no-install-recommends iptables ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 1337 istio-proxy \
    && useradd --system --uid 1337 --gid 1337 --home-dir /etc/istio/proxy \
       --shell /usr/sbin/nologin istio-proxy \
    && mkdir -p /etc/istio/proxy /var/run/secrets/workload-spiffe-uds \
    && chown -R 1337:1337 /etc/istio/proxy /var/run/secrets/workload-spiffe-uds
COPY --from=build /out/weft /usr/local/bin/weft
USER 1337:1337
WORKDIR /etc/istio/proxy
# Envoy's admin (127.0.0.1 only), outbound and inbound capture ports, the
# agent's status port (merged metrics, readiness), Envoy's health listener
# (the kubelet's probe) and Envoy's stats.
EXPOSE 15000 15001 15006 15020 15021 15090
# The official image's entrypoint runs Envoy itself: replace it. The
# injector passes the agent's flags (--ca-address, --ca-root, --node-id,
# --bootstrap-out, ...) as the container's args.
ENTRYPOINT ["/usr/local/bin/weft", "agent"]
