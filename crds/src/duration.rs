//! [`IstioDuration`]: the duration fields of Istio's API (`timeout`,
//! `perTryTimeout`, `interval`, ...), written the way Istio users write them.
//!
//! Istio's YAML carries `google.protobuf.Duration` values as strings in Go's
//! `time.ParseDuration` syntax: `10s`, `1.5s`, `100ms`, `1h30m`, `500us`,
//! `0s`. This module parses and prints that syntax by hand, on purpose: no
//! crate we can depend on without kube parses Go durations with decimal
//! fractions, and this crate must stay usable without kube. (kube-core has a
//! parser of its own, but only behind the `kube` feature.)
//!
//! Rules, as Go applies them:
//!
//! - a sequence of `<number><unit>` components, e.g. `1h30m`, `2m5.5s`;
//! - a number is decimal digits with an optional fraction (`1`, `1.5`, `.5`,
//!   `5.`), but not a lone `.`;
//! - units are `ns`, `us` (also `µs` / `μs`), `ms`, `s`, `m`, `h`;
//! - the bare string `0` is allowed; any other number needs a unit;
//! - a leading `+` is accepted; a leading `-` is rejected, since no Istio
//!   duration may be negative;
//! - the total must fit Go's `time.Duration` (at most 2^63-1 nanoseconds).
//!
//! [`IstioDuration`] prints in a canonical form that parses back to the same
//! value: `0s`, `100ms`, `1.5s`, `1h30m0s` (Go's own `Duration.String`, except
//! that microseconds are printed as `us`).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const NANOS_PER_MICRO: u128 = 1_000;
const NANOS_PER_MILLI: u128 = 1_000_000;
const NANOS_PER_SECOND: u128 = 1_000_000_000;
const NANOS_PER_MINUTE: u128 = 60 * NANOS_PER_SECOND;
const NANOS_PER_HOUR: u128 = 60 * NANOS_PER_MINUTE;
/// Go's `time.Duration` is an `int64` of nanoseconds.
const MAX_NANOS: u128 = i64::MAX as u128;
/// Fraction digits beyond this many cannot change a nanosecond value.
const MAX_FRACTION_DIGITS: usize = 30;

/// A non-negative duration written in Go's duration syntax (`10s`, `1.5s`,
/// `100ms`, `1h30m`), as Istio's API takes it.
///
/// The wrapped [`Duration`] is public (`.0`); [`IstioDuration::as_duration`]
/// returns it too. Serde reads and writes the string form; the JSON schema is
/// `type: string`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IstioDuration(pub Duration);

impl IstioDuration {
    /// The zero duration (`0s`).
    pub const ZERO: IstioDuration = IstioDuration(Duration::ZERO);

    /// Wraps a [`Duration`].
    pub const fn new(duration: Duration) -> Self {
        IstioDuration(duration)
    }

    /// A duration of whole seconds.
    pub const fn from_secs(secs: u64) -> Self {
        IstioDuration(Duration::from_secs(secs))
    }

    /// A duration of whole milliseconds.
    pub const fn from_millis(millis: u64) -> Self {
        IstioDuration(Duration::from_millis(millis))
    }

    /// The wrapped [`Duration`].
    pub const fn as_duration(&self) -> Duration {
        self.0
    }

    /// Whether this is the zero duration (Istio uses `0s` to mean "disabled"
    /// for some fields, e.g. a route timeout).
    pub const fn is_zero(&self) -> bool {
        self.0.is_zero()
    }

    /// Parses Go duration syntax; see the module documentation for the rules.
    pub fn parse(text: &str) -> Result<Self, DurationParseError> {
        parse_go_duration(text).map(IstioDuration)
    }
}

impl From<Duration> for IstioDuration {
    fn from(duration: Duration) -> Self {
        IstioDuration(duration)
    }
}

impl From<IstioDuration> for Duration {
    fn from(duration: IstioDuration) -> Self {
        duration.0
    }
}

impl FromStr for IstioDuration {
    type Err = DurationParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        IstioDuration::parse(text)
    }
}

/// Why a duration string was rejected. The message quotes the bad text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationParseError {
    /// The string was empty.
    #[error("invalid duration \"\": empty string (expected e.g. \"10s\", \"1.5s\", \"100ms\")")]
    Empty,
    /// The string started with `-`.
    #[error("invalid duration {text:?}: durations must not be negative")]
    Negative {
        /// The rejected text.
        text: String,
    },
    /// A number was malformed or missing.
    #[error("invalid duration {text:?}: expected a number at byte {at}")]
    BadNumber {
        /// The rejected text.
        text: String,
        /// Byte offset of the problem.
        at: usize,
    },
    /// A number was not followed by a unit.
    #[error("invalid duration {text:?}: missing unit after the number (use ns, us, ms, s, m or h)")]
    MissingUnit {
        /// The rejected text.
        text: String,
    },
    /// The unit was not one of Go's.
    #[error("invalid duration {text:?}: unknown unit {unit:?} (use ns, us, ms, s, m or h)")]
    UnknownUnit {
        /// The rejected text.
        text: String,
        /// The unit as written.
        unit: String,
    },
    /// The total exceeded Go's `time.Duration` range.
    #[error("invalid duration {text:?}: too large (at most about 292 years)")]
    Overflow {
        /// The rejected text.
        text: String,
    },
}

