//! Writes the statuses [`super::build_status`] computes: a task of its own
//! (so the apiserver never holds back a reload or xDS), fed the newest
//! apply through a `watch` channel (superseded applies are skipped), that
//! server-side applies `status` with field manager [`FIELD_MANAGER`] only
//! for objects whose status differs from what Weft last wrote. A failed
//! write is logged and counted, and retried after [`RETRY_AFTER`] or at
//! the next apply.
//!
//! Only the leader writes (see [`crate::leader`]): while `leading` is
//! `false` the writer holds the updates (keeping only the newest); when it
//! turns `true`, it forgets what it wrote before (another replica may have
//! written since) and writes the latest state in full, comparing with the
//! statuses the apiserver holds.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `weft_status_writes` | counter: status writes | `kind` (the resource kind), `result` = `written` \| `failed` |

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tracing::{debug, warn};
use weft_crds::{
    AuthorizationPolicy, DestinationRule, Gateway, Kind, PeerAuthentication, Quota,
    RequestAuthentication, ResourceStatus, ServiceEntry, Sidecar, Telemetry, VirtualService,
};
use weft_model::ResourceId;

use super::{Outcome, build_status};
use crate::mesh::MeshObject;

/// The field manager of Weft's status writes.
pub const FIELD_MANAGER: &str = "weft";

/// How long after a failed write the writer tries again.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

/// One apply, as the writer needs it.
#[derive(Clone, Debug, Default)]
pub struct StatusUpdate {
    /// The mesh objects the apply read.
    pub objects: Vec<MeshObject>,
    /// What it made of them ([`super::build_outcomes`]).
    pub outcomes: BTreeMap<ResourceId, Outcome>,
}

/// The status writer's errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0} has no status Weft writes")]
    UnknownKind(&'static str),
    #[error("cannot write the status of {id}: {source}")]
    Patch {
        id: ResourceId,
        #[source]
        source: kube::Error,
    },
}

impl Error {
    pub fn kind(&self) -> &'static str {
        match self {
            Error::UnknownKind(_) => "unknown_kind",
            Error::Patch { .. } => "patch",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct WriteLabels {
    /// The resource kind, a fixed set.
    pub kind: &'static str,
    /// `written` or `failed`.
    pub result: &'static str,
}

/// The status writer's metrics. [`Default`] makes them unregistered.
#[derive(Clone, Debug, Default)]
pub struct StatusMetrics {
    writes: Family<WriteLabels, Counter>,
}

impl StatusMetrics {
    /// New metrics, registered in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "weft_status_writes",
            "Status writes to mesh objects, by resource kind and result",
            metrics.writes.clone(),
        );
        metrics
    }

    fn record(&self, kind: &'static str, result: &'static str) {
        self.writes
            .get_or_create(&WriteLabels { kind, result })
            .inc();
    }
}

/// Starts the writer task with `first`; send later applies on the returned
/// sender. It writes only while `leading` says `true`. The task ends when
/// the sender is dropped.
pub fn spawn(
    client: Client,
    metrics: StatusMetrics,
    first: StatusUpdate,
    leading: watch::Receiver<bool>,
) -> watch::Sender<Arc<StatusUpdate>> {
    let (sender, receiver) = watch::channel(Arc::new(first));
    let writer = Writer {
        client,
        metrics,
        written: BTreeMap::new(),
    };
    tokio::spawn(run(writer, receiver, leading));
    sender
}

