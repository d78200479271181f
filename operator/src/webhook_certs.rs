//! The webhook's certificate when Weft issues it itself (`weft operator
//! --webhook-service NAME` without `--webhook-tls-cert`), and the
//! `caBundle` that makes the apiserver trust it:
//!
//! ```text
//! Weft's CA ──issue_serving_cert(<svc>.<ns>.svc, …)──▶ RotatingCert (served by webhook::server)
//!      │            ▲ renewed after 2/3 of its lifetime (rotate)
//!      │ root
//!      ▼
//! keep_ca_bundles (leader only, every RECHECK_EVERY and on becoming leader):
//!   GET Mutating/ValidatingWebhookConfiguration NAME
//!   ─▶ stale_webhooks (entries whose caBundle is not the root)
//!   ─▶ strategic-merge PATCH of those entries' clientConfig.caBundle
//! ```
//!
//! So a user never sees `x509: certificate signed by unknown authority`:
//! the certificate chains to the root the configurations carry, and an
//! edit of a `caBundle` (a `helm upgrade` rendering it empty) is repaired
//! within [`RECHECK_EVERY`]. Every replica serves the webhook with its own
//! certificate from the same CA; only the leader writes.
//!
//! The decisions (names, renewal time, which entries are stale, the patch)
//! are pure functions; [`rotate`] and [`keep_ca_bundles`] are the tasks.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `weft_webhook_cert_expiry_timestamp_seconds` | gauge: when the served certificate expires (Unix time) | none |
//! | `weft_webhook_cert_renewal_failures_total` | counter | none |
//! | `weft_webhook_ca_bundle_patches_total` | counter: patches of a configuration's `caBundle` | `kind` |

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tracing::{info, warn};
use weft_citadel::{CaError, CertificateAuthority};

use crate::status::writer::FIELD_MANAGER;
use crate::webhook::RotatingCert;
use crate::webhook::cert::{CertError, certified_key};

/// How often the leader checks the configurations' `caBundle`.
pub const RECHECK_EVERY: Duration = Duration::from_secs(5);

/// The shortest wait before a renewal, and between failed renewals.
pub const MIN_RENEWAL_WAIT: Duration = Duration::from_secs(1);

/// The label of a `caBundle` patch: the configuration's kind.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PatchLabels {
    pub kind: &'static str,
}

/// The webhook certificate's metrics. [`Default`] makes them unregistered.
#[derive(Clone, Debug, Default)]
pub struct WebhookCertMetrics {
    expiry: Gauge,
    renewal_failures: Counter,
    patches: Family<PatchLabels, Counter>,
}

impl WebhookCertMetrics {
    /// New metrics, registered in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "weft_webhook_cert_expiry_timestamp_seconds",
            "When the webhook certificate Weft serves expires (Unix time)",
            metrics.expiry.clone(),
        );
        registry.register(
            "weft_webhook_cert_renewal_failures",
            "Failed renewals of the webhook certificate (the old one stays served)",
            metrics.renewal_failures.clone(),
        );
        registry.register(
            "weft_webhook_ca_bundle_patches",
            "Patches setting a webhook configuration's caBundle to Weft's root, by kind",
            metrics.patches.clone(),
        );
        metrics
    }

    fn served(&self, lifetime: Duration) {
        let expiry = SystemTime::now() + lifetime;
        let seconds = expiry
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.expiry.set(i64::try_from(seconds).unwrap_or(i64::MAX));
    }

    /// Patches of `kind`'s `caBundle` so far.
    pub fn patches(&self, kind: &'static str) -> u64 {
        self.patches.get_or_create(&PatchLabels { kind }).get()
    }
}

