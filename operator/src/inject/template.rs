//! What an injected Pod gets, as Kubernetes objects: the init container
//! `istio-init` (installs the traffic redirect), the native sidecar
//! `istio-proxy` (`weft agent`, which runs Envoy), their volumes, labels and
//! the status annotation. Names, paths and security contexts follow
//! Istio's injection template, so tooling that knows Istio's pods knows
//! these.
//!
//! The proxy's flags are fixed at injection time, apart from the Pod's
//! name (unknown for `generateName` Pods): `--node-id
//! $(POD_NAME).$(POD_NAMESPACE)` is expanded by the kubelet from
//! downward-API variables. `--workload-name` is [`workload_name`]: the
//! Deployment (or other controller) the Pod belongs to, Istio's
//! `WORKLOAD_NAME`.
//!
//! The proxy declares Envoy's metrics port (15090, `http-envoy-prom`, as
//! Istio's does) and the agent's status port (15020, `http-agent-prom`),
//! which Prometheus scrapes (the Pod's `prometheus.io/*` annotations are
//! rewritten by [`super::prometheus`], Istio's metrics merge) and the
//! app's rewritten probes reach ([`super::probes`]). The kubelet probes the
//! proxy itself as Istio's template does, on Envoy's health listener
//! `15021/healthz/ready` (Envoy has config and is LIVE, the agent has a
//! certificate): a startup probe every second for up to 10 minutes, then
//! a readiness probe every 15 s.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, HTTPGetAction, ObjectFieldSelector, Pod, Probe, ProjectedVolumeSource,
    ResourceRequirements, SecurityContext, ServiceAccountTokenProjection, Volume, VolumeMount,
    VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use super::policy::STATUS;
use super::probes::{APP_PROBERS_ENV, RewrittenProbe, build_probe_rewrite, rewrite_enabled};
use super::prometheus::{ANNOTATIONS_ENV, STATUS_PORT, build_prometheus_merge};
use super::{Error, InjectConfig, Resources};

/// The containers' names: Istio's, which tools (`istioctl`, dashboards,
/// `kubectl logs -c istio-proxy` habits) key on.
pub const INIT_NAME: &str = "istio-init";
pub const PROXY_NAME: &str = "istio-proxy";
/// The proxy's UID and GID, excluded from capture.
pub const PROXY_UID: i64 = 1337;

pub const WORKLOAD_SOCKET: &str = "workload-socket";
pub const TOKEN: &str = "istio-token";
pub const ROOT_CERT: &str = "istiod-ca-cert";
pub const ENVOY: &str = "istio-envoy";
/// The ConfigMap holding the mesh root certificate, published by Weft in
/// every namespace.
pub const ROOT_CERT_CONFIGMAP: &str = "istio-ca-root-cert";

const SOCKET_DIR: &str = "/var/run/secrets/workload-spiffe-uds";
const TOKEN_DIR: &str = "/var/run/secrets/tokens";
const ROOT_CERT_DIR: &str = "/var/run/secrets/istio";
const ENVOY_DIR: &str = "/etc/istio/proxy";
/// The proxy's own inbound ports (Istio's), never captured.
const PROXY_INBOUND_PORTS: &str = "15020,15021,15090";
/// Envoy's `/stats/prometheus` (`weft agent --prometheus-port`'s default).
pub const ENVOY_PROMETHEUS_PORT: u16 = 15090;
/// Envoy's health listener (`weft agent --health-port`'s default), which
/// the kubelet probes.
pub const HEALTH_PORT: u16 = 15021;
pub const READY_PATH: &str = "/healthz/ready";
/// The names of the proxy's container ports.
pub const ENVOY_PROMETHEUS_PORT_NAME: &str = "http-envoy-prom";
pub const STATUS_PORT_NAME: &str = "http-agent-prom";

