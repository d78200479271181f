//! Istio's CRD objects (networking.istio.io v1 and security.istio.io v1
//! PeerAuthentication, as `weft-crds` kube types)
//! -> config inputs, through the same conversion files go through.

use std::sync::Arc;

use kube::ResourceExt;
use weft_crds::{
    AuthorizationPolicy, DestinationRule, Gateway, MeshResource, PeerAuthentication, Quota,
    ResourceStatus, ServiceEntry, Sidecar, VirtualService,
};
use weft_pilot::config::{Input, convert};
use weft_pilot::model::ResourceId;

use super::origin;

/// One input per object of a kind: `spec` picks its spec as a
/// [`MeshResource`].
pub fn build_mesh_inputs<K: kube::Resource>(
    kind: &'static str,
    objects: &[Arc<K>],
    spec: impl Fn(&K) -> MeshResource,
) -> Vec<Input> {
    objects
        .iter()
        .map(|object| {
            let id = mesh_id(kind, object.as_ref());
            let result = convert(&id, &spec(object));
            Input::Resource {
                origin: origin(),
                id,
                result,
            }
        })
        .collect()
}

/// A mesh object as its status sees it: which one, at which generation,
/// with what status now.
#[derive(Clone, Debug, PartialEq)]
pub struct MeshObject {
    pub id: ResourceId,
    pub generation: Option<i64>,
    pub status: Option<ResourceStatus>,
}

/// The [`MeshObject`] of every object of a kind; `status` picks its status.
pub fn build_mesh_objects<K: kube::Resource>(
    kind: &'static str,
    objects: &[Arc<K>],
    status: impl Fn(&K) -> Option<&ResourceStatus>,
) -> Vec<MeshObject> {
    objects
        .iter()
        .map(|object| MeshObject {
            id: mesh_id(kind, object.as_ref()),
            generation: object.meta().generation,
            status: status(object).cloned(),
        })
        .collect()
}

fn mesh_id<K: kube::Resource>(kind: &'static str, object: &K) -> ResourceId {
    ResourceId::new(
        kind,
        object.namespace().unwrap_or_default(),
        object.name_any(),
    )
}

pub fn virtual_service(object: &VirtualService) -> MeshResource {
    object.spec.clone().into()
}

pub fn destination_rule(object: &DestinationRule) -> MeshResource {
    object.spec.clone().into()
}

pub fn service_entry(object: &ServiceEntry) -> MeshResource {
    object.spec.clone().into()
}

pub fn gateway(object: &Gateway) -> MeshResource {
    object.spec.clone().into()
}

pub fn sidecar(object: &Sidecar) -> MeshResource {
    object.spec.clone().into()
}

pub fn peer_authentication(object: &PeerAuthentication) -> MeshResource {
    object.spec.clone().into()
}

pub fn authorization_policy(object: &AuthorizationPolicy) -> MeshResource {
    object.spec.clone().into()
}

pub fn quota(object: &Quota) -> MeshResource {
    object.spec.clone().into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use weft_crds::{DestinationRuleSpec, VirtualServiceSpec};
    use weft_pilot::config::ConvertedResource;

    use super::*;

    fn mk_virtual_service(namespace: &str, name: &str, spec: &str) -> Arc<VirtualService> {
        let mut object = VirtualService::new(
            name,
            serde_yaml::from_str::<VirtualServiceSpec>(spec).unwrap(),
        );
        object.metadata.namespace = Some(namespace.to_string());
        Arc::new(object)
    }

    #[test]
    fn objects_convert_with_their_kind_namespace_and_name() {
        let good = mk_virtual_service(
            "default",
            "reviews",
            "hosts: [reviews]\nhttp:\n- route:\n  - destination: {host: reviews, subset: v1}\n",
        );
        let bad = mk_virtual_service(
            "prod",
            "ratings",
            "hosts: [ratings]\nhttp:\n- route:\n  - destination: {host: ratings}\n    weight: 150\n",
        );
        let inputs = build_mesh_inputs("VirtualService", &[good, bad], virtual_service);
        let [first, second] = inputs.as_slice() else {
            panic!("two inputs: {inputs:?}");
        };
        match first {
            Input::Resource {
                origin,
                id,
                result: Ok(ConvertedResource::VirtualService(vs)),
            } => {
                assert_eq!(origin.source, "kubernetes");
                assert_eq!(*id, ResourceId::new("VirtualService", "default", "reviews"));
                assert_eq!(vs.hosts, ["reviews.default.svc.cluster.local"]);
            }
            other => panic!("not a converted VirtualService: {other:?}"),
        }
        match second {
            Input::Resource {
                id,
                result: Err(errors),
                ..
            } => {
                assert_eq!(*id, ResourceId::new("VirtualService", "prod", "ratings"));
                assert!(
                    errors
                        .iter()
                        .any(|e| e.field.starts_with("spec.http[0].route")),
                    "{errors:?}"
                );
            }
            other => panic!("not an error: {other:?}"),
        }
    }

    #[test]
    fn peer_authentications_convert_with_their_kind() {
        let spec: weft_crds::PeerAuthenticationSpec = serde_yaml::from_str(
            "mtls: {mode: STRICT}\nportLevelMtls: {'8080': {mode: DISABLE}}\n",
        )
        .unwrap();
        let mut object = PeerAuthentication::new("default", spec);
        object.metadata.namespace = Some("prod".to_string());
        let inputs = build_mesh_inputs(
            "PeerAuthentication",
            &[Arc::new(object)],
            peer_authentication,
        );
        match &inputs[0] {
            Input::Resource {
                id,
                result: Err(errors),
                ..
            } => {
                // portLevelMtls without a selector is refused, naming the field.
                assert_eq!(
                    *id,
                    ResourceId::new("PeerAuthentication", "prod", "default")
                );
                assert_eq!(errors[0].field, "spec.portLevelMtls");
            }
            other => panic!("not a refused PeerAuthentication: {other:?}"),
        }
    }

    #[test]
    fn destination_rules_keep_their_subsets() {
        let spec: DestinationRuleSpec =
            serde_yaml::from_str("host: reviews\nsubsets:\n- name: v1\n  labels: {version: v1}\n")
                .unwrap();
        let mut object = DestinationRule::new("reviews", spec);
        object.metadata.namespace = Some("default".to_string());
        let inputs = build_mesh_inputs("DestinationRule", &[Arc::new(object)], destination_rule);
        match &inputs[0] {
            Input::Resource {
                result: Ok(ConvertedResource::DestinationRule(rule)),
                ..
            } => assert_eq!(rule.subsets.len(), 1),
            other => panic!("not a converted DestinationRule: {other:?}"),
        }
    }
}
