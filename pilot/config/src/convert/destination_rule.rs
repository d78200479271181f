//! DestinationRule -> model.
//!
//! Everything Envoy would refuse (ranges, a maglev table size that is not
//! prime, ...) is refused here first, naming the field.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use weft_crds::{
    ClientTlsSettings, ConnectionPoolSettings, ConsistentHashLb, DestinationRuleSpec,
    H2UpgradePolicy, IstioDuration, LoadBalancerSettings, OutlierDetection as CrdOutlier,
    PortTrafficPolicy, SimpleLb, TlsMode as CrdTlsMode, TrafficPolicy as CrdTrafficPolicy,
};

use super::common::{at_least_1ms, export_to};
use super::{Errors, port_number};
use weft_model::{
    ClientTls, ConnectionPool, ConsistentHash, DestinationRule, HashAlgorithm, HashKey, LbPolicy,
    LoadBalancer, OutlierDetection, PolicySettings, ResourceId, Subset, TcpKeepalive, TlsMode,
    TrafficPolicy, Warmup, qualify_host,
};

/// Envoy's largest ring hash size.
const MAX_RING_SIZE: u64 = 8_388_608;
/// Maglev table sizes must be primes below this (Istio's rule; Envoy's
/// limit is the same prime, inclusive).
const MAGLEV_TABLE_LIMIT: u64 = 5_000_011;

pub(super) fn convert(
    id: &ResourceId,
    spec: &DestinationRuleSpec,
    errors: &mut Errors,
) -> DestinationRule {
    if spec.host.is_empty() {
        errors.push("spec.host", "a host is required");
    }
    export_to("spec.exportTo", &spec.export_to, errors);
    let workload_selector = spec.workload_selector.as_ref().map(|s| {
        if s.match_labels.is_empty() {
            errors.push(
                "spec.workloadSelector.matchLabels",
                "a workload selector needs at least one label; remove it to select every proxy",
            );
        }
        s.match_labels.clone()
    });
    let rule_policy = spec
        .traffic_policy
        .as_ref()
        .map(|p| traffic_policy("spec.trafficPolicy", p, errors))
        .unwrap_or_default();
    let mut names = BTreeSet::new();
    let subsets = spec
        .subsets
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let path = format!("spec.subsets[{i}]");
            if s.name.is_empty() {
                errors.push(format!("{path}.name"), "a subset name is required");
            } else if !names.insert(s.name.as_str()) {
                errors.push(
                    format!("{path}.name"),
                    format!("subset {} is defined twice", s.name),
                );
            }
            Subset {
                name: s.name.clone(),
                labels: s.labels.clone(),
                traffic_policy: s
                    .traffic_policy
                    .as_ref()
                    .map(|p| traffic_policy(&format!("{path}.trafficPolicy"), p, errors)),
            }
        })
        .collect();
    DestinationRule {
        id: id.clone(),
        host: qualify_host(&spec.host, &id.namespace),
        traffic_policy: Box::new(rule_policy),
        subsets,
        export_to: spec.export_to.clone(),
        workload_selector,
    }
}

fn traffic_policy(path: &str, policy: &CrdTrafficPolicy, errors: &mut Errors) -> TrafficPolicy {
    errors.unsupported_each_set(
        path,
        &[
            ("tunnel", policy.tunnel.is_some()),
            ("proxyProtocol", policy.proxy_protocol.is_some()),
            ("retryBudget", policy.retry_budget.is_some()),
        ],
    );
    let rule_settings = settings(
        path,
        policy.load_balancer.as_ref(),
        policy.connection_pool.as_ref(),
        policy.outlier_detection.as_ref(),
        policy.tls.as_ref(),
        errors,
    );
    let mut port_level = BTreeMap::new();
    for (i, p) in policy.port_level_settings.iter().enumerate() {
        let p_path = format!("{path}.portLevelSettings[{i}]");
        if let Some(port) = port_level_port(&p_path, p, errors) {
            let s = settings(
                &p_path,
                p.load_balancer.as_ref(),
                p.connection_pool.as_ref(),
                p.outlier_detection.as_ref(),
                p.tls.as_ref(),
                errors,
            );
            if port_level.insert(port, s).is_some() {
                errors.push(
                    format!("{p_path}.port.number"),
                    format!("port {port} has settings twice"),
                );
            }
        }
    }
    TrafficPolicy {
        settings: rule_settings,
        port_level,
    }
}

