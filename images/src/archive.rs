//! Writing an [`Image`] as one tar that is both an OCI image layout and a
//! Docker archive (see the crate docs).

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::{Image, Source};

const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// What [`write_archive`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveInfo {
    /// `name:tag`.
    pub reference: String,
    /// The manifest's digest (`sha256:...`): the image's identity.
    pub digest: String,
    /// The layer's size in bytes (the root filesystem, uncompressed).
    pub layer_size: u64,
}

/// Writes `image` to `out` (see the crate docs). The same image gives the
/// same bytes.
pub fn write_archive(image: &Image, out: &Path) -> Result<ArchiveInfo> {
    let dir = match out.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut layer =
        tempfile::tempfile_in(dir).map_err(Error::io("creating a temporary file in", dir))?;
    let layer_digest = write_layer(image, &mut layer)?;
    let layer_size = layer
        .stream_position()
        .map_err(Error::io("writing the layer in", dir))?;

    let config = config_json(image, &layer_digest)?;
    let config_digest = sha256_hex(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {
            "mediaType": CONFIG_MEDIA_TYPE,
            "digest": format!("sha256:{config_digest}"),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": LAYER_MEDIA_TYPE,
            "digest": format!("sha256:{layer_digest}"),
            "size": layer_size,
        }],
    }))?;
    let manifest_digest = sha256_hex(&manifest);
    let reference = image.reference();
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": [{
            "mediaType": MANIFEST_MEDIA_TYPE,
            "digest": format!("sha256:{manifest_digest}"),
            "size": manifest.len(),
            "annotations": {
                "io.containerd.image.name": reference,
                "org.opencontainers.image.ref.name": image.tag,
            },
        }],
    }))?;
    let docker_manifest = serde_json::to_vec(&json!([{
        "Config": format!("blobs/sha256/{config_digest}"),
        "RepoTags": [reference],
        "Layers": [format!("blobs/sha256/{layer_digest}")],
    }]))?;

    // Written under a temporary name and renamed: `out` is whole or absent.
    let partial = tempfile::NamedTempFile::new_in(dir)
        .map_err(Error::io("creating a temporary file in", dir))?;
    let mut tar = tar::Builder::new(BufWriter::new(partial));
    let written = (|| -> io::Result<BufWriter<tempfile::NamedTempFile>> {
        append_bytes(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        append_dir(&mut tar, "blobs")?;
        append_dir(&mut tar, "blobs/sha256")?;
        append_bytes(&mut tar, &format!("blobs/sha256/{config_digest}"), &config)?;
        append_bytes(
            &mut tar,
            &format!("blobs/sha256/{manifest_digest}"),
            &manifest,
        )?;
        layer.rewind()?;
        let mut header = header(tar::EntryType::Regular, 0o644, 0, 0);
        header.set_size(layer_size);
        tar.append_data(
            &mut header,
            format!("blobs/sha256/{layer_digest}"),
            ExactReader::new(&mut layer, layer_size),
        )?;
        append_bytes(&mut tar, "index.json", &index)?;
        append_bytes(&mut tar, "manifest.json", &docker_manifest)?;
        tar.into_inner()
    })()
    .map_err(Error::io("writing", out))?;
    let partial = written
        .into_inner()
        .map_err(|err| Error::io("writing", out)(err.into_error()))?;
    // Temporary files are 0600; an archive is for others to read too.
    partial
        .as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(Error::io("setting the mode of", out))?;
    partial
        .persist(out)
        .map_err(|err| Error::io("renaming a temporary file to", out)(err.error))?;
    Ok(ArchiveInfo {
        reference,
        digest: format!("sha256:{manifest_digest}"),
        layer_size,
    })
}