impl DurationParseError {
    /// A short, fixed label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            DurationParseError::Empty => "empty",
            DurationParseError::Negative { .. } => "negative",
            DurationParseError::BadNumber { .. } => "bad_number",
            DurationParseError::MissingUnit { .. } => "missing_unit",
            DurationParseError::UnknownUnit { .. } => "unknown_unit",
            DurationParseError::Overflow { .. } => "overflow",
        }
    }
}

fn unit_nanos(unit: &str) -> Option<u128> {
    match unit {
        "ns" => Some(1),
        "us" | "\u{b5}s" | "\u{3bc}s" => Some(NANOS_PER_MICRO),
        "ms" => Some(NANOS_PER_MILLI),
        "s" => Some(NANOS_PER_SECOND),
        "m" => Some(NANOS_PER_MINUTE),
        "h" => Some(NANOS_PER_HOUR),
        _ => None,
    }
}

fn parse_go_duration(original: &str) -> Result<Duration, DurationParseError> {
    let owned = || original.to_string();
    let mut rest = original;
    if rest.is_empty() {
        return Err(DurationParseError::Empty);
    }
    if rest.starts_with('-') {
        return Err(DurationParseError::Negative { text: owned() });
    }
    if let Some(stripped) = rest.strip_prefix('+') {
        rest = stripped;
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(DurationParseError::BadNumber {
            text: owned(),
            at: original.len(),
        });
    }

    let mut total: u128 = 0;
    while !rest.is_empty() {
        let at = original.len() - rest.len();
        // Integer part.
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, after_int) = rest.split_at(int_len);
        // Optional fraction.
        let (frac_digits, after_number) = match after_int.strip_prefix('.') {
            Some(after_dot) => {
                let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
                after_dot.split_at(frac_len)
            }
            None => ("", after_int),
        };
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(DurationParseError::BadNumber { text: owned(), at });
        }
        // Unit: everything up to the next digit or '.'.
        let unit_len = after_number
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(after_number.len(), |(i, _)| i);
        let (unit, after_unit) = after_number.split_at(unit_len);
        if unit.is_empty() {
            return Err(DurationParseError::MissingUnit { text: owned() });
        }
        let Some(scale) = unit_nanos(unit) else {
            return Err(DurationParseError::UnknownUnit {
                text: owned(),
                unit: unit.to_string(),
            });
        };

        let overflow = || DurationParseError::Overflow { text: owned() };
        let mut whole: u128 = 0;
        for digit in int_digits.bytes() {
            whole = whole
                .checked_mul(10)
                .and_then(|w| w.checked_add(u128::from(digit - b'0')))
                .filter(|w| *w <= MAX_NANOS)
                .ok_or_else(overflow)?;
        }
        let mut component = whole.checked_mul(scale).ok_or_else(overflow)?;
        if !frac_digits.is_empty() {
            let mut numerator: u128 = 0;
            let mut denominator: u128 = 1;
            for digit in frac_digits.bytes().take(MAX_FRACTION_DIGITS) {
                numerator = numerator * 10 + u128::from(digit - b'0');
                denominator *= 10;
            }
            // numerator < 10^30 and scale <= 3.6e12, so this cannot overflow.
            component += numerator * scale / denominator;
        }
        total = total
            .checked_add(component)
            .filter(|t| *t <= MAX_NANOS)
            .ok_or_else(overflow)?;
        rest = after_unit;
    }

    let secs =
        u64::try_from(total / NANOS_PER_SECOND).map_err(|_| DurationParseError::Overflow {
            text: original.to_string(),
        })?;
    // The remainder is below 1e9, so it fits a u32.
    let nanos = (total % NANOS_PER_SECOND) as u32;
    Ok(Duration::new(secs, nanos))
}

/// Writes `value / unit` with the fraction trimmed of trailing zeros.
fn write_fraction(out: &mut String, value: u128, unit: u128) {
    out.push_str(&(value / unit).to_string());
    let remainder = value % unit;
    if remainder != 0 {
        let width = unit.ilog10() as usize;
        let digits = format!("{remainder:0width$}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
}

impl fmt::Display for IstioDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        let mut out = String::new();
        if nanos == 0 {
            out.push_str("0s");
        } else if nanos < NANOS_PER_MICRO {
            write_fraction(&mut out, nanos, 1);
            out.push_str("ns");
        } else if nanos < NANOS_PER_MILLI {
            write_fraction(&mut out, nanos, NANOS_PER_MICRO);
            out.push_str("us");
        } else if nanos < NANOS_PER_SECOND {
            write_fraction(&mut out, nanos, NANOS_PER_MILLI);
            out.push_str("ms");
        } else {
            let hours = nanos / NANOS_PER_HOUR;
            let minutes = (nanos % NANOS_PER_HOUR) / NANOS_PER_MINUTE;
            let rest = nanos % NANOS_PER_MINUTE;
            if hours > 0 {
                out.push_str(&format!("{hours}h{minutes}m"));
            } else if minutes > 0 {
                out.push_str(&format!("{minutes}m"));
            }
            write_fraction(&mut out, rest, NANOS_PER_SECOND);
            out.push('s');
        }
        f.write_str(&out)
    }
}

