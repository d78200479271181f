//! Every HTTP feature of VirtualService, delegation and merging.

use super::*;

fn vs_errors(http: &str) -> Vec<String> {
    errors_of(&reviews_mesh(http))
}

fn assert_error(errors: &[String], needle: &str) {
    assert!(
        errors.iter().any(|e| e.contains(needle)),
        "no error containing {needle:?} in {errors:#?}"
    );
}

#[test]
fn every_http_feature_converts_to_the_model() {
    use std::time::Duration;
    use weft_model::{AbortError, Body, RedirectPort};
    let snapshot = mk_snapshot(&reviews_mesh(
        "  - name: all
    match:
    - name: m
      statPrefix: stats
      scheme: {exact: https}
      authority: {prefix: reviews}
      queryParams: {q: {regex: '[0-9]+'}, flag: {}}
      withoutHeaders: {X-Block: {}}
      sourceLabels: {app: web}
      sourceNamespace: prod
      gateways: [mesh, ingress, ./other, istio-system/gw]
    route:
    - destination: {host: reviews, subset: v1}
      weight: 60
      headers: {request: {set: {X-Dest: one}}}
    - destination: {host: reviews, subset: v2}
      weight: 40
    rewrite: {uri: /v2, authority: backend}
    retries: {attempts: 2, retryRemoteLocalities: true, retryIgnorePreviousHosts: false, backoff: 25ms}
    fault:
      delay: {fixedDelay: 2s, percentage: {value: 12.5}}
      abort: {grpcStatus: UNAVAILABLE}
    mirror: {host: reviews, subset: v2}
    mirrorPercentage: {value: 10}
    corsPolicy:
      allowOrigin: [https://old.example]
      allowOrigins: [{prefix: 'https://'}]
      allowMethods: [GET]
      maxAge: 1m
      allowCredentials: false
      unmatchedPreflights: IGNORE
    headers:
      request: {add: {X-A: b}, remove: [X-Gone]}
      response: {set: {X-R: s}}
  - match: [{uri: {exact: /r}}]
    redirect: {uri: /new, authority: example.org, derivePort: FROM_REQUEST_PORT, scheme: https, redirectCode: 307}
  - match: [{uri: {exact: /d}}]
    directResponse: {status: 404, body: {bytes: aGk=}}
",
    ));
    let rules = &snapshot.virtual_services[0].http;
    let all = &rules[0];
    let m = &all.matches[0];
    assert_eq!(m.name.as_deref(), Some("m"));
    assert_eq!(m.stat_prefix.as_deref(), Some("stats"));
    assert_eq!(m.scheme, Some(StringMatch::Exact("https".into())));
    assert_eq!(m.authority, Some(StringMatch::Prefix("reviews".into())));
    assert_eq!(
        m.query_params,
        [
            ("flag".to_string(), StringMatch::Present),
            ("q".to_string(), StringMatch::Regex("[0-9]+".into()))
        ]
    );
    assert_eq!(
        m.without_headers,
        [("x-block".to_string(), StringMatch::Present)]
    );
    assert_eq!(m.source_labels.get("app").map(String::as_str), Some("web"));
    assert_eq!(m.source_namespace.as_deref(), Some("prod"));
    assert_eq!(
        m.gateways,
        [
            "mesh",
            "default/ingress",
            "default/other",
            "istio-system/gw"
        ],
        "gateway names are qualified as Istio does"
    );
    assert_eq!(
        all.destinations[0]
            .headers
            .request
            .set
            .get("x-dest")
            .map(String::as_str),
        Some("one")
    );
    let rewrite = all.rewrite.as_ref().unwrap();
    assert_eq!(
        (rewrite.uri.as_deref(), rewrite.authority.as_deref()),
        (Some("/v2"), Some("backend"))
    );
    let retries = all.retries.as_ref().unwrap();
    assert!(retries.retry_remote_localities);
    assert!(!retries.ignore_previous_hosts);
    assert_eq!(retries.backoff, Some(Duration::from_millis(25)));
    let fault = all.fault.as_ref().unwrap();
    let delay = fault.delay.as_ref().unwrap();
    assert_eq!(
        (delay.fixed_delay, delay.percentage),
        (Duration::from_secs(2), 12.5)
    );
    let abort = fault.abort.as_ref().unwrap();
    assert_eq!(
        (abort.error, abort.percentage),
        (AbortError::GrpcStatus(14), 100.0)
    );
    assert_eq!(all.mirrors.len(), 1);
    assert_eq!(all.mirrors[0].percentage, 10.0);
    assert_eq!(all.mirrors[0].destination.subset.as_deref(), Some("v2"));
    let cors = all.cors.as_ref().unwrap();
    assert_eq!(
        cors.allow_origins,
        [
            StringMatch::Exact("https://old.example".into()),
            StringMatch::Prefix("https://".into())
        ]
    );
    assert_eq!(cors.max_age, Some(Duration::from_secs(60)));
    assert_eq!(cors.allow_credentials, Some(false));
    assert!(!cors.forward_unmatched_preflights);
    assert_eq!(
        all.headers.request.add.get("x-a").map(String::as_str),
        Some("b")
    );
    assert_eq!(all.headers.request.remove, ["x-gone"]);
    assert_eq!(
        all.headers.response.set.get("x-r").map(String::as_str),
        Some("s")
    );

    let redirect = rules[1].redirect.as_ref().unwrap();
    assert_eq!(redirect.code, 307);
    assert_eq!(redirect.port, RedirectPort::FromRequestPort);
    assert_eq!(redirect.scheme.as_deref(), Some("https"));
    assert!(rules[1].destinations.is_empty());
    let direct = rules[2].direct_response.as_ref().unwrap();
    assert_eq!(direct.status, 404);
    assert_eq!(direct.body, Some(Body::Bytes(b"hi".to_vec())));
}

#[test]
fn bad_http_features_name_their_fields() {
    let errors = vs_errors(
        "  - route: [{destination: {host: reviews}}]
    redirect: {uri: /x}
  - redirect: {uri: /x, redirectCode: 200, port: 1, derivePort: FROM_REQUEST_PORT}
  - directResponse: {status: 99, body: {bytes: '!!'}}
  - route: [{destination: {host: reviews}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 150}}, delay: {percentage: {value: 5}}}
  - route: [{destination: {host: reviews}}]
    fault: {abort: {grpcStatus: SOMETIMES}}
  - route: [{destination: {host: reviews}}]
    rewrite: {uri: /a, uriRegexRewrite: {match: '(', rewrite: x}}
  - route: [{destination: {host: reviews}}]
    mirror: {host: reviews}
    mirrors: [{destination: {host: reviews}}]
    headers: {request: {set: {host: other, x-bad: \"a\\nb\"}}}
  - route: [{destination: {host: reviews}}]
    mirrorPercentage: {value: 5}
  - match: [{queryParams: {q: {regex: '('}}}]
    route: [{destination: {host: reviews}}]
",
    );
    assert_error(
        &errors,
        "spec.http[0]: sets route and redirect; a rule forwards",
    );
    assert_error(
        &errors,
        "spec.http[1].redirect.redirectCode: 200 is not a redirect code",
    );
    assert_error(
        &errors,
        "spec.http[2].directResponse.status: 99 is not an HTTP status",
    );
    assert_error(
        &errors,
        "spec.http[2].directResponse.body.bytes: not valid base64",
    );
    assert_error(
        &errors,
        "spec.http[3].fault.abort.percentage.value: 150 is not a percentage",
    );
    assert_error(
        &errors,
        "spec.http[3].fault.delay.fixedDelay: a fixedDelay is required",
    );
    assert_error(
        &errors,
        "spec.http[4].fault.abort.grpcStatus: unknown gRPC status \"SOMETIMES\"",
    );
    assert_error(
        &errors,
        "spec.http[5].rewrite.uriRegexRewrite.match: invalid regular expression",
    );
    assert_error(
        &errors,
        "spec.http[6].mirrors: set mirror or mirrors, not both",
    );
    assert_error(
        &errors,
        "spec.http[6].headers.request.set.host: the Host header cannot be changed here; use rewrite.authority",
    );
    assert_error(
        &errors,
        "spec.http[6].headers.request.set.x-bad: a header value cannot contain line breaks",
    );
    assert_error(
        &errors,
        "spec.http[7].mirrorPercentage: applies to `mirror`",
    );
    assert_error(
        &errors,
        "spec.http[8].match[0].queryParams.q.regex: invalid regular expression",
    );
}

fn delegation_mesh(root_http: &str, delegate: &str) -> String {
    docs(&[
        mk_service_entry("reviews", &["v1", "v2"]),
        mk_destination_rule("reviews", &["v1", "v2"]),
        mk_virtual_service("reviews", root_http),
        delegate.to_string(),
    ])
}

const DELEGATE: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: team}
spec:
  exportTo: [default]
  http:
  - name: v2
    match: [{uri: {prefix: /api/v2}, headers: {x-b: {exact: b}}}]
    route: [{destination: {host: reviews.default.svc.cluster.local, subset: v2}}]
  - match: [{uri: {prefix: /elsewhere}}]
    route: [{destination: {host: reviews.default.svc.cluster.local, subset: v2}}]
  - route: [{destination: {host: reviews.default.svc.cluster.local, subset: v1}}]
    timeout: 1s
";

#[test]
fn delegates_merge_into_their_root_as_istio_merges_them() {
    let applied = ConfigStore::default().apply(mk_inputs(&delegation_mesh(
        "  - name: root
    match: [{uri: {prefix: /api}, headers: {x-a: {exact: a}}}]
    timeout: 5s
    headers: {request: {set: {x-root: r}}}
    delegate: {name: api, namespace: team}
  - route: [{destination: {host: reviews, subset: v1}}]
",
        DELEGATE,
    )));
    let errors: Vec<String> = applied.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].contains("VirtualService team/api: spec.http[1].match: conflicts with every match of VirtualService default/reviews spec.http[0]"),
        "{errors:#?}"
    );
    let root = applied
        .snapshot
        .virtual_services
        .iter()
        .find(|vs| vs.id.name == "reviews")
        .unwrap();
    assert_eq!(
        root.http.len(),
        3,
        "two delegate rules, then the root's last"
    );
    let first = &root.http[0];
    assert_eq!(first.name.as_deref(), Some("root-v2"));
    assert_eq!(
        first.matches[0].uri,
        Some(StringMatch::Prefix("/api/v2".into()))
    );
    let headers: Vec<&str> = first.matches[0]
        .headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(
        headers,
        ["x-a", "x-b"],
        "root and delegate conditions both hold"
    );
    assert_eq!(
        first.timeout,
        Some(std::time::Duration::from_secs(5)),
        "inherited"
    );
    assert_eq!(
        first.headers.request.set.get("x-root").map(String::as_str),
        Some("r")
    );
    let second = &root.http[1];
    assert_eq!(
        second.matches[0].uri,
        Some(StringMatch::Prefix("/api".into()))
    );
    assert_eq!(
        second.timeout,
        Some(std::time::Duration::from_secs(1)),
        "its own wins"
    );
    assert!(root.http.iter().all(|r| r.delegate.is_none()));
}