fn port_level_port(path: &str, p: &PortTrafficPolicy, errors: &mut Errors) -> Option<u16> {
    match p.port.as_ref().and_then(|s| s.number) {
        Some(n) => port_number(&format!("{path}.port.number"), n, errors),
        None => {
            errors.push(
                format!("{path}.port.number"),
                "port-level settings need a port number",
            );
            None
        }
    }
}

fn settings(
    path: &str,
    lb: Option<&LoadBalancerSettings>,
    pool: Option<&ConnectionPoolSettings>,
    outlier: Option<&CrdOutlier>,
    tls: Option<&ClientTlsSettings>,
    errors: &mut Errors,
) -> PolicySettings {
    PolicySettings {
        load_balancer: lb.and_then(|lb| load_balancer(&format!("{path}.loadBalancer"), lb, errors)),
        connection_pool: pool
            .map(|p| connection_pool(&format!("{path}.connectionPool"), p, errors)),
        outlier_detection: outlier
            .map(|o| outlier_detection(&format!("{path}.outlierDetection"), o, errors)),
        tls: tls.and_then(|t| client_tls(&format!("{path}.tls"), t, errors)),
    }
}

fn load_balancer(
    path: &str,
    lb: &LoadBalancerSettings,
    errors: &mut Errors,
) -> Option<LoadBalancer> {
    if let Some(locality) = &lb.locality_lb_setting {
        let only_disables = locality.enabled == Some(false)
            && locality.distribute.is_empty()
            && locality.failover.is_empty()
            && locality.failover_priority.is_empty();
        if !only_disables {
            errors.unsupported_because(
                format!("{path}.localityLbSetting"),
                "not supported by Weft yet: locality load balancing needs the proxy's own locality, which `weft bootstrap` \
                 does not send yet; remove it (endpoint localities are still sent to Envoy)",
            );
        }
    }
    let policy = match (lb.simple, &lb.consistent_hash) {
        (Some(_), Some(_)) => {
            errors.push(
                path,
                "set either simple or consistentHash, not both (they are alternatives)",
            );
            return None;
        }
        (None | Some(SimpleLb::Unspecified), None) => LbPolicy::Default,
        (Some(SimpleLb::RoundRobin), None) => LbPolicy::RoundRobin,
        (Some(SimpleLb::LeastConn | SimpleLb::LeastRequest), None) => LbPolicy::LeastRequest,
        (Some(SimpleLb::Random), None) => LbPolicy::Random,
        (Some(SimpleLb::Passthrough), None) => LbPolicy::Passthrough,
        (None, Some(hash)) => LbPolicy::ConsistentHash(consistent_hash(
            &format!("{path}.consistentHash"),
            hash,
            errors,
        )?),
    };
    let warmup = warmup(path, lb, errors);
    if warmup.is_some()
        && !matches!(
            policy,
            LbPolicy::Default | LbPolicy::RoundRobin | LbPolicy::LeastRequest
        )
    {
        errors.push(
            format!("{path}.warmup"),
            "warmup works only with simple ROUND_ROBIN or LEAST_REQUEST",
        );
    }
    Some(LoadBalancer { policy, warmup })
}

fn warmup(path: &str, lb: &LoadBalancerSettings, errors: &mut Errors) -> Option<Warmup> {
    let (field, duration, minimum_percent, aggression) = match (&lb.warmup, lb.warmup_duration_secs)
    {
        (Some(_), Some(_)) => {
            errors.push(
                format!("{path}.warmupDurationSecs"),
                "set warmup or the deprecated warmupDurationSecs, not both",
            );
            return None;
        }
        (Some(w), None) => (
            format!("{path}.warmup.duration"),
            w.duration,
            w.minimum_percent,
            w.aggression,
        ),
        (None, Some(d)) => (format!("{path}.warmupDurationSecs"), Some(d), None, None),
        (None, None) => return None,
    };
    let duration = match duration.map(|d| d.0) {
        Some(d) if d >= Duration::from_millis(1) => d,
        _ => {
            errors.push(field, "a warmup duration of at least 1ms is required");
            return None;
        }
    };
    if let Some(p) = minimum_percent
        && !(0.0..=100.0).contains(&p)
    {
        errors.push(
            format!("{path}.warmup.minimumPercent"),
            format!("{p} is not a percentage (0-100)"),
        );
    }
    if let Some(a) = aggression
        && !(a.is_finite() && a > 0.0)
    {
        errors.push(
            format!("{path}.warmup.aggression"),
            format!("{a} must be greater than 0 (1 is linear)"),
        );
    }
    Some(Warmup {
        duration,
        minimum_percent,
        aggression,
    })
}

