//! Envoy's messages as protobuf JSON, as Envoy's admin prints them (proto
//! field names, `Any` contents expanded with their `@type`), by reflection
//! over the descriptors `weft-envoy-api` embeds (prost-reflect).

use std::sync::OnceLock;

use prost::{Message, Name};
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use serde_json::Value;

fn pool() -> Result<&'static DescriptorPool, String> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(weft_envoy_api::FILE_DESCRIPTOR_SET)
            .map_err(|err| format!("cannot load Envoy's descriptors: {err}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// `message` as JSON.
pub fn to_json<M: Message + Name>(message: &M) -> Result<Value, String> {
    let pool = pool()?;
    let descriptor = pool
        .get_message_by_name(&M::full_name())
        .ok_or_else(|| format!("no descriptor for {}", M::full_name()))?;
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .map_err(|err| format!("cannot decode a {}: {err}", M::full_name()))?;
    let options = SerializeOptions::new().use_proto_field_name(true);
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|err| format!("cannot print a {} as JSON: {err}", M::full_name()))
}

#[cfg(test)]
mod tests {
    use weft_envoy_api::pb::envoy::admin::v3::clusters_config_dump::DynamicCluster;
    use weft_envoy_api::pb::envoy::admin::v3::{ClustersConfigDump, ConfigDump};
    use weft_envoy_api::pb::envoy::config::cluster::v3::Cluster;
    use weft_envoy_api::util::pack_any;

    use super::*;

    #[test]
    fn a_config_dump_prints_as_envoy_prints_it() {
        let clusters = ClustersConfigDump {
            version_info: "v1".into(),
            dynamic_active_clusters: vec![DynamicCluster {
                version_info: "v1".into(),
                cluster: Some(pack_any(Cluster {
                    name: "outbound|9080||reviews.default.svc.cluster.local".into(),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        };
        let dump = ConfigDump {
            configs: vec![pack_any(clusters)],
        };
        let json = to_json(&dump).unwrap_or_default();
        let config = &json["configs"][0];
        assert_eq!(
            config["@type"],
            "type.googleapis.com/envoy.admin.v3.ClustersConfigDump"
        );
        assert_eq!(config["version_info"], "v1");
        assert_eq!(
            config["dynamic_active_clusters"][0]["cluster"]["name"],
            "outbound|9080||reviews.default.svc.cluster.local"
        );
    }
}
