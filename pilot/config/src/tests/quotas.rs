//! Quota conversion and whole-mesh checks.

use super::*;

#[test]
fn bad_quotas_are_rejected_naming_the_field() {
    let applied = ConfigStore::default().apply(mk_inputs(
        "apiVersion: policy.weft.dev/v1alpha1
kind: Quota
metadata: {name: bad, namespace: prod}
spec:
  destination: {host: ratings}
  maxAmount: 5
  validDuration: 500ms
  failureMode: Closed
  overrides:
  - match: {sourceNamespace: prod}
    maxAmount: 1
    validDuration: 1s
  - match: {sourceLabels: {version: v3}}
    maxAmount: 0
    validDuration: 5s
  - match: {}
    maxAmount: 1
    validDuration: 1s
---
apiVersion: policy.weft.dev/v1alpha1
kind: Quota
metadata: {name: nowhere, namespace: prod}
spec:
  destination: {host: ratings}
  maxAmount: 5
  validDuration: 1s
",
    ));
    let fields = field_errors(&applied);
    let has = |want: &str| fields.iter().any(|f| f.starts_with(want));
    assert!(
        has("bad spec.validDuration: 500ms must be >= 1s"),
        "{fields:#?}"
    );
    assert!(
        has("bad spec.overrides[1].maxAmount: must be > 0"),
        "{fields:#?}"
    );
    assert!(
        has("bad spec.overrides[2].match: name at least one"),
        "{fields:#?}"
    );
    assert!(has("bad spec.failureMode: only applies"), "{fields:#?}");
    assert!(
        has("nowhere spec.destination.host: no service ratings.prod.svc.cluster.local"),
        "{fields:#?}"
    );
    assert!(applied.snapshot.quotas.is_empty());
}