/// The root filesystem as a tar, into `out`; returns its sha256 (hex).
fn write_layer(image: &Image, out: &mut File) -> Result<String> {
    let mut hashing = HashingWriter {
        inner: BufWriter::new(&mut *out),
        hash: Sha256::new(),
    };
    {
        let mut tar = tar::Builder::new(&mut hashing);
        for (path, entry) in &image.entries {
            let name = path.trim_start_matches('/');
            let written = match &entry.source {
                Source::Dir => {
                    let mut h = header(tar::EntryType::Directory, entry.mode, entry.uid, entry.gid);
                    h.set_size(0);
                    tar.append_data(&mut h, format!("{name}/"), io::empty())
                }
                Source::Bytes(data) => {
                    let mut h = header(tar::EntryType::Regular, entry.mode, entry.uid, entry.gid);
                    h.set_size(data.len() as u64);
                    tar.append_data(&mut h, name, data.as_slice())
                }
                Source::File(host) => {
                    let mut file = File::open(host).map_err(Error::io("opening", host))?;
                    let size = file
                        .metadata()
                        .map_err(Error::io("reading the metadata of", host))?
                        .len();
                    let mut h = header(tar::EntryType::Regular, entry.mode, entry.uid, entry.gid);
                    h.set_size(size);
                    // Streamed: Envoy is not read into memory.
                    tar.append_data(&mut h, name, ExactReader::new(&mut file, size))
                        .map_err(|err| match err.kind() {
                            io::ErrorKind::UnexpectedEof => Error::Changed { path: host.clone() },
                            _ => Error::io("archiving", host)(err),
                        })?;
                    Ok(())
                }
                Source::Symlink(target) => {
                    let mut h = header(tar::EntryType::Symlink, entry.mode, entry.uid, entry.gid);
                    h.set_size(0);
                    tar.append_link(&mut h, name, target)
                }
            };
            written.map_err(Error::io("writing the layer entry", path))?;
        }
        tar.finish()
            .map_err(Error::io("writing the layer in", "a temporary file"))?;
    }
    hashing
        .inner
        .flush()
        .map_err(Error::io("writing the layer in", "a temporary file"))?;
    Ok(hex(&hashing.hash.finalize()))
}

/// The OCI image config.
fn config_json(image: &Image, layer_digest: &str) -> Result<Vec<u8>> {
    let c = &image.config;
    let ports: serde_json::Map<String, serde_json::Value> = c
        .exposed_ports
        .iter()
        .map(|p| (format!("{p}/tcp"), json!({})))
        .collect();
    let mut config = json!({
        "User": c.user,
        "Env": c.env,
        "WorkingDir": c.working_dir,
        "ExposedPorts": ports,
        "Labels": c.labels,
    });
    if !c.entrypoint.is_empty() {
        config["Entrypoint"] = json!(c.entrypoint);
    }
    if !c.cmd.is_empty() {
        config["Cmd"] = json!(c.cmd);
    }
    Ok(serde_json::to_vec(&json!({
        "architecture": go_arch(),
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_digest}")]},
        "history": [{"created_by": "weft-images", "comment": "one layer, built without Docker"}],
    }))?)
}

/// This machine's architecture as OCI (Go's GOARCH) names it: the binaries
/// packed are this machine's.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// A header with mtime 0 (reproducible builds).
fn header(kind: tar::EntryType, mode: u32, uid: u64, gid: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(uid);
    header.set_gid(gid);
    header.set_mtime(0);
    header
}

fn append_bytes<W: Write>(tar: &mut tar::Builder<W>, name: &str, data: &[u8]) -> io::Result<()> {
    let mut h = header(tar::EntryType::Regular, 0o644, 0, 0);
    h.set_size(data.len() as u64);
    tar.append_data(&mut h, name, data)
}

fn append_dir<W: Write>(tar: &mut tar::Builder<W>, name: &str) -> io::Result<()> {
    let mut h = header(tar::EntryType::Directory, 0o755, 0, 0);
    h.set_size(0);
    tar.append_data(&mut h, format!("{name}/"), io::empty())
}

/// Reads exactly `len` bytes, the size a tar header already promised:
/// fewer is `UnexpectedEof` (the file shrank), more is not read (it grew).
/// Without it a changed file would silently corrupt the archive.
struct ExactReader<R> {
    inner: io::Take<R>,
}

impl<R: Read> ExactReader<R> {
    fn new(inner: R, len: u64) -> Self {
        ExactReader {
            inner: inner.take(len),
        }
    }
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() && self.inner.limit() > 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file is shorter than when it was measured",
            ));
        }
        Ok(n)
    }
}

