use super::*;

fn errors_of(yaml: &str) -> Vec<String> {
    match parse_mesh_config(yaml) {
        Ok(mesh) => panic!("accepted: {mesh:#?}"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

/// Whether one of `errors` starts with `want`.
fn names(errors: &[String], want: &str) -> bool {
    errors.iter().any(|e| e.starts_with(want))
}

fn service(host: &str, port: u16) -> ProviderService {
    ProviderService {
        host: host.to_string(),
        port,
    }
}

#[test]
fn empty_text_is_istios_defaults() {
    for yaml in ["", "  \n", "# nothing\n", "{}", "~"] {
        let mesh = parse_mesh_config(yaml).unwrap_or_else(|e| panic!("{yaml:?}: {e:?}"));
        assert_eq!(mesh, MeshConfig::default(), "{yaml:?}");
    }
    let mesh = MeshConfig::default();
    assert_eq!(mesh.root_namespace, "istio-system");
    assert_eq!(mesh.trust_domain, "cluster.local");
    assert_eq!(mesh.provider("prometheus"), Some(&Provider::Prometheus));
    assert!(matches!(
        mesh.provider("envoy"),
        Some(Provider::FileAccessLog(_))
    ));
    assert_eq!(mesh.default_providers.metrics, ["prometheus"]);
}

const EVERY_FIELD: &str = r#"
rootNamespace: mesh-root
trustDomain: example.org
enableTracing: false
accessLogFile: /dev/stderr
accessLogEncoding: JSON
accessLogFormat: '{"status": "%RESPONSE_CODE%", "path": "%REQ(:PATH)%"}'
defaultConfig:
  tracing:
    sampling: 25.5
  discoveryAddress: istiod.istio-system.svc:15012
extensionProviders:
- name: prometheus-2
  prometheus: {}
- name: file-text
  envoyFileAccessLog:
    path: /var/log/access.log
    logFormat:
      text: "%START_TIME% %RESPONSE_CODE%\n"
- name: file-json
  envoyFileAccessLog:
    logFormat:
      labels:
        status: "%RESPONSE_CODE%"
- name: file-default-json
  envoyFileAccessLog:
    logFormat:
      labels: {}
- name: otel-als
  envoyOtelAls:
    service: observability/otel-collector
    port: 4317
    logName: weft
    logFormat:
      text: "%REQ(:METHOD)% %RESPONSE_CODE%"
      labels:
        peer: "%UPSTREAM_HOST%"
- name: zipkin
  zipkin:
    service: zipkin.istio-system.svc.cluster.local
    port: 9411
    maxTagLength: 100
- name: otel
  opentelemetry:
    service: "*/otel.example.com"
    port: 4317
- name: envoy
  envoyFileAccessLog:
    path: /dev/stderr
defaultProviders:
  metrics: [prometheus, prometheus-2]
  tracing: [zipkin]
  accessLogging: [file-text, otel-als]
outboundTrafficPolicy:
  mode: REGISTRY_ONLY
discoverySelectors:
- matchLabels: {env: prod}
"#;

#[test]
fn every_field_is_read() {
    let mesh = parse_mesh_config(EVERY_FIELD).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(mesh.root_namespace, "mesh-root");
    assert_eq!(mesh.trust_domain, "example.org");
    assert!(!mesh.enable_tracing);
    assert_eq!(mesh.default_sampling, 25.5);
    assert_eq!(
        mesh.access_log,
        Some(FileAccessLog {
            path: "/dev/stderr".to_string(),
            format: LogFormat::Json(BTreeMap::from([
                ("path".to_string(), "%REQ(:PATH)%".to_string()),
                ("status".to_string(), "%RESPONSE_CODE%".to_string()),
            ])),
        })
    );
    let provider = |name: &str| {
        mesh.provider(name)
            .unwrap_or_else(|| panic!("no {name}"))
            .clone()
    };
    assert_eq!(provider("prometheus"), Provider::Prometheus, "built in");
    assert_eq!(provider("prometheus-2"), Provider::Prometheus);
    assert_eq!(
        provider("file-text"),
        Provider::FileAccessLog(FileAccessLog {
            path: "/var/log/access.log".to_string(),
            format: LogFormat::Text("%START_TIME% %RESPONSE_CODE%\n".to_string()),
        })
    );
    assert_eq!(
        provider("file-json"),
        Provider::FileAccessLog(FileAccessLog {
            path: "/dev/stdout".to_string(),
            format: LogFormat::Json(BTreeMap::from([(
                "status".to_string(),
                "%RESPONSE_CODE%".to_string()
            )])),
        })
    );
    assert_eq!(
        provider("file-default-json"),
        Provider::FileAccessLog(FileAccessLog {
            path: "/dev/stdout".to_string(),
            format: LogFormat::DefaultJson,
        })
    );
    assert_eq!(
        provider("otel-als"),
        Provider::OtelAccessLog(OtelAccessLog {
            service: service("otel-collector.observability.svc.cluster.local", 4317),
            log_name: "weft".to_string(),
            body: Some("%REQ(:METHOD)% %RESPONSE_CODE%".to_string()),
            attributes: BTreeMap::from([("peer".to_string(), "%UPSTREAM_HOST%".to_string())]),
        })
    );
    assert_eq!(
        provider("zipkin"),
        Provider::Zipkin(Tracer {
            service: service("zipkin.istio-system.svc.cluster.local", 9411),
            max_tag_length: 100,
        })
    );
    assert_eq!(
        provider("otel"),
        Provider::OpenTelemetry(Tracer {
            service: service("otel.example.com", 4317),
            max_tag_length: 0,
        })
    );
    assert_eq!(
        provider("envoy"),
        Provider::FileAccessLog(FileAccessLog {
            path: "/dev/stderr".to_string(),
            format: LogFormat::DefaultText,
        }),
        "a provider named like a built-in one replaces it"
    );
    assert_eq!(
        mesh.default_providers,
        DefaultProviders {
            metrics: vec!["prometheus".to_string(), "prometheus-2".to_string()],
            tracing: vec!["zipkin".to_string()],
            access_logging: vec!["file-text".to_string(), "otel-als".to_string()],
        }
    );
}

#[test]
fn proto_field_names_are_read_too() {
    let mesh = parse_mesh_config(
        "root_namespace: other\ntrust_domain: td\nenable_tracing: false\nextension_providers:\n- name: z\n  zipkin: {service: z.ns.svc.cluster.local, port: 9411, max_tag_length: 7}\ndefault_providers: {tracing: [z]}\naccess_log_file: /dev/stdout\naccess_log_encoding: TEXT\naccess_log_format: '%RESPONSE_CODE%'\n",
    )
    .unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(mesh.root_namespace, "other");
    assert_eq!(mesh.trust_domain, "td");
    assert!(!mesh.enable_tracing);
    assert!(matches!(
        mesh.provider("z"),
        Some(Provider::Zipkin(Tracer {
            max_tag_length: 7,
            ..
        }))
    ));
    assert_eq!(mesh.default_providers.tracing, ["z"]);
    assert_eq!(
        mesh.access_log.map(|l| l.format),
        Some(LogFormat::Text("%RESPONSE_CODE%".to_string()))
    );
}

#[test]
fn absent_fields_keep_the_given_defaults() {
    let defaults = MeshConfig {
        trust_domain: "from-the-flag".to_string(),
        ..MeshConfig::default()
    };
    let mesh = parse_mesh_config_over("enableTracing: false\n", &defaults)
        .unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(mesh.trust_domain, "from-the-flag");
    assert!(!mesh.enable_tracing);
    let mesh = parse_mesh_config_over("trustDomain: from-the-file\n", &defaults)
        .unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(mesh.trust_domain, "from-the-file");
    let mesh = parse_mesh_config_over("accessLogFile: /dev/stdout\n", &defaults)
        .unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(
        mesh.access_log,
        Some(FileAccessLog {
            path: "/dev/stdout".to_string(),
            format: LogFormat::DefaultText
        })
    );
    let mesh =
        parse_mesh_config_over("accessLogFile: ''\n", &mesh).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(mesh.access_log, None, "an empty accessLogFile turns it off");
    let mesh = parse_mesh_config_over(
        "accessLogFile: /tmp/log\naccessLogEncoding: JSON\n",
        &defaults,
    )
    .unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(
        mesh.access_log.map(|l| l.format),
        Some(LogFormat::DefaultJson)
    );
}

#[test]
fn a_wrong_type_names_the_field() {
    for (yaml, want) in [
        (
            "extensionProviders:\n- {name: a, prometheus: {}}\n- {name: b, prometheus: {}}\n- name: z\n  zipkin: {service: z.ns.svc.cluster.local, port: nine}\n",
            "extensionProviders[2].zipkin.port: invalid type: string \"nine\"",
        ),
        (
            "enableTracing: yes\n",
            "enableTracing: invalid type: string \"yes\", expected a boolean",
        ),
        (
            "rootNamespace: [a]\n",
            "rootNamespace: invalid type: sequence",
        ),
        (
            "defaultConfig:\n  tracing:\n    sampling: high\n",
            "defaultConfig.tracing.sampling: invalid type",
        ),
        (
            "defaultProviders: {metrics: prometheus}\n",
            "defaultProviders.metrics: invalid type",
        ),
        (
            "accessLogEncoding: XML\n",
            "accessLogEncoding: unknown variant `XML`",
        ),
        (
            "extensionProviders: {name: a}\n",
            "extensionProviders: invalid type: map, expected a sequence",
        ),
        (
            "[a, b]\n",
            "a mesh config is a mapping of MeshConfig fields (found a list)",
        ),
        ("a: [\n", "not valid YAML"),
        (
            "extensionProviders:\n- name: f\n  envoyFileAccessLog: {path: 5}\n",
            "extensionProviders[0].envoyFileAccessLog.path: invalid type: integer",
        ),
    ] {
        let errors = errors_of(yaml);
        assert!(
            names(&errors, want),
            "{yaml:?}: want {want:?} in {errors:#?}"
        );
    }
}

#[test]
fn bad_values_are_refused_naming_their_field() {
    let errors = errors_of(
        r#"
rootNamespace: Not_A_Namespace
trustDomain: "spiffe://x"
accessLogFile: /dev/stdout
accessLogEncoding: JSON
accessLogFormat: 'status: %RESPONSE_CODE%'
defaultConfig: {tracing: {sampling: 120}}
extensionProviders:
- name: no-port
  zipkin: {service: zipkin.istio-system.svc.cluster.local}
- name: short
  opentelemetry: {service: otel, port: 4317}
- name: bad-port
  zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 70000}
- name: two
  prometheus: {}
  zipkin: {service: z.ns.svc.cluster.local, port: 1}
- name: none
- zipkin: {service: z.ns.svc.cluster.local, port: 1}
- name: authz
  envoyExtAuthzHttp: {service: authz.ns.svc.cluster.local, port: 8000, pathPrefix: nope}
- name: sd
  stackdriver: {}
- name: tcp-als
  envoyTcpAls: {service: als.ns.svc.cluster.local, port: 9000}
- name: dup
  prometheus: {}
- name: dup
  prometheus: {}
- name: zipkin-path
  zipkin: {service: z.ns.svc.cluster.local, port: 1, path: /api/v1/spans, enable64bitTraceId: false}
- name: otel-json
  envoyOtelAls:
    service: als.ns.svc.cluster.local
    port: 9000
    logFormat: {labels: {code: 200}}
- name: both-formats
  envoyFileAccessLog: {logFormat: {text: a, labels: {b: c}}}
- name: typo
  zipkn: {service: z.ns.svc.cluster.local, port: 1}
defaultProviders:
  metrics: [nope]
  tracing: [prometheus]
"#,
    );
    for want in [
        "rootNamespace: \"Not_A_Namespace\" is not a namespace name",
        "trustDomain: \"spiffe://x\" is not a trust domain",
        "accessLogFormat: with accessLogEncoding JSON, a JSON object",
        "defaultConfig.tracing.sampling: 120 is not a percentage",
        "extensionProviders[0].zipkin.port: is required",
        "extensionProviders[1].opentelemetry.service: \"otel\" is not fully qualified",
        "extensionProviders[2].zipkin.port: 70000 is not a port number",
        "extensionProviders[3]: sets 2 providers (prometheus, zipkin)",
        "extensionProviders[4]: sets 0 providers ()",
        "extensionProviders[5].name: is required",
        "extensionProviders[6].envoyExtAuthzHttp.pathPrefix: \"nope\" must begin with `/`",
        "extensionProviders[7].stackdriver: stackdriver providers are not supported by Weft yet",
        "extensionProviders[8].envoyTcpAls: envoyTcpAls providers are not supported by Weft yet",
        "extensionProviders[10].name: \"dup\" is defined twice (first at extensionProviders[9])",
        "extensionProviders[11].zipkin.path: not supported by Weft yet",
        "extensionProviders[12].envoyOtelAls.logFormat.labels.code: only strings",
        "extensionProviders[13].envoyFileAccessLog.logFormat: text and labels are one of",
        "extensionProviders[14].zipkn: \"zipkn\" is not a provider kind",
        "defaultProviders.metrics[0]: the mesh config defines no provider \"nope\"",
        "defaultProviders.tracing[0]: provider \"prometheus\" is a prometheus provider; tracing needs a zipkin or opentelemetry provider",
    ] {
        assert!(names(&errors, want), "{want:?} in {errors:#?}");
    }
    assert!(
        !errors.iter().any(|e| e.contains("enable64bitTraceId")),
        "a zero value of a field Weft does not read is no error: {errors:#?}"
    );
    assert_eq!(errors.len(), 20, "{errors:#?}");
}

#[test]
fn unsupported_providers_say_so() {
    let errors = match parse_mesh_config(
        "extensionProviders:\n- name: dd\n  datadog: {service: dd.ns.svc.cluster.local, port: 8126}\n",
    ) {
        Err(errors) => errors,
        Ok(mesh) => panic!("accepted: {mesh:?}"),
    };
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].reason, ErrorReason::Unsupported);
    assert_eq!(errors[0].field, "extensionProviders[0].datadog");
}