const PROXY_IMAGE: &str = "sidecar.istio.io/proxyImage";
const PROXY_CPU: &str = "sidecar.istio.io/proxyCPU";
const PROXY_MEMORY: &str = "sidecar.istio.io/proxyMemory";
const PROXY_CPU_LIMIT: &str = "sidecar.istio.io/proxyCPULimit";
const PROXY_MEMORY_LIMIT: &str = "sidecar.istio.io/proxyMemoryLimit";
const INCLUDE_INBOUND_PORTS: &str = "traffic.sidecar.istio.io/includeInboundPorts";
const EXCLUDE_INBOUND_PORTS: &str = "traffic.sidecar.istio.io/excludeInboundPorts";
const EXCLUDE_OUTBOUND_PORTS: &str = "traffic.sidecar.istio.io/excludeOutboundPorts";
const EXCLUDE_OUTBOUND_CIDRS: &str = "traffic.sidecar.istio.io/excludeOutboundIPRanges";

pub const TLS_MODE: &str = "security.istio.io/tlsMode";
pub const CANONICAL_NAME: &str = "service.istio.io/canonical-name";
pub const CANONICAL_REVISION: &str = "service.istio.io/canonical-revision";

/// What injection adds to one Pod.
#[derive(Clone, Debug, PartialEq)]
pub struct Sidecar {
    /// `istio-init`, `istio-proxy`: go before the Pod's init containers.
    pub init_containers: Vec<Container>,
    pub volumes: Vec<Volume>,
    /// Set only where the Pod has no value.
    pub labels: BTreeMap<String, String>,
    /// Set, replacing the Pod's value.
    pub annotations: BTreeMap<String, String>,
    /// The Pod's annotations to remove.
    pub remove_annotations: Vec<String>,
    /// The app containers' probes, pointed at the status port.
    pub probes: Vec<RewrittenProbe>,
    /// `spec.serviceAccountName` to set, when the Pod names none: the
    /// projected token requires one (the ServiceAccount admission plugin
    /// would set the same, `default`).
    pub service_account_name: Option<String>,
}

/// The sidecar for `pod` (`raw`: its JSON, as the apiserver sent it) in
/// `namespace`.
pub fn build_sidecar(
    pod: &Pod,
    raw: &serde_json::Value,
    namespace: &str,
    config: &InjectConfig,
) -> Result<Sidecar, Error> {
    let empty = BTreeMap::new();
    let annotations = pod.metadata.annotations.as_ref().unwrap_or(&empty);
    let labels = build_labels(pod);
    let image = annotations
        .get(PROXY_IMAGE)
        .filter(|image| !image.trim().is_empty())
        .cloned()
        .unwrap_or_else(|| config.proxy_image.clone());
    let resources = build_resources(annotations, config)?;
    let init = build_init(&image, &resources, annotations, config)?;
    let merge = build_prometheus_merge(annotations)?.unwrap_or_default();
    let probes = if rewrite_enabled(annotations, config.rewrite_app_probers)? {
        build_probe_rewrite(raw)
    } else {
        Default::default()
    };
    let mut proxy = build_proxy(pod, namespace, &labels, &image, &resources, config);
    let extra_env = [
        (ANNOTATIONS_ENV, &merge.env),
        (APP_PROBERS_ENV, &probes.env),
    ];
    for (name, value) in extra_env {
        if let (Some(env), Some(value)) = (proxy.env.as_mut(), value) {
            env.push(EnvVar {
                name: name.to_string(),
                value: Some(value.clone()),
                ..Default::default()
            });
        }
    }
    let volumes = build_volumes();
    let status = json!({
        "initContainers": [INIT_NAME, PROXY_NAME],
        "containers": [],
        "volumes": volumes.iter().map(|v| v.name.clone()).collect::<Vec<_>>(),
        "imagePullSecrets": null,
        "revision": "default",
    });
    Ok(Sidecar {
        init_containers: vec![init, proxy],
        volumes,
        labels: labels
            .into_iter()
            .filter(|(key, _)| !pod_has_label(pod, key))
            .collect(),
        annotations: merge
            .set
            .into_iter()
            .chain([(STATUS.to_string(), status.to_string())])
            .collect(),
        remove_annotations: merge.remove,
        probes: probes.probes,
        service_account_name: named_service_account(pod)
            .is_none()
            .then(|| service_account(pod)),
    })
}

