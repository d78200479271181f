//! weft-images: container images built without Docker or a registry.
//!
//! It owns two things:
//!
//! - [`Image`]: a root filesystem assembled from files of this machine
//!   (binaries with the shared libraries `ldd` says they load, CA
//!   certificates, `/etc/passwd`), plus the image config (user,
//!   entrypoint, environment, ports);
//! - [`write_archive`]: one uncompressed, reproducible layer (sorted
//!   entries, mtime 0, explicit owners), written as a single tar that is
//!   both an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/`)
//!   and a Docker archive (`manifest.json`), as `docker save` writes since
//!   Docker 25: `ctr images import`, `docker load` and `kind load
//!   image-archive` all take it.
//!
//! [`weft`] describes Weft's own images (the control plane, the proxy, the
//! test app and the pod sandbox) with the layout of the repository's
//! Dockerfiles.
//!
//! It must not touch the network or a container runtime, and has no async
//! runtime: it reads files and writes one. Its errors are one
//! [`Error`] enum (no `anyhow` in its signatures).
//!
//! The OCI and Docker JSON documents are written with `serde_json` from
//! the few fields they need, rather than with `oci-spec`'s builders: the
//! layout is small, fixed and tested here against what containerd reads.

mod archive;
mod elf;
mod error;
pub mod weft;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use archive::{ArchiveInfo, write_archive};
pub use elf::{parse_ldd, shared_libraries};
pub use error::{Error, Result};

/// Where a path of the image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file of this machine, copied (its content, not a link).
    File(PathBuf),
    /// Literal content.
    Bytes(Vec<u8>),
    /// A directory.
    Dir,
    /// A symbolic link to this target.
    Symlink(String),
}

/// One path of the image's root filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub source: Source,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
}

/// The image config's runtime part (OCI `config`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// `uid:gid`.
    pub user: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `NAME=value`.
    pub env: Vec<String>,
    pub working_dir: String,
    pub exposed_ports: Vec<u16>,
    pub labels: BTreeMap<String, String>,
}

/// An image: its name and tag, root filesystem and config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The repository, e.g. `ghcr.io/weft-mesh/weft`.
    pub name: String,
    pub tag: String,
    /// By absolute path in the image; parents are added by
    /// [`Image::add`].
    pub entries: BTreeMap<String, Entry>,
    pub config: Config,
}

impl Image {
    pub fn new(name: &str, tag: &str) -> Self {
        Self {
            name: name.to_string(),
            tag: tag.to_string(),
            entries: BTreeMap::new(),
            config: Config {
                env: vec![
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
                ],
                working_dir: "/".to_string(),
                ..Config::default()
            },
        }
    }

    /// `name:tag`.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.name, self.tag)
    }

    /// Puts `source` at `path` (absolute), owned by root, with `mode`;
    /// its missing parent directories are added (0755, root).
    pub fn add(&mut self, path: &str, source: Source, mode: u32) {
        self.add_owned(path, source, mode, 0, 0);
    }

    /// [`Image::add`] with an owner.
    pub fn add_owned(&mut self, path: &str, source: Source, mode: u32, uid: u64, gid: u64) {
        let path = normalize(path);
        let mut parent = Path::new(&path).parent();
        while let Some(dir) = parent.filter(|d| *d != Path::new("/")) {
            let dir_path = dir.display().to_string();
            self.entries.entry(dir_path).or_insert(Entry {
                source: Source::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
            });
            parent = dir.parent();
        }
        self.entries.insert(
            path,
            Entry {
                source,
                mode,
                uid,
                gid,
            },
        );
    }

    /// A directory owned by `uid:gid`.
    pub fn add_dir(&mut self, path: &str, mode: u32, uid: u64, gid: u64) {
        self.add_owned(path, Source::Dir, mode, uid, gid);
    }

    /// An executable of this machine at `path`, with every shared library
    /// it loads (`ldd`) at the path the loader finds it.
    pub fn add_executable(&mut self, host: &Path, path: &str) -> Result<()> {
        self.add(path, Source::File(host.to_path_buf()), 0o755);
        self.add_libraries_of(host)
    }

    /// The shared libraries `host` (an executable or a library) loads.
    pub fn add_libraries_of(&mut self, host: &Path) -> Result<()> {
        for library in shared_libraries(host)? {
            let at = library.display().to_string();
            self.add(&at, Source::File(library), 0o755);
        }
        Ok(())
    }

    /// `/etc/passwd` and `/etc/group` with root and the given users
    /// (`name`, uid = gid, home).
    pub fn add_users(&mut self, users: &[(&str, u64, &str)]) {
        let mut passwd = String::from("root:x:0:0:root:/root:/sbin/nologin\n");
        let mut group = String::from("root:x:0:\n");
        for (name, id, home) in users {
            passwd.push_str(&format!("{name}:x:{id}:{id}:{name}:{home}:/sbin/nologin\n"));
            group.push_str(&format!("{name}:x:{id}:\n"));
        }
        self.add("/etc/passwd", Source::Bytes(passwd.into_bytes()), 0o644);
        self.add("/etc/group", Source::Bytes(group.into_bytes()), 0o644);
    }
}

/// An absolute path without `.`/`..` tricks or a trailing slash.
fn normalize(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn adding_a_file_adds_its_parents() {
        let mut image = Image::new("example/app", "1");
        image.add("/usr/local/bin/app", Source::Bytes(b"x".to_vec()), 0o755);
        let paths: Vec<&str> = image.entries.keys().map(String::as_str).collect();
        assert_eq!(
            paths,
            ["/usr", "/usr/local", "/usr/local/bin", "/usr/local/bin/app"]
        );
        assert_eq!(image.reference(), "example/app:1");
    }

    #[test]
    fn an_explicit_directory_keeps_its_owner() {
        let mut image = Image::new("example/app", "1");
        image.add_dir("/etc/istio/proxy", 0o755, 1337, 1337);
        image.add("/etc/istio/proxy/x", Source::Bytes(Vec::new()), 0o644);
        assert_eq!(image.entries["/etc/istio/proxy"].uid, 1337);
        assert_eq!(image.entries["/etc/istio"].uid, 0);
    }

    #[test]
    fn paths_are_normalized() {
        assert_eq!(normalize("etc//passwd/"), "/etc/passwd");
        assert_eq!(normalize("/./tmp"), "/tmp");
    }
}
