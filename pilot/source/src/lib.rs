//! # weft-source: where config comes from over time
//!
//! A directory of Istio YAML ([`files`]: read in name order, watched with
//! notify, each document parsed by weft-config into an
//! [`weft_config::Input`] for the [`weft_config::ConfigStore`]), and the
//! [`debounce::Debouncer`] that turns a burst of changes into one reload
//! (the operator's Kubernetes watches use it too). It does the I/O that
//! weft-config must not, and no conversion of its own.

pub mod debounce;
pub mod files;