async fn run(
    mut writer: Writer,
    mut updates: watch::Receiver<Arc<StatusUpdate>>,
    mut leading: watch::Receiver<bool>,
) {
    let mut leader = *leading.borrow_and_update();
    let mut election_open = true;
    // Whether the newest update is not (fully) written yet.
    let mut pending = true;
    loop {
        if leader && pending {
            let update = updates.borrow_and_update().clone();
            pending = !writer.write(&update).await;
        }
        tokio::select! {
            changed = updates.changed() => {
                if changed.is_err() {
                    break;
                }
                pending = true;
            }
            changed = leading.changed(), if election_open => {
                let now = changed.is_ok() && *leading.borrow_and_update();
                election_open = changed.is_ok();
                if now && !leader {
                    writer.written.clear();
                    pending = true;
                }
                leader = now;
            }
            () = tokio::time::sleep(RETRY_AFTER), if leader && pending => {}
        }
    }
    debug!("status writer stopped");
}

struct Writer {
    client: Client,
    metrics: StatusMetrics,
    /// What Weft last wrote, per object.
    written: BTreeMap<ResourceId, ResourceStatus>,
}

impl Writer {
    /// Writes every status that changed; false if a write failed.
    async fn write(&mut self, update: &StatusUpdate) -> bool {
        self.written
            .retain(|id, _| update.objects.iter().any(|o| &o.id == id));
        let now = now();
        let accepted = Outcome::default();
        let mut ok = true;
        for object in &update.objects {
            let outcome = update.outcomes.get(&object.id).unwrap_or(&accepted);
            let previous = self.written.get(&object.id).or(object.status.as_ref());
            let desired = build_status(&object.id, object.generation, outcome, previous, &now);
            if Some(&desired) == self.written.get(&object.id)
                || Some(&desired) == object.status.as_ref()
            {
                self.written.insert(object.id.clone(), desired);
                continue;
            }
            match write_status(&self.client, &object.id, &desired).await {
                Ok(()) => {
                    debug!(resource = %object.id, "status written");
                    self.metrics.record(object.id.kind.as_str(), "written");
                    self.written.insert(object.id.clone(), desired);
                }
                Err(Error::Patch {
                    source: kube::Error::Api(response),
                    ..
                }) if response.code == 404 => {
                    debug!(resource = %object.id, "gone before its status was written");
                }
                Err(err) => {
                    warn!(resource = %object.id, reason = err.kind(), %err, "status write failed; retrying");
                    self.metrics.record(object.id.kind.as_str(), "failed");
                    ok = false;
                }
            }
        }
        ok
    }
}

/// The current time, RFC 3339 in seconds, as Kubernetes writes it.
fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Server-side applies `status` on the object `id`.
pub async fn write_status(
    client: &Client,
    id: &ResourceId,
    status: &ResourceStatus,
) -> Result<(), Error> {
    let Some(kind) = id.kind.mesh() else {
        return Err(Error::UnknownKind(id.kind.as_str()));
    };
    match kind {
        Kind::VirtualService => patch::<VirtualService>(client, id, status).await,
        Kind::DestinationRule => patch::<DestinationRule>(client, id, status).await,
        Kind::ServiceEntry => patch::<ServiceEntry>(client, id, status).await,
        Kind::Gateway => patch::<Gateway>(client, id, status).await,
        Kind::Sidecar => patch::<Sidecar>(client, id, status).await,
        Kind::PeerAuthentication => patch::<PeerAuthentication>(client, id, status).await,
        Kind::RequestAuthentication => patch::<RequestAuthentication>(client, id, status).await,
        Kind::AuthorizationPolicy => patch::<AuthorizationPolicy>(client, id, status).await,
        Kind::Quota => patch::<Quota>(client, id, status).await,
        Kind::Telemetry => patch::<Telemetry>(client, id, status).await,
    }
}

/// The body of a server-side apply of `status` alone.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusPatch<'a> {
    api_version: String,
    kind: String,
    status: &'a ResourceStatus,
}

async fn patch<K>(client: &Client, id: &ResourceId, status: &ResourceStatus) -> Result<(), Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), &id.namespace);
    let body = StatusPatch {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        status,
    };
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(&id.name, &params, &Patch::Apply(&body))
        .await
        .map(|_| ())
        .map_err(|source| Error::Patch {
            id: id.clone(),
            source,
        })
}
