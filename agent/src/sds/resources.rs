//! SDS resources from a [`CertBundle`], and the per-stream state machine of
//! state-of-the-world SDS (subscriptions, versions, nonces, ACK / NACK):
//! pure, no I/O, so every transition is a unit test.

use std::hash::{DefaultHasher, Hash, Hasher};

use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, Secret, TlsCertificate, secret,
};
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;

use crate::bundle::CertBundle;

/// The workload certificate and key (Istio's name).
pub const DEFAULT: &str = "default";
/// The root that peers' certificates are checked against (Istio's name).
pub const ROOTCA: &str = "ROOTCA";
/// The type URL of SDS resources.
pub const SECRET_TYPE_URL: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

fn inline(text: &str) -> Option<DataSource> {
    Some(DataSource {
        specifier: Some(data_source::Specifier::InlineBytes(
            text.as_bytes().to_vec(),
        )),
        ..Default::default()
    })
}

/// The secret called `name`, if the agent serves one by that name.
pub fn secret(name: &str, bundle: &CertBundle) -> Option<Secret> {
    let kind = match name {
        DEFAULT => secret::Type::TlsCertificate(TlsCertificate {
            certificate_chain: inline(&bundle.presented_chain_pem()),
            private_key: inline(&bundle.key_pem),
            ..Default::default()
        }),
        ROOTCA => secret::Type::ValidationContext(CertificateValidationContext {
            trusted_ca: inline(bundle.root_pem()),
            ..Default::default()
        }),
        _ => return None,
    };
    Some(Secret {
        name: name.to_string(),
        r#type: Some(kind),
    })
}

/// The resources for a subscription (an empty list means all of them),
/// sorted by name, and their version: a hash of the encoded resources.
pub fn resources(names: &[String], bundle: &CertBundle) -> (String, Vec<Any>) {
    let wanted: Vec<&str> = if names.is_empty() {
        vec![ROOTCA, DEFAULT]
    } else {
        let mut names: Vec<&str> = names.iter().map(String::as_str).collect();
        names.sort_unstable();
        names.dedup();
        names
    };
    let resources: Vec<Any> = wanted
        .into_iter()
        .filter_map(|name| secret(name, bundle))
        .map(pack_any)
        .collect();
    let mut hasher = DefaultHasher::new();
    for any in &resources {
        any.value.hash(&mut hasher);
    }
    (format!("{:016x}", hasher.finish()), resources)
}

/// What a request was, as far as the stream is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// A first request or a changed subscription: answer it.
    Subscribe,
    /// Envoy accepted the response with this version.
    Ack { version: String },
    /// Envoy rejected the last response.
    Nack { message: String },
    /// A reply to a response that was superseded, or of another type.
    Ignored,
}

/// One SDS stream's state.
#[derive(Debug, Default)]
pub struct StreamState {
    /// The names Envoy asked for; `None` before its first request.
    names: Option<Vec<String>>,
    nonce: u64,
    last_nonce: String,
    last_sent_version: Option<String>,
    /// The version Envoy last accepted.
    pub acked_version: Option<String>,
}

impl StreamState {
    /// Takes in a request; returns what it was and the response to send, if
    /// any (none until the agent has a certificate).
    pub fn on_request(
        &mut self,
        request: &DiscoveryRequest,
        bundle: Option<&CertBundle>,
    ) -> (RequestKind, Option<DiscoveryResponse>) {
        if !request.type_url.is_empty() && request.type_url != SECRET_TYPE_URL {
            return (RequestKind::Ignored, None);
        }
        let changed = self.names.as_ref() != Some(&request.resource_names);
        if !request.response_nonce.is_empty() {
            if request.response_nonce != self.last_nonce {
                return (RequestKind::Ignored, None);
            }
            if let Some(error) = &request.error_detail {
                return (
                    RequestKind::Nack {
                        message: error.message.clone(),
                    },
                    None,
                );
            }
            self.acked_version = Some(request.version_info.clone());
            if !changed {
                return (
                    RequestKind::Ack {
                        version: request.version_info.clone(),
                    },
                    None,
                );
            }
        }
        self.names = Some(request.resource_names.clone());
        // A new stream (or a changed subscription) always gets an answer,
        // even if Envoy already has this version from an earlier stream.
        self.last_sent_version = None;
        (RequestKind::Subscribe, bundle.and_then(|b| self.respond(b)))
    }

    /// A new certificate: the response to push, if something Envoy
    /// subscribed to changed.
    pub fn on_bundle(&mut self, bundle: &CertBundle) -> Option<DiscoveryResponse> {
        self.names.as_ref()?;
        self.respond(bundle)
    }

