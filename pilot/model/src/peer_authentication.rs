//! Which inbound traffic must be mutual TLS (Istio's PeerAuthentication),
//! validated, and the mode that applies to one workload port.
//!
//! Precedence as in Istio: a workload policy (its `selector` matches the
//! workload, same namespace) beats the namespace policy (no selector),
//! which beats the mesh policy (no selector, root namespace). `UNSET`
//! inherits from the next scope; with nothing set the mode is PERMISSIVE.
//! When several policies of one scope apply, the first by name wins (Istio
//! takes the oldest; names are what a snapshot can order by).

use std::collections::BTreeMap;

use super::ResourceId;

/// A workload's identity: `spiffe://<trust-domain>/ns/<ns>/sa/<sa>`.
pub fn spiffe_id(trust_domain: &str, namespace: &str, service_account: &str) -> String {
    format!("spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}")
}

/// PeerAuthentication `mtls.mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MtlsMode {
    /// Inherit from the parent scope.
    #[default]
    Unset,
    /// Plain text only.
    Disable,
    /// Mutual TLS or plain text.
    Permissive,
    /// Mutual TLS only, with a client certificate.
    Strict,
}

/// One PeerAuthentication.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerAuthentication {
    pub id: ResourceId,
    /// `None`: the whole namespace (the whole mesh in the root namespace).
    pub selector: Option<BTreeMap<String, String>>,
    pub mode: MtlsMode,
    /// `portLevelMtls`, by workload port (only with a selector).
    pub port_modes: BTreeMap<u16, MtlsMode>,
}

impl PeerAuthentication {
    fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        self.selector
            .as_ref()
            .is_some_and(|s| s.iter().all(|(k, v)| labels.get(k) == Some(v)))
    }
}

/// The effective mode for `port` of a workload of `namespace` with
/// `labels`, never [`MtlsMode::Unset`]; mesh-wide policies are those of
/// `root_namespace`. `policies` is the snapshot's list,
/// sorted by namespace and name.
pub fn effective_mtls_mode(
    policies: &[PeerAuthentication],
    root_namespace: &str,
    namespace: &str,
    labels: &BTreeMap<String, String>,
    port: u16,
) -> MtlsMode {
    let workload = policies
        .iter()
        .find(|p| p.id.namespace == namespace && p.selects(labels))
        .map(|p| p.port_modes.get(&port).copied().unwrap_or(p.mode));
    let namespace_wide = policies
        .iter()
        .find(|p| p.id.namespace == namespace && p.selector.is_none())
        .map(|p| p.mode);
    let mesh = policies
        .iter()
        .find(|p| p.id.namespace == root_namespace && p.selector.is_none())
        .map(|p| p.mode);
    [workload, namespace_wide, mesh]
        .into_iter()
        .flatten()
        .find(|m| *m != MtlsMode::Unset)
        .unwrap_or(MtlsMode::Permissive)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = crate::DEFAULT_ROOT_NAMESPACE;

    fn mk_pa(
        ns: &str,
        name: &str,
        selector: Option<&[(&str, &str)]>,
        mode: MtlsMode,
    ) -> PeerAuthentication {
        PeerAuthentication {
            id: ResourceId::new(crate::Kind::PeerAuthentication, ns, name),
            selector: selector.map(|s| {
                s.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            }),
            mode,
            port_modes: BTreeMap::new(),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn default_is_permissive() {
        assert_eq!(
            effective_mtls_mode(&[], ROOT, "default", &labels(&[]), 80),
            MtlsMode::Permissive
        );
    }

    #[test]
    fn workload_beats_namespace_beats_mesh_and_unset_inherits() {
        let mesh = mk_pa(ROOT, "default", None, MtlsMode::Strict);
        let ns = mk_pa("prod", "default", None, MtlsMode::Disable);
        let mut wl = mk_pa("prod", "web", Some(&[("app", "web")]), MtlsMode::Unset);
        wl.port_modes.insert(8080, MtlsMode::Strict);
        let mut all = vec![ns.clone(), wl, mesh.clone()];
        all.sort_by(|a, b| a.id.cmp(&b.id));
        let web = labels(&[("app", "web")]);
        // Workload UNSET inherits the namespace's DISABLE; its port 8080 is STRICT.
        assert_eq!(
            effective_mtls_mode(&all, ROOT, "prod", &web, 80),
            MtlsMode::Disable
        );
        assert_eq!(
            effective_mtls_mode(&all, ROOT, "prod", &web, 8080),
            MtlsMode::Strict
        );
        // Another namespace only has the mesh policy.
        assert_eq!(
            effective_mtls_mode(&all, ROOT, "dev", &web, 80),
            MtlsMode::Strict
        );
        // A selector in another namespace does not apply.
        assert_eq!(
            effective_mtls_mode(
                &[mk_pa(
                    "prod",
                    "x",
                    Some(&[("app", "web")]),
                    MtlsMode::Disable
                )],
                ROOT,
                "dev",
                &web,
                80
            ),
            MtlsMode::Permissive
        );
        // Mesh UNSET is PERMISSIVE.
        let unset = mk_pa(ROOT, "default", None, MtlsMode::Unset);
        assert_eq!(
            effective_mtls_mode(&[unset], ROOT, "dev", &web, 80),
            MtlsMode::Permissive
        );
        let _ = (ns, mesh);
    }

    #[test]
    fn identities_are_spiffe_uris() {
        assert_eq!(
            spiffe_id("cluster.local", "ns1", "reviews"),
            "spiffe://cluster.local/ns/ns1/sa/reviews"
        );
    }
}
