use weft_envoy_api::pb::google::rpc::Status;

use super::*;
use weft_config::testing::{docs, mk_destination_rule, mk_service_entry, mk_snapshot};
use weft_translate::ProxyView;

fn resources(yaml: &str) -> ViewResources {
    ViewResources::build(&mk_snapshot(yaml), &ProxyView::default())
}

fn mk_request(
    type_url: TypeUrl,
    subscribe: &[&str],
    reply_to: Option<&DeltaDiscoveryResponse>,
) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: type_url.as_str().into(),
        resource_names_subscribe: subscribe.iter().map(|n| n.to_string()).collect(),
        response_nonce: reply_to.map(|r| r.nonce.clone()).unwrap_or_default(),
        ..Default::default()
    }
}

fn names(response: &DeltaDiscoveryResponse) -> Vec<&str> {
    response.resources.iter().map(|r| r.name.as_str()).collect()
}

const REVIEWS: &str = "outbound|9080||reviews.default.svc.cluster.local";
const RATINGS: &str = "outbound|9080||ratings.default.svc.cluster.local";

#[test]
fn a_wildcard_subscription_gets_everything_then_only_changes() {
    let one = resources(&mk_service_entry("reviews", &["v1"]));
    let mut conn = DeltaConnection::new("p1");
    let (_, first) = conn.on_request(&mk_request(TypeUrl::Cluster, &[], None), &one);
    assert_eq!(names(&first[0]), [REVIEWS]);
    let (outcome, none) =
        conn.on_request(&mk_request(TypeUrl::Cluster, &[], Some(&first[0])), &one);
    assert!(matches!(outcome, RequestOutcome::Ack { .. }));
    assert!(none.is_empty());

    let two = resources(&docs(&[
        mk_service_entry("reviews", &["v1"]),
        mk_service_entry("ratings", &["v1"]),
    ]));
    let pushed = conn.on_resources(&two);
    assert_eq!(pushed.len(), 1);
    assert_eq!(names(&pushed[0]), [RATINGS], "only the new cluster is sent");
    assert!(pushed[0].removed_resources.is_empty());

    conn.on_request(&mk_request(TypeUrl::Cluster, &[], Some(&pushed[0])), &two);
    let back = conn.on_resources(&one);
    assert!(back[0].resources.is_empty());
    assert_eq!(back[0].removed_resources, [RATINGS]);
}

#[test]
fn named_subscriptions_get_what_they_name_and_hear_of_missing_ones() {
    let r = resources(&mk_service_entry("reviews", &["v1"]));
    let mut conn = DeltaConnection::new("p1");
    let (_, out) = conn.on_request(
        &mk_request(
            TypeUrl::ClusterLoadAssignment,
            &[REVIEWS, "outbound|1||missing"],
            None,
        ),
        &r,
    );
    assert_eq!(names(&out[0]), [REVIEWS]);
    assert_eq!(out[0].removed_resources, ["outbound|1||missing"]);
}

#[test]
fn endpoint_churn_sends_only_the_changed_assignment() {
    let before = resources(&docs(&[
        mk_service_entry("reviews", &["v1"]),
        mk_service_entry("ratings", &["v1"]),
    ]));
    let mut conn = DeltaConnection::new("p1");
    let (_, cds) = conn.on_request(&mk_request(TypeUrl::Cluster, &[], None), &before);
    conn.on_request(&mk_request(TypeUrl::Cluster, &[], Some(&cds[0])), &before);
    let (_, eds) = conn.on_request(
        &mk_request(TypeUrl::ClusterLoadAssignment, &[REVIEWS, RATINGS], None),
        &before,
    );
    conn.on_request(
        &mk_request(TypeUrl::ClusterLoadAssignment, &[], Some(&eds[0])),
        &before,
    );

    let after = resources(&docs(&[
        mk_service_entry("reviews", &["v1", "v2"]),
        mk_service_entry("ratings", &["v1"]),
    ]));
    let pushed = conn.on_resources(&after);
    assert_eq!(pushed.len(), 1);
    assert_eq!(pushed[0].type_url, TypeUrl::ClusterLoadAssignment.as_str());
    assert_eq!(names(&pushed[0]), [REVIEWS]);
}

#[test]
fn a_nack_restores_what_the_proxy_holds() {
    let one = resources(&mk_service_entry("reviews", &["v1"]));
    let mut conn = DeltaConnection::new("p1");
    let (_, first) = conn.on_request(&mk_request(TypeUrl::Cluster, &[], None), &one);
    conn.on_request(&mk_request(TypeUrl::Cluster, &[], Some(&first[0])), &one);
    let held = conn.known(TypeUrl::Cluster);

    let two = resources(&docs(&[
        mk_service_entry("reviews", &["v1"]),
        mk_destination_rule("reviews", &["v1"]),
    ]));
    let pushed = conn.on_resources(&two);
    let mut nack = mk_request(TypeUrl::Cluster, &[], Some(&pushed[0]));
    nack.error_detail = Some(Status {
        code: 3,
        message: "rejected".into(),
        details: vec![],
    });
    let (outcome, out) = conn.on_request(&nack, &two);
    assert!(matches!(outcome, RequestOutcome::Nack { ref message, .. } if message == "rejected"));
    assert!(out.is_empty());
    assert_eq!(conn.known(TypeUrl::Cluster), held);
}

#[test]
fn a_reconnecting_proxy_is_sent_only_what_it_lacks() {
    let r = resources(&docs(&[
        mk_service_entry("reviews", &["v1"]),
        mk_service_entry("ratings", &["v1"]),
    ]));
    let mut first = DeltaConnection::new("p1");
    let (_, out) = first.on_request(&mk_request(TypeUrl::Cluster, &[], None), &r);
    let reviews = out[0].resources.iter().find(|x| x.name == REVIEWS).unwrap();

    let mut again = DeltaConnection::new("p1");
    let mut request = mk_request(TypeUrl::Cluster, &[], None);
    request.initial_resource_versions = [(REVIEWS.to_string(), reviews.version.clone())].into();
    let (_, out) = again.on_request(&request, &r);
    assert_eq!(names(&out[0]), [RATINGS]);
}
