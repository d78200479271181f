//! The benchmark's world, as Kubernetes objects (JSON): K Services with E
//! endpoints each (Pods and one EndpointSlice per Service), a
//! DestinationRule (subsets v1, v2) and a VirtualService (a 90/10 split) per
//! Service, all in one namespace; and the three changes the scenario makes:
//! one VirtualService edited, endpoint churn of a tenth of the pods, a new
//! Service. Pure: nothing here talks to the apiserver.

use std::net::Ipv4Addr;

use serde_json::{Value, json};

/// The namespace the world lives in.
pub const NAMESPACE: &str = "bench";
/// The port every Service exposes (HTTP), and the port its pods listen on.
pub const SERVICE_PORT: u16 = 80;
const TARGET_PORT: u16 = 8080;
/// Pod addresses: 172.16.0.0/12, one /16 per churn generation.
const POD_BASE: u32 = u32::from_be_bytes([172, 16, 0, 0]);
/// The annotation carrying a Pod's address, for the writer to put in its
/// status.
pub const POD_IP_ANNOTATION: &str = "bench.weft.dev/ip";
/// Generations of a pod before its address would leave 172.16.0.0/12.
pub const MAX_GENERATION: u32 = 15;

/// The world's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub services: u32,
    pub endpoints: u32,
}

/// One pod: which service, which replica, which generation (each churn
/// replaces a pod by a new one with a new name and address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodId {
    pub service: u32,
    pub replica: u32,
    pub generation: u32,
}

impl PodId {
    pub fn name(&self) -> String {
        format!(
            "{}-{}-g{}",
            service_name(self.service),
            self.replica,
            self.generation
        )
    }

    /// Unique per (service, replica, generation) while the world has fewer
    /// than 65,536 pods.
    pub fn ip(&self, size: Size) -> Ipv4Addr {
        let index = self.service * size.endpoints + self.replica + 1;
        Ipv4Addr::from(POD_BASE + (self.generation << 16) + index)
    }

    /// Even replicas are `v1`, odd ones `v2`.
    pub fn version(&self) -> &'static str {
        if self.replica.is_multiple_of(2) {
            "v1"
        } else {
            "v2"
        }
    }
}

/// The name of service number `index`.
pub fn service_name(index: u32) -> String {
    format!("svc-{index}")
}

/// The service's fully qualified host.
pub fn host(service: &str) -> String {
    format!("{service}.{NAMESPACE}.svc.cluster.local")
}

/// Istio's (and Weft's) outbound cluster name for `service`, `subset`
/// ("" for the service's own cluster).
pub fn cluster_name(service: &str, subset: &str) -> String {
    format!("outbound|{SERVICE_PORT}|{subset}|{}", host(service))
}

/// The state the scenario mutates: each pod's current generation.
#[derive(Debug, Clone)]
pub struct World {
    pub size: Size,
    generations: Vec<u32>,
}

/// Objects to write, in order: `create` first, then `replace`, then
/// `delete` (kind, name).
#[derive(Debug, Clone, Default)]
pub struct Writes {
    pub create: Vec<Value>,
    pub replace: Vec<Value>,
    pub delete: Vec<(&'static str, String)>,
}

impl World {
    pub fn new(size: Size) -> Self {
        let pods = (size.services * size.endpoints) as usize;
        Self {
            size,
            generations: vec![0; pods],
        }
    }

    /// The current pods of service `service`.
    pub fn pods(&self, service: u32) -> Vec<PodId> {
        (0..self.size.endpoints)
            .map(|replica| PodId {
                service,
                replica,
                generation: self.generations[(service * self.size.endpoints + replica) as usize],
            })
            .collect()
    }

    /// Every object of service `index`: Pods, the Service, its
    /// EndpointSlice, DestinationRule and VirtualService.
    pub fn service_objects(&self, index: u32) -> Vec<Value> {
        let name = service_name(index);
        let pods = self.pods(index);
        let mut objects: Vec<Value> = pods.iter().map(|p| pod(p, self.size)).collect();
        objects.push(service(&name));
        objects.push(endpoint_slice(&name, &pods, self.size));
        objects.push(destination_rule(&name));
        objects.push(virtual_service(&name, 10));
        objects
    }

    /// Churn number `round`: a tenth of the pods (those whose index is
    /// `round` modulo 10) replaced by new ones. Returns the writes (new pods,
    /// the affected EndpointSlices, old pods deleted) and, per affected
    /// service, the addresses that must appear and disappear.
    pub fn churn(&mut self, round: u32) -> (Writes, Vec<EndpointChange>) {
        let mut writes = Writes::default();
        let mut changes = Vec::new();
        for service in 0..self.size.services {
            let (mut added, mut removed) = (Vec::new(), Vec::new());
            for old in self.pods(service) {
                let index = (service * self.size.endpoints + old.replica) as usize;
                if index % 10 != (round % 10) as usize {
                    continue;
                }
                let new = PodId {
                    generation: (old.generation + 1) % (MAX_GENERATION + 1),
                    ..old
                };
                self.generations[index] = new.generation;
                added.push(new);
                removed.push(old);
            }
            if added.is_empty() {
                continue;
            }
            let name = service_name(service);
            let ips = |pods: &[PodId]| pods.iter().map(|p| p.ip(self.size).to_string()).collect();
            writes
                .create
                .extend(added.iter().map(|p| pod(p, self.size)));
            writes
                .replace
                .push(endpoint_slice(&name, &self.pods(service), self.size));
            writes
                .delete
                .extend(removed.iter().map(|p| ("Pod", p.name())));
            changes.push(EndpointChange {
                cluster: cluster_name(&name, ""),
                added: ips(&added),
                removed: ips(&removed),
            });
        }
        (writes, changes)
    }
}

/// What one service's load assignment must look like after a churn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointChange {
    pub cluster: String,
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

/// A Pod (no kubelet runs it: the writer patches [`pod_status`] in with
/// the address in its [`POD_IP_ANNOTATION`]).
pub fn pod(id: &PodId, size: Size) -> Value {
    let service = service_name(id.service);
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": id.name(),
            "namespace": NAMESPACE,
            "labels": {"app": service, "version": id.version()},
            "annotations": {POD_IP_ANNOTATION: id.ip(size).to_string()},
        },
        "spec": {
            "serviceAccountName": "default",
            "containers": [{
                "name": "app",
                "image": "example.invalid/app:1",
                "ports": [{"containerPort": TARGET_PORT}],
            }],
        },
    })
}

