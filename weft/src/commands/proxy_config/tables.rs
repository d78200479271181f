//! Envoy config dumps (JSON, as Envoy's admin and Weft's
//! `/debug/config_dump` print them) as rows, and the rows as tables with
//! istioctl's columns. Pure. Each function returns the resources it shows
//! (for `-o json|yaml`) and the table.

use base64::Engine;
use serde_json::Value;
use x509_parser::pem::Pem;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::commands::debug_client::table;

const CLUSTERS: &str = "type.googleapis.com/envoy.admin.v3.ClustersConfigDump";
const LISTENERS: &str = "type.googleapis.com/envoy.admin.v3.ListenersConfigDump";
const ROUTES: &str = "type.googleapis.com/envoy.admin.v3.RoutesConfigDump";
const ENDPOINTS: &str = "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump";
const SECRETS: &str = "type.googleapis.com/envoy.admin.v3.SecretsConfigDump";

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("")
}

fn items(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// The section of `dump` of type `type_url`.
fn section<'a>(dump: &'a Value, type_url: &str) -> Option<&'a Value> {
    items(&dump["configs"])
        .iter()
        .find(|c| text(&c["@type"]) == type_url)
}

/// The `field` of each entry of the lists `lists` of the section of type
/// `type_url` (static entries, then dynamic ones).
fn entries(dump: &Value, type_url: &str, lists: [&str; 2], field: &str) -> Vec<Value> {
    section(dump, type_url)
        .map(|s| {
            lists
                .iter()
                .flat_map(|list| items(&s[list]))
                .map(|entry| entry[field].clone())
                .collect()
        })
        .unwrap_or_default()
}

/// `name.namespace` of the Istio resource a route or cluster came from
/// (its `istio.config` metadata), as istioctl shows it.
fn istio_config(resource: &Value) -> String {
    let path = text(&resource["metadata"]["filter_metadata"]["istio"]["config"]);
    let pieces: Vec<&str> = path.split('/').collect();
    match pieces.as_slice() {
        ["", "apis", _, _, "namespaces", namespace, _, name] => format!("{name}.{namespace}"),
        _ => String::new(),
    }
}

fn dash(s: &str) -> String {
    if s.is_empty() {
        "-".to_string()
    } else {
        s.to_string()
    }
}

pub fn clusters(dump: &Value) -> (Vec<Value>, String) {
    let clusters = entries(
        dump,
        CLUSTERS,
        ["static_clusters", "dynamic_active_clusters"],
        "cluster",
    );
    let mut rows = clusters
        .iter()
        .map(|c| {
            let name = text(&c["name"]);
            let (fqdn, port, subset, direction) = match name.split('|').collect::<Vec<_>>()[..] {
                [direction, port, subset, fqdn] => (fqdn, port, subset, direction),
                _ => (name, "", "", ""),
            };
            let kind = c["type"]
                .as_str()
                .unwrap_or(if c.get("cluster_type").is_some() {
                    "CUSTOM"
                } else {
                    "STATIC"
                });
            vec![
                fqdn.to_string(),
                dash(port),
                dash(subset),
                dash(direction),
                kind.to_string(),
                dash(&istio_config(c)),
            ]
        })
        .collect::<Vec<_>>();
    rows.sort();
    let table = table(
        &[
            "SERVICE FQDN",
            "PORT",
            "SUBSET",
            "DIRECTION",
            "TYPE",
            "DESTINATION RULE",
        ],
        &rows,
    );
    (clusters, table)
}