/// What to issue the webhook's certificate for, and which configurations
/// trust it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookCertConfig {
    /// The Service the apiserver calls the webhook through.
    pub service: String,
    /// Its namespace (Weft's).
    pub namespace: String,
    /// How long each certificate is valid.
    pub ttl: Duration,
    /// The MutatingWebhookConfiguration whose `caBundle` is kept current.
    pub mutating: Option<String>,
    /// The ValidatingWebhookConfiguration whose `caBundle` is kept current.
    pub validating: Option<String>,
}

/// Why the webhook's certificate cannot be issued.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Weft's CA cannot issue the webhook certificate: {0}")]
    Issue(#[from] CaError),
    #[error(transparent)]
    Serve(#[from] CertError),
    #[error(
        "Weft's CA expired at {0:?}: no webhook certificate can be issued; replace the CA (Secret cacerts or weft-ca)"
    )]
    CaExpired(SystemTime),
}

impl Error {
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Issue(_) => "issue",
            Error::Serve(err) => err.kind(),
            Error::CaExpired(_) => "ca_expired",
        }
    }
}

/// The DNS names the apiserver may call `service` in `namespace` by.
pub fn serving_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_string(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// How long a certificate valid for `lifetime` is served before it is
/// renewed: two thirds of it, at least [`MIN_RENEWAL_WAIT`].
pub fn renew_after(lifetime: Duration) -> Duration {
    (lifetime * 2 / 3).max(MIN_RENEWAL_WAIT)
}

/// How long a certificate issued at `now` for `ttl` lives: the CA cuts it
/// at its own expiry, `ca_not_after`.
pub fn lifetime(ttl: Duration, now: SystemTime, ca_not_after: SystemTime) -> Option<Duration> {
    let left = ca_not_after.duration_since(now).ok()?;
    Some(ttl.min(left))
}

/// A fresh certificate for `names` from `ca`, and how long it lives.
pub fn issue(
    ca: &CertificateAuthority,
    names: &[String],
    ttl: Duration,
) -> Result<(rustls::sign::CertifiedKey, Duration), Error> {
    let lifetime = lifetime(ttl, SystemTime::now(), ca.not_after())
        .ok_or_else(|| Error::CaExpired(ca.not_after()))?;
    let (chain, key) = ca.issue_serving_cert(names, &[], ttl)?;
    Ok((certified_key(&chain, &key)?, lifetime))
}

/// Issues the first certificate for `config`'s Service and spawns its
/// renewal; returns what the webhook server serves.
pub fn start_rotating(
    ca: CertificateAuthority,
    config: &WebhookCertConfig,
    metrics: WebhookCertMetrics,
) -> Result<Arc<RotatingCert>, Error> {
    let names = serving_names(&config.service, &config.namespace);
    let (first, lifetime) = issue(&ca, &names, config.ttl)?;
    info!(names = ?names, ?lifetime, "issued the webhook certificate from Weft's CA");
    metrics.served(lifetime);
    let cert = Arc::new(RotatingCert::new(first));
    tokio::spawn(rotate(
        ca,
        names,
        config.ttl,
        cert.clone(),
        lifetime,
        metrics,
    ));
    Ok(cert)
}

/// Renews `cert` after two thirds of each certificate's lifetime; a failed
/// renewal is retried (the old certificate stays served meanwhile).
pub async fn rotate(
    ca: CertificateAuthority,
    names: Vec<String>,
    ttl: Duration,
    cert: Arc<RotatingCert>,
    first_lifetime: Duration,
    metrics: WebhookCertMetrics,
) {
    let mut wait = renew_after(first_lifetime);
    loop {
        tokio::time::sleep(wait).await;
        match issue(&ca, &names, ttl) {
            Ok((next, lifetime)) => {
                cert.swap(next);
                metrics.served(lifetime);
                info!(?lifetime, "renewed the webhook certificate");
                wait = renew_after(lifetime);
            }
            Err(err) => {
                metrics.renewal_failures.inc();
                warn!(%err, kind = err.kind(), "cannot renew the webhook certificate; retrying");
                wait = (wait / 2).max(MIN_RENEWAL_WAIT);
            }
        }
    }
}

/// The names of the webhook entries whose `caBundle` is not `root`.
pub fn stale_webhooks<'a>(
    entries: impl IntoIterator<Item = (&'a str, Option<&'a ByteString>)>,
    root: &[u8],
) -> Vec<String> {
    entries
        .into_iter()
        .filter(|(_, bundle)| bundle.is_none_or(|b| b.0 != root))
        .map(|(name, _)| name.to_string())
        .collect()
}