#[test]
fn provider_services_are_stored_fully_qualified() {
    for (written, host) in [
        (
            "zipkin.istio-system.svc.cluster.local",
            "zipkin.istio-system.svc.cluster.local",
        ),
        (
            "istio-system/zipkin",
            "zipkin.istio-system.svc.cluster.local",
        ),
        ("bar/zipkin.example.com", "zipkin.example.com"),
        ("Zipkin.Example.COM", "zipkin.example.com"),
        ("10.0.0.9", "10.0.0.9"),
    ] {
        let yaml = format!(
            "extensionProviders:\n- name: z\n  zipkin: {{service: '{written}', port: 9411}}\n"
        );
        let mesh = parse_mesh_config(&yaml).unwrap_or_else(|e| panic!("{written}: {e:#?}"));
        let Some(Provider::Zipkin(tracer)) = mesh.provider("z") else {
            panic!("{written}: no zipkin");
        };
        assert_eq!(tracer.service, service(host, 9411), "{written}");
    }
}

#[test]
fn outbound_traffic_policy_defaults_to_allow_any_and_refuses_unknown_modes() {
    assert_eq!(
        MeshConfig::default().outbound_traffic_policy,
        OutboundTrafficPolicy::AllowAny
    );
    for (yaml, want) in [
        (
            "outboundTrafficPolicy: {mode: REGISTRY_ONLY}",
            OutboundTrafficPolicy::RegistryOnly,
        ),
        (
            "outbound_traffic_policy: {mode: ALLOW_ANY}",
            OutboundTrafficPolicy::AllowAny,
        ),
        ("outboundTrafficPolicy: {}", OutboundTrafficPolicy::AllowAny),
    ] {
        let mesh = parse_mesh_config(yaml).unwrap_or_else(|e| panic!("{yaml}: {e:?}"));
        assert_eq!(mesh.outbound_traffic_policy, want, "{yaml}");
    }
    let errors = errors_of("outboundTrafficPolicy: {mode: SOMETIMES}");
    assert!(names(&errors, "outboundTrafficPolicy.mode"), "{errors:?}");
}
