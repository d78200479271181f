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

#[test]
fn reads_yaml_files_in_name_order_and_reports_unreadable_ones() {
    let dir = tempfile::tempdir().unwrap();
    let se = |name: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}}}\nspec: {{hosts: [{name}.example.com], resolution: DNS, ports: [{{number: 80, name: http}}]}}\n"
        )
    };
    std::fs::write(dir.path().join("b.yaml"), se("b")).unwrap();
    std::fs::write(dir.path().join("a.yml"), se("a")).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not config").unwrap();
    let names: Vec<String> = read_config_dir(dir.path())
        .iter()
        .map(|i| match i {
            Input::Resource { id, .. } => id.name.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(names, ["a", "b"]);
    let missing = read_config_dir(&dir.path().join("missing"));
    assert!(
        matches!(&missing[0], Input::Broken { error, .. } if error.message.starts_with("cannot list"))
    );
}

#[tokio::test]
async fn the_watcher_coalesces_a_burst_of_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut watcher = DirWatcher::new(
        dir.path(),
        Duration::from_millis(100),
        Duration::from_secs(10),
    )
    .unwrap();
    for i in 0..5 {
        std::fs::write(dir.path().join(format!("{i}.yaml")), "x: 1").unwrap();
    }
    tokio::time::timeout(Duration::from_secs(5), watcher.changed())
        .await
        .unwrap()
        .unwrap();
    let again = tokio::time::timeout(Duration::from_millis(300), watcher.changed()).await;
    assert!(again.is_err(), "one burst, one change");
}