/// The strategic-merge patch (the `webhooks` list merges by `name`) that
/// sets `caBundle` of the entries `names` to `root_pem`.
pub fn ca_bundle_patch(names: &[String], root_pem: &str) -> serde_json::Value {
    let bundle = ByteString(root_pem.as_bytes().to_vec());
    let webhooks: Vec<serde_json::Value> = names
        .iter()
        .map(|name| serde_json::json!({"name": name, "clientConfig": {"caBundle": bundle}}))
        .collect();
    serde_json::json!({ "webhooks": webhooks })
}

/// A webhook configuration kind whose entries carry a `caBundle`.
trait WebhookConfiguration:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug
{
    const KIND: &'static str;
    /// Each entry's name and `caBundle`.
    fn bundles(&self) -> Vec<(&str, Option<&ByteString>)>;
}

impl WebhookConfiguration for MutatingWebhookConfiguration {
    const KIND: &'static str = "MutatingWebhookConfiguration";
    fn bundles(&self) -> Vec<(&str, Option<&ByteString>)> {
        self.webhooks
            .iter()
            .flatten()
            .map(|w| (w.name.as_str(), w.client_config.ca_bundle.as_ref()))
            .collect()
    }
}

impl WebhookConfiguration for ValidatingWebhookConfiguration {
    const KIND: &'static str = "ValidatingWebhookConfiguration";
    fn bundles(&self) -> Vec<(&str, Option<&ByteString>)> {
        self.webhooks
            .iter()
            .flatten()
            .map(|w| (w.name.as_str(), w.client_config.ca_bundle.as_ref()))
            .collect()
    }
}

/// Sets `caBundle` of every entry of configuration `name` that lacks
/// `root_pem`; returns the entries patched.
async fn sync_bundle<K: WebhookConfiguration>(
    client: &Client,
    name: &str,
    root_pem: &str,
) -> Result<Vec<String>, String> {
    let api: Api<K> = Api::all(client.clone());
    let Some(object) = api.get_opt(name).await.map_err(|err| err.to_string())? else {
        return Err(format!(
            "{} {name} does not exist; install the chart or fix the name Weft was given",
            K::KIND
        ));
    };
    let stale = stale_webhooks(object.bundles(), root_pem.as_bytes());
    if stale.is_empty() {
        return Ok(stale);
    }
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    api.patch(
        name,
        &params,
        &Patch::Strategic(ca_bundle_patch(&stale, root_pem)),
    )
    .await
    .map_err(|err| err.to_string())?;
    Ok(stale)
}

