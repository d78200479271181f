//! `mk_*` builders for the Istio YAML that tests write into weft's config
//! directory. They produce the same documents a user would write by hand.

use std::fmt::Write as _;

use crate::upstream::Upstream;

/// The service port every test service exposes.
pub const SERVICE_PORT: u16 = 9080;

/// `<name>.<namespace>.svc.cluster.local`.
pub fn fqdn(name: &str, namespace: &str) -> String {
    format!("{name}.{namespace}.svc.cluster.local")
}

/// A `STATIC`, `MESH_INTERNAL` ServiceEntry for `<name>.<namespace>.svc.cluster.local`
/// on port 9080 (`http`), one endpoint per upstream, labelled
/// `version: <identity>`, with the upstream's real port as the `http` port.
pub fn mk_service_entry(name: &str, namespace: &str, endpoints: &[&Upstream]) -> String {
    let mut yaml = format!(
        "apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata:
  name: {name}
  namespace: {namespace}
spec:
  hosts:
  - {host}
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - number: {SERVICE_PORT}
    name: http
    protocol: HTTP
  endpoints:
",
        host = fqdn(name, namespace)
    );
    for up in endpoints {
        let _ = write!(
            yaml,
            "  - address: {ip}
    ports:
      http: {port}
    labels:
      version: {version}
",
            ip = up.ip(),
            port = up.port(),
            version = up.identity()
        );
    }
    yaml
}

/// A DestinationRule for host `<name>` (short name) with one subset per
/// version, selected by the `version` label.
pub fn mk_destination_rule(name: &str, namespace: &str, versions: &[&str]) -> String {
    let mut yaml = format!(
        "apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata:
  name: {name}
  namespace: {namespace}
spec:
  host: {name}
  subsets:
"
    );
    for version in versions {
        let _ = write!(
            yaml,
            "  - name: {version}
    labels:
      version: {version}
"
        );
    }
    yaml
}

/// A VirtualService for `<name>` with one route splitting traffic between
/// subsets by weight, e.g. `&[("v1", 80), ("v3", 20)]`.
pub fn mk_weighted_virtual_service(name: &str, namespace: &str, weights: &[(&str, u32)]) -> String {
    let mut yaml = format!(
        "apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: {name}
  namespace: {namespace}
spec:
  hosts:
  - {name}
  http:
  - route:
"
    );
    for (subset, weight) in weights {
        let _ = write!(
            yaml,
            "    - destination:
        host: {name}
        subset: {subset}
      weight: {weight}
"
        );
    }
    yaml
}

/// A VirtualService `name` in `default` for host `reviews` with these
/// `http` rules (YAML list items, indented two spaces).
pub fn mk_reviews_virtual_service(name: &str, http: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: default}}
spec:
  hosts: [reviews]
  http:
{http}"
    )
}

/// Joins documents into one multi-document YAML file.
pub fn multi_doc(docs: &[String]) -> String {
    docs.join("---\n")
}

/// A service `<name>` in `namespace`: its ServiceEntry (one endpoint per
/// upstream) and a DestinationRule with one subset per upstream identity.
pub fn mk_service(name: &str, namespace: &str, upstreams: &[Upstream]) -> String {
    let refs: Vec<&Upstream> = upstreams.iter().collect();
    let versions: Vec<&str> = upstreams.iter().map(Upstream::identity).collect();
    multi_doc(&[
        mk_service_entry(name, namespace, &refs),
        mk_destination_rule(name, namespace, &versions),
    ])
}

/// A VirtualService for `reviews` in `default` that weft accepts (Rust's
/// regex takes the pattern) but Envoy's RE2 rejects ("invalid repetition
/// size"): the way tests make Envoy NACK. Its rules would send `/aaa...` to
/// subset v2 and everything else to v1.
pub const NACKED_VS: &str = r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: default
spec:
  hosts:
  - reviews
  http:
  - match:
    - uri:
        regex: "/(a{1,50}){1,50}"
    route:
    - destination:
        host: reviews
        subset: v2
  - route:
    - destination:
        host: reviews
        subset: v1
"#;

/// A namespace PeerAuthentication with `portLevelMtls` but no `selector`:
/// Istio's validation (and Weft's) refuses it, naming
/// `spec.portLevelMtls`.
pub const PORT_LEVEL_MTLS_WITHOUT_SELECTOR: &str = "\
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec:
  mtls: {mode: STRICT}
  portLevelMtls:
    '9080': {mode: DISABLE}
";
