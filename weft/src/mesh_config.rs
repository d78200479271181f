//! The mesh config over time, the same in both modes (its text comes from
//! `--mesh-config FILE` in standalone, from ConfigMap `istio` key `mesh`
//! in the operator): parsed by [`weft_config::parse_mesh_config_over`] on
//! top of Istio's defaults and this control plane's flags.
//!
//! - One source of truth for the trust domain: the mesh config's
//!   `trustDomain`; `--trust-domain` is the default when the mesh config
//!   does not set it, and startup fails when both are set and differ. The
//!   CA signs in the trust domain startup settles on, so a later mesh
//!   config with another one is refused (restart to change it).
//! - A bad mesh config is refused with its fields named; the last good one
//!   stays. At startup there is none to keep: startup fails.

use std::sync::Arc;

use anyhow::bail;
use weft_config::{ErrorReason, FieldError, parse_mesh_config_over};
use weft_model::{JwksFetchMode, MeshConfig};

/// What a new text made of the mesh config.
#[derive(Debug)]
pub enum Reload {
    /// The same text as last time: nothing to do.
    Unchanged,
    /// Applied: the new mesh config.
    Applied(Arc<MeshConfig>),
    /// Refused, the last good one kept: what is wrong.
    Rejected(Vec<FieldError>),
}

/// The mesh config the control plane runs with, and what it was read from.
#[derive(Debug)]
pub struct MeshConfigState {
    /// Istio's defaults with the flags' values: what an absent field takes.
    defaults: MeshConfig,
    current: Arc<MeshConfig>,
    /// The text last read (applied or not), `None` for no mesh config.
    text: Option<String>,
}

impl MeshConfigState {
    /// The mesh config at startup from `text` (`None`: no mesh config, the
    /// defaults) read from `origin`, with `--trust-domain` as
    /// `trust_domain_flag`. Fails on a bad mesh config, naming the fields,
    /// and when the flag and `trustDomain` disagree.
    pub fn start(
        text: Option<&str>,
        trust_domain_flag: Option<&str>,
        origin: &str,
    ) -> anyhow::Result<Self> {
        let mut defaults = MeshConfig::default();
        if let Some(flag) = trust_domain_flag {
            defaults.trust_domain = flag.to_string();
        }
        let mesh = match parse_mesh_config_over(text.unwrap_or_default(), &defaults) {
            Ok(mesh) => mesh,
            Err(errors) => bail!("the mesh config ({origin}) is refused:\n{}", lines(&errors)),
        };
        if let Some(flag) = trust_domain_flag
            && mesh.trust_domain != flag
        {
            bail!(
                "--trust-domain {flag} and the mesh config's trustDomain {} ({origin}) differ: the mesh config is the one source of the trust domain; drop --trust-domain, or set both to the same value",
                mesh.trust_domain
            );
        }
        Ok(Self {
            defaults,
            current: Arc::new(mesh),
            text: text.map(str::to_string),
        })
    }

    /// The same, with `--jwks-fetch-mode` (a flag only, never in the mesh
    /// config's text).
    pub fn with_jwks_fetch(mut self, mode: JwksFetchMode) -> Self {
        self.defaults.jwks_fetch = mode;
        let mut current = (*self.current).clone();
        current.jwks_fetch = mode;
        self.current = Arc::new(current);
        self
    }

    /// The mesh config in force.
    pub fn current(&self) -> Arc<MeshConfig> {
        self.current.clone()
    }

    /// The trust domain the control plane (its CA) runs with.
    pub fn trust_domain(&self) -> &str {
        &self.current.trust_domain
    }

    /// Reads `text` (`None`: the mesh config is gone, back to the
    /// defaults) if it differs from the last one read.
    pub fn reload(&mut self, text: Option<&str>) -> Reload {
        if self.text.as_deref() == text {
            return Reload::Unchanged;
        }
        self.text = text.map(str::to_string);
        let mesh = match parse_mesh_config_over(text.unwrap_or_default(), &self.defaults) {
            Ok(mesh) => mesh,
            Err(errors) => return Reload::Rejected(errors),
        };
        if mesh.trust_domain != self.current.trust_domain {
            return Reload::Rejected(vec![FieldError::new(
                ErrorReason::Invalid,
                "trustDomain",
                format!(
                    "{} differs from {}, the trust domain Weft started with (its CA signs in it); it cannot change while Weft runs: restart Weft to change it",
                    mesh.trust_domain, self.current.trust_domain
                ),
            )]);
        }
        if mesh == *self.current {
            return Reload::Unchanged;
        }
        self.current = Arc::new(mesh);
        Reload::Applied(self.current.clone())
    }
}

/// One error a line.
fn lines(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("  {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZIPKIN: &str = "extensionProviders:\n- name: zipkin\n  zipkin: {service: istio-system/zipkin, port: 9411}\n";

    fn start(text: Option<&str>, flag: Option<&str>) -> anyhow::Result<MeshConfigState> {
        MeshConfigState::start(text, flag, "mesh.yaml")
    }

    #[test]
    fn the_trust_domain_comes_from_the_mesh_config_then_the_flag_then_istio() {
        let state = start(None, None).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(state.trust_domain(), "cluster.local");
        let state = start(None, Some("flag.example")).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(state.trust_domain(), "flag.example");
        let state =
            start(Some("trustDomain: mesh.example\n"), None).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(state.trust_domain(), "mesh.example");
        let state =
            start(Some("trustDomain: same\n"), Some("same")).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(state.trust_domain(), "same");
        let err = start(Some("trustDomain: mesh.example\n"), Some("flag.example"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("--trust-domain flag.example and the mesh config's trustDomain mesh.example (mesh.yaml) differ"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_mesh_config_fails_startup_naming_the_field() {
        let err = start(Some("enableTracing: maybe\n"), None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("the mesh config (mesh.yaml) is refused"),
            "{err}"
        );
        assert!(err.contains("enableTracing: invalid type"), "{err}");
    }

    #[test]
    fn reloads_apply_good_text_and_keep_the_last_good_one() {
        let mut state = start(Some(""), Some("td")).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(matches!(state.reload(Some("")), Reload::Unchanged));
        match state.reload(Some(ZIPKIN)) {
            Reload::Applied(mesh) => {
                assert!(mesh.provider("zipkin").is_some());
                assert_eq!(mesh.trust_domain, "td", "the flag is still the default");
            }
            other => panic!("{other:?}"),
        }
        match state.reload(Some(
            "extensionProviders:\n- name: z\n  zipkin: {port: x}\n",
        )) {
            Reload::Rejected(errors) => {
                assert_eq!(errors[0].field, "extensionProviders[0].zipkin.port")
            }
            other => panic!("{other:?}"),
        }
        assert!(state.current().provider("zipkin").is_some(), "kept");
        match state.reload(Some("trustDomain: other\n")) {
            Reload::Rejected(errors) => {
                assert_eq!(errors[0].field, "trustDomain");
                assert!(errors[0].message.contains("restart Weft"), "{errors:?}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            state.reload(Some("trustDomain: other\n")),
            Reload::Unchanged
        ));
        match state.reload(None) {
            Reload::Applied(mesh) => assert!(mesh.provider("zipkin").is_none()),
            other => panic!("{other:?}"),
        }
    }
}
