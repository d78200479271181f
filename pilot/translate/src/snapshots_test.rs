//! Snapshot tests of the Envoy config generated for `examples/`: a change
//! in translation shows up as a readable diff (`cargo insta review`).

use prost::Message;
use weft_envoy_api::pb::envoy::config::listener::v3::filter::ConfigType;
use weft_envoy_api::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;

use super::*;
use weft_config::ConfigStore;
use weft_source::files::read_config_dir;

fn bookinfo() -> weft_model::MeshSnapshot {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/bookinfo");
    let applied = ConfigStore::default().apply(read_config_dir(&dir));
    assert!(applied.errors.is_empty(), "{:#?}", applied.errors);
    (*applied.snapshot).clone()
}

fn view() -> ProxyView {
    ProxyView {
        router_address: Some(("127.0.0.1".into(), 15080)),
        ..Default::default()
    }
}

#[test]
fn bookinfo_is_consistent() {
    assert_eq!(
        check_consistency(&bookinfo(), &view()),
        Vec::<String>::new()
    );
}

#[test]
fn bookinfo_clusters() {
    insta::assert_debug_snapshot!(build_clusters(&bookinfo(), &view()));
}

#[test]
fn bookinfo_endpoints() {
    insta::assert_debug_snapshot!(build_load_assignments(&bookinfo(), &view()));
}

#[test]
fn bookinfo_routes() {
    insta::assert_debug_snapshot!(build_route_configs(&bookinfo(), &view()));
}

#[test]
fn bookinfo_listener() {
    let listeners = build_listeners(&bookinfo(), &view());
    let Some(ConfigType::TypedConfig(any)) = &listeners[0].filter_chains[0].filters[0].config_type
    else {
        panic!("the router listener has an HTTP connection manager")
    };
    let hcm = HttpConnectionManager::decode(any.value.as_slice()).unwrap();
    insta::assert_debug_snapshot!((
        &listeners[0].name,
        &listeners[0].address,
        hcm.route_specifier,
        hcm.http_filters.len()
    ));
}
