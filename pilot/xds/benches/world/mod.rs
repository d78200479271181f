//! The mesh the pilot benchmarks translate: services with endpoints in two
//! versions, a DestinationRule and a VirtualService each.

use std::sync::Arc;

use weft_config::ConfigStore;
use weft_config::parse_documents;
use weft_model::MeshSnapshot;
use weft_translate::ProxyView;

/// One service: a ServiceEntry with `endpoints` endpoints in two versions,
/// a DestinationRule with two subsets and a VirtualService splitting
/// between them by `weight`.
pub fn service(i: usize, endpoints: usize, weight: u32) -> String {
    let eps: String = (0..endpoints)
        .map(|e| {
            format!(
                "  - {{address: 10.{}.{}.{}, labels: {{version: v{}}}}}\n",
                i / 250,
                i % 250,
                e + 1,
                e % 2 + 1
            )
        })
        .collect();
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: svc{i}, namespace: ns{ns}}}
spec:
  hosts: [svc{i}.ns{ns}.svc.cluster.local]
  resolution: STATIC
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  endpoints:
{eps}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: svc{i}, namespace: ns{ns}}}
spec:
  host: svc{i}
  subsets: [{{name: v1, labels: {{version: v1}}}}, {{name: v2, labels: {{version: v2}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: svc{i}, namespace: ns{ns}}}
spec:
  hosts: [svc{i}]
  http:
  - match: [{{headers: {{end-user: {{exact: tester}}}}}}]
    route: [{{destination: {{host: svc{i}, subset: v2}}}}]
  - route:
    - {{destination: {{host: svc{i}, subset: v1}}, weight: {weight}}}
    - {{destination: {{host: svc{i}, subset: v2}}, weight: {}}}
    timeout: 5s
    retries: {{attempts: 2, retryOn: 5xx}}
",
        100 - weight,
        ns = i % 10
    )
}

pub fn mesh(services: usize, endpoints: usize, edit: impl Fn(usize) -> Option<String>) -> String {
    (0..services)
        .map(|i| edit(i).unwrap_or_else(|| service(i, endpoints, 90)))
        .collect::<Vec<_>>()
        .join("---\n")
}

pub fn snapshot(store: &mut ConfigStore, yaml: &str) -> Arc<MeshSnapshot> {
    let applied = store.apply(parse_documents("bench.yaml", yaml));
    assert!(applied.errors.is_empty(), "{:?}", applied.errors.first());
    applied.snapshot
}

pub fn view(ns: usize, app: usize) -> ProxyView {
    ProxyView {
        namespace: format!("ns{ns}"),
        labels: [("app".to_string(), format!("app{app}"))].into(),
        router_address: Some(("127.0.0.1".to_string(), 15080)),
        ..Default::default()
    }
}
