//! Kubernetes Services, their EndpointSlices and the Pods behind them ->
//! model services, one per Service, named `<name>.<ns>.svc.cluster.local`.
//!
//! Pure functions over fabricated or watched objects; no client, no I/O.
//!
//! - Ports: the protocol is chosen as Istio chooses it: `appProtocol`
//!   (including `kubernetes.io/h2c` -> HTTP2 and `kubernetes.io/ws(s)` ->
//!   HTTP), else the port name (`http`, `http-web`, `grpc-api`, ...: the
//!   part before the first `-`), else unknown (which the router does not
//!   route). UDP and SCTP ports are unknown. A numeric `targetPort` becomes
//!   the port's target port; a named one is resolved per endpoint by the
//!   EndpointSlice ports.
//! - Endpoints: from the EndpointSlices labelled
//!   `kubernetes.io/service-name=<name>` in the Service's namespace: the
//!   first address of each endpoint that is not known to be unready
//!   (`conditions.ready` missing counts as ready, as the API says), with the
//!   slice's ports by name, and the labels and service account of the Pod
//!   its `targetRef` names, when that Pod exists. An address listed twice
//!   with the same ports is kept once; with other ports (another slice's)
//!   it is another endpoint. Only `IPv4` / `IPv6` slices are read.
//! - Headless Services (`clusterIP: None`) resolve as Istio's do: the proxy
//!   forwards to the original destination (resolution NONE), endpoints kept.
//!   ExternalName Services become a DNS service whose one endpoint is the
//!   external name, as in Istio.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service as KubeService};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use weft_config::{ConvertedResource, ErrorReason, FieldError, Input};
use weft_model::{
    CLUSTER_DOMAIN, Endpoint, Location, Resolution, ResourceId, ResourceKind, Service, ServicePort,
};

use crate::stores::origin;

/// The label an EndpointSlice names its Service with.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// One input per Service: its model service, or what is wrong with it.
pub fn build_service_inputs(
    services: &[Arc<KubeService>],
    slices: &[Arc<EndpointSlice>],
    pods: &[Arc<Pod>],
) -> Vec<Input> {
    let pods: BTreeMap<(&str, &str), &Pod> = pods
        .iter()
        .filter_map(|pod| {
            let meta = &pod.metadata;
            Some((
                (meta.namespace.as_deref()?, meta.name.as_deref()?),
                pod.as_ref(),
            ))
        })
        .collect();
    let mut slices_by_service: BTreeMap<(&str, &str), Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in slices {
        let meta = &slice.metadata;
        let service = meta
            .labels
            .as_ref()
            .and_then(|labels| labels.get(SERVICE_NAME_LABEL));
        if let (Some(namespace), Some(service)) = (meta.namespace.as_deref(), service) {
            slices_by_service
                .entry((namespace, service.as_str()))
                .or_default()
                .push(slice.as_ref());
        }
    }
    let pod_lookup = |namespace: &str, name: &str| pods.get(&(namespace, name)).copied();
    services
        .iter()
        .map(|service| {
            let namespace = service.metadata.namespace.clone().unwrap_or_default();
            let name = service.metadata.name.clone().unwrap_or_default();
            let slices = slices_by_service
                .get(&(namespace.as_str(), name.as_str()))
                .map(Vec::as_slice)
                .unwrap_or_default();
            let id = ResourceId::new(ResourceKind::Service, namespace.clone(), name.clone());
            let result = build_service(service, slices, &pod_lookup)
                .map(|service| ConvertedResource::Services(vec![service]));
            Input::Resource {
                origin: origin(),
                id,
                result,
            }
        })
        .collect()
}

