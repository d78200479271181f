//! Citadel on Kubernetes: where the CA's root lives, how callers prove who
//! they are, and where the root is published.
//!
//! - The root (certificate and key) lives in Secret `weft-ca` in Weft's
//!   namespace: the leader creates it once, every replica and restart reuses
//!   it. A user's plug-in CA in Secret `cacerts` (Istio's layout:
//!   `ca-cert.pem`, `ca-key.pem`, `root-cert.pem`, `cert-chain.pem`) wins.
//! - A caller's service-account token is checked with a TokenReview
//!   (audiences `istio-ca`, also `weft-ca`); the identity is the
//!   ServiceAccount the apiserver says the token belongs to.
//! - The root certificate is published to ConfigMaps `weft-ca-root-cert`
//!   and `istio-ca-root-cert` (key `root-cert.pem`) in every namespace and
//!   kept current.
//!
//! The pure parts (what a TokenReview status proves, the objects written)
//! are functions here; [`TokenReviewer`] and [`publish_roots`] talk to the
//! apiserver.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::{info, warn};

use k8s_openapi::ByteString;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, TokenReviewStatus};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use weft_citadel::{
    AuthError, Authenticator, CaError, CaMaterial, CertificateAuthority, Identity, KeyType,
};

use crate::status::writer::FIELD_MANAGER;

/// The Secret holding Weft's own CA.
pub const CA_SECRET: &str = "weft-ca";
/// The Secret of a user's plug-in CA (Istio's name and layout).
pub const PLUGIN_SECRET: &str = "cacerts";
/// The ConfigMaps the root is published to, in every namespace.
pub const ROOT_CONFIG_MAPS: [&str; 2] = ["weft-ca-root-cert", "istio-ca-root-cert"];
/// The key of the root certificate in those ConfigMaps (Istio's).
pub const ROOT_CERT_KEY: &str = "root-cert.pem";
/// The token audiences the certificate service accepts.
pub const AUDIENCES: [&str; 2] = ["istio-ca", "weft-ca"];

const CERT_KEY: &str = "ca-cert.pem";
const KEY_KEY: &str = "ca-key.pem";
const ROOT_KEY: &str = "root-cert.pem";
const CHAIN_KEY: &str = "cert-chain.pem";

/// The identity a TokenReview's status proves, in `trust_domain`.
pub fn reviewed_identity(
    status: Option<&TokenReviewStatus>,
    trust_domain: &str,
) -> Result<Identity, AuthError> {
    let Some(status) = status else {
        return Err(AuthError::Unavailable(
            "the apiserver returned a TokenReview without status".into(),
        ));
    };
    if status.authenticated != Some(true) {
        let reason = status
            .error
            .clone()
            .unwrap_or_else(|| "not authenticated".into());
        return Err(if reason.contains("expired") {
            AuthError::Expired
        } else if reason.contains("audience") {
            AuthError::WrongAudience(reason)
        } else {
            AuthError::Rejected(reason)
        });
    }
    let audiences = status.audiences.clone().unwrap_or_default();
    if !audiences.iter().any(|a| AUDIENCES.contains(&a.as_str())) {
        return Err(AuthError::WrongAudience(format!(
            "the token is for {audiences:?}, not one of {AUDIENCES:?}"
        )));
    }
    let username = status
        .user
        .as_ref()
        .and_then(|u| u.username.clone())
        .unwrap_or_default();
    let Some((namespace, service_account)) = service_account_of(&username) else {
        return Err(AuthError::Rejected(format!(
            "{username:?} is not a service account"
        )));
    };
    Ok(Identity {
        trust_domain: trust_domain.to_string(),
        namespace: namespace.to_string(),
        service_account: service_account.to_string(),
    })
}

/// `(namespace, name)` of `system:serviceaccount:<ns>:<name>`.
pub fn service_account_of(username: &str) -> Option<(&str, &str)> {
    let rest = username.strip_prefix("system:serviceaccount:")?;
    let (namespace, name) = rest.split_once(':')?;
    (!namespace.is_empty() && !name.is_empty() && !name.contains(':')).then_some((namespace, name))
}

/// Checks tokens with the apiserver's TokenReview API.
#[derive(Clone)]
pub struct TokenReviewer {
    client: Client,
    trust_domain: String,
}

impl std::fmt::Debug for TokenReviewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenReviewer")
            .field("trust_domain", &self.trust_domain)
            .finish_non_exhaustive()
    }
}

impl TokenReviewer {
    pub fn new(client: Client, trust_domain: impl Into<String>) -> Self {
        Self {
            client,
            trust_domain: trust_domain.into(),
        }
    }

    async fn review(&self, token: &str) -> Result<Identity, AuthError> {
        let review = TokenReview {
            metadata: ObjectMeta::default(),
            spec: TokenReviewSpec {
                token: token.to_string(),
                audiences: Some(AUDIENCES.iter().map(ToString::to_string).collect()),
            },
            status: None,
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let reviewed = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|err| AuthError::Unavailable(format!("TokenReview failed: {err}")))?;
        reviewed_identity(reviewed.status.as_ref(), &self.trust_domain)
    }
}