#[test]
fn a_missing_or_hidden_delegate_is_reported_on_the_root() {
    let missing = errors_of(&delegation_mesh(
        "  - delegate: {name: nope}\n",
        &DELEGATE.replace("exportTo: [default]", "exportTo: ['*']"),
    ));
    assert_error(
        &missing,
        "VirtualService default/reviews: spec.http[0].delegate: delegate VirtualService default/nope does not exist",
    );
    let hidden = errors_of(&delegation_mesh(
        "  - delegate: {name: api, namespace: team}\n",
        &DELEGATE.replace("exportTo: [default]", "exportTo: [.]"),
    ));
    assert_error(
        &hidden,
        "spec.http[0].delegate: delegate VirtualService team/api is not exported to namespace default",
    );
    let not_delegate = errors_of(&delegation_mesh(
        "  - delegate: {name: api, namespace: team}\n",
        &DELEGATE.replace("spec:\n", "spec:\n  hosts: [other.example.com]\n"),
    ));
    assert_error(
        &not_delegate,
        "VirtualService team/api has hosts, so it is not a delegate",
    );
    let nested = errors_of(&delegation_mesh(
        "  - route: [{destination: {host: reviews}}]\n",
        &DELEGATE.replace(
            "  - route: [{destination",
            "  - delegate: {name: x}\n  - route: [{destination",
        ),
    ));
    assert_error(&nested, "a delegate VirtualService cannot delegate again");
}