/// Converts one Service with its EndpointSlices; `pod` finds a Pod by
/// namespace and name.
pub fn build_service<'a>(
    service: &KubeService,
    slices: &[&EndpointSlice],
    pod: &dyn Fn(&str, &str) -> Option<&'a Pod>,
) -> Result<Service, Vec<FieldError>> {
    let namespace = service.metadata.namespace.clone().unwrap_or_default();
    let name = service.metadata.name.clone().unwrap_or_default();
    let spec = service.spec.clone().unwrap_or_default();
    let mut errors = Vec::new();
    let mut ports = Vec::new();
    for (i, port) in spec.ports.iter().flatten().enumerate() {
        match build_port(port) {
            Ok(port) => ports.push(port),
            Err(message) => errors.push(FieldError::new(
                ErrorReason::Invalid,
                format!("spec.ports[{i}]"),
                message,
            )),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let id = ResourceId::new(ResourceKind::Service, namespace.clone(), name.clone());
    let mut model = Service {
        hostname: format!("{name}.{namespace}.{CLUSTER_DOMAIN}"),
        namespace: namespace.clone(),
        ports,
        resolution: Resolution::Static,
        endpoints: Vec::new(),
        export_to: Vec::new(),
        origin: id,
        // Captured clients connect to the cluster IP: their proxies route
        // by it (`Host: 10.96.0.10:9080`, TCP listeners `ADDR_PORT`).
        addresses: cluster_ips(&spec),
        location: Location::MeshInternal,
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        let Some(external) = spec.external_name.filter(|n| !n.is_empty()) else {
            return Err(vec![FieldError::new(
                ErrorReason::Invalid,
                "spec.externalName",
                "an ExternalName Service needs an external name",
            )]);
        };
        model.resolution = Resolution::Dns;
        model.endpoints = vec![Endpoint {
            address: external,
            ..Endpoint::default()
        }];
        return Ok(model);
    }
    if spec.cluster_ip.as_deref() == Some("None") {
        model.resolution = Resolution::Passthrough;
    }
    model.endpoints = build_endpoints(&model.ports, &namespace, slices, pod);
    Ok(model)
}

/// The Service's cluster IPs (`spec.clusterIPs`, else `spec.clusterIP`);
/// none for a headless Service.
fn cluster_ips(spec: &k8s_openapi::api::core::v1::ServiceSpec) -> Vec<String> {
    let ips = match &spec.cluster_ips {
        Some(ips) if !ips.is_empty() => ips.clone(),
        _ => spec.cluster_ip.iter().cloned().collect(),
    };
    ips.into_iter()
        .filter(|ip| !ip.is_empty() && ip != "None")
        .collect()
}

/// The model port of a Service port, or why there is none.
fn build_port(port: &k8s_openapi::api::core::v1::ServicePort) -> Result<ServicePort, String> {
    let number = u16::try_from(port.port)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("port {} is not a port number (1-65535)", port.port))?;
    let name = port.name.clone().unwrap_or_default();
    let target_port = match &port.target_port {
        Some(IntOrString::Int(n)) => Some(
            u16::try_from(*n)
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("targetPort {n} is not a port number (1-65535)"))?,
        ),
        // Named: each EndpointSlice says where it is.
        Some(IntOrString::String(_)) | None => None,
    };
    Ok(ServicePort {
        protocol: port_protocol(
            port.protocol.as_deref(),
            port.app_protocol.as_deref(),
            &name,
        ),
        name,
        number,
        target_port,
    })
}

/// Istio's choice of protocol for a Kubernetes port (`weft analyze`
/// judges port names by the same function).
pub use weft_config::analyze::kubernetes_port_protocol as port_protocol;

fn build_endpoints<'a>(
    ports: &[ServicePort],
    namespace: &str,
    slices: &[&EndpointSlice],
    pod: &dyn Fn(&str, &str) -> Option<&'a Pod>,
) -> Vec<Endpoint> {
    let mut seen = BTreeSet::new();
    let mut endpoints = Vec::new();
    let mut slices = slices.to_vec();
    // Deterministic whatever order the watch delivered them in.
    slices.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    for slice in slices {
        if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
            continue;
        }
        let slice_ports: BTreeMap<String, u16> = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                let number = u16::try_from(p.port?).ok().filter(|n| *n > 0)?;
                Some((p.name.clone().unwrap_or_default(), number))
            })
            .collect();
        let endpoint_ports: BTreeMap<String, u16> = ports
            .iter()
            .filter_map(|port| Some((port.name.clone(), *slice_ports.get(&port.name)?)))
            .collect();
        for endpoint in slice.endpoints.iter().flatten() {
            let ready = endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(true);
            let Some(address) = endpoint.addresses.first() else {
                continue;
            };
            if !ready || !seen.insert((address.clone(), endpoint_ports.clone())) {
                continue;
            }
            let pod = endpoint
                .target_ref
                .as_ref()
                .and_then(|target| target_pod(target, namespace, pod));
            let labels = pod
                .and_then(|p| p.metadata.labels.clone())
                .unwrap_or_default();
            let service_account = pod
                .and_then(|p| p.spec.as_ref())
                .and_then(|s| s.service_account_name.clone());
            endpoints.push(Endpoint {
                address: address.clone(),
                ports: endpoint_ports.clone(),
                labels,
                service_account,
                workload_name: pod
                    .map(crate::inject::template::workload_name)
                    .filter(|w| !w.is_empty()),
                ..Endpoint::default()
            });
        }
    }
    endpoints
}

fn target_pod<'a>(
    target: &ObjectReference,
    namespace: &str,
    pod: &dyn Fn(&str, &str) -> Option<&'a Pod>,
) -> Option<&'a Pod> {
    if target.kind.as_deref() != Some("Pod") {
        return None;
    }
    let namespace = target.namespace.as_deref().unwrap_or(namespace);
    pod(namespace, target.name.as_deref()?)
}

#[cfg(test)]
mod tests;
