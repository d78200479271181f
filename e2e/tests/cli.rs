//! The `weft` command line as a user meets it: `--help`, a bootstrap that
//! the real Envoy accepts, and clear errors for bad arguments.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use weft_e2e::{envoy_binary, weft_binary};

fn weft(args: &[&str]) -> std::process::Output {
    Command::new(weft_binary().unwrap())
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn help_lists_the_subcommands() {
    let out = weft(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in ["standalone", "bootstrap"] {
        assert!(
            help.contains(needle),
            "`weft --help` mentions {needle}: {help}"
        );
    }
    let out = weft(&["standalone", "--help"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("--config-dir"));
}

#[test]
fn the_bootstrap_passes_envoys_own_validation() {
    let out = weft(&[
        "bootstrap",
        "--node-id",
        "client-1",
        "--xds-address",
        "127.0.0.1:15010",
        "--outbound-port",
        "15080",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bootstrap.yaml");
    std::fs::write(&path, &out.stdout).unwrap();
    let validate = Command::new(envoy_binary().unwrap())
        .args(["--mode", "validate", "--disable-hot-restart", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        validate.status.success(),
        "envoy --mode validate rejected the bootstrap:\n{}\n{}",
        String::from_utf8_lossy(&validate.stdout),
        String::from_utf8_lossy(&validate.stderr)
    );
}

#[test]
fn bad_arguments_are_refused_with_a_reason() {
    let out = weft(&["bootstrap", "--node-id", "x", "--xds-address", "no-port"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--xds-address \"no-port\" must be HOST:PORT")
    );
    let missing = tempfile::tempdir().unwrap().path().join("absent");
    let out = weft(&["standalone", "--config-dir", missing.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a directory"));
}