/// The Pod's `serviceAccountName` (or the deprecated `serviceAccount`).
fn named_service_account(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    #[allow(deprecated)]
    let deprecated = spec.service_account.clone();
    spec.service_account_name
        .clone()
        .or(deprecated)
        .filter(|sa| !sa.is_empty())
}

/// The Pod's service account: named, else `default`.
fn service_account(pod: &Pod) -> String {
    named_service_account(pod).unwrap_or_else(|| "default".to_string())
}

fn pod_has_label(pod: &Pod, key: &str) -> bool {
    pod.metadata
        .labels
        .as_ref()
        .is_some_and(|labels| labels.contains_key(key))
}

/// The Pod's labels with Istio's three added where absent:
/// `security.istio.io/tlsMode: istio`, the canonical name
/// (`app.kubernetes.io/name`, `app`, else the workload's name) and
/// revision (`app.kubernetes.io/version`, `version`, else `latest`).
pub fn build_labels(pod: &Pod) -> BTreeMap<String, String> {
    let mut labels = pod.metadata.labels.clone().unwrap_or_default();
    let first = |keys: &[&str]| {
        keys.iter()
            .find_map(|key| labels.get(*key).filter(|v| !v.is_empty()).cloned())
    };
    let name = first(&["app.kubernetes.io/name", "app"])
        .or_else(|| Some(workload_name(pod)).filter(|w| !w.is_empty()));
    let revision =
        first(&["app.kubernetes.io/version", "version"]).unwrap_or_else(|| "latest".to_string());
    labels
        .entry(TLS_MODE.to_string())
        .or_insert_with(|| "istio".to_string());
    if let Some(name) = name.filter(|name| is_label_value(name)) {
        labels.entry(CANONICAL_NAME.to_string()).or_insert(name);
    }
    if is_label_value(&revision) {
        labels
            .entry(CANONICAL_REVISION.to_string())
            .or_insert(revision);
    }
    labels
}

/// The workload a Pod belongs to (Istio's `WORKLOAD_NAME`), as Istio
/// finds it: the Pod's controller, a ReplicaSet named
/// `<deployment>-<pod-template-hash>` standing for its Deployment and a
/// Job named `<cronjob>-<10 digits>` for its CronJob; without a controller,
/// the Pod's `generateName` without its trailing `-` (and without a
/// `-<pod-template-hash>`), else its name; empty if it has neither.
pub fn workload_name(pod: &Pod) -> String {
    let meta = &pod.metadata;
    let hash = meta
        .labels
        .as_ref()
        .and_then(|labels| labels.get("pod-template-hash"))
        .filter(|hash| !hash.is_empty());
    let controller = meta
        .owner_references
        .iter()
        .flatten()
        .find(|owner| owner.controller == Some(true));
    if let Some(owner) = controller {
        let name = owner.name.as_str();
        let deployment = hash
            .filter(|_| owner.kind == "ReplicaSet")
            .and_then(|hash| name.strip_suffix(hash.as_str()))
            .and_then(|base| base.strip_suffix('-'));
        let cron_job = (owner.kind == "Job")
            .then(|| name.rsplit_once('-'))
            .flatten()
            .filter(|(_, stamp)| stamp.len() == 10 && stamp.bytes().all(|b| b.is_ascii_digit()))
            .map(|(base, _)| base);
        return deployment.or(cron_job).unwrap_or(name).to_string();
    }
    if let Some(generate) = meta.generate_name.as_deref().filter(|g| !g.is_empty()) {
        let base = generate.trim_end_matches('-');
        let base = hash
            .and_then(|hash| base.strip_suffix(hash.as_str()))
            .and_then(|b| b.strip_suffix('-'))
            .unwrap_or(base);
        return base.to_string();
    }
    meta.name.clone().unwrap_or_default()
}

