//! `make demo` keeps working: the `weft-demo` binary it runs (bookinfo
//! with a traffic split and a live weight change, then two sidecars with
//! mTLS, an AuthorizationPolicy, README's JWT example, a Quota and the
//! request metrics) exits 0 and prints each part.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use weft_e2e::output_text;
use weft_e2e::tools::workspace_binary;

#[test]
fn make_demo_runs_every_part_and_succeeds() {
    let demo = workspace_binary("weft-demo", "cargo build -p weft-e2e --bin weft-demo").unwrap();
    let output = Command::new(demo).output().unwrap();
    let text = output_text(&output);
    assert!(output.status.success(), "{text}");
    for part in [
        "peer identity the server saw: spiffe://",
        "sleep-v3 -> reviews: 403",
        "root (groups: admins)  -> 200",
        "an expired token       -> 401",
        "x-jwt-sub at reviews (outputClaimToHeaders): root",
        "429",
        "istio_requests_total",
        "weft-demo: OK",
    ] {
        assert!(text.contains(part), "no {part:?} in:\n{text}");
    }
}
