//! RequestAuthentication -> model.
//!
//! Translated: `selector`, `targetRefs` (and `targetRef`) naming Kubernetes
//! Gateways, and `jwtRules` with every field. Istio's validation rules
//! hold: the issuer is required, `jwks` and `jwksUri` exclude each other,
//! `jwksUri` is an http(s) URL, `jwks` is a JSON Web Key Set of public
//! keys, locations and headers are named, and `timeout` is at least 1ms.

use std::collections::BTreeSet;

use weft_crds::{JwtRule as CrdJwtRule, RequestAuthenticationSpec};

use super::Errors;
use super::common::{at_least_1ms, is_header_name, policy_target};
use weft_model::{
    ClaimToHeader, DEFAULT_JWKS_TIMEOUT, DEFAULT_SPACE_DELIMITED_CLAIMS, JwksLocation, JwksSource,
    JwtHeader, JwtRule, RequestAuthentication, ResourceId, check_jwks,
};

pub(super) fn convert(
    id: &ResourceId,
    spec: &RequestAuthenticationSpec,
    errors: &mut Errors,
) -> RequestAuthentication {
    let target = policy_target(
        "a RequestAuthentication",
        &id.namespace,
        spec.selector.as_ref(),
        spec.target_ref.as_ref(),
        &spec.target_refs,
        errors,
    );
    let jwt_rules = spec
        .jwt_rules
        .iter()
        .enumerate()
        .map(|(i, rule)| jwt_rule(&format!("spec.jwtRules[{i}]"), rule, errors))
        .collect();
    RequestAuthentication {
        id: id.clone(),
        target,
        jwt_rules,
    }
}

fn jwt_rule(path: &str, rule: &CrdJwtRule, errors: &mut Errors) -> JwtRule {
    if rule.issuer.is_empty() {
        errors.push(
            format!("{path}.issuer"),
            "is required: the `iss` claim the tokens carry",
        );
    }
    non_empty_each(path, "audiences", &rule.audiences, errors);
    non_empty_each(path, "fromParams", &rule.from_params, errors);
    non_empty_each(path, "fromCookies", &rule.from_cookies, errors);
    non_empty_each(
        path,
        "spaceDelimitedClaims",
        &rule.space_delimited_claims,
        errors,
    );
    let keys = if !rule.jwks.is_empty() {
        if !rule.jwks_uri.is_empty() {
            errors.push(
                format!("{path}.jwksUri"),
                "jwks and jwksUri cannot both be set: give the keys inline, or where to fetch them",
            );
        }
        if let Err(message) = check_jwks(&rule.jwks) {
            errors.push(format!("{path}.jwks"), message);
        }
        JwksSource::Inline(rule.jwks.clone())
    } else if !rule.jwks_uri.is_empty() {
        if let Err(message) = check_jwks_uri(&rule.jwks_uri) {
            errors.push(format!("{path}.jwksUri"), message);
        }
        JwksSource::Remote(JwksLocation::Uri(rule.jwks_uri.clone()))
    } else {
        if !rule.issuer.is_empty()
            && let Err(message) = check_jwks_uri(&rule.issuer)
        {
            errors.push(
                format!("{path}.issuer"),
                format!(
                    "without jwks or jwksUri the keys are found by OpenID discovery under the issuer, which must then be an http(s) URL: {message}"
                ),
            );
        }
        JwksSource::Remote(JwksLocation::Discovery {
            issuer: rule.issuer.clone(),
        })
    };
    let from_headers = rule
        .from_headers
        .iter()
        .enumerate()
        .map(|(i, h)| {
            header_name(&format!("{path}.fromHeaders[{i}].name"), &h.name, errors);
            JwtHeader {
                name: h.name.clone(),
                prefix: h.prefix.clone(),
            }
        })
        .collect();
    let output_claim_to_headers = rule
        .output_claim_to_headers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let at = format!("{path}.outputClaimToHeaders[{i}]");
            header_name(&format!("{at}.header"), &c.header, errors);
            if c.claim.is_empty() {
                errors.push(format!("{at}.claim"), "is required: the claim to copy");
            }
            ClaimToHeader {
                header: c.header.clone(),
                claim: c.claim.clone(),
            }
        })
        .collect();
    let output_payload_to_header = (!rule.output_payload_to_header.is_empty()).then(|| {
        header_name(
            &format!("{path}.outputPayloadToHeader"),
            &rule.output_payload_to_header,
            errors,
        );
        rule.output_payload_to_header.clone()
    });
    let timeout = at_least_1ms(format!("{path}.timeout"), rule.timeout, errors)
        .unwrap_or(DEFAULT_JWKS_TIMEOUT);
    let space_delimited_claims: BTreeSet<String> = DEFAULT_SPACE_DELIMITED_CLAIMS
        .iter()
        .map(|c| c.to_string())
        .chain(rule.space_delimited_claims.iter().cloned())
        .filter(|c| !c.is_empty())
        .collect();
    JwtRule {
        issuer: rule.issuer.clone(),
        audiences: rule.audiences.clone(),
        keys,
        from_headers,
        from_params: rule.from_params.clone(),
        from_cookies: rule.from_cookies.clone(),
        output_payload_to_header,
        forward_original_token: rule.forward_original_token,
        output_claim_to_headers,
        timeout,
        space_delimited_claims: space_delimited_claims.into_iter().collect(),
    }
}

fn non_empty_each(path: &str, name: &str, values: &[String], errors: &mut Errors) {
    for (i, value) in values.iter().enumerate() {
        if value.is_empty() {
            errors.push(format!("{path}.{name}[{i}]"), "must not be empty");
        }
    }
}

/// A header Envoy may read or write: a token, not a pseudo-header.
fn header_name(path: &str, name: &str, errors: &mut Errors) {
    if name.is_empty() {
        errors.push(path, "is required: a header name");
    } else if !is_header_name(name) {
        errors.push(
            path,
            format!("{name:?} is not an HTTP header name (letters, digits and !#$%&'*+-.^_`|~)"),
        );
    }
}

/// Istio's `ParseJwksURI`: an http or https URL with a host.
fn check_jwks_uri(uri: &str) -> Result<(), String> {
    let parsed: http::Uri = uri
        .parse()
        .map_err(|e| format!("{uri:?} is not a URL: {e}"))?;
    match parsed.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => {
            return Err(format!(
                "URI scheme {other:?} is not supported (http or https)"
            ));
        }
        None => return Err(format!("{uri:?} is not an absolute http(s) URL")),
    }
    if parsed.host().is_none_or(str::is_empty) {
        return Err(format!("{uri:?} has no host"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_uris_are_http_urls_with_a_host() {
        assert!(check_jwks_uri("https://id.example.com/keys").is_ok());
        assert!(check_jwks_uri("http://keys.prod:8080/jwks.json").is_ok());
        assert!(check_jwks_uri("ftp://id.example.com/keys").is_err());
        assert!(check_jwks_uri("/keys").is_err());
        assert!(check_jwks_uri("not a url").is_err());
    }
}