fn second_vs(name: &str, http: &str) -> String {
    mk_virtual_service(name, http).replace(&format!("hosts: [{name}]"), "hosts: [reviews]")
}

#[test]
fn virtual_services_for_one_host_merge_and_report_unreachable_rules() {
    let catch_all = errors_of(&docs(&[
        mk_service_entry("reviews", &["v1", "v2"]),
        mk_destination_rule("reviews", &["v1", "v2"]),
        mk_virtual_service(
            "reviews",
            "  - route: [{destination: {host: reviews, subset: v1}}]\n",
        ),
        second_vs(
            "z-later",
            "  - match: [{uri: {prefix: /x}}]\n    route: [{destination: {host: reviews, subset: v2}}]\n",
        ),
    ]));
    assert_eq!(catch_all.len(), 1, "{catch_all:#?}");
    assert_error(
        &catch_all,
        "VirtualService default/z-later: spec.http: rules for host reviews.default.svc.cluster.local are unreachable: VirtualService default/reviews, merged before this one (namespace/name order), matches every request in spec.http[0]",
    );

    let shadowed_yaml = docs(&[
        mk_service_entry("reviews", &["v1", "v2"]),
        mk_destination_rule("reviews", &["v1", "v2"]),
        mk_virtual_service(
            "reviews",
            "  - match: [{uri: {prefix: /x}}]\n    route: [{destination: {host: reviews, subset: v1}}]\n",
        ),
        second_vs(
            "z-later",
            "  - match: [{uri: {prefix: /y}}, {uri: {prefix: /x}}]\n    route: [{destination: {host: reviews, subset: v2}}]\n  - route: [{destination: {host: reviews, subset: v2}}]\n",
        ),
    ]);
    let applied = ConfigStore::default().apply(mk_inputs(&shadowed_yaml));
    let shadowed: Vec<String> = applied.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(shadowed.len(), 1, "{shadowed:#?}");
    assert_eq!(
        applied.errors[0].error.reason,
        ErrorReason::UnresolvedReference
    );
    assert_error(
        &shadowed,
        "VirtualService default/z-later: spec.http[0].match[1]: is unreachable for host reviews.default.svc.cluster.local: VirtualService default/reviews spec.http[0].match[0]",
    );
    // Both still apply, merged in order.
    let order: Vec<&str> = applied
        .snapshot
        .virtual_services
        .iter()
        .map(|vs| vs.id.name.as_str())
        .collect();
    assert_eq!(order, ["reviews", "z-later"]);
}

#[test]
fn export_to_is_kept_for_translation() {
    let snapshot = mk_snapshot(
        &reviews_mesh("  - route: [{destination: {host: reviews}}]\n").replace(
            "  hosts: [reviews]\n",
            "  hosts: [reviews]\n  exportTo: [., prod]\n",
        ),
    );
    let vs = &snapshot.virtual_services[0];
    assert_eq!(vs.export_to.as_slice(), [".", "prod"]);
}
