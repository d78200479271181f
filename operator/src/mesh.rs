//! The mesh kinds' objects (`weft-crds` kube types) -> config inputs,
//! through the same conversion files go through.

use std::sync::Arc;

use kube::ResourceExt;
use weft_config::{Input, convert};
use weft_crds::{
    AuthorizationPolicy, DestinationRule, Gateway, Kind, MeshResource, PeerAuthentication, Quota,
    RequestAuthentication, ResourceStatus, ServiceEntry, Sidecar, Telemetry, VirtualService,
};
use weft_model::ResourceId;

use crate::stores::origin;

/// A mesh kind as kube-rs types it: which [`Kind`] it is, its spec as a
/// [`MeshResource`], and the status Weft writes on it.
pub trait MeshKind:
    kube::Resource<DynamicType = ()>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    const KIND: Kind;
    fn mesh_resource(&self) -> MeshResource;
    fn mesh_status(&self) -> Option<&ResourceStatus>;
}

/// Every kube type's [`Kind`] is the variant of its own name.
macro_rules! mesh_kinds {
    ($($kind:ident),* $(,)?) => {$(
        impl MeshKind for $kind {
            const KIND: Kind = Kind::$kind;
            fn mesh_resource(&self) -> MeshResource {
                self.spec.clone().into()
            }
            fn mesh_status(&self) -> Option<&ResourceStatus> {
                self.status.as_ref()
            }
        }
    )*};
}

mesh_kinds!(
    VirtualService,
    DestinationRule,
    ServiceEntry,
    Gateway,
    Sidecar,
    PeerAuthentication,
    RequestAuthentication,
    AuthorizationPolicy,
    Quota,
    Telemetry,
);

/// One input per object of a kind.
pub fn build_mesh_inputs<K: MeshKind>(objects: &[Arc<K>]) -> Vec<Input> {
    objects
        .iter()
        .map(|object| {
            let id = mesh_id(object.as_ref());
            let result = convert(&id, &object.mesh_resource());
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

/// The [`MeshObject`] of every object of a kind.
pub fn build_mesh_objects<K: MeshKind>(objects: &[Arc<K>]) -> Vec<MeshObject> {
    objects
        .iter()
        .map(|object| MeshObject {
            id: mesh_id(object.as_ref()),
            generation: object.meta().generation,
            status: object.mesh_status().cloned(),
        })
        .collect()
}

fn mesh_id<K: MeshKind>(object: &K) -> ResourceId {
    ResourceId::new(
        K::KIND,
        object.namespace().unwrap_or_default(),
        object.name_any(),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use weft_config::ConvertedResource;
    use weft_crds::{DestinationRuleSpec, VirtualServiceSpec};

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
        let inputs = build_mesh_inputs(&[good, bad]);
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
                assert_eq!(
                    *id,
                    ResourceId::new(Kind::VirtualService, "default", "reviews")
                );
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
                assert_eq!(
                    *id,
                    ResourceId::new(Kind::VirtualService, "prod", "ratings")
                );
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
        let inputs = build_mesh_inputs(&[Arc::new(object)]);
        match &inputs[0] {
            Input::Resource {
                id,
                result: Err(errors),
                ..
            } => {
                // portLevelMtls without a selector is refused, naming the field.
                assert_eq!(
                    *id,
                    ResourceId::new(Kind::PeerAuthentication, "prod", "default")
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
        let inputs = build_mesh_inputs(&[Arc::new(object)]);
        match &inputs[0] {
            Input::Resource {
                result: Ok(ConvertedResource::DestinationRule(rule)),
                ..
            } => assert_eq!(rule.subsets.len(), 1),
            other => panic!("not a converted DestinationRule: {other:?}"),
        }
    }
}
