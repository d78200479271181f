//! `weft standalone`: the control plane over a directory of YAML files and
//! an optional mesh config file (`--mesh-config`, both watched); with
//! `--token-file` and `--ca-dir` also the certificate service
//! ([`crate::certificate_service`]), signing in the mesh config's trust
//! domain ([`crate::mesh_config`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::watch;
use tracing::warn;
use weft_citadel::{CertificateAuthority, CitadelMetrics, TokenFileAuthenticator};
use weft_config::{Applied, ConfigStore, ErrorReason, FieldError};
use weft_model::MeshSnapshot;
use weft_source::files::{DirWatcher, read_config_dir};

use crate::cli::StandaloneArgs;
use crate::control_plane::{ConfigRecorder, ControlPlane};
use crate::debug::access::NamespaceAccess;
use crate::mesh_config::{MeshConfigState, Reload};

pub async fn run(args: StandaloneArgs) -> anyhow::Result<()> {
    let dir = args.config_dir.as_path();
    anyhow::ensure!(
        dir.is_dir(),
        "--config-dir {} is not a directory",
        dir.display()
    );
    if let Some(file) = &args.mesh_config {
        ensure_outside(file, dir)?;
    }
    // Up first, so that health answers while the config loads.
    let mut citadel_metrics = CitadelMetrics::default();
    let plane = ControlPlane::start_monitoring_with(args.monitoring_address, |registry| {
        citadel_metrics = CitadelMetrics::register(registry);
    })
    .await?;
    let recorder = plane.recorder();
    // The mesh config before the CA: the CA signs in its trust domain.
    let (mesh_file, mesh) = load_mesh_config(&args, &recorder)?;
    if let (Some(tokens), Some(ca_dir)) = (&args.token_file, &args.ca_dir) {
        let ca = CertificateAuthority::load_plugin_or_create(
            args.plugin_ca_dir.as_deref(),
            ca_dir,
            args.ca.ca_key_type.into(),
            mesh.trust_domain(),
        )
        .context("cannot load or create the CA")?;
        let authenticator = Arc::new(
            TokenFileAuthenticator::new(tokens, mesh.trust_domain())
                .with_context(|| format!("cannot use the token file {}", tokens.display()))?,
        );
        // Debug readers from outside loopback: tokens of the root namespace.
        plane.set_debug_access(Arc::new(NamespaceAccess::new(
            mesh.current().root_namespace.clone(),
            Some(authenticator.clone()),
        )));
        crate::certificate_service::start(
            &args.ca,
            mesh.trust_domain(),
            ca,
            authenticator,
            citadel_metrics,
        )
        .await?;
    }

    // Watch before the first read, so that no change falls between them.
    let watcher = DirWatcher::new(dir, args.debounce_quiet.0, args.debounce_max.0)
        .with_context(|| format!("cannot watch {}", dir.display()))?;
    let mut store = ConfigStore::default();
    store.set_mesh_config(mesh.current());
    let applied = store.apply(read_config_dir(dir));
    recorder.record(&applied);
    let (snapshots, receiver) = watch::channel(applied.snapshot);
    let jwks = weft_jwks::spawn(args.jwks.options()?, receiver.clone())?;
    tokio::spawn(
        Reloader {
            dir: dir.to_path_buf(),
            store,
            snapshots,
            recorder,
            mesh,
            mesh_file,
            jwks,
        }
        .run(watcher),
    );
    plane.serve_xds(args.xds_address, receiver).await
}

/// `--mesh-config`'s file is read as a mesh config, never as resources.
fn ensure_outside(file: &Path, dir: &Path) -> anyhow::Result<()> {
    let parent = match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let same = match (parent.canonicalize(), dir.canonicalize()) {
        (Ok(parent), Ok(dir)) => parent == dir,
        _ => false,
    };
    anyhow::ensure!(
        !same,
        "--mesh-config {} is inside --config-dir {}, whose files are read as resources; move it out",
        file.display(),
        dir.display()
    );
    Ok(())
}