/// The status a kubelet would write for a running pod at `ip` (istiod maps
/// endpoints to pods by this address).
pub fn pod_status(ip: Ipv4Addr) -> Value {
    json!({
        "status": {
            "phase": "Running",
            "podIP": ip.to_string(),
            "podIPs": [{"ip": ip.to_string()}],
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    })
}

/// A ClusterIP Service on [`SERVICE_PORT`] (HTTP) selecting `app=name`.
pub fn service(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": name}},
        "spec": {
            "selector": {"app": name},
            "ports": [{
                "name": "http",
                "port": SERVICE_PORT,
                "targetPort": TARGET_PORT,
                "protocol": "TCP",
            }],
        },
    })
}

/// The EndpointSlice of service `name` holding `pods`, ready.
pub fn endpoint_slice(name: &str, pods: &[PodId], size: Size) -> Value {
    let endpoints: Vec<Value> = pods
        .iter()
        .map(|p| {
            json!({
                "addresses": [p.ip(size).to_string()],
                "conditions": {"ready": true},
                "targetRef": {"kind": "Pod", "name": p.name(), "namespace": NAMESPACE},
            })
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {
                "kubernetes.io/service-name": name,
                "endpointslice.kubernetes.io/managed-by": "weft-bench",
            },
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": TARGET_PORT, "protocol": "TCP"}],
        "endpoints": endpoints,
    })
}

/// A DestinationRule with subsets `v1` and `v2` (by the `version` label).
pub fn destination_rule(name: &str) -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "host": name,
            "subsets": [
                {"name": "v1", "labels": {"version": "v1"}},
                {"name": "v2", "labels": {"version": "v2"}},
            ],
        },
    })
}

/// A VirtualService sending `100 - v2_weight` to `v1` and `v2_weight` to
/// `v2`, with a timeout and retries.
pub fn virtual_service(name: &str, v2_weight: u32) -> Value {
    let destination = |subset: &str, weight: u32| json!({"destination": {"host": name, "subset": subset}, "weight": weight});
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "hosts": [name],
            "http": [{
                "route": [
                    destination("v1", 100 - v2_weight),
                    destination("v2", v2_weight),
                ],
                "timeout": "5s",
                "retries": {"attempts": 2, "perTryTimeout": "2s"},
            }],
        },
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SIZE: Size = Size {
        services: 20,
        endpoints: 5,
    };

    #[test]
    fn every_service_has_pods_a_service_a_slice_a_rule_and_a_route() {
        let world = World::new(SIZE);
        let kinds: Vec<String> = world
            .service_objects(3)
            .iter()
            .map(|o| o["kind"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            kinds,
            [
                "Pod",
                "Pod",
                "Pod",
                "Pod",
                "Pod",
                "Service",
                "EndpointSlice",
                "DestinationRule",
                "VirtualService"
            ]
        );
    }

    #[test]
    fn pod_addresses_are_distinct_across_services_and_generations() {
        let world = World::new(SIZE);
        let mut ips: Vec<Ipv4Addr> = (0..SIZE.services)
            .flat_map(|s| world.pods(s))
            .map(|p| p.ip(SIZE))
            .collect();
        let moved = PodId {
            service: 0,
            replica: 0,
            generation: 1,
        };
        ips.push(moved.ip(SIZE));
        let n = ips.len();
        ips.sort();
        ips.dedup();
        assert_eq!(ips.len(), n);
    }

    #[test]
    fn a_churn_replaces_a_tenth_of_the_pods_with_new_names_and_addresses() {
        let mut world = World::new(SIZE);
        let (writes, changes) = world.churn(0);
        let total = (SIZE.services * SIZE.endpoints) as usize;
        assert_eq!(writes.create.len(), total / 10);
        assert_eq!(writes.delete.len(), total / 10);
        assert_eq!(writes.replace.len(), changes.len());
        let added: usize = changes.iter().map(|c| c.added.len()).sum();
        assert_eq!(added, total / 10);
        for change in &changes {
            assert!(change.added.iter().all(|a| !change.removed.contains(a)));
        }
        // The next round churns other pods.
        let (_, again) = world.churn(1);
        assert!(
            again
                .iter()
                .all(|c| !changes.iter().any(|d| d.added == c.added))
        );
    }

    #[test]
    fn a_slice_after_churn_lists_the_new_pods_only() {
        let mut world = World::new(SIZE);
        let (writes, changes) = world.churn(0);
        let slice = &writes.replace[0];
        let addresses: Vec<&str> = slice["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["addresses"][0].as_str().unwrap())
            .collect();
        assert_eq!(addresses.len(), SIZE.endpoints as usize);
        for ip in &changes[0].added {
            assert!(addresses.contains(&ip.as_str()));
        }
        for ip in &changes[0].removed {
            assert!(!addresses.contains(&ip.as_str()));
        }
    }

    #[test]
    fn names_follow_istio() {
        assert_eq!(
            cluster_name("svc-1", "v2"),
            "outbound|80|v2|svc-1.bench.svc.cluster.local"
        );
    }
}
