//! `weft inject -f pod.yaml`: the webhook's injection applied offline.
//! Every Pod document of the input is printed injected (or unchanged, with
//! the reason on stderr); other documents are printed unchanged.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::{Context, bail};
use weft_operator::inject::documents::inject_documents;

use crate::cli::InjectArgs;

pub fn run(args: &InjectArgs) -> anyhow::Result<ExitCode> {
    let text = if args.file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the Pod from stdin")?;
        text
    } else {
        std::fs::read_to_string(&args.file)
            .with_context(|| format!("reading {}", args.file.display()))?
    };
    let labels = parse_labels(&args.namespace_labels)?;
    let config = args
        .proxy
        .inject_config(&args.trust_domain, &args.control_plane_namespace);
    let injected = inject_documents(&text, &args.namespace, &labels, &config)?;
    let mut err = std::io::stderr().lock();
    for note in &injected.notes {
        writeln!(err, "{note}")?;
    }
    std::io::stdout()
        .lock()
        .write_all(injected.yaml.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// `key=value` pairs.
fn parse_labels(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    for pair in pairs.iter().filter(|p| !p.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            bail!(
                "--namespace-labels {pair:?} is not key=value; write e.g. istio-injection=enabled"
            );
        };
        labels.insert(key.trim().to_string(), value.trim().to_string());
    }
    Ok(labels)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use serde_json::json;
    use weft_agent::status::probers::{APP_PROBERS_ENV, AppProbes, HttpGet, ProbeAction};
    use weft_operator::inject::{InjectConfig, Outcome, inject_pod};

    use super::*;

    /// What injection writes, the agent reads: the same
    /// `ISTIO_KUBE_APP_PROBERS`, named ports resolved.
    #[test]
    fn the_agent_reads_the_probes_injection_rewrote() {
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "reviews-1", "namespace": "bookinfo"},
            "spec": {"containers": [{
                "name": "reviews",
                "image": "reviews:1",
                "ports": [{"name": "http", "containerPort": 9080}],
                "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "timeoutSeconds": 2},
                "livenessProbe": {"tcpSocket": {"port": "http"}},
                "startupProbe": {"grpc": {"port": 9090}},
            }]},
        });
        let labels = BTreeMap::from([("istio-injection".to_string(), "enabled".to_string())]);
        let Outcome::Injected(pod) =
            inject_pod(&pod, "bookinfo", &labels, &InjectConfig::default()).unwrap()
        else {
            panic!("not injected");
        };
        let proxy = &pod["spec"]["initContainers"][1];
        assert_eq!(proxy["name"], "istio-proxy");
        let env = proxy["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == APP_PROBERS_ENV)
            .and_then(|e| e["value"].as_str())
            .unwrap();
        let probes = AppProbes::parse(env).unwrap();
        assert_eq!(probes.len(), 3);
        let ready = probes.get("/app-health/reviews/readyz").unwrap();
        assert_eq!(
            ready.action,
            ProbeAction::HttpGet(HttpGet {
                path: "/health".to_string(),
                port: 9080,
                https: false,
                headers: Vec::new(),
            })
        );
        assert_eq!(ready.timeout, std::time::Duration::from_secs(2));
        assert_eq!(
            probes.get("/app-health/reviews/livez").map(|p| &p.action),
            Some(&ProbeAction::TcpSocket { port: 9080 })
        );
        // Every rewritten probe's path is one the agent serves.
        for kind in ["readinessProbe", "livenessProbe", "startupProbe"] {
            let path = pod["spec"]["containers"][0][kind]["httpGet"]["path"]
                .as_str()
                .unwrap();
            assert!(probes.get(path).is_some(), "{kind}: {path}");
        }
    }
}
