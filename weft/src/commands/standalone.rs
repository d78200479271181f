//! `weft standalone`: the control plane over a directory of YAML files;
//! with `--token-file` and `--ca-dir` also the certificate service
//! ([`crate::certificate_service`]).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::watch;
use tracing::warn;
use weft_citadel::{CertificateAuthority, CitadelMetrics, TokenFileAuthenticator};
use weft_config::ConfigStore;
use weft_model::MeshSnapshot;
use weft_source::files::{DirWatcher, read_config_dir};

use crate::cli::StandaloneArgs;
use crate::control_plane::{ConfigRecorder, ControlPlane};

pub async fn run(args: StandaloneArgs) -> anyhow::Result<()> {
    let dir = args.config_dir.as_path();
    anyhow::ensure!(
        dir.is_dir(),
        "--config-dir {} is not a directory",
        dir.display()
    );
    // Up first, so that health answers while the config loads.
    let mut citadel_metrics = CitadelMetrics::default();
    let plane = ControlPlane::start_monitoring_with(args.monitoring_address, |registry| {
        citadel_metrics = CitadelMetrics::register(registry);
    })
    .await?;
    if let (Some(tokens), Some(ca_dir)) = (&args.token_file, &args.ca_dir) {
        let ca = CertificateAuthority::load_plugin_or_create(
            args.plugin_ca_dir.as_deref(),
            ca_dir,
            args.ca.ca_key_type.into(),
            &args.ca.trust_domain,
        )
        .context("cannot load or create the CA")?;
        let authenticator = TokenFileAuthenticator::new(tokens, &args.ca.trust_domain)
            .with_context(|| format!("cannot use the token file {}", tokens.display()))?;
        crate::certificate_service::start(&args.ca, ca, authenticator, citadel_metrics).await?;
    }

    // Watch before the first read, so that no change falls between them.
    let watcher = DirWatcher::new(dir, args.debounce_quiet.0, args.debounce_max.0)
        .with_context(|| format!("cannot watch {}", dir.display()))?;
    let mut store = ConfigStore::default();
    let applied = store.apply(read_config_dir(dir));
    let recorder = plane.recorder();
    recorder.record(&applied);
    let (snapshots, receiver) = watch::channel(applied.snapshot);
    tokio::spawn(reload_on_change(
        dir.to_path_buf(),
        watcher,
        store,
        snapshots,
        recorder,
    ));
    plane.serve_xds(args.xds_address, receiver).await
}

async fn reload_on_change(
    dir: PathBuf,
    mut watcher: DirWatcher,
    mut store: ConfigStore,
    snapshots: watch::Sender<Arc<MeshSnapshot>>,
    recorder: ConfigRecorder,
) {
    while watcher.changed().await.is_some() {
        let applied = store.apply(read_config_dir(&dir));
        recorder.record(&applied);
        if applied.changed {
            snapshots.send_replace(applied.snapshot);
        }
    }
    warn!(dir = %dir.display(), "stopped watching the config directory");
}
