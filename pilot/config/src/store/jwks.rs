//! RequestAuthentications against the key sets the control plane fetched:
//! a rule whose remote keys were never fetched refuses every token of its
//! issuer (the translation fails closed), and says so on its resource.
//! Keys fetched once and failing to refresh since are kept, and are not
//! an error.

use std::collections::BTreeMap;

use super::{ConfigError, Origin, unresolved};
use weft_model::{JwksSource, MeshSnapshot, ResourceId};

/// Reports the rules whose keys could not be fetched yet.
pub(super) fn report_unfetched_keys(
    snapshot: &MeshSnapshot,
    origins: &BTreeMap<ResourceId, Origin>,
    errors: &mut Vec<ConfigError>,
) {
    for policy in &snapshot.request_authentications {
        for (i, rule) in policy.jwt_rules.iter().enumerate() {
            let JwksSource::Remote(location) = &rule.keys else {
                continue;
            };
            let Some(fetched) = snapshot.fetched_jwks.get(location) else {
                continue;
            };
            if let (None, Some(error)) = (&fetched.keys, &fetched.error) {
                errors.push(unresolved(
                    origins,
                    &policy.id,
                    format!("spec.jwtRules[{i}]"),
                    format!(
                        "the keys of issuer {:?} could not be fetched from {} ({error}); its tokens are refused until they are",
                        rule.issuer,
                        location.url()
                    ),
                ));
            }
        }
    }
}
