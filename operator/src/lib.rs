//! # weft-operator: Weft on Kubernetes
//!
//! This crate owns everything that talks to a kube-apiserver, and nothing
//! else: the watches of the mesh kinds (those whose CRD the cluster
//! serves, Istio's own or Weft's; the missing ones reported, and picked up
//! when installed) and of the cluster's Services, EndpointSlices, Pods and
//! Namespaces, turned into the same [`weft_config::Input`]s the file
//! source makes; status conditions on
//! every mesh object; leader election; the CA's root on Secrets with
//! TokenReview; and the admission webhooks (validation and sidecar
//! injection). It takes plain config structs ([`leader::LeaseConfig`],
//! [`webhook_certs::WebhookCertConfig`], [`inject::InjectConfig`]) and
//! knows no command line: the `weft` binary parses flags and wires these
//! parts together. It holds no translation or xDS logic.
//!
//! ```text
//! kube-apiserver ──watch (reflectors)──▶ stores::Stores ──observe()──▶ Vec<Input> + MeshObjects
//!   CRDs ─▶ served.rs: the mesh kinds the cluster serves (watched, started and
//!           stopped with their CRD: mesh_watch.rs); the missing ones reported
//!   mesh kinds (weft_crds::Kind::ALL) ─▶ mesh.rs ─▶ weft_config::convert
//!   Services + EndpointSlices + Pods  ─▶ services.rs (namespaces picked by discovery.rs)
//!   ConfigMap istio (key mesh), the control plane's namespace ─▶ the mesh config's text
//!
//! ConfigStore::apply (in the binary) ─▶ status::build_outcomes ─▶ status::writer (leader only,
//!                                          server-side apply of /status, Accepted / Ready)
//! weft_xds::Rejections ─▶ blame.rs: NACKs blamed on the objects changed since the last ACK
//! leader.rs: a coordination.k8s.io Lease (every replica serves xDS; the leader writes)
//! cluster_ca.rs: the CA's root in Secret weft-ca (or plug-in cacerts), TokenReview,
//!                the root published to every namespace
//! webhook/ (HTTPS, axum over rustls): POST /validate ─▶ decide.rs ─▶ weft_config::validate_inputs
//!                                     POST /inject   ─▶ inject/ (pure: decision, template, JSONPatch)
//! webhook_certs.rs: the webhook's certificate from Weft's CA, renewed; caBundle kept by the leader
//! analyze.rs: `weft analyze --kubeconfig`: the mesh kinds, Services, Pods, Namespaces and the
//!             mesh config listed once, as documents for weft_config::analyze
//! ```

pub mod analyze;
pub mod blame;
pub mod cluster_ca;
pub mod discovery;
pub mod inject;
pub mod leader;
pub mod mesh;
pub(crate) mod mesh_watch;
pub mod served;
pub mod services;
pub mod status;
pub mod stores;
pub mod watch;
pub mod webhook;
pub mod webhook_certs;

pub use stores::{Observed, Stores, origin};
