//! What can go wrong while describing an image or writing its archive.

use std::path::PathBuf;

/// An error of this crate (one enum; `kind()` names the variant).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file of this machine could not be read, or the archive written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A host file changed size while it was archived (the tar header
    /// already promised the old size).
    #[error("{} changed size while it was archived", path.display())]
    Changed { path: PathBuf },
    /// `ldd` failed, or named a library it could not find.
    #[error("ldd {}: {message}", binary.display())]
    Ldd { binary: PathBuf, message: String },
    /// `ldd` output naming a library it could not find ([`crate::parse_ldd`]).
    #[error("ldd: {library} not found")]
    LibraryNotFound { library: String },
    /// Something the image needs is not installed here (iptables, CA
    /// certificates); the message says how to install it.
    #[error("{0}")]
    Missing(String),
    /// Serialising a JSON document failed.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl Error {
    /// A fixed name per variant, for logs and metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Io { .. } => "io",
            Error::Changed { .. } => "changed",
            Error::Ldd { .. } => "ldd",
            Error::LibraryNotFound { .. } => "library_not_found",
            Error::Missing(_) => "missing",
            Error::Json(_) => "json",
        }
    }

    /// `map_err(Error::io("reading", path))`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }
}

/// This crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