fn consistent_hash(
    path: &str,
    hash: &ConsistentHashLb,
    errors: &mut Errors,
) -> Option<ConsistentHash> {
    let key = hash_key(path, hash, errors)?;
    let algorithm = hash_algorithm(path, hash, errors)?;
    Some(ConsistentHash { key, algorithm })
}

/// What requests are hashed by: exactly one of the four keys.
fn hash_key(path: &str, hash: &ConsistentHashLb, errors: &mut Errors) -> Option<HashKey> {
    let mut keys = Vec::new();
    if let Some(h) = &hash.http_header_name {
        if h.is_empty() || !h.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
            errors.push(
                format!("{path}.httpHeaderName"),
                format!("{h:?} is not an HTTP header name"),
            );
        }
        keys.push(HashKey::Header(h.to_ascii_lowercase()));
    }
    if let Some(c) = &hash.http_cookie {
        if c.name.is_empty() {
            errors.push(
                format!("{path}.httpCookie.name"),
                "a cookie name is required",
            );
        }
        keys.push(HashKey::Cookie {
            name: c.name.clone(),
            path: c.path.clone().filter(|p| !p.is_empty()),
            ttl: c.ttl.map(|d| d.0),
        });
    }
    if hash.use_source_ip == Some(true) {
        keys.push(HashKey::SourceIp);
    }
    if let Some(q) = &hash.http_query_parameter_name {
        if q.is_empty() {
            errors.push(
                format!("{path}.httpQueryParameterName"),
                "a query parameter name is required",
            );
        }
        keys.push(HashKey::QueryParameter(q.clone()));
    }
    if keys.len() > 1 {
        errors.push(
            path,
            "set exactly one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName",
        );
    }
    let key = keys.into_iter().next();
    if key.is_none() {
        errors.push(
            path,
            "a hash key is required: httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName",
        );
    }
    key
}

/// Ring hash (the default, sized by `ringHash.minimumRingSize` or the
/// deprecated `minimumRingSize`) or maglev.
fn hash_algorithm(
    path: &str,
    hash: &ConsistentHashLb,
    errors: &mut Errors,
) -> Option<HashAlgorithm> {
    let algorithm = match (&hash.ring_hash, &hash.maglev) {
        (Some(_), Some(_)) => {
            errors.push(path, "set either ringHash or maglev, not both");
            return None;
        }
        (None, Some(m)) => {
            if hash.minimum_ring_size.is_some() {
                errors.push(
                    format!("{path}.minimumRingSize"),
                    "minimumRingSize is for ring hash; remove it with maglev",
                );
            }
            HashAlgorithm::Maglev {
                table_size: maglev_table_size(
                    &format!("{path}.maglev.tableSize"),
                    m.table_size,
                    errors,
                ),
            }
        }
        (Some(r), None) => {
            if hash.minimum_ring_size.is_some() {
                errors.push(
                    format!("{path}.minimumRingSize"),
                    "set ringHash.minimumRingSize only (minimumRingSize is its deprecated form)",
                );
            }
            HashAlgorithm::RingHash {
                minimum_ring_size: ring_size(
                    format!("{path}.ringHash.minimumRingSize"),
                    r.minimum_ring_size,
                    errors,
                ),
            }
        }
        (None, None) => HashAlgorithm::RingHash {
            minimum_ring_size: ring_size(
                format!("{path}.minimumRingSize"),
                hash.minimum_ring_size,
                errors,
            ),
        },
    };
    Some(algorithm)
}

