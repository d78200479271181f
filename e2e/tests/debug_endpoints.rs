//! The debug endpoints of `weft standalone` against a real Envoy: syncz
//! shows it SYNCED, the config dump Weft serves agrees with Envoy's own
//! admin `/config_dump`, registryz, configz, connections, push_status and
//! the log filter answer; a forced NACK shows in syncz and in `weft
//! proxy-status` with Envoy's message; `weft proxy-config` reads the
//! served config. And the access rule: from a non-loopback address, no
//! token is 401, another namespace's token 403, the root namespace's 200.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use weft_e2e::mesh::REVIEWS_VS_FILE;
use weft_e2e::yaml::{NACKED_VS, fqdn, mk_weighted_virtual_service};
use weft_e2e::{
    APPLY_TIMEOUT, Mesh, Weft, http_get, http_post, non_loopback_ip, output_text, start_upstreams,
    weft_binary,
};

const TIMEOUT: Duration = Duration::from_secs(30);

async fn debug_json(weft: &Weft, path: &str) -> Result<Value> {
    let reply = weft.monitoring_get(path).await?;
    ensure!(
        reply.status == 200,
        "{path}: {} {}",
        reply.status,
        reply.body
    );
    serde_json::from_str(&reply.body).with_context(|| format!("{path}: {}", reply.body))
}

/// Polls `/debug/syncz` until `check` holds for the proxy `node_id`.
async fn wait_syncz(
    weft: &Weft,
    node_id: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let syncz = debug_json(weft, "/debug/syncz").await?;
        let proxy = syncz
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["node_id"] == node_id)
            .cloned();
        if let Some(proxy) = proxy.filter(|p| check(p)) {
            return Ok(proxy);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("syncz never showed {what} for {node_id}: {syncz:#}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn all_synced(proxy: &Value) -> bool {
    ["CDS", "LDS", "EDS", "RDS"]
        .iter()
        .all(|t| proxy["types"][t]["state"] == "SYNCED")
}

/// The section of an Envoy config dump of `type_url`.
fn section<'a>(dump: &'a Value, type_url: &str) -> &'a Value {
    dump["configs"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["@type"] == type_url)
        .unwrap_or(&Value::Null)
}

fn names(items: &Value, path: &[&str]) -> BTreeSet<String> {
    items
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| {
            let mut v = item;
            for key in path {
                v = &v[key];
            }
            v.as_str().map(String::from)
        })
        .collect()
}

