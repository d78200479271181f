use std::path::PathBuf;

use weft_config::validate_inputs;

use super::*;

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

#[tokio::test]
async fn a_file_watcher_sees_its_file_only_including_a_save_by_rename() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mesh.yaml");
    std::fs::write(&file, "a: 1").unwrap();
    let mut watcher =
        DirWatcher::for_file(&file, Duration::from_millis(50), Duration::from_secs(10)).unwrap();
    std::fs::write(dir.path().join("other.yaml"), "x: 1").unwrap();
    let other = tokio::time::timeout(Duration::from_millis(400), watcher.changed()).await;
    assert!(other.is_err(), "another file of the directory is no change");
    std::fs::write(&file, "a: 2").unwrap();
    tokio::time::timeout(Duration::from_secs(5), watcher.changed())
        .await
        .unwrap()
        .unwrap();
    let temp = dir.path().join(".mesh.yaml.tmp");
    std::fs::write(&temp, "a: 3").unwrap();
    std::fs::rename(&temp, &file).unwrap();
    tokio::time::timeout(Duration::from_secs(5), watcher.changed())
        .await
        .unwrap()
        .unwrap();
}

const SERVICE: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: reviews
spec:
  hosts: [reviews.default.svc.cluster.local]
  resolution: STATIC
  ports:
  - number: 9080
    name: http
    protocol: HTTP
  endpoints:
  - address: 10.0.0.1
";

fn mk_file(dir: &tempfile::TempDir, name: &str, yaml: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, yaml).unwrap();
    path
}

#[test]
fn files_and_directories_are_checked_together() {
    let dir = tempfile::tempdir().unwrap();
    mk_file(&dir, "se.yaml", SERVICE);
    let other = tempfile::tempdir().unwrap();
    let bad = mk_file(
        &other,
        "vs.yaml",
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination:
        host: reviews
        subset: v9
",
    );
    let clean = validate_inputs(read_inputs(&[dir.path().to_path_buf()]));
    assert!(clean.is_ok(), "{:?}", clean.errors);
    assert_eq!(clean.resources, 1);

    let both = validate_inputs(read_inputs(&[dir.path().to_path_buf(), bad.clone()]));
    assert_eq!(both.resources, 2);
    let lines: Vec<String> = both.errors.iter().map(ToString::to_string).collect();
    assert!(
            lines.iter().any(|l| l.starts_with(&format!(
                "{}: document 0: VirtualService default/reviews: spec.http[0].route[0].destination.subset",
                bad.display()
            ))),
            "{lines:?}"
        );
}

#[test]
fn a_missing_file_is_an_error() {
    let missing = tempfile::tempdir().unwrap().path().join("absent.yaml");
    let validation = validate_inputs(read_inputs(&[missing]));
    assert!(!validation.is_ok());
    assert!(
        validation.errors[0]
            .to_string()
            .contains("cannot read the file")
    );
}
