//! Retries and timeouts from VirtualServices, enforced by a real Envoy
//! against in-process upstreams that fail or stall on command.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use weft_e2e::yaml::{fqdn, mk_service, multi_doc};
use weft_e2e::{APPLY_TIMEOUT, Mesh, start_upstreams};

/// `reviews` retries 5xx twice; `ratings` has retries turned off.
const RETRY_VS: &str = "\
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: reviews
  namespace: default
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v1
    retries:
      attempts: 2
      perTryTimeout: 2s
      retryOn: 5xx
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: ratings
  namespace: default
spec:
  hosts:
  - ratings
  http:
  - route:
    - destination:
        host: ratings
        subset: v1
    retries:
      attempts: 0
";

const TIMEOUT_VS: &str = "\
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: reviews
  namespace: default
spec:
  hosts:
  - reviews.default.svc.cluster.local
  http:
  - route:
    - destination:
        host: reviews.default.svc.cluster.local
        subset: v1
    timeout: 0.5s
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_follow_the_virtual_service() -> anyhow::Result<()> {
    let reviews = start_upstreams(4, &["v1"]).await?;
    let ratings = start_upstreams(5, &["v1"]).await?;
    let mesh = Mesh::builder()
        .file(
            "services.yaml",
            multi_doc(&[
                mk_service("reviews", "default", &reviews),
                mk_service("ratings", "default", &ratings),
            ]),
        )
        .file("vs.yaml", RETRY_VS)
        .start()
        .await?;
    let (reviews_host, ratings_host) = (fqdn("reviews", "default"), fqdn("ratings", "default"));
    mesh.wait_for_body(&reviews_host, "/", &[], "v1", APPLY_TIMEOUT)
        .await?;
    mesh.wait_for_body(&ratings_host, "/", &[], "v1", APPLY_TIMEOUT)
        .await?;

    // attempts: 2, retryOn: 5xx -- the first 503 is retried.
    let up = &reviews[0];
    up.reset_requests();
    up.fail_next(1);
    let (status, body) = mesh.get(&reviews_host, "/", &[]).await?;
    assert_eq!((status, body.as_str()), (200, "v1"), "the retry answered");
    assert_eq!(up.requests(), 2, "one try and one retry");

    // Three 503s exhaust one try plus two retries.
    up.reset_requests();
    up.fail_next(3);
    let (status, _) = mesh.get(&reviews_host, "/", &[]).await?;
    assert_eq!(status, 503, "retries are exhausted");
    assert_eq!(up.requests(), 3, "attempts: 2 means two retries");

    // attempts: 0 -- no retry, the client sees the 503.
    let up = &ratings[0];
    up.reset_requests();
    up.fail_next(1);
    let (status, _) = mesh.get(&ratings_host, "/", &[]).await?;
    assert_eq!(status, 503, "no retry with attempts: 0");
    assert_eq!(up.requests(), 1, "exactly one try");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_answers_504_before_a_slow_upstream() -> anyhow::Result<()> {
    let reviews = start_upstreams(6, &["v1"]).await?;
    let mesh = Mesh::builder()
        .file("reviews.yaml", mk_service("reviews", "default", &reviews))
        .file("reviews-vs.yaml", TIMEOUT_VS)
        .start()
        .await?;
    let host = fqdn("reviews", "default");
    mesh.wait_for_body(&host, "/", &[], "v1", APPLY_TIMEOUT)
        .await?;

    reviews[0].set_delay(Duration::from_secs(2));
    let start = Instant::now();
    let (status, _) = mesh.get(&host, "/", &[]).await?;
    let elapsed = start.elapsed();
    assert_eq!(status, 504, "the route timeout fired");
    assert!(
        elapsed < Duration::from_millis(1500),
        "answered after {elapsed:?}, want well under the upstream's 2 s"
    );
    assert!(
        elapsed >= Duration::from_millis(450),
        "answered after {elapsed:?}, before the 0.5 s timeout could fire"
    );
    Ok(())
}