pub fn listeners(dump: &Value) -> (Vec<Value>, String) {
    let section = section(dump, LISTENERS);
    let listeners: Vec<Value> = section
        .map(|s| {
            items(&s["static_listeners"])
                .iter()
                .map(|l| l["listener"].clone())
                .chain(
                    items(&s["dynamic_listeners"])
                        .iter()
                        .filter_map(|l| l["active_state"].get("listener").cloned()),
                )
                .collect()
        })
        .unwrap_or_default();
    let mut rows = Vec::new();
    for listener in &listeners {
        let address = &listener["address"]["socket_address"];
        let chains = items(&listener["filter_chains"]);
        let destinations: Vec<String> = chains
            .iter()
            .chain(listener.get("default_filter_chain"))
            .flat_map(|chain| items(&chain["filters"]).iter().filter_map(destination))
            .collect();
        rows.push(vec![
            text(&listener["name"]).to_string(),
            dash(text(&address["address"])),
            address["port_value"]
                .as_u64()
                .map_or("-".into(), |p| p.to_string()),
            chains.len().to_string(),
            dash(&destinations.join("; ")),
        ]);
    }
    let table = table(&["NAME", "ADDRESS", "PORT", "CHAINS", "DESTINATION"], &rows);
    (listeners, table)
}

/// Where a network filter sends traffic: its route configuration or
/// cluster.
fn destination(filter: &Value) -> Option<String> {
    let config = &filter["typed_config"];
    let kind = text(&config["@type"]);
    if kind.ends_with("HttpConnectionManager") {
        if let Some(name) = config["rds"]["route_config_name"].as_str() {
            return Some(format!("Route: {name}"));
        }
        return Some("Inline Route".to_string());
    }
    if kind.ends_with("TcpProxy") {
        return Some(format!("Cluster: {}", text(&config["cluster"])));
    }
    None
}

pub fn routes(dump: &Value) -> (Vec<Value>, String) {
    let configs = entries(
        dump,
        ROUTES,
        ["static_route_configs", "dynamic_route_configs"],
        "route_config",
    );
    let mut rows = Vec::new();
    for config in &configs {
        for vhost in items(&config["virtual_hosts"]) {
            let domains = items(&vhost["domains"]);
            let shown = match domains {
                [] => "-".to_string(),
                [one] => text(one).to_string(),
                [first, rest @ ..] => format!("{} + {} more", text(first), rest.len()),
            };
            for route in items(&vhost["routes"]) {
                rows.push(vec![
                    text(&config["name"]).to_string(),
                    text(&vhost["name"]).to_string(),
                    shown.clone(),
                    route_match(&route["match"]),
                    dash(&istio_config(route)),
                ]);
            }
        }
    }
    let table = table(
        &["NAME", "VHOST NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE"],
        &rows,
    );
    (configs, table)
}

fn route_match(matcher: &Value) -> String {
    if let Some(prefix) = matcher["prefix"].as_str() {
        return format!("{prefix}*");
    }
    if let Some(path) = matcher["path"].as_str() {
        return path.to_string();
    }
    if let Some(regex) = matcher["safe_regex"]["regex"].as_str() {
        return format!("regex {regex}");
    }
    if let Some(path) = matcher["path_separated_prefix"].as_str() {
        return format!("{path}/*");
    }
    "/*".to_string()
}

pub fn endpoints(dump: &Value) -> (Vec<Value>, String) {
    let assignments = entries(
        dump,
        ENDPOINTS,
        ["static_endpoint_configs", "dynamic_endpoint_configs"],
        "endpoint_config",
    );
    let mut rows = Vec::new();
    for assignment in &assignments {
        for locality in items(&assignment["endpoints"]) {
            for lb in items(&locality["lb_endpoints"]) {
                let address = &lb["endpoint"]["address"]["socket_address"];
                let status = lb["health_status"].as_str().unwrap_or("HEALTHY");
                rows.push(vec![
                    format!(
                        "{}:{}",
                        text(&address["address"]),
                        address["port_value"].as_u64().unwrap_or(0)
                    ),
                    status.to_string(),
                    text(&assignment["cluster_name"]).to_string(),
                ]);
            }
        }
    }
    let table = table(&["ENDPOINT", "STATUS", "CLUSTER"], &rows);
    (assignments, table)
}