/// The watched mesh config file.
struct MeshFile {
    path: PathBuf,
    watcher: DirWatcher,
}

impl MeshFile {
    /// How logs name it.
    fn origin(&self) -> String {
        self.path.display().to_string()
    }
}

/// The mesh config at startup: `--mesh-config`'s (watched from before it
/// is read), or the defaults with the flags.
fn load_mesh_config(
    args: &StandaloneArgs,
    recorder: &ConfigRecorder,
) -> anyhow::Result<(Option<MeshFile>, MeshConfigState)> {
    let flag = args.ca.trust_domain.as_deref();
    let Some(path) = &args.mesh_config else {
        let mesh = MeshConfigState::start(None, flag, "defaults")?;
        return Ok((None, mesh.with_jwks_fetch(args.jwks.fetch_mode())));
    };
    let watcher = DirWatcher::for_file(path, args.debounce_quiet.0, args.debounce_max.0)
        .with_context(|| format!("cannot watch {}", path.display()))?;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --mesh-config {}", path.display()))?;
    let file = MeshFile {
        path: path.clone(),
        watcher,
    };
    let mesh = MeshConfigState::start(Some(&text), flag, &file.origin())?
        .with_jwks_fetch(args.jwks.fetch_mode());
    recorder.record_mesh_config(&file.origin(), &Reload::Applied(mesh.current()));
    Ok((Some(file), mesh))
}

/// What reloads: the config directory's resources and the mesh config.
struct Reloader {
    dir: PathBuf,
    store: ConfigStore,
    snapshots: watch::Sender<Arc<MeshSnapshot>>,
    recorder: ConfigRecorder,
    mesh: MeshConfigState,
    mesh_file: Option<MeshFile>,
    /// The key sets RequestAuthentications fetch ([`weft_jwks`]).
    jwks: watch::Receiver<weft_jwks::Fetched>,
}

impl Reloader {
    async fn run(mut self, mut watcher: DirWatcher) {
        loop {
            tokio::select! {
                changed = watcher.changed() => {
                    if changed.is_none() {
                        break;
                    }
                    let applied = self.store.apply(read_config_dir(&self.dir));
                    self.publish(applied);
                }
                Some(fetched) = crate::control_plane::jwks_changed(&mut self.jwks) => {
                    let applied = self.store.set_fetched_jwks(fetched);
                    self.publish(applied);
                }
                changed = mesh_file_changed(&mut self.mesh_file) => match changed {
                    Some(()) => self.reload_mesh_config(),
                    None => {
                        warn!("stopped watching the mesh config; it stays as it is");
                        self.mesh_file = None;
                    }
                },
            }
        }
        warn!(dir = %self.dir.display(), "stopped watching the config directory");
    }

    /// Reads the mesh config file again; a new good one re-assembles the
    /// snapshot.
    fn reload_mesh_config(&mut self) {
        let Some(file) = &self.mesh_file else { return };
        let origin = file.origin();
        let reload = match std::fs::read_to_string(&file.path) {
            Ok(text) => self.mesh.reload(Some(&text)),
            Err(err) => Reload::Rejected(vec![FieldError::new(
                ErrorReason::Unreadable,
                "",
                format!("cannot read the file: {err}"),
            )]),
        };
        self.recorder.record_mesh_config(&origin, &reload);
        if let Reload::Applied(mesh) = reload {
            let applied = self.store.set_mesh_config(mesh);
            self.publish(applied);
        }
    }

    fn publish(&self, applied: Applied) {
        self.recorder.record(&applied);
        if applied.changed {
            self.snapshots.send_replace(applied.snapshot);
        }
    }
}

/// The next settled change of the mesh config file; never, without one.
async fn mesh_file_changed(file: &mut Option<MeshFile>) -> Option<()> {
    match file {
        Some(file) => file.watcher.changed().await,
        None => std::future::pending().await,
    }
}