    fn respond(&mut self, bundle: &CertBundle) -> Option<DiscoveryResponse> {
        let names = self.names.as_deref().unwrap_or_default();
        let (version, resources) = resources(names, bundle);
        if self.last_sent_version.as_ref() == Some(&version) {
            return None;
        }
        self.nonce += 1;
        self.last_nonce = self.nonce.to_string();
        self.last_sent_version = Some(version.clone());
        Some(DiscoveryResponse {
            version_info: version,
            resources,
            type_url: SECRET_TYPE_URL.to_string(),
            nonce: self.last_nonce.clone(),
            ..Default::default()
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use envoy_types::pb::google::rpc::Status as RpcStatus;
    use prost::Message;

    use super::*;
    use crate::bundle::tests::mk_chain;

    fn mk_bundle(not_before: i64) -> CertBundle {
        CertBundle::from_response(&mk_chain(not_before, 3600), "KEY".into()).unwrap()
    }

    fn mk_request(names: &[&str], version: &str, nonce: &str) -> DiscoveryRequest {
        DiscoveryRequest {
            type_url: SECRET_TYPE_URL.into(),
            resource_names: names.iter().map(|n| n.to_string()).collect(),
            version_info: version.into(),
            response_nonce: nonce.into(),
            ..Default::default()
        }
    }

    fn decode(any: &Any) -> Secret {
        Secret::decode(any.value.as_slice()).unwrap()
    }

    #[test]
    fn default_carries_chain_and_key_and_rootca_the_root() {
        let bundle = mk_bundle(1_800_000_000);
        let (_, resources) = resources(&[], &bundle);
        let secrets: Vec<Secret> = resources.iter().map(decode).collect();
        assert_eq!(secrets[0].name, ROOTCA);
        assert_eq!(secrets[1].name, DEFAULT);
        let Some(secret::Type::TlsCertificate(tls)) = &secrets[1].r#type else {
            panic!("{:?}", secrets[1]);
        };
        let bytes = |ds: &Option<DataSource>| match ds.as_ref().unwrap().specifier.as_ref() {
            Some(data_source::Specifier::InlineBytes(b)) => String::from_utf8(b.clone()).unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!(bytes(&tls.certificate_chain), bundle.chain[0]);
        assert_eq!(bytes(&tls.private_key), "KEY");
        let Some(secret::Type::ValidationContext(ctx)) = &secrets[0].r#type else {
            panic!("{:?}", secrets[0]);
        };
        assert_eq!(bytes(&ctx.trusted_ca), bundle.chain[1]);
        assert!(secret("other", &bundle).is_none());
    }

    #[test]
    fn a_subscription_is_answered_and_acks_are_quiet() {
        let bundle = mk_bundle(1_800_000_000);
        let mut state = StreamState::default();
        let (kind, response) = state.on_request(&mk_request(&[DEFAULT], "", ""), Some(&bundle));
        assert_eq!(kind, RequestKind::Subscribe);
        let response = response.unwrap();
        assert_eq!(response.resources.len(), 1);
        assert_eq!(decode(&response.resources[0]).name, DEFAULT);
        let ack = mk_request(&[DEFAULT], &response.version_info, &response.nonce);
        let (kind, none) = state.on_request(&ack, Some(&bundle));
        assert_eq!(
            kind,
            RequestKind::Ack {
                version: response.version_info.clone()
            }
        );
        assert!(none.is_none());
        assert_eq!(state.acked_version, Some(response.version_info));
    }

    #[test]
    fn nacks_and_stale_nonces_send_nothing() {
        let bundle = mk_bundle(1_800_000_000);
        let mut state = StreamState::default();
        let (_, response) = state.on_request(&mk_request(&[ROOTCA], "", ""), Some(&bundle));
        let response = response.unwrap();
        let mut nack = mk_request(&[ROOTCA], "", &response.nonce);
        nack.error_detail = Some(RpcStatus {
            message: "bad cert".into(),
            ..Default::default()
        });
        let (kind, none) = state.on_request(&nack, Some(&bundle));
        assert_eq!(
            kind,
            RequestKind::Nack {
                message: "bad cert".into()
            }
        );
        assert!(none.is_none());
        let (kind, none) = state.on_request(&mk_request(&[ROOTCA], "v", "99"), Some(&bundle));
        assert_eq!(kind, RequestKind::Ignored);
        assert!(none.is_none());
    }

    #[test]
    fn a_new_certificate_is_pushed_once_and_waits_for_a_subscription() {
        let mut state = StreamState::default();
        let first = mk_bundle(1_800_000_000);
        assert!(state.on_bundle(&first).is_none(), "nothing subscribed yet");
        let (_, none) = state.on_request(&mk_request(&[DEFAULT], "", ""), None);
        assert!(none.is_none(), "no certificate yet");
        let pushed = state.on_bundle(&first).unwrap();
        assert!(state.on_bundle(&first).is_none(), "same version again");
        let second = mk_bundle(1_800_000_100);
        let rotated = state.on_bundle(&second).unwrap();
        assert_ne!(rotated.version_info, pushed.version_info);
        assert_ne!(rotated.nonce, pushed.nonce);
    }

    #[test]
    fn the_version_depends_on_content_and_names() {
        let bundle = mk_bundle(1_800_000_000);
        let (all, _) = resources(&[], &bundle);
        let (both, _) = resources(&[ROOTCA.into(), DEFAULT.into()], &bundle);
        let (root, _) = resources(&[ROOTCA.into()], &bundle);
        assert_eq!(all, both);
        assert_ne!(all, root);
    }
}