/// The secrets Envoy holds (from its own config dump), with what their
/// certificates say.
pub fn secrets(dump: &Value) -> (Vec<Value>, String) {
    let section = section(dump, SECRETS);
    let secrets: Vec<Value> = section
        .map(|s| {
            items(&s["static_secrets"])
                .iter()
                .chain(items(&s["dynamic_active_secrets"]))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let rows = secrets
        .iter()
        .map(|s| {
            let secret = &s["secret"];
            let (kind, pem) = if let Some(cert) = secret.get("tls_certificate") {
                ("Cert Chain", &cert["certificate_chain"])
            } else {
                ("CA", &secret["validation_context"]["trusted_ca"])
            };
            let cert = certificate(pem);
            vec![
                text(&secret["name"]).to_string(),
                kind.to_string(),
                cert.as_ref().map_or("-".into(), |c| c.subject.clone()),
                cert.as_ref().map_or("-".into(), |c| c.serial.clone()),
                cert.as_ref().map_or("-".into(), |c| c.not_after.clone()),
            ]
        })
        .collect::<Vec<_>>();
    let table = table(
        &[
            "RESOURCE NAME",
            "TYPE",
            "IDENTITY",
            "SERIAL NUMBER",
            "NOT AFTER",
        ],
        &rows,
    );
    (secrets, table)
}

struct Certificate {
    subject: String,
    serial: String,
    not_after: String,
}

/// The first certificate of a `DataSource` (inline bytes, base64, or inline
/// string), PEM.
fn certificate(source: &Value) -> Option<Certificate> {
    let pem = match (
        source["inline_bytes"].as_str(),
        source["inline_string"].as_str(),
    ) {
        (Some(b64), _) => base64::engine::general_purpose::STANDARD.decode(b64).ok()?,
        (None, Some(s)) => s.as_bytes().to_vec(),
        (None, None) => return None,
    };
    let pem = Pem::iter_from_buffer(&pem).next()?.ok()?;
    let (_, cert) = X509Certificate::from_der(&pem.contents).ok()?;
    let san = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .and_then(|ext| {
            ext.value.general_names.iter().find_map(|n| match n {
                x509_parser::extensions::GeneralName::URI(uri) => Some(uri.to_string()),
                _ => None,
            })
        });
    Some(Certificate {
        subject: san.unwrap_or_else(|| cert.subject().to_string()),
        serial: cert.raw_serial_as_string().replace(':', ""),
        not_after: cert
            .validity()
            .not_after
            .to_rfc2822()
            .unwrap_or_else(|_| "-".to_string()),
    })
}

/// The SDS secrets the served config refers to, and what refers to them
/// (Weft serves no secrets: the agent does).
pub fn referenced_secrets(dump: &Value) -> (Vec<Value>, String) {
    let mut found: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (type_url, key, path) in [
        (CLUSTERS, "dynamic_active_clusters", "cluster"),
        (LISTENERS, "dynamic_listeners", "active_state"),
    ] {
        let Some(found_section) = section(dump, type_url) else {
            continue;
        };
        for item in items(&found_section[key]) {
            let resource = if path == "active_state" {
                &item["active_state"]["listener"]
            } else {
                &item[path]
            };
            let mut names = Vec::new();
            sds_names(resource, &mut names);
            for name in names {
                found
                    .entry(name)
                    .or_default()
                    .push(text(&resource["name"]).to_string());
            }
        }
    }
    let data: Vec<Value> = found
        .iter()
        .map(|(name, users)| serde_json::json!({ "name": name, "used_by": users }))
        .collect();
    let rows: Vec<Vec<String>> = found
        .iter()
        .map(|(name, users)| {
            let mut users = users.clone();
            users.dedup();
            let shown = match users.len() {
                0 => "-".to_string(),
                1 => users[0].clone(),
                n => format!("{} + {} more", users[0], n - 1),
            };
            vec![name.clone(), "SDS (the sidecar agent)".to_string(), shown]
        })
        .collect();
    let mut table = table(&["RESOURCE NAME", "SOURCE", "USED BY"], &rows);
    table.push_str(
        "\nWeft serves no certificates; the sidecar agent does. For the certificates themselves, \
         save the proxy's admin /config_dump and pass it with --file.\n",
    );
    (data, table)
}

/// The names of every `*sds_secret_config*` under `value`.
fn sds_names(value: &Value, names: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if key.contains("sds_secret_config") {
                    let configs = child
                        .as_array()
                        .cloned()
                        .unwrap_or_else(|| vec![child.clone()]);
                    for config in configs {
                        if let Some(name) = config["name"].as_str()
                            && !names.iter().any(|n| n == name)
                        {
                            names.push(name.to_string());
                        }
                    }
                } else {
                    sds_names(child, names);
                }
            }
        }
        Value::Array(list) => list.iter().for_each(|v| sds_names(v, names)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn dump() -> Value {
        json!({ "configs": [
            { "@type": CLUSTERS, "version_info": "v1", "dynamic_active_clusters": [
                { "cluster": {
                    "name": "outbound|9080|v1|reviews.default.svc.cluster.local",
                    "type": "EDS",
                    "metadata": { "filter_metadata": { "istio": {
                        "config": "/apis/networking.istio.io/v1/namespaces/default/destination-rule/reviews"
                    } } },
                    "transport_socket": { "typed_config": {
                        "common_tls_context": {
                            "tls_certificate_sds_secret_configs": [ { "name": "default" } ],
                            "validation_context_sds_secret_config": { "name": "ROOTCA" }
                        }
                    } }
                } }
            ] },
            { "@type": LISTENERS, "dynamic_listeners": [ { "name": "router", "active_state": {
                "listener": {
                    "name": "router",
                    "address": { "socket_address": { "address": "127.0.0.1", "port_value": 15080 } },
                    "filter_chains": [ { "filters": [ { "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "rds": { "route_config_name": "router" }
                    } } ] } ]
                }
            } } ] },
            { "@type": ROUTES, "dynamic_route_configs": [ { "route_config": {
                "name": "router",
                "virtual_hosts": [ {
                    "name": "reviews.default.svc.cluster.local:9080",
                    "domains": ["reviews", "reviews.default.svc.cluster.local"],
                    "routes": [ {
                        "match": { "prefix": "/" },
                        "metadata": { "filter_metadata": { "istio": {
                            "config": "/apis/networking.istio.io/v1/namespaces/default/virtual-service/reviews"
                        } } }
                    } ]
                } ]
            } } ] },
            { "@type": ENDPOINTS, "dynamic_endpoint_configs": [ { "endpoint_config": {
                "cluster_name": "outbound|9080|v1|reviews.default.svc.cluster.local",
                "endpoints": [ { "lb_endpoints": [ { "endpoint": { "address": {
                    "socket_address": { "address": "10.0.0.7", "port_value": 9080 }
                } } } ] } ]
            } } ] }
        ] })
    }

    #[test]
    fn clusters_show_istios_columns() {
        let (data, table) = clusters(&dump());
        assert_eq!(data.len(), 1);
        let row = table.lines().nth(1).unwrap_or_default();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "reviews.default.svc.cluster.local",
                "9080",
                "v1",
                "outbound",
                "EDS",
                "reviews.default"
            ]
        );
    }

    #[test]
    fn listeners_routes_and_endpoints() {
        let (_, table) = listeners(&dump());
        assert!(
            table.contains("router   127.0.0.1   15080   1        Route: router"),
            "{table}"
        );
        let (_, table) = routes(&dump());
        assert!(table.contains("reviews + 1 more"), "{table}");
        assert!(table.contains("reviews.default\n"), "{table}");
        let (_, table) = endpoints(&dump());
        assert!(table.contains("10.0.0.7:9080   HEALTHY"), "{table}");
    }

    #[test]
    fn referenced_secrets_name_their_users() {
        let (data, table) = referenced_secrets(&dump());
        let names: Vec<&str> = data.iter().map(|d| text(&d["name"])).collect();
        assert_eq!(names, ["ROOTCA", "default"]);
        assert!(table.contains("Weft serves no certificates"), "{table}");
    }
}
