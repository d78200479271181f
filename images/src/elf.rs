//! The shared libraries a binary of this machine loads, as `ldd` reports
//! them.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// The libraries `binary` loads (the dynamic loader included), by the
/// path `ldd` resolved; empty for a static binary.
pub fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let ldd_error = |message: String| Error::Ldd {
        binary: binary.to_path_buf(),
        message,
    };
    let out = Command::new("ldd").arg(binary).output().map_err(|err| {
        ldd_error(format!(
            "cannot run ldd ({err}); it comes with glibc: apt-get install libc-bin"
        ))
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if text.contains("not a dynamic executable") || stderr.contains("not a dynamic executable")
        {
            return Ok(Vec::new());
        }
        return Err(ldd_error(format!("{}: {}", out.status, stderr.trim())));
    }
    parse_ldd(&text).map_err(|err| match err {
        Error::LibraryNotFound { library } => ldd_error(format!("{library} not found")),
        other => other,
    })
}

/// The library paths in `ldd` output; a library it could not find is an
/// error naming it.
pub fn parse_ldd(output: &str) -> Result<Vec<PathBuf>> {
    let mut libraries = Vec::new();
    for line in output.lines().map(str::trim) {
        if line.is_empty() || line == "statically linked" {
            continue;
        }
        if let Some((name, rest)) = line.split_once("=>") {
            let target = rest.trim();
            if target.starts_with("not found") {
                return Err(Error::LibraryNotFound {
                    library: name.trim().to_string(),
                });
            }
            // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)`;
            // the vDSO has no file.
            if let Some(path) = target
                .split_whitespace()
                .next()
                .filter(|p| p.starts_with('/'))
            {
                libraries.push(PathBuf::from(path));
            }
        } else if let Some(path) = line
            .split_whitespace()
            .next()
            .filter(|p| p.starts_with('/'))
        {
            // The loader: `/lib64/ld-linux-x86-64.so.2 (0x...)`.
            libraries.push(PathBuf::from(path));
        }
    }
    Ok(libraries)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_ldd_output() {
        let output = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                      \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f51)\n\
                      \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f52)\n\
                      \t/lib64/ld-linux-x86-64.so.2 (0x00007f53)\n";
        assert_eq!(
            parse_ldd(output).ok(),
            Some(vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ])
        );
    }

    #[test]
    fn a_missing_library_is_an_error() {
        let err = parse_ldd("\tlibfoo.so.1 => not found\n").unwrap_err();
        assert!(err.to_string().contains("libfoo.so.1"), "{err}");
    }

    #[test]
    fn static_binaries_load_nothing() {
        assert_eq!(parse_ldd("\tstatically linked\n").ok(), Some(Vec::new()));
    }
}