impl Serialize for IstioDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IstioDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = IstioDuration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"10s\", \"1.5s\" or \"100ms\"")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<IstioDuration, E> {
                IstioDuration::parse(text).map_err(E::custom)
            }
        }

        deserializer.deserialize_str(Visitor)
    }
}

impl JsonSchema for IstioDuration {
    fn schema_name() -> Cow<'static, str> {
        "IstioDuration".into()
    }

    fn schema_id() -> Cow<'static, str> {
        concat!(module_path!(), "::IstioDuration").into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A duration in Go syntax, e.g. 10s, 1.5s, 100ms, 1h30m."
        })
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Duration {
        IstioDuration::parse(text)
            .unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
            .0
    }

    #[test]
    fn parses_common_forms() {
        assert_eq!(parse("10s"), Duration::from_secs(10));
        assert_eq!(parse("0.5s"), Duration::from_millis(500));
        assert_eq!(parse("1.5s"), Duration::from_millis(1500));
        assert_eq!(parse("100ms"), Duration::from_millis(100));
        assert_eq!(parse("1m"), Duration::from_secs(60));
        assert_eq!(parse("1h30m"), Duration::from_secs(5400));
        assert_eq!(parse("500us"), Duration::from_micros(500));
        assert_eq!(parse("500\u{b5}s"), Duration::from_micros(500));
        assert_eq!(parse("500\u{3bc}s"), Duration::from_micros(500));
        assert_eq!(parse("7ns"), Duration::from_nanos(7));
        assert_eq!(parse("0s"), Duration::ZERO);
        assert_eq!(parse("0"), Duration::ZERO);
        assert_eq!(parse("+5s"), Duration::from_secs(5));
        assert_eq!(parse(".5s"), Duration::from_millis(500));
        assert_eq!(parse("5.s"), Duration::from_secs(5));
        assert_eq!(parse("1h0m0s"), Duration::from_secs(3600));
        assert_eq!(parse("2m5.25s"), Duration::from_millis(125_250));
        assert_eq!(parse("1.000000001s"), Duration::new(1, 1));
        assert_eq!(parse("24h"), Duration::from_secs(86_400));
        assert_eq!(parse("1.5h"), Duration::from_secs(5400));
    }

    #[test]
    fn rejects_bad_input_naming_the_text() {
        let cases = [
            ("", "empty"),
            ("-1s", "negative"),
            ("10", "missing_unit"),
            ("1.5", "missing_unit"),
            ("s", "bad_number"),
            (".s", "bad_number"),
            ("+", "bad_number"),
            ("1x", "unknown_unit"),
            ("1 s", "unknown_unit"),
            ("1sec", "unknown_unit"),
            ("10s ", "unknown_unit"),
            ("1d", "unknown_unit"),
            ("9999999999999h", "overflow"),
            ("3000000h", "overflow"),
        ];
        for (text, kind) in cases {
            let err = IstioDuration::parse(text).expect_err(text);
            assert_eq!(err.kind(), kind, "{text:?}: {err}");
            assert!(err.to_string().contains(&format!("{text:?}")), "{err}");
        }
    }

    #[test]
    fn prints_canonical_forms_that_round_trip() {
        let cases = [
            ("0s", "0s"),
            ("0", "0s"),
            ("10s", "10s"),
            ("1.5s", "1.5s"),
            ("0.5s", "500ms"),
            ("100ms", "100ms"),
            ("1.5ms", "1.5ms"),
            ("500us", "500us"),
            ("7ns", "7ns"),
            ("60s", "1m0s"),
            ("1h30m", "1h30m0s"),
            ("2m5.25s", "2m5.25s"),
            ("1.000000001s", "1.000000001s"),
        ];
        for (input, printed) in cases {
            let d = IstioDuration::parse(input).expect(input);
            assert_eq!(d.to_string(), printed, "{input}");
            assert_eq!(IstioDuration::parse(printed).expect(printed), d);
        }
    }

    #[test]
    fn serde_uses_the_string_form() {
        let d: IstioDuration = serde_json::from_str("\"1.5s\"").expect("parses");
        assert_eq!(d.as_duration(), Duration::from_millis(1500));
        assert_eq!(serde_json::to_string(&d).expect("serializes"), "\"1.5s\"");
        let err = serde_json::from_str::<IstioDuration>("\"10 seconds\"").expect_err("bad");
        assert!(err.to_string().contains("\"10 seconds\""), "{err}");
        assert!(serde_json::from_str::<IstioDuration>("10").is_err());
    }
}
