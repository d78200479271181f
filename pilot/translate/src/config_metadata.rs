//! Istio's `istio.config` metadata on routes and clusters: the Istio
//! resource each came from, as an API path
//! (`/apis/networking.istio.io/v1/namespaces/default/virtual-service/reviews`).
//! `istioctl proxy-config routes|clusters` fills its VIRTUAL SERVICE and
//! DESTINATION RULE columns from it, and so does `weft proxy-config`.

use weft_envoy_api::pb::envoy::config::core::v3::Metadata;
use weft_envoy_api::pb::google::protobuf::{Value, value::Kind};
use weft_model::ResourceId;

/// The filter metadata namespace istiod writes.
const ISTIO: &str = "istio";

/// `metadata` with `istio.config` naming `id`.
pub(crate) fn with_config(metadata: Option<Metadata>, id: &ResourceId) -> Metadata {
    let mut metadata = metadata.unwrap_or_default();
    let path = format!(
        "/apis/networking.istio.io/v1/namespaces/{}/{}/{}",
        id.namespace,
        kebab(&id.kind.to_string()),
        id.name
    );
    metadata
        .filter_metadata
        .entry(ISTIO.to_string())
        .or_default()
        .fields
        .insert(
            "config".to_string(),
            Value {
                kind: Some(Kind::StringValue(path)),
            },
        );
    metadata
}

/// `VirtualService` -> `virtual-service`, as istiod's `gvk.KebabKind`.
fn kebab(kind: &str) -> String {
    let mut out = String::with_capacity(kind.len() + 4);
    for (i, c) in kind.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_istios() {
        let id = ResourceId::new(weft_model::Kind::VirtualService, "default", "reviews");
        let metadata = with_config(None, &id);
        let config = metadata.filter_metadata[ISTIO].fields["config"]
            .kind
            .clone();
        assert_eq!(
            config,
            Some(Kind::StringValue(
                "/apis/networking.istio.io/v1/namespaces/default/virtual-service/reviews".into()
            ))
        );
        assert_eq!(kebab("DestinationRule"), "destination-rule");
    }
}