/// A valid label value: at most 63 characters, alphanumerics and `-_.`,
/// starting and ending alphanumeric.
fn is_label_value(value: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    value.len() <= 63
        && value.chars().all(|c| alnum(c) || "-_.".contains(c))
        && value.chars().next().is_some_and(alnum)
        && value.chars().last().is_some_and(alnum)
}

/// Requests and limits from the config, overridden by the Pod's
/// `sidecar.istio.io/proxy{CPU,Memory}{,Limit}` annotations.
fn build_resources(
    annotations: &BTreeMap<String, String>,
    config: &InjectConfig,
) -> Result<ResourceRequirements, Error> {
    let pick = |annotation: &'static str, default: &str| -> Result<Quantity, Error> {
        match annotations.get(annotation) {
            Some(value) if is_quantity(value) => Ok(Quantity(value.clone())),
            Some(value) => Err(Error::Annotation {
                annotation,
                value: value.clone(),
                expected: "a Kubernetes quantity such as 100m or 128Mi",
            }),
            None => Ok(Quantity(default.to_string())),
        }
    };
    let pair = |cpu: &'static str, memory: &'static str, defaults: &Resources| {
        Ok::<_, Error>(BTreeMap::from([
            ("cpu".to_string(), pick(cpu, &defaults.cpu)?),
            ("memory".to_string(), pick(memory, &defaults.memory)?),
        ]))
    };
    Ok(ResourceRequirements {
        requests: Some(pair(PROXY_CPU, PROXY_MEMORY, &config.requests)?),
        limits: Some(pair(PROXY_CPU_LIMIT, PROXY_MEMORY_LIMIT, &config.limits)?),
        ..Default::default()
    })
}

/// Kubernetes' quantity syntax: a decimal number, then an optional binary
/// (`Ki`..`Ei`) or decimal (`m`, `k`, `M`..`E`) suffix or exponent.
pub fn is_quantity(value: &str) -> bool {
    let unsigned = value.strip_prefix(['+', '-']).unwrap_or(value);
    let number_end = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_end);
    let digits = number.replace('.', "");
    if digits.is_empty() || number.matches('.').count() > 1 {
        return false;
    }
    let exponent = suffix
        .strip_prefix(['e', 'E'])
        .map(|e| e.strip_prefix(['+', '-']).unwrap_or(e));
    match exponent {
        Some(e) => !e.is_empty() && e.chars().all(|c| c.is_ascii_digit()),
        None => matches!(
            suffix,
            "" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" | "m" | "k" | "M" | "G" | "T" | "P" | "E"
        ),
    }
}