impl Authenticator for TokenReviewer {
    fn authenticate<'a>(
        &'a self,
        token: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Identity, AuthError>> + Send + 'a>> {
        Box::pin(self.review(token))
    }
}

/// The CA material a Secret holds: `weft-ca` or a plug-in `cacerts`
/// (Istio's keys); `None` when a key is missing.
pub fn material_from_secret(secret: &Secret) -> Option<CaMaterial> {
    let data = secret.data.as_ref()?;
    let text = |key: &str| {
        data.get(key)
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
    };
    let cert = text(CERT_KEY)?;
    Some(CaMaterial {
        cert_chain_pem: text(CHAIN_KEY).unwrap_or_else(|| cert.clone()),
        key_pem: text(KEY_KEY)?,
        root_pem: text(ROOT_KEY).unwrap_or(cert),
    })
}

/// The Secret `weft-ca` in `namespace` holding `material`.
pub fn ca_secret(namespace: &str, material: &CaMaterial) -> Secret {
    let entry = |key: &str, value: &str| (key.to_string(), ByteString(value.as_bytes().to_vec()));
    Secret {
        metadata: ObjectMeta {
            name: Some(CA_SECRET.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_string(),
                "weft".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([
            entry(CERT_KEY, first_cert(&material.cert_chain_pem)),
            entry(KEY_KEY, &material.key_pem),
            entry(ROOT_KEY, &material.root_pem),
            entry(CHAIN_KEY, &material.cert_chain_pem),
        ])),
        type_: Some("Opaque".to_string()),
        ..Secret::default()
    }
}

/// The ConfigMap `name` in `namespace` publishing `root_pem`.
pub fn root_config_map(namespace: &str, name: &str, root_pem: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_string(),
                "weft".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            ROOT_CERT_KEY.to_string(),
            root_pem.to_string(),
        )])),
        ..ConfigMap::default()
    }
}

/// Why the CA could not be loaded from, or stored in, its Secret.
#[derive(Debug, thiserror::Error)]
pub enum CaSecretError {
    #[error("cannot read Secret {secret}")]
    Read { secret: String, source: kube::Error },
    #[error("Secret {secret} lacks {CERT_KEY} or {KEY_KEY}")]
    Incomplete { secret: String },
    #[error("Secret {secret} holds no usable CA")]
    Unusable { secret: String, source: CaError },
    #[error("cannot generate a root CA")]
    Generate(CaError),
    #[error("cannot create Secret {secret}")]
    Create { secret: String, source: kube::Error },
}

impl CaSecretError {
    pub fn kind(&self) -> &'static str {
        match self {
            CaSecretError::Read { .. } => "read",
            CaSecretError::Incomplete { .. } => "incomplete",
            CaSecretError::Unusable { .. } => "unusable",
            CaSecretError::Generate(_) => "generate",
            CaSecretError::Create { .. } => "create",
        }
    }
}

/// The CA of `namespace`: the plug-in `cacerts` Secret when there is
/// one, else `weft-ca`, created with a new root on first start. Replicas
/// racing to create it all end up with the one the apiserver stored
/// first.
pub async fn load_or_create_ca(
    client: &Client,
    namespace: &str,
    key_type: KeyType,
    trust_domain: &str,
) -> Result<CertificateAuthority, CaSecretError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret_name = |name: &str| format!("{namespace}/{name}");
    for name in [PLUGIN_SECRET, CA_SECRET] {
        let Some(secret) = secrets
            .get_opt(name)
            .await
            .map_err(|source| CaSecretError::Read {
                secret: secret_name(name),
                source,
            })?
        else {
            continue;
        };
        let material = material_from_secret(&secret).ok_or_else(|| CaSecretError::Incomplete {
            secret: secret_name(name),
        })?;
        info!(secret = %secret_name(name), "using the CA in Secret {namespace}/{name}");
        return CertificateAuthority::from_material(&material).map_err(|source| {
            CaSecretError::Unusable {
                secret: secret_name(name),
                source,
            }
        });
    }
    let ca = CertificateAuthority::generate_root(key_type, trust_domain)
        .map_err(CaSecretError::Generate)?;
    match secrets
        .create(
            &PostParams::default(),
            &ca_secret(namespace, &ca.material()),
        )
        .await
    {
        Ok(_) => {
            info!(secret = %format!("{namespace}/{CA_SECRET}"), "created a new root CA");
            Ok(ca)
        }
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let secret = secrets
                .get(CA_SECRET)
                .await
                .map_err(|source| CaSecretError::Read {
                    secret: secret_name(CA_SECRET),
                    source,
                })?;
            let material =
                material_from_secret(&secret).ok_or_else(|| CaSecretError::Incomplete {
                    secret: secret_name(CA_SECRET),
                })?;
            CertificateAuthority::from_material(&material).map_err(|source| {
                CaSecretError::Unusable {
                    secret: secret_name(CA_SECRET),
                    source,
                }
            })
        }
        Err(source) => Err(CaSecretError::Create {
            secret: secret_name(CA_SECRET),
            source,
        }),
    }
}

