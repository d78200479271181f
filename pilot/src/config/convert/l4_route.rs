//! VirtualService `tcp` and `tls` rules -> model.

use weft_crds::{TcpRoute as CrdTcpRoute, TlsRoute as CrdTlsRoute};

use super::Errors;
use crate::model::{TcpRoute, TlsRoute};

pub(super) fn convert_tcp(
    _namespace: &str,
    routes: &[CrdTcpRoute],
    errors: &mut Errors,
) -> Vec<TcpRoute> {
    if !routes.is_empty() {
        errors.unsupported("spec.tcp");
    }
    Vec::new()
}

pub(super) fn convert_tls(
    _namespace: &str,
    routes: &[CrdTlsRoute],
    errors: &mut Errors,
) -> Vec<TlsRoute> {
    if !routes.is_empty() {
        errors.unsupported("spec.tls");
    }
    Vec::new()
}
