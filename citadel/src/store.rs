//! CA material on disk, in Istio's `cacerts` layout:
//!
//! | file             | holds                                              |
//! |------------------|----------------------------------------------------|
//! | `ca-cert.pem`    | the signing (CA) certificate                       |
//! | `ca-key.pem`     | its private key (mode 0600 when Weft writes it)    |
//! | `root-cert.pem`  | the root workloads trust                           |
//! | `cert-chain.pem` | signing cert, intermediates (optional; may hold the root) |
//!
//! A *plug-in* directory (an operator-provided intermediate or root) is read
//! with [`CertificateAuthority::load_plugin_dir`]; Weft's standalone
//! self-signed root is kept in the same layout by
//! [`CertificateAuthority::load_or_create_dir`], so either can be read back
//! by the other.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::ca::split_pem_certs;
use crate::{CaError, CaMaterial, CertificateAuthority, KeyType};

/// File names of Istio's `cacerts` layout.
pub const CA_CERT: &str = "ca-cert.pem";
/// The signing key.
pub const CA_KEY: &str = "ca-key.pem";
/// The root certificate.
pub const ROOT_CERT: &str = "root-cert.pem";
/// The chain from the signing certificate upwards.
pub const CERT_CHAIN: &str = "cert-chain.pem";

impl CertificateAuthority {
    /// Loads a plug-in CA from `dir` in Istio's `cacerts` layout. `None`
    /// when the directory or its `ca-cert.pem` is absent; an error when the
    /// directory is half-filled or its contents do not form a valid CA.
    pub fn load_plugin_dir(dir: &Path) -> Result<Option<Self>, CaError> {
        let Some(ca_cert) = read_optional(&dir.join(CA_CERT))? else {
            return Ok(None);
        };
        let require = |name: &str| {
            read_optional(&dir.join(name))?.ok_or_else(|| {
                CaError::InvalidMaterial(format!(
                    "{} has {CA_CERT} but no {name}: a plug-in CA needs {CA_CERT}, {CA_KEY} and {ROOT_CERT}",
                    dir.display()
                ))
            })
        };
        let key_pem = require(CA_KEY)?;
        let root_pem = require(ROOT_CERT)?;
        let cert_chain_pem = match read_optional(&dir.join(CERT_CHAIN))? {
            Some(chain) => chain_starting_with(&ca_cert, &chain)?,
            None => ca_cert,
        };
        Self::from_material(&CaMaterial {
            cert_chain_pem,
            key_pem,
            root_pem,
        })
        .map(Some)
        .map_err(|e| match e {
            CaError::InvalidMaterial(msg) => {
                CaError::InvalidMaterial(format!("{}: {msg}", dir.display()))
            }
            other => other,
        })
    }

    /// Standalone mode: reuses the CA persisted in `dir` when there is one,
    /// else generates a root of `key_type` and writes it there (key file
    /// mode 0600, certificate written last so a crash never leaves a
    /// half-written CA that looks complete).
    pub fn load_or_create_dir(
        dir: &Path,
        key_type: KeyType,
        trust_domain: &str,
    ) -> Result<Self, CaError> {
        if let Some(ca) = Self::load_plugin_dir(dir)? {
            return Ok(ca);
        }
        let ca = Self::generate_root(key_type, trust_domain)?;
        write_material(dir, &ca.material())?;
        Ok(ca)
    }
}

/// Writes `m` into `dir` in the `cacerts` layout.
pub fn write_material(dir: &Path, m: &CaMaterial) -> Result<(), CaError> {
    fs::create_dir_all(dir).map_err(|e| CaError::io(dir, e))?;
    let signing = split_pem_certs(&m.cert_chain_pem, "certificate chain")?
        .into_iter()
        .next()
        .ok_or_else(|| CaError::InvalidMaterial("certificate chain is empty".into()))?;
    write_atomic(dir, CA_KEY, &m.key_pem, 0o600)?;
    write_atomic(dir, ROOT_CERT, &m.root_pem, 0o644)?;
    write_atomic(dir, CERT_CHAIN, &m.cert_chain_pem, 0o644)?;
    write_atomic(dir, CA_CERT, &signing, 0o644)
}

fn write_atomic(dir: &Path, name: &str, contents: &str, mode: u32) -> Result<(), CaError> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&tmp).map_err(|e| CaError::io(&tmp, e))?;
    #[cfg(unix)]
    {
        // `mode` only applies to new files: enforce it on a leftover too.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| CaError::io(&tmp, e))?;
    }
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| CaError::io(&tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| CaError::io(&path, e))
}

fn read_optional(path: &Path) -> Result<Option<String>, CaError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CaError::io(path, e)),
    }
}

/// Istio's `cert-chain.pem` normally starts with `ca-cert.pem`; when it
/// does not (it holds only the intermediates above), put the CA cert first.
fn chain_starting_with(ca_cert: &str, chain: &str) -> Result<String, CaError> {
    let first_ca = split_pem_certs(ca_cert, CA_CERT)?;
    let certs = split_pem_certs(chain, CERT_CHAIN)?;
    if certs.first() == first_ca.first() {
        Ok(certs.concat())
    } else {
        Ok(first_ca.into_iter().chain(certs).collect::<String>())
    }
}

impl CertificateAuthority {
    /// The standalone choice: the plug-in CA in `plugin_dir` when it holds
    /// one (it wins), else the self-signed root kept in `state_dir`
    /// (created there on first use).
    pub fn load_plugin_or_create(
        plugin_dir: Option<&Path>,
        state_dir: &Path,
        key_type: KeyType,
        trust_domain: &str,
    ) -> Result<Self, CaError> {
        if let Some(dir) = plugin_dir
            && let Some(ca) = Self::load_plugin_dir(dir)?
        {
            return Ok(ca);
        }
        Self::load_or_create_dir(state_dir, key_type, trust_domain)
    }
}
