//! CEL expressions in resources (Telemetry's `filter.expression` and
//! `tagOverrides` values): they must parse, checked with the `cel` crate's
//! parser (cel-rust; only parsed here, Envoy evaluates them).

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::Errors;

/// Longer expressions are refused before parsing: Envoy evaluates them on
/// every request, and nothing a user writes by hand comes near this.
const MAX_LEN: usize = 4096;

/// Checks that `expression` (at `field`) is a CEL expression.
pub(super) fn check_cel(field: &str, expression: &str, errors: &mut Errors) {
    if let Err(message) = parse_cel(expression) {
        errors.push(field, message);
    }
}

/// Why `expression` is not CEL, if it is not.
fn parse_cel(expression: &str) -> Result<(), String> {
    if expression.trim().is_empty() {
        return Err("must be a CEL expression (found an empty string)".to_string());
    }
    if expression.len() > MAX_LEN {
        return Err(format!(
            "a CEL expression of {} bytes is too long (at most {MAX_LEN})",
            expression.len()
        ));
    }
    // The parser is generated code over user input: a panic in it must
    // refuse the expression, not stop the control plane.
    let parsed = catch_unwind(AssertUnwindSafe(|| {
        cel::parser::Parser::new().parse(expression)
    }));
    match parsed {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(errors)) => {
            let details: Vec<String> = errors
                .errors
                .iter()
                .map(|e| format!("{} (line {}, column {})", e.msg, e.pos.0, e.pos.1 + 1))
                .collect();
            Err(format!(
                "{expression:?} is not a CEL expression: {}",
                details.join("; ")
            ))
        }
        Err(_) => Err(format!("{expression:?} is not a CEL expression")),
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn istio_documented_expressions_parse() {
        for expression in [
            "response.code >= 400",
            "connection.mtls && request.url_path.contains('v1beta3')",
            "!has(request.useragent) || !(request.useragent.startsWith(\"Amazon-Route53-Health-Check-Service\"))",
            "string(destination.port)",
            "request.host",
            "request.headers['x-user'] == 'jason'",
            "'literal'",
        ] {
            assert_eq!(parse_cel(expression), Ok(()), "{expression}");
        }
    }

    #[test]
    fn broken_expressions_are_refused_with_where() {
        for expression in [
            "response.code >=",
            "(request.host",
            "request.host == 'a",
            "request.headers['x']]",
            "",
            "   ",
        ] {
            let err = parse_cel(expression).expect_err(expression);
            assert!(err.contains("CEL expression"), "{expression}: {err}");
        }
        let err = parse_cel("response.code >=").expect_err("incomplete");
        assert!(err.contains("column"), "{err}");
        assert!(parse_cel(&"a".repeat(MAX_LEN + 1)).is_err());
    }
}