/// A ring size Envoy takes; zero (and absent) mean its default.
fn ring_size(field: String, size: Option<u64>, errors: &mut Errors) -> Option<u64> {
    match size {
        Some(0) | None => None,
        Some(n) if n > MAX_RING_SIZE => {
            errors.push(
                field,
                format!("{n} is larger than Envoy's largest ring ({MAX_RING_SIZE})"),
            );
            None
        }
        Some(n) => Some(n),
    }
}

/// A maglev table size: a prime below the limit; zero (and absent) mean
/// Envoy's default.
fn maglev_table_size(field: &str, size: Option<u64>, errors: &mut Errors) -> Option<u64> {
    match size {
        Some(0) | None => None,
        Some(n) if n >= MAGLEV_TABLE_LIMIT || !is_prime(n) => {
            errors.push(
                field,
                format!("{n} must be a prime number less than {MAGLEV_TABLE_LIMIT}"),
            );
            None
        }
        Some(n) => Some(n),
    }
}

fn is_prime(n: u64) -> bool {
    n >= 2
        && (2..)
            .take_while(|d| d * d <= n)
            .all(|d| !n.is_multiple_of(d))
}

/// A non-negative count; zero (and absent) mean Istio's default.
fn count(path: String, value: Option<i32>, errors: &mut Errors) -> Option<u32> {
    match value {
        Some(v) if v < 0 => {
            errors.push(path, format!("{v} is negative; use 0 for the default"));
            None
        }
        Some(v) => u32::try_from(v).ok().filter(|v| *v > 0),
        None => None,
    }
}

/// A keepalive duration: whole seconds, as Envoy takes them.
fn keepalive_seconds(
    path: String,
    value: Option<IstioDuration>,
    errors: &mut Errors,
) -> Option<u32> {
    let d = value?.0;
    match u32::try_from(d.as_secs()) {
        Ok(s) if s >= 1 && d.subsec_nanos() == 0 => Some(s),
        _ => {
            errors.push(
                path,
                format!("{d:?} must be a whole number of seconds, at least 1s"),
            );
            None
        }
    }
}

fn connection_pool(
    path: &str,
    pool: &ConnectionPoolSettings,
    errors: &mut Errors,
) -> ConnectionPool {
    let mut out = ConnectionPool::default();
    if let Some(tcp) = &pool.tcp {
        let p = format!("{path}.tcp");
        out.max_connections = count(format!("{p}.maxConnections"), tcp.max_connections, errors);
        out.connect_timeout =
            at_least_1ms(format!("{p}.connectTimeout"), tcp.connect_timeout, errors);
        out.max_connection_duration = at_least_1ms(
            format!("{p}.maxConnectionDuration"),
            tcp.max_connection_duration,
            errors,
        );
        out.tcp_idle_timeout = tcp.idle_timeout.map(|d| d.0);
        out.tcp_keepalive = tcp.tcp_keepalive.as_ref().map(|k| TcpKeepalive {
            probes: k.probes.filter(|p| *p > 0),
            time: keepalive_seconds(format!("{p}.tcpKeepalive.time"), k.time, errors),
            interval: keepalive_seconds(format!("{p}.tcpKeepalive.interval"), k.interval, errors),
        });
    }
    if let Some(http) = &pool.http {
        let p = format!("{path}.http");
        out.http1_max_pending_requests = count(
            format!("{p}.http1MaxPendingRequests"),
            http.http1_max_pending_requests,
            errors,
        );
        out.http2_max_requests = count(
            format!("{p}.http2MaxRequests"),
            http.http2_max_requests,
            errors,
        );
        out.max_requests_per_connection = count(
            format!("{p}.maxRequestsPerConnection"),
            http.max_requests_per_connection,
            errors,
        );
        out.max_retries = count(format!("{p}.maxRetries"), http.max_retries, errors);
        out.http_idle_timeout = http.idle_timeout.map(|d| d.0);
        out.h2_upgrade = match http.h2_upgrade_policy {
            None | Some(H2UpgradePolicy::Default) => None,
            Some(H2UpgradePolicy::Upgrade) => Some(true),
            Some(H2UpgradePolicy::DoNotUpgrade) => Some(false),
        };
        out.use_client_protocol = http.use_client_protocol == Some(true);
        out.max_concurrent_streams = count(
            format!("{p}.maxConcurrentStreams"),
            http.max_concurrent_streams,
            errors,
        );
    }
    out
}

