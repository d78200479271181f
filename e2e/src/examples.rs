//! Reading and editing the example configs (`examples/`) as plain YAML
//! values: where their static endpoints live (so the demo can start
//! upstreams there), a VirtualService's route weights, and rewriting them.
//! Deliberately independent of Weft's own types: this is what a user's
//! script would do to the files.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use serde_yaml::Value;

use crate::tools::workspace_dir;

/// `<workspace>/examples/bookinfo`.
pub fn bookinfo_dir() -> PathBuf {
    workspace_dir().join("examples").join("bookinfo")
}

/// Every `*.yaml` / `*.yml` file in `dir` as (file name, contents), sorted.
pub fn read_config_dir(dir: &Path) -> Result<Vec<(String, String)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let is_yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        if !is_yaml || !path.is_file() {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| anyhow!("{} has no UTF-8 file name", path.display()))?
            .to_string();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        files.push((name, text));
    }
    files.sort();
    Ok(files)
}

/// The documents of a multi-document YAML file (empty ones dropped).
pub fn parse_docs(text: &str) -> Result<Vec<Value>> {
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value = Value::deserialize(doc)?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

/// Documents back into one multi-document YAML file.
pub fn render_docs(docs: &[Value]) -> Result<String> {
    let mut parts = Vec::with_capacity(docs.len());
    for doc in docs {
        parts.push(serde_yaml::to_string(doc)?);
    }
    Ok(parts.join("---\n"))
}

fn is_kind(doc: &Value, kind: &str, name: Option<&str>) -> bool {
    doc.get("kind").and_then(Value::as_str) == Some(kind)
        && name.is_none_or(|n| {
            doc.get("metadata")
                .and_then(|m| m.get("name"))
                .and_then(Value::as_str)
                == Some(n)
        })
}

/// A static endpoint of a ServiceEntry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticEndpoint {
    /// The ServiceEntry's `metadata.name`.
    pub service: String,
    /// Its `version` label (empty when absent).
    pub version: String,
    /// Address and port of the service's first port on this endpoint.
    pub addr: SocketAddr,
}

/// The endpoints of every ServiceEntry in `docs`, for the entry's first
/// port: the endpoint's port of that name, else the port's number.
pub fn static_endpoints(docs: &[Value]) -> Result<Vec<StaticEndpoint>> {
    let mut out = Vec::new();
    for doc in docs.iter().filter(|d| is_kind(d, "ServiceEntry", None)) {
        let service = doc
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("a ServiceEntry without metadata.name"))?;
        let spec = doc
            .get("spec")
            .ok_or_else(|| anyhow!("ServiceEntry {service} has no spec"))?;
        let port = spec
            .get("ports")
            .and_then(|p| p.get(0))
            .ok_or_else(|| anyhow!("ServiceEntry {service} has no ports"))?;
        let port_name = port.get("name").and_then(Value::as_str).unwrap_or("");
        let port_number = port
            .get("number")
            .and_then(Value::as_u64)
            .ok_or_else(|| anyhow!("ServiceEntry {service}: spec.ports[0].number"))?;
        let endpoints = spec
            .get("endpoints")
            .and_then(Value::as_sequence)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for (i, ep) in endpoints.iter().enumerate() {
            let field = format!("ServiceEntry {service}: spec.endpoints[{i}]");
            let ip: IpAddr = ep
                .get("address")
                .and_then(Value::as_str)
                .ok_or_else(|| anyhow!("{field}.address is missing"))?
                .parse()
                .with_context(|| format!("{field}.address"))?;
            let number = ep
                .get("ports")
                .and_then(|p| p.get(port_name))
                .and_then(Value::as_u64)
                .unwrap_or(port_number);
            let number = u16::try_from(number).with_context(|| format!("{field}.ports"))?;
            let version = ep
                .get("labels")
                .and_then(|l| l.get("version"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            out.push(StaticEndpoint {
                service: service.to_string(),
                version,
                addr: SocketAddr::new(ip, number),
            });
        }
    }
    Ok(out)
}

fn first_route_mut<'a>(docs: &'a mut [Value], vs: &str) -> Result<&'a mut Vec<Value>> {
    let doc = docs
        .iter_mut()
        .find(|d| is_kind(d, "VirtualService", Some(vs)))
        .ok_or_else(|| anyhow!("no VirtualService named {vs}"))?;
    doc.get_mut("spec")
        .and_then(|s| s.get_mut("http"))
        .and_then(|h| h.get_mut(0))
        .and_then(|r| r.get_mut("route"))
        .and_then(Value::as_sequence_mut)
        .ok_or_else(|| anyhow!("VirtualService {vs} has no spec.http[0].route"))
}

