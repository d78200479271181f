//! Generates Envoy's message types from `proto/` with protox (pure Rust: no
//! `protoc` to install) and prost-build, configured as envoy-types 0.7.7
//! configures its own generator (type names under `type.googleapis.com`,
//! well-known types generated rather than taken from prost-types, a `mod.rs`
//! laying out the module tree), minus the tonic services.
//!
//! Every package vendored under `proto/` is compiled: `vendor-protos.sh`
//! decides what is vendored (see `proto_set.rs`).

use std::{collections::BTreeSet, error::Error, fs, path::Path, path::PathBuf};

#[path = "proto_set.rs"]
mod proto_set;

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=proto_set.rs");

    let proto_dir = Path::new("proto");
    let mut packages = BTreeSet::new();
    package_dirs(proto_dir, Path::new(""), &mut packages)?;
    let missing: Vec<&str> = proto_set::ROOTS
        .iter()
        .copied()
        .filter(|root| !packages.contains(Path::new(root)))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "not vendored under proto/: {}; run vendor-protos.sh",
            missing.join(", ")
        )
        .into());
    }
    let (descriptors, _files) = proto_set::compile(proto_dir, &packages)?;

    // The same descriptors, without their comments, for `FILE_DESCRIPTOR_SET`
    // (what JSON renderings of these messages resolve types with).
    let mut stripped = descriptors.clone();
    for file in &mut stripped.file {
        file.source_code_info = None;
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("file_descriptor_set.bin"),
        prost::Message::encode_to_vec(&stripped),
    )?;

    prost_build::Config::new()
        .enable_type_names()
        .type_name_domain(["."], "type.googleapis.com")
        .compile_well_known_types()
        .btree_map(["."])
        .include_file("mod.rs")
        .compile_fds(descriptors)?;
    Ok(())
}

/// Every directory under `proto_dir` (relative to it) holding `.proto` files.
fn package_dirs(
    proto_dir: &Path,
    dir: &Path,
    packages: &mut BTreeSet<PathBuf>,
) -> Result<(), Box<dyn Error>> {
    for entry in fs::read_dir(proto_dir.join(dir))? {
        let entry = entry?;
        let path = dir.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            package_dirs(proto_dir, &path, packages)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            packages.insert(dir.to_path_buf());
        }
    }
    Ok(())
}
