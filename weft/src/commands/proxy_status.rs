//! `weft proxy-status`: is every proxy in sync? One line per connected
//! proxy with its state per type (SYNCED, NOT SENT, STALE, ERROR), sorted by
//! namespace and name, a summary line, and every standing NACK with
//! Envoy's message; or one proxy in detail. Reads `/debug/syncz`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::Args;
use serde_json::Value;

use super::debug_client::{ControlPlaneArgs, Output, render_data, table};

#[derive(Debug, Args)]
pub struct ProxyStatusArgs {
    /// One proxy (`<pod>.<namespace>` or its node id): its state in detail.
    pub proxy: Option<String>,
    /// Only the proxies of this namespace.
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: Output,
    #[command(flatten)]
    pub control_plane: ControlPlaneArgs,
}

/// The types, in the order of the columns.
const TYPES: [&str; 4] = ["CDS", "LDS", "EDS", "RDS"];

pub async fn run(args: &ProxyStatusArgs) -> anyhow::Result<ExitCode> {
    let syncz = args.control_plane.get_json("/debug/syncz").await?;
    let mut proxies: Vec<&Value> = syncz
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    if let Some(namespace) = &args.namespace {
        proxies.retain(|p| p["namespace"].as_str() == Some(namespace.as_str()));
    }
    if let Some(name) = &args.proxy {
        let Some(proxy) = proxies
            .iter()
            .find(|p| p["proxy"].as_str() == Some(name) || p["node_id"].as_str() == Some(name))
        else {
            eprintln!(
                "proxy {name:?} is not connected to the control plane at {} (`weft proxy-status` \
                 lists those that are)",
                args.control_plane.control_plane
            );
            return Ok(ExitCode::FAILURE);
        };
        match render_data(proxy, args.output)? {
            Some(text) => print!("{text}"),
            None => print!("{}", detail(proxy)),
        }
        return Ok(ExitCode::SUCCESS);
    }
    match render_data(
        &Value::Array(proxies.into_iter().cloned().collect()),
        args.output,
    )? {
        Some(text) => print!("{text}"),
        None => print!(
            "{}",
            overview(
                syncz.as_array().map(Vec::as_slice).unwrap_or(&[]),
                args.namespace.as_deref()
            )
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("")
}

/// The table of every proxy (of `namespace`), the summary and the NACKs.
pub fn overview(proxies: &[Value], namespace: Option<&str>) -> String {
    let mut selected: Vec<&Value> = proxies
        .iter()
        .filter(|p| namespace.is_none_or(|ns| text(&p["namespace"]) == ns))
        .collect();
    selected.sort_by_key(|p| (text(&p["namespace"]), text(&p["proxy"])));
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut nacks = Vec::new();
    let rows: Vec<Vec<String>> = selected
        .iter()
        .map(|p| {
            let mut worst = "SYNCED";
            let mut row = vec![
                text(&p["proxy"]).to_string(),
                text(&p["cluster_id"]).to_string(),
            ];
            for short in TYPES {
                let sync = &p["types"][short];
                let state = text(&sync["state"]);
                worst = worse(worst, state);
                row.push(state.to_string());
                if let Some(message) = sync["error"]["message"].as_str() {
                    nacks.push(format!("{} {short}: {message}", text(&p["proxy"])));
                }
            }
            row.push(text(&p["proxy_version"]).to_string());
            *counts.entry(worst).or_default() += 1;
            row
        })
        .collect();
    let mut out = table(
        &["NAME", "CLUSTER", "CDS", "LDS", "EDS", "RDS", "VERSION"],
        &rows,
    );
    let count = |state: &str| counts.get(state).copied().unwrap_or(0);
    out.push_str(&format!(
        "\n{} {}{}: {} synced, {} stale, {} not sent, {} with errors\n",
        selected.len(),
        if selected.len() == 1 {
            "proxy"
        } else {
            "proxies"
        },
        namespace.map(|ns| format!(" in {ns}")).unwrap_or_default(),
        count("SYNCED"),
        count("STALE"),
        count("NOT SENT"),
        count("ERROR"),
    ));
    for nack in nacks {
        out.push_str(&format!("NACK {nack}\n"));
    }
    out
}

/// The worse of two states: ERROR, then STALE, then NOT SENT, then SYNCED
/// (a type the proxy never asked for, IGNORED, counts as SYNCED).
fn worse<'a>(a: &'a str, b: &'a str) -> &'a str {
    let rank = |s: &str| match s {
        "ERROR" => 3,
        "STALE" => 2,
        "NOT SENT" => 1,
        _ => 0,
    };
    if rank(b) > rank(a) { b } else { a }
}

/// One proxy, type by type.
pub fn detail(proxy: &Value) -> String {
    let mut out = format!(
        "Proxy:      {}\nNode:       {}\nNamespace:  {}\nVersion:    {}\n\n",
        text(&proxy["proxy"]),
        text(&proxy["node_id"]),
        text(&proxy["namespace"]),
        text(&proxy["proxy_version"]),
    );
    let rows: Vec<Vec<String>> = TYPES
        .iter()
        .map(|short| {
            let sync = &proxy["types"][*short];
            vec![
                short.to_string(),
                text(&sync["state"]).to_string(),
                text(&sync["sent_version"]).to_string(),
                text(&sync["sent_nonce"]).to_string(),
                text(&sync["sent_at"]).to_string(),
                text(&sync["acked_nonce"]).to_string(),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "TYPE",
            "STATE",
            "SENT VERSION",
            "SENT NONCE",
            "SENT AT",
            "ACKED NONCE",
        ],
        &rows,
    ));
    for short in TYPES {
        let error = &proxy["types"][short]["error"];
        if let Some(message) = error["message"].as_str() {
            out.push_str(&format!(
                "\n{short} NACK of version {} at {}:\n  {message}\n",
                text(&error["version"]),
                text(&error["at"]),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn proxy(name: &str, namespace: &str, rds: &str) -> Value {
        let synced = json!({ "state": "SYNCED" });
        let mut rds_sync = json!({ "state": rds });
        if rds == "ERROR" {
            rds_sync["error"] = json!({ "message": "bad regex", "version": "v2", "at": "t" });
        }
        json!({
            "proxy": name,
            "node_id": format!("sidecar~10.0.0.1~{name}~{namespace}.svc.cluster.local"),
            "namespace": namespace,
            "cluster_id": "Kubernetes",
            "proxy_version": "1.40.0",
            "types": { "CDS": synced, "LDS": synced, "EDS": synced, "RDS": rds_sync },
        })
    }

    #[test]
    fn the_overview_is_sorted_summed_and_names_the_nacks() {
        let proxies = [
            proxy("b.shop", "shop", "SYNCED"),
            proxy("a.shop", "shop", "ERROR"),
            proxy("z.default", "default", "STALE"),
        ];
        let out = overview(&proxies, None);
        let names: Vec<&str> = out
            .lines()
            .skip(1)
            .take(3)
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        assert_eq!(names, ["z.default", "a.shop", "b.shop"]);
        assert!(
            out.contains("3 proxies: 1 synced, 1 stale, 0 not sent, 1 with errors"),
            "{out}"
        );
        assert!(out.contains("NACK a.shop RDS: bad regex"), "{out}");
        let shop = overview(&proxies, Some("shop"));
        assert!(shop.contains("2 proxies in shop"), "{shop}");
        assert!(!shop.contains("z.default"), "{shop}");
    }

    #[test]
    fn the_detail_shows_the_nack() {
        let out = detail(&proxy("a.shop", "shop", "ERROR"));
        assert!(out.contains("RDS NACK of version v2"), "{out}");
        assert!(out.contains("bad regex"), "{out}");
    }
}