struct HashingWriter<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn sample() -> Image {
        let mut image = Image::new("example.test/app", "1.0");
        image.add(
            "/usr/local/bin/app",
            Source::Bytes(b"#!/bin/true\n".to_vec()),
            0o755,
        );
        image.add_dir("/tmp", 0o1777, 0, 0);
        image.add(
            "/bin/sh",
            Source::Symlink("/usr/local/bin/app".into()),
            0o777,
        );
        image.config.user = "65532:65532".into();
        image.config.entrypoint = vec!["/usr/local/bin/app".into()];
        image.config.exposed_ports = vec![8080];
        image
    }

    /// Every entry of a tar file, by name.
    fn read_tar(path: &Path) -> BTreeMap<String, Vec<u8>> {
        let mut archive = tar::Archive::new(File::open(path).unwrap());
        archive
            .entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                let name = entry.path().unwrap().display().to_string();
                let mut data = Vec::new();
                entry.read_to_end(&mut data).unwrap();
                (name, data)
            })
            .collect()
    }

    #[test]
    fn the_archive_is_an_oci_layout_and_a_docker_archive_that_agree() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("app.tar");
        let info = write_archive(&sample(), &out).unwrap();
        let files = read_tar(&out);
        let json = |name: &str| -> serde_json::Value {
            serde_json::from_slice(&files[name]).unwrap_or_else(|e| panic!("{name}: {e}"))
        };
        assert_eq!(json("oci-layout")["imageLayoutVersion"], "1.0.0");
        let index = json("index.json");
        let descriptor = &index["manifests"][0];
        assert_eq!(descriptor["digest"], info.digest.as_str());
        assert_eq!(
            descriptor["annotations"]["io.containerd.image.name"],
            "example.test/app:1.0"
        );
        assert_eq!(
            descriptor["annotations"]["org.opencontainers.image.ref.name"],
            "1.0"
        );
        // Every blob is named by its digest.
        for (name, data) in &files {
            if let Some(digest) = name.strip_prefix("blobs/sha256/")
                && !digest.is_empty()
            {
                assert_eq!(sha256_hex(data), digest, "{name}");
            }
        }
        let manifest = json(&format!(
            "blobs/sha256/{}",
            info.digest.trim_start_matches("sha256:")
        ));
        let docker = json("manifest.json");
        assert_eq!(docker[0]["RepoTags"][0], "example.test/app:1.0");
        assert_eq!(
            format!(
                "blobs/sha256/{}",
                manifest["config"]["digest"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("sha256:")
            ),
            docker[0]["Config"]
        );
        assert_eq!(
            format!(
                "blobs/sha256/{}",
                manifest["layers"][0]["digest"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("sha256:")
            ),
            docker[0]["Layers"][0]
        );
        let config = json(docker[0]["Config"].as_str().unwrap());
        assert_eq!(config["config"]["User"], "65532:65532");
        assert_eq!(config["config"]["Entrypoint"][0], "/usr/local/bin/app");
        assert!(config["config"]["ExposedPorts"]["8080/tcp"].is_object());
        assert_eq!(
            config["rootfs"]["diff_ids"][0],
            manifest["layers"][0]["digest"]
        );
    }

    #[test]
    fn the_layer_holds_the_entries_with_their_modes_and_owners() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("app.tar");
        write_archive(&sample(), &out).unwrap();
        let files = read_tar(&out);
        let docker: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
        let layer = &files[docker[0]["Layers"][0].as_str().unwrap()];
        let mut archive = tar::Archive::new(layer.as_slice());
        let entries: Vec<(String, u32, u64, tar::EntryType)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                    h.entry_type(),
                )
            })
            .collect();
        assert!(entries.iter().all(|(_, _, mtime, _)| *mtime == 0));
        let find = |name: &str| entries.iter().find(|e| e.0 == name).cloned();
        assert_eq!(find("tmp/").map(|e| e.1), Some(0o1777));
        assert_eq!(find("usr/local/bin/app").map(|e| e.1), Some(0o755));
        assert_eq!(find("bin/sh").map(|e| e.3), Some(tar::EntryType::Symlink));
    }

    #[test]
    fn the_same_image_gives_the_same_digest() {
        let dir = tempfile::tempdir().unwrap();
        let first = write_archive(&sample(), &dir.path().join("a.tar")).unwrap();
        let second = write_archive(&sample(), &dir.path().join("b.tar")).unwrap();
        assert_eq!(first, second);
        let mut other = sample();
        other.config.cmd = vec!["serve".into()];
        let third = write_archive(&other, &dir.path().join("c.tar")).unwrap();
        assert_ne!(first.digest, third.digest);
    }

    #[test]
    fn a_failed_write_leaves_no_archive_and_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("app.tar");
        let mut image = sample();
        image.add(
            "/usr/local/bin/gone",
            Source::File(dir.path().join("gone")),
            0o755,
        );
        let err = write_archive(&image, &out).unwrap_err();
        assert_eq!(err.kind(), "io");
        assert!(err.to_string().contains("gone"), "{err}");
        // Nothing half-written is left: no archive, no temporary file.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn the_archive_is_readable_by_others() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("app.tar");
        write_archive(&sample(), &out).unwrap();
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
    }

    #[test]
    fn a_file_shorter_than_its_header_is_an_error_not_a_corrupt_tar() {
        let mut short = ExactReader::new(&b"abc"[..], 5);
        let mut buf = Vec::new();
        let err = short.read_to_end(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let mut long = ExactReader::new(&b"abcdef"[..], 4);
        let mut buf = Vec::new();
        long.read_to_end(&mut buf).unwrap();
        assert_eq!(buf, b"abcd");
    }
}
