//! AuthorizationPolicy's end-user terms as RBAC principals on the payload
//! the JWT filter verified ([`super::jwt_authn`] puts it in dynamic
//! metadata `envoy.filters.http.jwt_authn` under `payload`), as istiod
//! builds them:
//!
//! - `requestPrincipals` / `request.auth.principal` `ISS/SUB`: the value
//!   split at its last `/`, `iss` and `sub` matched as strings, a `*` at
//!   either end of the whole value applying to the part it touches;
//! - `request.auth.audiences` (`aud`), `request.auth.presenter` (`azp`)
//!   and `request.auth.claims[a][b]`: the claim at that path equal to the
//!   value, or a list holding it.
//!
//! A request with no verified token has no payload, so none of these
//! matches it.

use weft_envoy_api::pb::envoy::config::rbac::v3::{
    MetadataSource, Principal, SourcedMetadata, principal,
};
use weft_envoy_api::pb::envoy::r#type::matcher::v3::{
    ListMatcher, MetadataMatcher, OrMatcher, RegexMatcher, StringMatcher, ValueMatcher,
    list_matcher, metadata_matcher::PathSegment, metadata_matcher::path_segment::Segment,
    string_matcher::MatchPattern, value_matcher,
};

use super::jwt_authn::{JWT_AUTHN_FILTER, PAYLOAD_KEY};
use weft_model::Pattern;

/// `ISS/SUB`, Istio's request principal, with its `*` forms.
pub(super) fn request_principal(value: &str) -> Principal {
    let split = value.rfind('/').map(|i| (&value[..i], &value[i + 1..]));
    let any = || regex(".+");
    let (iss, sub) = if value == "*" {
        (any(), any())
    } else if let Some(rest) = value.strip_prefix('*') {
        match split {
            Some(("*", sub)) => (any(), exact(sub)),
            Some((iss, sub)) => (suffix(&iss[1..]), exact(sub)),
            None => (any(), suffix(rest)),
        }
    } else if let Some(rest) = value.strip_suffix('*') {
        match split {
            Some((iss, "*")) => (exact(iss), any()),
            Some((iss, sub)) => (exact(iss), prefix(&sub[..sub.len() - 1])),
            None => (prefix(rest), any()),
        }
    } else {
        match split {
            Some((iss, sub)) => (exact(iss), exact(sub)),
            None => (exact(value), exact("")),
        }
    };
    Principal {
        identifier: Some(principal::Identifier::AndIds(principal::Set {
            ids: vec![
                metadata(&["iss".to_string()], string_value(iss)),
                metadata(&["sub".to_string()], string_value(sub)),
            ],
        })),
    }
}

/// The claim at `path` is `p`, or is a list holding a value that is.
pub(super) fn claim(path: &[String], p: &Pattern) -> Principal {
    let value = string_value(pattern(p));
    let list = ValueMatcher {
        match_pattern: Some(value_matcher::MatchPattern::ListMatch(Box::new(
            ListMatcher {
                match_pattern: Some(list_matcher::MatchPattern::OneOf(Box::new(value.clone()))),
            },
        ))),
    };
    metadata(
        path,
        ValueMatcher {
            match_pattern: Some(value_matcher::MatchPattern::OrMatch(OrMatcher {
                value_matchers: vec![list, value],
            })),
        },
    )
}

fn metadata(claim_path: &[String], value: ValueMatcher) -> Principal {
    let path = std::iter::once(PAYLOAD_KEY.to_string())
        .chain(claim_path.iter().cloned())
        .map(|key| PathSegment {
            segment: Some(Segment::Key(key)),
        })
        .collect();
    Principal {
        identifier: Some(principal::Identifier::SourcedMetadata(SourcedMetadata {
            metadata_matcher: Some(MetadataMatcher {
                filter: JWT_AUTHN_FILTER.to_string(),
                path,
                value: Some(value),
                invert: false,
            }),
            metadata_source: MetadataSource::Dynamic as i32,
        })),
    }
}

fn string_value(matcher: StringMatcher) -> ValueMatcher {
    ValueMatcher {
        match_pattern: Some(value_matcher::MatchPattern::StringMatch(matcher)),
    }
}

/// Istio's value syntax: `*` is any non-empty value.
fn pattern(p: &Pattern) -> StringMatcher {
    match p {
        Pattern::Exact(v) => exact(v),
        Pattern::Prefix(v) => prefix(v),
        Pattern::Suffix(v) => suffix(v),
        Pattern::Any => regex(".+"),
    }
}

fn exact(v: &str) -> StringMatcher {
    string(MatchPattern::Exact(v.to_string()))
}

fn prefix(v: &str) -> StringMatcher {
    string(MatchPattern::Prefix(v.to_string()))
}

fn suffix(v: &str) -> StringMatcher {
    string(MatchPattern::Suffix(v.to_string()))
}

fn regex(r: &str) -> StringMatcher {
    string(MatchPattern::SafeRegex(RegexMatcher {
        regex: r.to_string(),
        ..Default::default()
    }))
}

fn string(pattern: MatchPattern) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(pattern),
        ignore_case: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The iss and sub matchers of a request principal.
    fn parts(value: &str) -> (MatchPattern, MatchPattern) {
        let Some(principal::Identifier::AndIds(set)) = request_principal(value).identifier else {
            panic!("not an and");
        };
        let pattern = |p: &Principal| {
            let Some(principal::Identifier::SourcedMetadata(m)) = &p.identifier else {
                panic!("not metadata");
            };
            let Some(value_matcher::MatchPattern::StringMatch(s)) = m
                .metadata_matcher
                .as_ref()
                .and_then(|m| m.value.as_ref())
                .and_then(|v| v.match_pattern.clone())
            else {
                panic!("not a string");
            };
            s.match_pattern
                .unwrap_or(MatchPattern::Exact(String::new()))
        };
        (pattern(&set.ids[0]), pattern(&set.ids[1]))
    }

    fn any() -> MatchPattern {
        MatchPattern::SafeRegex(RegexMatcher {
            regex: ".+".into(),
            ..Default::default()
        })
    }

    fn exact(v: &str) -> MatchPattern {
        MatchPattern::Exact(v.into())
    }

    #[test]
    fn principals_split_at_the_last_slash_as_istio_does() {
        assert_eq!(
            parts("https://id.example.com/alice"),
            (exact("https://id.example.com"), exact("alice"))
        );
        assert_eq!(parts("*"), (any(), any()));
        assert_eq!(parts("*/alice"), (any(), exact("alice")));
        assert_eq!(
            parts("*.example.com/alice"),
            (MatchPattern::Suffix(".example.com".into()), exact("alice"))
        );
        assert_eq!(
            parts("*alice"),
            (any(), MatchPattern::Suffix("alice".into()))
        );
        assert_eq!(parts("issuer/*"), (exact("issuer"), any()));
        assert_eq!(
            parts("issuer/al*"),
            (exact("issuer"), MatchPattern::Prefix("al".into()))
        );
        assert_eq!(
            parts("https://id*"),
            (exact("https:/"), MatchPattern::Prefix("id".into()))
        );
        assert_eq!(
            parts("issuer*"),
            (MatchPattern::Prefix("issuer".into()), any())
        );
    }
}