/// (subset, weight) of the first HTTP route of VirtualService `vs`.
pub fn route_weights(docs: &[Value], vs: &str) -> Result<Vec<(String, u32)>> {
    let mut copy = docs.to_vec();
    let route = first_route_mut(&mut copy, vs)?;
    let mut weights = Vec::new();
    for (i, dest) in route.iter().enumerate() {
        let subset = dest
            .get("destination")
            .and_then(|d| d.get("subset"))
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("{vs}: spec.http[0].route[{i}].destination.subset"))?;
        let weight = match dest.get("weight") {
            None if route.len() == 1 => 100,
            None => 0,
            Some(w) => w
                .as_u64()
                .and_then(|w| u32::try_from(w).ok())
                .ok_or_else(|| anyhow!("{vs}: spec.http[0].route[{i}].weight"))?,
        };
        weights.push((subset.to_string(), weight));
    }
    Ok(weights)
}

/// Sets the weights of the first HTTP route of VirtualService `vs`, by
/// subset; every subset in `weights` must already be a destination.
pub fn set_route_weights(docs: &mut [Value], vs: &str, weights: &[(&str, u32)]) -> Result<()> {
    let route = first_route_mut(docs, vs)?;
    for (subset, weight) in weights {
        let dest = route
            .iter_mut()
            .find(|d| {
                d.get("destination")
                    .and_then(|d| d.get("subset"))
                    .and_then(Value::as_str)
                    == Some(subset)
            })
            .ok_or_else(|| anyhow!("{vs} has no route to subset {subset}"))?;
        let Some(map) = dest.as_mapping_mut() else {
            bail!("{vs}: a route destination is not a mapping");
        };
        map.insert(Value::from("weight"), Value::from(*weight));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn bookinfo(name: &str) -> Vec<Value> {
        let text = std::fs::read_to_string(bookinfo_dir().join(name)).unwrap();
        parse_docs(&text).unwrap()
    }

    #[test]
    fn bookinfo_reviews_endpoints_are_three_versions_on_19080() {
        let eps = static_endpoints(&bookinfo("services.yaml")).unwrap();
        let reviews: Vec<_> = eps.iter().filter(|e| e.service == "reviews").collect();
        let got: Vec<(String, String)> = reviews
            .iter()
            .map(|e| (e.version.clone(), e.addr.to_string()))
            .collect();
        assert_eq!(
            got,
            [
                ("v1".into(), "127.0.10.1:19080".into()),
                ("v2".into(), "127.0.10.2:19080".into()),
                ("v3".into(), "127.0.10.3:19080".into()),
            ]
        );
        let mut addrs: Vec<_> = eps.iter().map(|e| e.addr).collect();
        addrs.sort();
        addrs.dedup();
        assert_eq!(addrs.len(), eps.len(), "every endpoint has its own address");
    }

    #[test]
    fn bookinfo_reviews_weights_round_trip_through_a_rewrite() {
        let mut docs = bookinfo("virtual-services.yaml");
        let weights = route_weights(&docs, "reviews").unwrap();
        assert_eq!(
            weights,
            [("v1".into(), 70), ("v2".into(), 20), ("v3".into(), 10)]
        );
        set_route_weights(&mut docs, "reviews", &[("v1", 10), ("v2", 30), ("v3", 60)]).unwrap();
        let reparsed = parse_docs(&render_docs(&docs).unwrap()).unwrap();
        assert_eq!(reparsed.len(), 4);
        assert_eq!(
            route_weights(&reparsed, "reviews").unwrap(),
            [("v1".into(), 10), ("v2".into(), 30), ("v3".into(), 60)]
        );
        assert!(set_route_weights(&mut docs, "reviews", &[("v9", 1)]).is_err());
    }

    #[test]
    fn bookinfo_files_are_the_three_documented_ones() {
        let names: Vec<String> = read_config_dir(&bookinfo_dir())
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            names,
            [
                "destination-rules.yaml",
                "services.yaml",
                "virtual-services.yaml"
            ]
        );
    }
}
