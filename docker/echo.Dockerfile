# The test app the e2e tests and `make demo-cluster` run in pods:
# `weft-echo --listen ADDR --identity ID` (an HTTP echo server that names
# itself, echoes the request and the client certificate its sidecar
# forwarded, and can call another service: GET /forward/<host:port>/<path>),
# as an unprivileged user. `make images` builds the same layout without
# Docker (target/images/weft-echo.tar).
#
#   docker build -f docker/echo.Dockerfile -t ghcr.io/weft-mesh/weft-echo:0.1.0 .

ARG RUST_VERSION=1.89

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p weft-e2e --bin weft-echo \
    && install -D -m 0755 target/release/weft-echo /out/weft-echo

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/weft-echo /usr/local/bin/weft-echo
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/weft-echo"]
