//! Standalone mode's source: a directory of Istio YAML files, the same
//! multi-document YAML a user would `kubectl apply`, watched for changes;
//! and one file watched the same way (the mesh config, `--mesh-config`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use weft_config::{
    Document, ErrorReason, FieldError, Input, Origin, parse_documents, split_documents,
};

use crate::debounce::Debouncer;

/// Reads every `*.yaml` / `*.yml` file of `dir` (not recursing), in name
/// order, into inputs. Never fails: what cannot be read becomes an input
/// that says so.
pub fn read_config_dir(dir: &Path) -> Vec<Input> {
    let files = match yaml_files(dir) {
        Ok(files) => files,
        Err(err) => {
            let origin = Origin {
                source: dir.display().to_string(),
                document: None,
            };
            let error = FieldError::new(
                ErrorReason::Unreadable,
                "",
                format!("cannot list the directory: {err}"),
            );
            return vec![Input::Broken { origin, error }];
        }
    };
    files.iter().flat_map(|f| read_config_file(f)).collect()
}

fn yaml_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Reads one file's documents.
pub fn read_config_file(path: &Path) -> Vec<Input> {
    let source = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse_documents(&source, &text),
        Err(err) => vec![Input::Broken {
            origin: Origin {
                source,
                document: None,
            },
            error: FieldError::new(
                ErrorReason::Unreadable,
                "",
                format!("cannot read the file: {err}"),
            ),
        }],
    }
}

/// Reads `paths`: a directory as `weft standalone --config-dir` reads it
/// (its `*.yaml` / `*.yml` files, not recursing), anything else as one
/// file. What cannot be read becomes an input that says so.
pub fn read_inputs(paths: &[PathBuf]) -> Vec<Input> {
    paths
        .iter()
        .flat_map(|path| {
            if path.is_dir() {
                read_config_dir(path)
            } else {
                read_config_file(path)
            }
        })
        .collect()
}

/// Reads `paths` as [`read_inputs`] does, into documents not yet read as
/// any kind (what `weft validate` and `weft analyze` sort themselves).
pub fn read_documents(paths: &[PathBuf]) -> Vec<Document> {
    let mut documents = Vec::new();
    for path in paths {
        let files = if path.is_dir() {
            match yaml_files(path) {
                Ok(files) => files,
                Err(err) => {
                    documents.push(unreadable(
                        path,
                        format!("cannot list the directory: {err}"),
                    ));
                    continue;
                }
            }
        } else {
            vec![path.clone()]
        };
        for file in files {
            match std::fs::read_to_string(&file) {
                Ok(text) => documents.extend(split_documents(&file.display().to_string(), &text)),
                Err(err) => {
                    documents.push(unreadable(&file, format!("cannot read the file: {err}")))
                }
            }
        }
    }
    documents
}

fn unreadable(path: &Path, message: String) -> Document {
    Document {
        origin: Origin {
            source: path.display().to_string(),
            document: None,
        },
        value: Err(FieldError::new(ErrorReason::Unreadable, "", message)),
    }
}

/// Watches `dir` and reports a change after `quiet` passed without another
/// one (at most `max_delay` after the first), so a burst of writes (an
/// editor's save, a `cp -r`) is one reload.
#[derive(Debug)]
pub struct DirWatcher {
    _watcher: notify::RecommendedWatcher,
    changes: Debouncer,
}

impl DirWatcher {
    pub fn new(dir: &Path, quiet: Duration, max_delay: Duration) -> notify::Result<Self> {
        Self::watching(dir, None, quiet, max_delay)
    }

    /// Watches one file, the same way: its directory is watched (so that
    /// an editor's save by rename is seen) and only changes of that name
    /// count. Its contents may well be unchanged: compare them.
    pub fn for_file(file: &Path, quiet: Duration, max_delay: Duration) -> notify::Result<Self> {
        let dir = match file.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        Self::watching(
            dir,
            file.file_name().map(|n| n.to_owned()),
            quiet,
            max_delay,
        )
    }

    /// Watches `dir`; with `name`, only events about that entry count.
    fn watching(
        dir: &Path,
        name: Option<std::ffi::OsString>,
        quiet: Duration,
        max_delay: Duration,
    ) -> notify::Result<Self> {
        let (tx, events) = mpsc::unbounded_channel();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let relevant = event.is_ok_and(|e| {
                    !e.kind.is_access()
                        && name.as_ref().is_none_or(|name| {
                            e.paths
                                .iter()
                                .any(|p| p.file_name() == Some(name.as_os_str()))
                        })
                });
                if relevant {
                    let _ = tx.send(());
                }
            })?;
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
        Ok(Self {
            _watcher: watcher,
            changes: Debouncer::new(events, quiet, max_delay),
        })
    }

    /// Waits for the next settled change; `None` when watching stopped.
    pub async fn changed(&mut self) -> Option<()> {
        self.changes.changed().await
    }
}

#[cfg(test)]
mod tests;