fn outlier_detection(path: &str, o: &CrdOutlier, errors: &mut Errors) -> OutlierDetection {
    let percent = |field: &str, v: Option<i32>, errors: &mut Errors| match v {
        Some(v) if !(0..=100).contains(&v) => {
            errors.push(
                format!("{path}.{field}"),
                format!("{v} is not a percentage (0-100)"),
            );
            None
        }
        Some(v) => u32::try_from(v).ok(),
        None => None,
    };
    // The deprecated `consecutiveErrors` counted gateway errors (502, 503,
    // 504) in Istio; it applies when `consecutiveGatewayErrors` is unset.
    let deprecated_gateway = match o.consecutive_errors {
        Some(v) if v < 0 => {
            errors.push(
                format!("{path}.consecutiveErrors"),
                format!("{v} is negative"),
            );
            None
        }
        Some(v) => u32::try_from(v).ok(),
        None => None,
    };
    let positive = |field: &str, d: Option<IstioDuration>, errors: &mut Errors| {
        at_least_1ms(format!("{path}.{field}"), d, errors)
    };
    OutlierDetection {
        consecutive_5xx_errors: o.consecutive_5xx_errors,
        consecutive_gateway_errors: o.consecutive_gateway_errors.or(deprecated_gateway),
        consecutive_local_origin_failures: o.consecutive_local_origin_failures,
        split_external_local_origin_errors: o.split_external_local_origin_errors == Some(true),
        interval: positive("interval", o.interval, errors),
        base_ejection_time: positive("baseEjectionTime", o.base_ejection_time, errors),
        max_ejection_percent: percent("maxEjectionPercent", o.max_ejection_percent, errors)
            .filter(|p| *p > 0),
        min_health_percent: percent("minHealthPercent", o.min_health_percent, errors).unwrap_or(0),
    }
}

fn client_tls(path: &str, tls: &ClientTlsSettings, errors: &mut Errors) -> Option<ClientTls> {
    let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    if non_empty(&tls.credential_name).is_some() {
        errors.unsupported_because(
            format!("{path}.credentialName"),
            "not supported by Weft yet: credentialName needs the Kubernetes operator (secrets); in standalone mode use \
             clientCertificate, privateKey and caCertificates file paths",
        );
    }
    let mode = match tls.mode.unwrap_or(CrdTlsMode::Disable) {
        CrdTlsMode::Disable => TlsMode::Disable,
        CrdTlsMode::Simple => TlsMode::Simple,
        CrdTlsMode::Mutual => TlsMode::Mutual,
        CrdTlsMode::IstioMutual => TlsMode::IstioMutual,
    };
    let client_certificate = non_empty(&tls.client_certificate);
    let private_key = non_empty(&tls.private_key);
    if mode == TlsMode::IstioMutual {
        // Istio ignores the file fields under ISTIO_MUTUAL; saying so is kinder.
        errors.push_each_set(
            path,
            &[
                ("clientCertificate", client_certificate.is_some()),
                ("privateKey", private_key.is_some()),
                ("caCertificates", non_empty(&tls.ca_certificates).is_some()),
            ],
            "ISTIO_MUTUAL uses the mesh's certificates from the sidecar agent; remove this field or use MUTUAL",
        );
    } else if mode == TlsMode::Mutual {
        if client_certificate.is_none() {
            errors.push(
                format!("{path}.clientCertificate"),
                "mode MUTUAL needs the path of a client certificate file",
            );
        }
        if private_key.is_none() {
            errors.push(
                format!("{path}.privateKey"),
                "mode MUTUAL needs the path of the client's private key file",
            );
        }
    } else if client_certificate.is_some() != private_key.is_some() {
        errors.push(
            format!("{path}.privateKey"),
            "clientCertificate and privateKey go together",
        );
    }
    Some(ClientTls {
        mode,
        client_certificate,
        private_key,
        ca_certificates: non_empty(&tls.ca_certificates),
        ca_crl: non_empty(&tls.ca_crl),
        subject_alt_names: tls.subject_alt_names.clone(),
        sni: non_empty(&tls.sni),
        insecure_skip_verify: tls.insecure_skip_verify == Some(true),
    })
}
