//! PeerAuthentication, Sidecar `ingress` and DestinationRule ISTIO_MUTUAL.

use super::*;
use weft_model::{IngressListener, MtlsMode, Protocol, TlsMode};

#[test]
fn peer_authentications_convert_at_every_scope() {
    let snapshot = mk_snapshot(
        "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: default, namespace: prod}
spec: {}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: web, namespace: prod}
spec:
  selector: {matchLabels: {app: web}}
  mtls: {mode: PERMISSIVE}
  portLevelMtls:
    8080: {mode: DISABLE}
    '9090': {mode: STRICT}
",
    );
    let pas = &snapshot.peer_authentications;
    assert_eq!(pas.len(), 3);
    let ids: Vec<String> = pas.iter().map(|p| p.id.to_string()).collect();
    assert_eq!(
        ids,
        [
            "PeerAuthentication istio-system/default",
            "PeerAuthentication prod/default",
            "PeerAuthentication prod/web"
        ]
    );
    assert_eq!(pas[0].mode, MtlsMode::Strict);
    assert_eq!(pas[0].selector, None);
    assert_eq!(pas[1].mode, MtlsMode::Unset);
    assert_eq!(pas[2].mode, MtlsMode::Permissive);
    assert_eq!(
        pas[2].selector.as_ref().map(|s| s["app"].as_str()),
        Some("web")
    );
    assert_eq!(pas[2].port_modes[&8080], MtlsMode::Disable);
    assert_eq!(pas[2].port_modes[&9090], MtlsMode::Strict);
}

#[test]
fn bad_peer_authentications_are_rejected_naming_the_field() {
    let errors = errors_of(
        "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: a, namespace: prod}
spec:
  portLevelMtls: {8080: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: b, namespace: prod}
spec:
  selector: {matchLabels: {app: web}}
  portLevelMtls: {http: {mode: STRICT}, '0': {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: c, namespace: prod}
spec: {mtls: {mode: SOMETIMES}}
---
apiVersion: networking.istio.io/v1
kind: PeerAuthentication
metadata: {name: d, namespace: prod}
spec: {}
",
    );
    let has = |needle: &str| errors.iter().any(|e| e.contains(needle));
    assert!(
        has("prod/a: spec.portLevelMtls: portLevelMtls needs a selector"),
        "{errors:#?}"
    );
    assert!(
        has("prod/b: spec.portLevelMtls[http]: \"http\" is not a port number"),
        "{errors:#?}"
    );
    assert!(
        has("prod/b: spec.portLevelMtls[0]: 0 is not a port number"),
        "{errors:#?}"
    );
    assert!(
        has("spec.mtls.mode: unknown variant `SOMETIMES`"),
        "{errors:#?}"
    );
    assert!(
        has("apiVersion: networking.istio.io/v1 is not served by Weft for this kind"),
        "{errors:#?}"
    );
}

#[test]
fn sidecar_ingress_listeners_convert() {
    let snapshot = mk_snapshot(
        "apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: web, namespace: prod}
spec:
  workloadSelector: {labels: {app: web}}
  ingress:
  - port: {number: 9080, protocol: HTTP, name: http}
    defaultEndpoint: 127.0.0.1:8080
  - port: {number: 9443, protocol: TCP, name: tcp}
    bind: 127.0.0.2
    captureMode: NONE
    defaultEndpoint: 0.0.0.0:8443
",
    );
    let sidecar = &snapshot.sidecars[0];
    assert_eq!(
        sidecar.ingress,
        [
            IngressListener {
                port: 9080,
                protocol: Protocol::Http,
                name: "http".to_string(),
                bind: "0.0.0.0".to_string(),
                endpoint: ("127.0.0.1".to_string(), 8080),
            },
            IngressListener {
                port: 9443,
                protocol: Protocol::Tcp,
                name: "tcp".to_string(),
                bind: "127.0.0.2".to_string(),
                endpoint: ("127.0.0.1".to_string(), 8443),
            },
        ]
    );
    // No egress listener: every service, as in Istio.
    assert!(sidecar.allows("default", "reviews.default.svc.cluster.local"));
}

#[test]
fn bad_sidecar_ingress_listeners_are_rejected_naming_the_field() {
    let errors = errors_of(
        "apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: web, namespace: prod}
spec:
  ingress:
  - port: {number: 9080, protocol: HTTP, name: http}
  - port: {number: 9081, protocol: MONGO, name: m}
    defaultEndpoint: 127.0.0.1:27017
  - port: {number: 9082, protocol: HTTP, name: h}
    defaultEndpoint: unix:///var/run/app.sock
  - port: {number: 9083, protocol: HTTP, name: h}
    defaultEndpoint: localhost
    bind: here
  - port: {number: 9084, protocol: HTTP, name: h}
    defaultEndpoint: 127.0.0.1:1
    tls: {mode: SIMPLE}
  - defaultEndpoint: 127.0.0.1:1
",
    );
    let has = |needle: &str| errors.iter().any(|e| e.contains(needle));
    assert!(
        has("spec.ingress[0].defaultEndpoint: a defaultEndpoint"),
        "{errors:#?}"
    );
    assert!(
        has("spec.ingress[1].port.protocol: \"MONGO\" is not supported"),
        "{errors:#?}"
    );
    assert!(
        has("spec.ingress[2].defaultEndpoint: not supported by Weft yet"),
        "{errors:#?}"
    );
    assert!(
        has("spec.ingress[3].defaultEndpoint: \"localhost\" is not IP:PORT"),
        "{errors:#?}"
    );
    assert!(
        has("spec.ingress[3].bind: \"here\" is not an IP address"),
        "{errors:#?}"
    );
    assert!(
        has("spec.ingress[4].tls: not supported by Weft yet"),
        "{errors:#?}"
    );
    assert!(
        has("spec.ingress[5].port: the port is required"),
        "{errors:#?}"
    );
}

#[test]
fn istio_mutual_converts() {
    let snapshot = mk_snapshot(&docs(&[
        mk_service_entry("reviews", &["v1"]),
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL, sni: reviews.example}
"
        .to_string(),
    ]));
    let rule = &snapshot.destination_rules["reviews.default.svc.cluster.local"];
    let tls = rule
        .traffic_policy
        .settings
        .tls
        .as_ref()
        .map(|t| (t.mode, t.sni.clone()));
    assert_eq!(
        tls,
        Some((TlsMode::IstioMutual, Some("reviews.example".to_string())))
    );
}
