//! Prints the `.proto` files to vendor, one path a line, relative to an
//! envoy-types `proto/` directory: the import closure of
//! [`proto_set::ROOTS`] (resolved by protox, not kept by hand), widened to
//! whole packages until nothing more is pulled in.
//!
//! Usage: `cargo run -p weft-envoy-api --example proto_closure -- <envoy-types>/proto`
//! (`vendor-protos.sh` runs it and copies the files).

use std::{collections::BTreeSet, error::Error, path::PathBuf};

#[path = "../proto_set.rs"]
mod proto_set;

fn main() -> Result<(), Box<dyn Error>> {
    let source = PathBuf::from(
        std::env::args_os()
            .nth(1)
            .ok_or("usage: proto_closure <envoy-types>/proto")?,
    );
    let mut packages: BTreeSet<PathBuf> = proto_set::ROOTS.iter().map(PathBuf::from).collect();
    let files = loop {
        let (_, files) = proto_set::compile(&source, &packages)?;
        let mut wider = packages.clone();
        for file in &files {
            wider.extend(file.parent().map(PathBuf::from));
        }
        if wider == packages {
            break files;
        }
        packages = wider;
    };
    for file in files {
        println!("{}", file.display());
    }
    Ok(())
}