/// While this replica leads, keeps `caBundle` of every entry of the named
/// configurations equal to `root_pem`: at once on becoming leader, then
/// every [`RECHECK_EVERY`]. A failure is logged once until it changes.
pub async fn keep_ca_bundles(
    client: Client,
    root_pem: String,
    config: WebhookCertConfig,
    mut leading: watch::Receiver<bool>,
    metrics: WebhookCertMetrics,
) {
    let mut failing: BTreeMap<&'static str, String> = BTreeMap::new();
    loop {
        if *leading.borrow_and_update() {
            if let Some(name) = &config.mutating {
                let outcome =
                    sync_bundle::<MutatingWebhookConfiguration>(&client, name, &root_pem).await;
                report(
                    &mut failing,
                    &metrics,
                    MutatingWebhookConfiguration::KIND,
                    name,
                    outcome,
                );
            }
            if let Some(name) = &config.validating {
                let outcome =
                    sync_bundle::<ValidatingWebhookConfiguration>(&client, name, &root_pem).await;
                report(
                    &mut failing,
                    &metrics,
                    ValidatingWebhookConfiguration::KIND,
                    name,
                    outcome,
                );
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(RECHECK_EVERY) => {}
            changed = leading.changed() => if changed.is_err() { return },
        }
    }
}

fn report(
    failing: &mut BTreeMap<&'static str, String>,
    metrics: &WebhookCertMetrics,
    kind: &'static str,
    name: &str,
    outcome: Result<Vec<String>, String>,
) {
    match outcome {
        Ok(patched) => {
            if !patched.is_empty() {
                metrics.patches.get_or_create(&PatchLabels { kind }).inc();
            }
            if failing.remove(kind).is_some() || !patched.is_empty() {
                info!(kind, name, webhooks = ?patched, "{kind} {name}: caBundle is Weft's root");
            }
        }
        Err(err) => {
            if failing.get(kind) != Some(&err) {
                warn!(kind, name, %err, "cannot set the caBundle of {kind} {name}; retrying");
                failing.insert(kind, err);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    use weft_citadel::KeyType;

    use super::*;

    #[test]
    fn the_names_cover_every_way_to_call_the_service() {
        assert_eq!(
            serving_names("weft", "weft-system"),
            [
                "weft",
                "weft.weft-system",
                "weft.weft-system.svc",
                "weft.weft-system.svc.cluster.local"
            ]
        );
    }

    #[test]
    fn renewal_comes_after_two_thirds_and_never_spins() {
        assert_eq!(
            renew_after(Duration::from_secs(3600)),
            Duration::from_secs(2400)
        );
        assert_eq!(renew_after(Duration::ZERO), MIN_RENEWAL_WAIT);
    }

    #[test]
    fn the_lifetime_ends_with_the_ca() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let day = Duration::from_secs(86400);
        assert_eq!(lifetime(day, now, now + 2 * day), Some(day));
        assert_eq!(
            lifetime(day, now, now + Duration::from_secs(60)),
            Some(Duration::from_secs(60))
        );
        assert_eq!(lifetime(day, now, now - Duration::from_secs(1)), None);
    }

    #[test]
    fn only_entries_without_the_root_are_stale() {
        let root = ByteString(b"ROOT".to_vec());
        let other = ByteString(b"OTHER".to_vec());
        let entries = [
            ("a.weft.io", Some(&root)),
            ("b.weft.io", Some(&other)),
            ("c.weft.io", None),
        ];
        assert_eq!(stale_webhooks(entries, b"ROOT"), ["b.weft.io", "c.weft.io"]);
        assert!(stale_webhooks([("a", Some(&root))], b"ROOT").is_empty());
    }

    #[test]
    fn the_patch_sets_each_named_entrys_bundle_in_base64() {
        let patch = ca_bundle_patch(&["a.weft.io".to_string()], "ROOT");
        assert_eq!(
            patch,
            serde_json::json!({"webhooks": [
                {"name": "a.weft.io", "clientConfig": {"caBundle": "Uk9PVA=="}}
            ]})
        );
    }

    #[test]
    fn the_issued_certificate_names_the_service_and_chains_to_the_root() {
        let ca = CertificateAuthority::generate_root(KeyType::EcdsaP256, "cluster.local").unwrap();
        let names = serving_names("weft", "weft-system");
        let (cert, lifetime) = issue(&ca, &names, Duration::from_secs(600)).unwrap();
        assert_eq!(lifetime, Duration::from_secs(600));
        // Leaf, then the root the caBundle carries.
        assert_eq!(cert.cert.len(), 2);
        let root = CertificateDer::from_pem_slice(ca.root_pem().as_bytes()).unwrap();
        assert_eq!(cert.cert[1], root);
    }
}
