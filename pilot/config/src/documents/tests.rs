use weft_crds::Kind;

use super::*;

#[test]
fn documents_are_numbered_and_empty_ones_skipped() {
    let text = "---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a}
spec: {hosts: [a.example.com], resolution: DNS, ports: [{number: 80, name: http}]}
---
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: b, namespace: prod}
spec: {hosts: [b], http: [{route: [{destination: {host: b}, weight: 7}]}]}
";
    let inputs = parse_documents("dir/mesh.yaml", text);
    assert_eq!(inputs.len(), 2);
    let Input::Resource { origin, id, result } = &inputs[1] else {
        panic!("{inputs:#?}")
    };
    assert_eq!(origin.to_string(), "dir/mesh.yaml: document 2");
    assert_eq!(id.to_string(), "VirtualService prod/b");
    let errors = result.as_ref().unwrap_err();
    assert_eq!(
        errors[0].to_string(),
        "spec.http[0].route: destination weights sum to 7; they must sum to 100"
    );
}

#[test]
fn documents_that_name_no_resource_are_broken() {
    let inputs = parse_documents(
        "m.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
    );
    assert!(
        matches!(&inputs[0], Input::Broken { error, .. } if error.message.contains("apiVersion")),
        "{inputs:#?}"
    );
    let inputs = parse_documents(
        "m.yaml",
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nspec: {}\n",
    );
    assert!(
        matches!(&inputs[0], Input::Broken { error, .. } if error.message.contains("metadata")),
        "{inputs:#?}"
    );
}

/// A document of any kind whose spec does not parse is reported with its
/// kind, namespace and name, so that its last good version stands in and
/// `weft validate` names it.
#[test]
fn a_malformed_document_of_every_kind_is_named() {
    for kind in Kind::ALL {
        let api_version = format!("{}/{}", kind.group(), kind.served_versions()[0]);
        let text = format!(
            "apiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: broken, namespace: prod}}\nspec: 42\n"
        );
        let inputs = parse_documents("m.yaml", &text);
        let [Input::Resource { id, result, .. }] = inputs.as_slice() else {
            panic!("{kind}: {inputs:#?}")
        };
        assert_eq!(id.to_string(), format!("{kind} prod/broken"));
        let errors = result.as_ref().expect_err("a malformed spec is an error");
        assert_eq!(errors[0].field, "spec", "{kind}: {errors:#?}");
        assert_eq!(errors[0].reason, ErrorReason::Invalid, "{kind}");
    }
}