fn weft_cli(args: &[&str]) -> Result<(bool, String)> {
    let out = Command::new(weft_binary()?).args(args).output()?;
    Ok((out.status.success(), output_text(&out)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_endpoints_show_a_real_envoys_sync_state_config_and_nacks() -> Result<()> {
    let ups = start_upstreams(93, &["v1", "v2"]).await?;
    let mesh = Mesh::builder().reviews_all_to_v1(&ups).start().await?;
    let host = fqdn("reviews", "default");
    mesh.wait_for_body(&host, "/", &[], "v1", APPLY_TIMEOUT)
        .await?;
    let weft = mesh.weft();
    let node = mesh.node_id().to_string();

    wait_syncz(weft, &node, "every type SYNCED", all_synced).await?;

    // The served config agrees with Envoy's own dump.
    let ours = debug_json(weft, &format!("/debug/config_dump?proxyID={node}")).await?;
    let envoys: Value = serde_json::from_str(&mesh.admin_get("/config_dump").await?.body)?;
    const CLUSTERS: &str = "type.googleapis.com/envoy.admin.v3.ClustersConfigDump";
    const LISTENERS: &str = "type.googleapis.com/envoy.admin.v3.ListenersConfigDump";
    let cluster_names = |dump: &Value| {
        names(
            &section(dump, CLUSTERS)["dynamic_active_clusters"],
            &["cluster", "name"],
        )
    };
    let listener_names =
        |dump: &Value| names(&section(dump, LISTENERS)["dynamic_listeners"], &["name"]);
    assert!(!cluster_names(&ours).is_empty(), "{ours:#}");
    assert_eq!(cluster_names(&ours), cluster_names(&envoys));
    assert_eq!(listener_names(&ours), listener_names(&envoys));
    for type_url in [CLUSTERS, LISTENERS] {
        assert_eq!(
            section(&ours, type_url)["version_info"],
            section(&envoys, type_url)["version_info"],
            "{type_url}'s version"
        );
    }
    let missing = weft
        .monitoring_get("/debug/config_dump?proxyID=nobody.nowhere")
        .await?;
    assert_eq!(missing.status, 404, "{}", missing.body);

    // The registry, the resources and the connections.
    let registry = debug_json(weft, "/debug/registryz").await?;
    let reviews = registry
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["hostname"] == host)
        .with_context(|| format!("{registry:#}"))?;
    assert_eq!(reviews["endpoints"].as_array().map(Vec::len), Some(2));
    let configz = debug_json(weft, "/debug/configz").await?;
    let vs = configz["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["kind"] == "VirtualService" && r["name"] == "reviews")
        .with_context(|| format!("{configz:#}"))?;
    assert_eq!(vs["conditions"][0]["type"], "Accepted");
    assert_eq!(vs["conditions"][0]["status"], "True");
    let connections = debug_json(weft, "/debug/connections").await?;
    assert!(
        connections
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["node_id"] == node.as_str()),
        "{connections:#}"
    );

    // A change is a push that reached the proxy.
    mesh.write_config(
        REVIEWS_VS_FILE,
        &mk_weighted_virtual_service("reviews", "default", &[("v1", 50), ("v2", 50)]),
    )?;
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let push = loop {
        let pushes = debug_json(weft, "/debug/push_status").await?;
        let reached = pushes
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| {
                p["proxies"].as_u64() >= Some(1)
                    && p["changes"]["routes"]
                        .as_array()
                        .is_some_and(|r| r.iter().any(|h| h == host.as_str()))
            })
            .cloned();
        if let Some(push) = reached {
            break push;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "no push of the reviews routes reached a proxy: {pushes:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(push["duration_ms"].as_f64().is_some(), "{push:#}");
    println!("a push of /debug/push_status:\n{push:#}");

    // The log filter, read and replaced at runtime.
    let filter = debug_json(weft, "/debug/logging").await?;
    assert!(filter["filter"].is_string(), "{filter:#}");
    let set = http_post(
        weft.monitoring_addr(),
        "localhost",
        "/debug/logging?filter=info,weft_xds=debug",
        "text/plain",
        "",
    )
    .await?;
    assert_eq!(set.status, 200, "{}", set.body);
    assert!(set.body.contains("weft_xds=debug"), "{}", set.body);
    let bad = http_post(
        weft.monitoring_addr(),
        "localhost",
        "/debug/logging?filter=%5B",
        "text/plain",
        "",
    )
    .await?;
    assert_eq!(bad.status, 400, "{}", bad.body);

    // A NACK shows in syncz with Envoy's message, and in the CLI.
    mesh.write_config(REVIEWS_VS_FILE, NACKED_VS)?;
    let nacked = wait_syncz(weft, &node, "an RDS ERROR", |p| {
        p["types"]["RDS"]["state"] == "ERROR"
    })
    .await?;
    let message = nacked["types"]["RDS"]["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!message.is_empty(), "{nacked:#}");
    let control_plane = format!("http://{}", weft.monitoring_addr());
    let (ok, out) = weft_cli(&["proxy-status", "--control-plane", &control_plane])?;
    println!("weft proxy-status:\n{out}");
    assert!(ok, "{out}");
    assert!(out.contains("ERROR"), "{out}");
    assert!(out.contains("1 with errors"), "{out}");
    let first_line = message.lines().next().unwrap_or_default();
    assert!(
        out.contains(first_line),
        "Envoy's message {first_line:?} in:\n{out}"
    );
    let (ok, out) = weft_cli(&["proxy-status", &node, "--control-plane", &control_plane])?;
    println!("weft proxy-status {node}:\n{out}");
    assert!(ok && out.contains("RDS NACK of version"), "{out}");

    // What the proxy has, as tables.
    let (ok, out) = weft_cli(&[
        "proxy-config",
        &node,
        "clusters",
        "--control-plane",
        &control_plane,
    ])?;
    println!("weft proxy-config clusters:\n{out}");
    assert!(ok, "{out}");
    assert!(
        out.lines().any(|l| l.starts_with(host.as_str())
            && l.contains("v1")
            && l.contains("reviews.default")),
        "the v1 subset cluster with its DestinationRule:\n{out}"
    );
    let (ok, out) = weft_cli(&[
        "proxy-config",
        &node,
        "routes",
        "--control-plane",
        &control_plane,
    ])?;
    println!("weft proxy-config routes:\n{out}");
    assert!(ok, "{out}");
    assert!(
        out.contains("reviews.default"),
        "the VirtualService column:\n{out}"
    );
    let (ok, out) = weft_cli(&[
        "proxy-config",
        &node,
        "listeners",
        "-o",
        "json",
        "--control-plane",
        &control_plane,
    ])?;
    assert!(ok, "{out}");
    let listeners: Value = serde_json::from_str(&out)?;
    assert!(listeners.as_array().is_some_and(|l| !l.is_empty()), "{out}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_endpoints_refuse_non_loopback_callers_without_a_token_of_the_root_namespace()
-> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("config");
    std::fs::create_dir(&config)?;
    let tokens = dir.path().join("tokens.yaml");
    std::fs::write(
        &tokens,
        "- {token: operator-token, namespace: istio-system, serviceAccount: admin}\n\
         - {token: app-token, namespace: default, serviceAccount: reviews}\n",
    )?;
    let args: Vec<std::ffi::OsString> = vec![
        "--monitoring-address".into(),
        "0.0.0.0:0".into(),
        "--token-file".into(),
        tokens.clone().into(),
        "--ca-dir".into(),
        dir.path().join("ca").into(),
    ];
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let weft = Weft::start_standalone_with(&config, &args, TIMEOUT).await?;
    let remote = SocketAddr::new(non_loopback_ip()?, weft.monitoring_addr().port());

    let get = |headers: Vec<(&'static str, &'static str)>| async move {
        http_get(remote, "weft", "/debug/syncz", &headers).await
    };
    let anonymous = get(vec![]).await?;
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    assert!(anonymous.body.contains("Bearer"), "{}", anonymous.body);
    let forged = get(vec![("authorization", "Bearer forged")]).await?;
    assert_eq!(forged.status, 401, "{}", forged.body);
    let app = get(vec![("authorization", "Bearer app-token")]).await?;
    assert_eq!(app.status, 403, "{}", app.body);
    let operator = get(vec![("authorization", "Bearer operator-token")]).await?;
    assert_eq!(operator.status, 200, "{}", operator.body);
    // Health stays open.
    let health = http_get(remote, "weft", "/healthz", &[]).await?;
    assert_eq!(health.status, 200);
    // Loopback sees everything.
    let local = weft.monitoring_get("/debug/configz").await?;
    assert_eq!(local.status, 200, "{}", local.body);
    Ok(())
}
