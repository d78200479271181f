// Which protos Weft asks for, where they live, and how they are compiled.
// Shared (via `#[path]`) by `build.rs` and `examples/proto_closure.rs`, so
// the vendoring and the build agree on both.

use std::{
    collections::{BTreeSet, HashSet},
    error::Error,
    fs,
    path::{Path, PathBuf},
};

use prost_types::FileDescriptorSet;

/// Include roots under `proto/`, as envoy-types 0.7.7 lays out its own
/// `proto/` directory (one per upstream repository).
pub const INCLUDES: &[&str] = &[
    "cel-spec/proto",
    "client_model",
    "data-plane-api",
    "googleapis",
    "opentelemetry-proto",
    "protoc-gen-validate",
    "ratelimit",
    "xds",
];

/// The packages Weft uses, as directories under `proto/` (each Envoy
/// package is one directory). The vendored set is the import closure of
/// these, widened to whole packages: every package that is vendored at all
/// is vendored complete, so each generated module holds the same types as
/// its envoy-types counterpart.
pub const ROOTS: &[&str] = &[
    "data-plane-api/envoy/admin/v3",
    "data-plane-api/envoy/config/accesslog/v3",
    "data-plane-api/envoy/config/cluster/v3",
    "data-plane-api/envoy/config/core/v3",
    "data-plane-api/envoy/config/endpoint/v3",
    "data-plane-api/envoy/config/listener/v3",
    "data-plane-api/envoy/config/ratelimit/v3",
    "data-plane-api/envoy/config/rbac/v3",
    "data-plane-api/envoy/config/route/v3",
    "data-plane-api/envoy/config/trace/v3",
    "data-plane-api/envoy/extensions/access_loggers/file/v3",
    "data-plane-api/envoy/extensions/access_loggers/filters/cel/v3",
    "data-plane-api/envoy/extensions/access_loggers/open_telemetry/v3",
    "data-plane-api/envoy/extensions/access_loggers/stats/v3",
    "data-plane-api/envoy/extensions/access_loggers/stream/v3",
    "data-plane-api/envoy/extensions/common/ratelimit/v3",
    "data-plane-api/envoy/extensions/filters/common/fault/v3",
    "data-plane-api/envoy/extensions/filters/http/cors/v3",
    "data-plane-api/envoy/extensions/filters/http/ext_authz/v3",
    "data-plane-api/envoy/extensions/filters/http/fault/v3",
    "data-plane-api/envoy/extensions/filters/http/header_to_metadata/v3",
    "data-plane-api/envoy/extensions/filters/http/jwt_authn/v3",
    "data-plane-api/envoy/extensions/filters/http/local_ratelimit/v3",
    "data-plane-api/envoy/extensions/filters/http/ratelimit/v3",
    "data-plane-api/envoy/extensions/filters/http/rbac/v3",
    "data-plane-api/envoy/extensions/filters/http/router/v3",
    "data-plane-api/envoy/extensions/filters/listener/http_inspector/v3",
    "data-plane-api/envoy/extensions/filters/listener/original_dst/v3",
    "data-plane-api/envoy/extensions/filters/listener/tls_inspector/v3",
    "data-plane-api/envoy/extensions/filters/network/http_connection_manager/v3",
    "data-plane-api/envoy/extensions/filters/network/tcp_proxy/v3",
    "data-plane-api/envoy/extensions/matching/actions/transform_stat/v3",
    "data-plane-api/envoy/extensions/matching/common_inputs/stats/v3",
    "data-plane-api/envoy/extensions/retry/host/previous_hosts/v3",
    "data-plane-api/envoy/extensions/retry/priority/previous_priorities/v3",
    "data-plane-api/envoy/extensions/transport_sockets/raw_buffer/v3",
    "data-plane-api/envoy/extensions/transport_sockets/tls/v3",
    "data-plane-api/envoy/extensions/upstreams/http/v3",
    "data-plane-api/envoy/service/discovery/v3",
    "data-plane-api/envoy/service/ratelimit/v3",
    "data-plane-api/envoy/service/status/v3",
    "googleapis/google/rpc",
];

/// The `.proto` files directly in `dir`, a directory relative to
/// `proto_dir`; the result is relative to `proto_dir` too, sorted.
pub fn protos_in(proto_dir: &Path, dir: &Path) -> Result<Vec<PathBuf>, Box<dyn Error>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(proto_dir.join(dir))? {
        let name = entry?.file_name();
        if Path::new(&name)
            .extension()
            .is_some_and(|ext| ext == "proto")
        {
            files.push(dir.join(name));
        }
    }
    files.sort();
    Ok(files)
}

/// Compiles the `.proto` files of each package directory in `packages`
/// (relative to `proto_dir`) with protox. Returns the descriptors of those
/// files and of everything they import (dependencies before dependents,
/// each file once), and the same files as paths relative to `proto_dir`
/// (the well-known types protox carries itself, `google/protobuf/*`, have
/// no path and are not listed).
///
/// Each package gets a descriptor pool of its own, holding only its import
/// closure, and the results are merged. One pool for everything would be
/// simpler but fails: protox (prost-reflect 0.16) resolves a relative name
/// such as `common.ratelimit.v3.LocalRateLimitDescriptor` (in
/// `envoy.extensions.filters.http.local_ratelimit.v3`) against every package
/// in the pool, imported or not, so once `envoy.extensions.filters.common.*`
/// is present it takes `envoy.extensions.filters.common` as the scope and
/// reports the name as shadowed. protoc only looks at imported files, which
/// is what a pool per package reproduces.
pub fn compile(
    proto_dir: &Path,
    packages: &BTreeSet<PathBuf>,
) -> Result<(FileDescriptorSet, BTreeSet<PathBuf>), Box<dyn Error>> {
    let includes: Vec<PathBuf> = INCLUDES.iter().map(|dir| proto_dir.join(dir)).collect();
    let mut descriptors = FileDescriptorSet::default();
    let mut seen = HashSet::new();
    let mut files = BTreeSet::new();
    for package in packages {
        let mut compiler = protox::Compiler::new(&includes)?;
        compiler.include_imports(true).include_source_info(true);
        for file in protos_in(proto_dir, package)? {
            compiler.open_file(proto_dir.join(file))?;
        }
        for file in compiler.files() {
            if let Some(path) = file.path() {
                files.insert(path.strip_prefix(proto_dir)?.to_path_buf());
            }
        }
        for file in compiler.file_descriptor_set().file {
            if seen.insert(file.name().to_owned()) {
                descriptors.file.push(file);
            }
        }
    }
    Ok((descriptors, files))
}