/// `istio-init`: `weft agent iptables` as root with NET_ADMIN and NET_RAW.
fn build_init(
    image: &str,
    resources: &ResourceRequirements,
    annotations: &BTreeMap<String, String>,
    config: &InjectConfig,
) -> Result<Container, Error> {
    let mut args = vec![
        "agent".to_string(),
        "iptables".to_string(),
        "--proxy-uid".to_string(),
        PROXY_UID.to_string(),
    ];
    let inbound = match annotations.get(INCLUDE_INBOUND_PORTS) {
        Some(ports) => ports_annotation(INCLUDE_INBOUND_PORTS, ports, true)?,
        None => "*".to_string(),
    };
    args.extend(["--include-inbound-ports".to_string(), inbound]);
    let mut exclude_inbound = vec![PROXY_INBOUND_PORTS.to_string()];
    if let Some(ports) = annotations.get(EXCLUDE_INBOUND_PORTS) {
        exclude_inbound.push(ports_annotation(EXCLUDE_INBOUND_PORTS, ports, false)?);
    }
    push_list(&mut args, "--exclude-inbound-ports", exclude_inbound);
    let mut exclude_outbound: Vec<String> = config
        .exclude_outbound_ports
        .iter()
        .map(u16::to_string)
        .collect();
    if let Some(ports) = annotations.get(EXCLUDE_OUTBOUND_PORTS) {
        exclude_outbound.push(ports_annotation(EXCLUDE_OUTBOUND_PORTS, ports, false)?);
    }
    push_list(&mut args, "--exclude-outbound-ports", exclude_outbound);
    let mut cidrs = config.exclude_outbound_cidrs.clone();
    if let Some(value) = annotations.get(EXCLUDE_OUTBOUND_CIDRS) {
        cidrs.push(cidrs_annotation(value)?);
    }
    push_list(&mut args, "--exclude-outbound-ip-ranges", cidrs);
    Ok(Container {
        name: INIT_NAME.to_string(),
        image: Some(image.to_string()),
        command: Some(vec!["weft".to_string()]),
        args: Some(args),
        resources: Some(resources.clone()),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                add: Some(vec!["NET_ADMIN".to_string(), "NET_RAW".to_string()]),
                drop: Some(vec!["ALL".to_string()]),
            }),
            privileged: Some(false),
            read_only_root_filesystem: Some(false),
            run_as_group: Some(0),
            run_as_non_root: Some(false),
            run_as_user: Some(0),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// Appends `flag A,B` when `values` (each maybe a list) is not empty.
fn push_list(args: &mut Vec<String>, flag: &str, values: Vec<String>) {
    let values: Vec<String> = values.into_iter().filter(|v| !v.is_empty()).collect();
    if !values.is_empty() {
        args.extend([flag.to_string(), values.join(",")]);
    }
}

/// A port list annotation, normalised (`80, 443` -> `80,443`); `*` only
/// where `star` allows it.
fn ports_annotation(annotation: &'static str, value: &str, star: bool) -> Result<String, Error> {
    let trimmed = value.trim();
    if star && trimmed == "*" {
        return Ok("*".to_string());
    }
    let ports: Option<Vec<u16>> = trimmed
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<u16>().ok().filter(|p| *p > 0))
        .collect();
    match ports {
        Some(ports) => Ok(ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",")),
        None => Err(Error::Annotation {
            annotation,
            value: value.to_string(),
            expected: if star {
                "`*` or a comma-separated list of ports"
            } else {
                "a comma-separated list of ports"
            },
        }),
    }
}

/// `excludeOutboundIPRanges`: a comma-separated list of CIDRs.
fn cidrs_annotation(value: &str) -> Result<String, Error> {
    let valid = |cidr: &str| match cidr.split_once('/') {
        Some((ip, prefix)) => match (ip.parse::<IpAddr>(), prefix.parse::<u8>()) {
            (Ok(IpAddr::V4(_)), Ok(prefix)) => prefix <= 32,
            (Ok(IpAddr::V6(_)), Ok(prefix)) => prefix <= 128,
            _ => false,
        },
        None => cidr.parse::<IpAddr>().is_ok(),
    };
    let cidrs: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    if cidrs.iter().all(|c| valid(c)) {
        Ok(cidrs.join(","))
    } else {
        Err(Error::Annotation {
            annotation: EXCLUDE_OUTBOUND_CIDRS,
            value: value.to_string(),
            expected: "a comma-separated list of CIDRs such as 10.0.0.0/8",
        })
    }
}

