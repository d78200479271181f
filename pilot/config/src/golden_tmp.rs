//! TEMPORARY golden harness (removed before finishing).
use crate::{ConfigStore, parse_documents};

fn dump(out: &mut String, label: &str, store: &mut ConfigStore, source: &str, text: &str) {
    use std::fmt::Write;
    let applied = store.apply(parse_documents(source, text));
    let _ = writeln!(out, "== {label}");
    for e in &applied.errors {
        let _ = writeln!(out, "E {:?} {e}", e.error.reason);
    }
    let _ = writeln!(out, "kept {:?} changed {}", applied.kept, applied.changed);
    let _ = writeln!(out, "{:#?}", applied.snapshot);
}

#[test]
fn golden() {
    let Ok(target) = std::env::var("GOLDEN_OUT") else { return };
    let mut files = Vec::new();
    for dir in ["/tmp/weft_golden/yamls", "/tmp/weft_golden/extra"] {
        let mut names: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        names.sort();
        files.extend(names);
    }
    let texts: Vec<(String, String)> = files
        .iter()
        .map(|p| (p.display().to_string(), std::fs::read_to_string(p).unwrap()))
        .collect();
    let mut out = String::new();
    for (name, text) in &texts {
        dump(&mut out, &format!("alone {name}"), &mut ConfigStore::default(), "mesh.yaml", text);
    }
    for w in texts.windows(2) {
        let mut store = ConfigStore::default();
        dump(&mut out, &format!("pair1 {}", w[0].0), &mut store, "mesh.yaml", &w[0].1);
        dump(&mut out, &format!("pair2 {}", w[1].0), &mut store, "mesh.yaml", &w[1].1);
        dump(&mut out, "pair3 broken", &mut store, "mesh.yaml", "kind: [unclosed\n");
        dump(&mut out, &format!("pair4 {}", w[0].0), &mut store, "mesh.yaml", &w[0].1);
    }
    let mut store = ConfigStore::default();
    for (name, text) in &texts {
        dump(&mut out, &format!("seq {name}"), &mut store, "mesh.yaml", text);
    }
    let extra = "/tmp/weft_golden/extra";
    let read = |n: &str| std::fs::read_to_string(format!("{extra}/{n}")).unwrap();
    for (a, b) in [("store-mix.yaml", "store-mix2.yaml"), ("store-mix.yaml", "store-mix3.yaml"), ("store-mix3.yaml", "store-mix.yaml"), ("store-mix2.yaml", "store-mix.yaml"), ("store-mix.yaml", "vs-bad.yaml"), ("store-mix.yaml", "sc-bad.yaml")] {
        let mut store = ConfigStore::default();
        dump(&mut out, a, &mut store, "mesh.yaml", &read(a));
        let joined = format!("{}\n---\n{}", read(b), read(a));
        dump(&mut out, b, &mut store, "mesh.yaml", &joined);
        dump(&mut out, b, &mut store, "mesh.yaml", &read(b));
        dump(&mut out, "broken", &mut store, "mesh.yaml", "kind: [unclosed\n");
    }
    std::fs::write(target, out).unwrap();
}