/// Keeps `root_pem` published in [`ROOT_CONFIG_MAPS`] of every namespace
/// `namespaces` lists, while this replica leads: each new namespace at once,
/// every namespace again each [`REPUBLISH_EVERY`] (repairing edits).
pub async fn publish_roots(
    client: Client,
    root_pem: String,
    namespaces: impl Fn() -> Vec<String> + Send + 'static,
    mut leading: watch::Receiver<bool>,
) {
    let mut published: BTreeMap<String, Instant> = BTreeMap::new();
    loop {
        if *leading.borrow_and_update() {
            for namespace in namespaces() {
                let due = published
                    .get(&namespace)
                    .is_none_or(|at| at.elapsed() >= REPUBLISH_EVERY);
                if !due {
                    continue;
                }
                match publish_root(&client, &namespace, &root_pem).await {
                    Ok(()) => {
                        published.insert(namespace, Instant::now());
                    }
                    Err(err) => warn!(%namespace, %err, "cannot publish the root certificate"),
                }
            }
        } else {
            published.clear();
        }
        tokio::select! {
            _ = tokio::time::sleep(PUBLISH_POLL) => {}
            changed = leading.changed() => if changed.is_err() { return },
        }
    }
}

/// How often the namespaces are checked for ones without the root.
const PUBLISH_POLL: Duration = Duration::from_secs(1);
/// How often the root is written again to every namespace.
pub const REPUBLISH_EVERY: Duration = Duration::from_secs(300);

async fn publish_root(client: &Client, namespace: &str, root_pem: &str) -> Result<(), kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for name in ROOT_CONFIG_MAPS {
        let mut object = root_config_map(namespace, name, root_pem);
        object.metadata.managed_fields = None;
        let body = serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": object.metadata,
            "data": object.data,
        });
        api.patch(name, &params, &Patch::Apply(&body)).await?;
    }
    Ok(())
}

/// The first PEM block of `chain`.
fn first_cert(chain: &str) -> &str {
    const END: &str = "-----END CERTIFICATE-----";
    chain.find(END).map_or(chain, |at| &chain[..at + END.len()])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use k8s_openapi::api::authentication::v1::UserInfo;

    use super::*;

    fn status(authenticated: bool, username: &str, audiences: &[&str]) -> TokenReviewStatus {
        TokenReviewStatus {
            authenticated: Some(authenticated),
            audiences: Some(audiences.iter().map(ToString::to_string).collect()),
            user: Some(UserInfo {
                username: Some(username.to_string()),
                ..UserInfo::default()
            }),
            error: None,
        }
    }

    #[test]
    fn an_authenticated_service_account_is_the_identity() {
        let identity = reviewed_identity(
            Some(&status(
                true,
                "system:serviceaccount:ns1:reviews",
                &["istio-ca"],
            )),
            "cluster.local",
        )
        .unwrap();
        assert_eq!(
            identity.spiffe_id(),
            "spiffe://cluster.local/ns/ns1/sa/reviews"
        );
    }

    #[test]
    fn refusals_say_why() {
        let not = TokenReviewStatus {
            error: Some("token has expired".into()),
            ..status(false, "", &[])
        };
        assert_eq!(reviewed_identity(Some(&not), "td"), Err(AuthError::Expired));
        assert!(matches!(
            reviewed_identity(
                Some(&status(true, "system:serviceaccount:a:b", &["other"])),
                "td"
            ),
            Err(AuthError::WrongAudience(_))
        ));
        assert!(matches!(
            reviewed_identity(Some(&status(true, "alice", &["istio-ca"])), "td"),
            Err(AuthError::Rejected(_))
        ));
        assert!(matches!(
            reviewed_identity(None, "td"),
            Err(AuthError::Unavailable(_))
        ));
    }

    #[test]
    fn service_account_usernames_parse_strictly() {
        assert_eq!(
            service_account_of("system:serviceaccount:ns:sa"),
            Some(("ns", "sa"))
        );
        assert_eq!(service_account_of("system:serviceaccount:ns:"), None);
        assert_eq!(service_account_of("system:serviceaccount:ns:a:b"), None);
        assert_eq!(service_account_of("system:node:x"), None);
    }

    #[test]
    fn the_ca_secret_round_trips() {
        let material = CaMaterial {
            cert_chain_pem: "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n\
                             -----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----\n"
                .into(),
            key_pem: "KEY".into(),
            root_pem: "ROOT".into(),
        };
        let secret = ca_secret("weft-system", &material);
        assert_eq!(material_from_secret(&secret), Some(material));
    }
}