/// `istio-proxy`: the native sidecar running `weft agent` (and Envoy) as
/// UID 1337.
fn build_proxy(
    pod: &Pod,
    namespace: &str,
    labels: &BTreeMap<String, String>,
    image: &str,
    resources: &ResourceRequirements,
    config: &InjectConfig,
) -> Container {
    let service_account = service_account(pod);
    let workload = workload_name(pod);
    let mut args: Vec<String> = [
        "agent",
        "--node-id",
        "$(POD_NAME).$(POD_NAMESPACE)",
        "--namespace",
        namespace,
        "--service-account",
        &service_account,
        "--ca-address",
        &config.ca_address,
        "--xds-address",
        &config.xds_address,
        "--trust-domain",
        &config.trust_domain,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if !workload.is_empty() {
        args.extend(["--workload-name".to_string(), workload]);
    }
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    push_list(&mut args, "--labels", labels);
    args.extend(
        [
            "--token-file",
            &format!("{TOKEN_DIR}/istio-token"),
            "--ca-root",
            &format!("{ROOT_CERT_DIR}/root-cert.pem"),
            "--bootstrap-out",
            &format!("{ENVOY_DIR}/envoy.json"),
            "--sds-socket",
            &format!("{SOCKET_DIR}/socket"),
            // istio-init redirected the pod's traffic: Envoy gets the
            // capture listeners (15001, 15006) for the pod's address.
            "--capture",
            "--instance-ip",
            "$(INSTANCE_IP)",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let field = |name: &str, path: &str| EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: Some("v1".to_string()),
                field_path: path.to_string(),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mount = |name: &str, path: &str, read_only: bool| VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        read_only: read_only.then_some(true),
        ..Default::default()
    };
    Container {
        name: PROXY_NAME.to_string(),
        image: Some(image.to_string()),
        command: Some(vec!["weft".to_string()]),
        args: Some(args),
        restart_policy: Some("Always".to_string()),
        ports: Some(vec![
            container_port(ENVOY_PROMETHEUS_PORT_NAME, ENVOY_PROMETHEUS_PORT),
            container_port(STATUS_PORT_NAME, STATUS_PORT),
        ]),
        // Istio's template: the startup probe polls every second while
        // the proxy starts (10 minutes at most), then readiness every 15 s.
        startup_probe: Some(health_probe(1, 600)),
        readiness_probe: Some(health_probe(15, 4)),
        env: Some(vec![
            field("POD_NAME", "metadata.name"),
            field("POD_NAMESPACE", "metadata.namespace"),
            field("INSTANCE_IP", "status.podIP"),
            field("SERVICE_ACCOUNT", "spec.serviceAccountName"),
        ]),
        resources: Some(resources.clone()),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_string()]),
                ..Default::default()
            }),
            privileged: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_group: Some(PROXY_UID),
            run_as_non_root: Some(true),
            run_as_user: Some(PROXY_UID),
            ..Default::default()
        }),
        volume_mounts: Some(vec![
            mount(WORKLOAD_SOCKET, SOCKET_DIR, false),
            mount(TOKEN, TOKEN_DIR, true),
            mount(ROOT_CERT, ROOT_CERT_DIR, true),
            mount(ENVOY, ENVOY_DIR, false),
        ]),
        ..Default::default()
    }
}

/// A probe of Envoy's `15021/healthz/ready` (Istio's: no initial delay, a
/// 3 s timeout).
fn health_probe(period_seconds: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(READY_PATH.to_string()),
            port: IntOrString::Int(i32::from(HEALTH_PORT)),
            ..Default::default()
        }),
        initial_delay_seconds: Some(0),
        period_seconds: Some(period_seconds),
        timeout_seconds: Some(3),
        failure_threshold: Some(failure_threshold),
        ..Default::default()
    }
}

fn container_port(name: &str, port: u16) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_string()),
        container_port: i32::from(port),
        protocol: Some("TCP".to_string()),
        ..Default::default()
    }
}

/// The sidecar's volumes.
fn build_volumes() -> Vec<Volume> {
    let empty_dir = |name: &str, medium: Option<&str>| Volume {
        name: name.to_string(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: medium.map(str::to_string),
            ..Default::default()
        }),
        ..Default::default()
    };
    vec![
        empty_dir(WORKLOAD_SOCKET, None),
        Volume {
            name: TOKEN.to_string(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(vec![VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        audience: Some("istio-ca".to_string()),
                        expiration_seconds: Some(43200),
                        path: "istio-token".to_string(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: ROOT_CERT.to_string(),
            config_map: Some(ConfigMapVolumeSource {
                name: ROOT_CERT_CONFIGMAP.to_string(),
                ..Default::default()
            }),
            ..Default::default()
        },
        empty_dir(ENVOY, Some("Memory")),
    ]
}
