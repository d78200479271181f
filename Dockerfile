# The control-plane image: `weft` (run as `weft operator` by the Helm
# chart) on distroless, as an unprivileged user.
#
#   docker build -t ghcr.io/weft-mesh/weft:0.1.0 .
#
# The build needs no protoc, cmake or OpenSSL: protos compile with protox,
# TLS is rustls on ring (a C compiler, which the rust image has).

# The workspace's rust-version is 1.89; any later stable builds it.
ARG RUST_VERSION=1.89

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# Cargo.lock is committed: --locked builds exactly what CI tested.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p weft --bin weft \
    && install -D -m 0755 target/release/weft /out/weft

# glibc and libgcc (the binary links them dynamically), CA certificates,
# no shell; user 65532 ("nonroot").
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/weft /usr/local/bin/weft
USER 65532:65532
# xDS, certificate service, monitoring, webhooks.
EXPOSE 15010 15012 15014 15017
ENTRYPOINT ["/usr/local/bin/weft"]
CMD ["operator"]
