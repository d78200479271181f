//! What the server sent: per xDS type the number of responses a client
//! received and their total encoded size (`prost::Message::encoded_len` of
//! each `DiscoveryResponse` / `DeltaDiscoveryResponse`, ACKed or NACKed).
//! Counters only grow, so a benchmark takes a snapshot before a change and
//! one after convergence and subtracts ([`Traffic`] implements `Sub`). Pure.

use std::collections::BTreeMap;
use std::ops::{Add, AddAssign, Sub};

/// Responses received and their encoded bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Traffic {
    /// Sum of the responses' encoded sizes.
    pub bytes: u64,
    /// Number of responses.
    pub responses: u64,
}

impl Traffic {
    /// One response of `bytes` encoded bytes.
    pub fn response(bytes: usize) -> Self {
        Self {
            bytes: u64::try_from(bytes).unwrap_or(u64::MAX),
            responses: 1,
        }
    }
}

impl Add for Traffic {
    type Output = Self;
    fn add(self, other: Self) -> Self {
        Self {
            bytes: self.bytes.saturating_add(other.bytes),
            responses: self.responses.saturating_add(other.responses),
        }
    }
}

impl AddAssign for Traffic {
    fn add_assign(&mut self, other: Self) {
        *self = *self + other;
    }
}

/// `after - before` of two snapshots (saturating: never negative).
impl Sub for Traffic {
    type Output = Self;
    fn sub(self, before: Self) -> Self {
        Self {
            bytes: self.bytes.saturating_sub(before.bytes),
            responses: self.responses.saturating_sub(before.responses),
        }
    }
}

impl std::iter::Sum for Traffic {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::default(), Add::add)
    }
}

/// Per type URL.
pub type TrafficByType = BTreeMap<String, Traffic>;

/// Adds `traffic` to `type_url`'s counter.
pub fn record(by_type: &mut TrafficByType, type_url: &str, traffic: Traffic) {
    match by_type.get_mut(type_url) {
        Some(t) => *t += traffic,
        None => {
            by_type.insert(type_url.to_string(), traffic);
        }
    }
}

/// Sums `b` into `a`, type by type.
pub fn merge(a: &mut TrafficByType, b: &TrafficByType) {
    for (type_url, traffic) in b {
        record(a, type_url, *traffic);
    }
}

/// `after - before`, type by type (types absent before count from zero).
pub fn difference(after: &TrafficByType, before: &TrafficByType) -> TrafficByType {
    after
        .iter()
        .map(|(t, a)| (t.clone(), *a - before.get(t).copied().unwrap_or_default()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_add_up_per_type_and_in_total() {
        let mut by_type = TrafficByType::new();
        record(&mut by_type, "c", Traffic::response(100));
        record(&mut by_type, "c", Traffic::response(50));
        record(&mut by_type, "e", Traffic::response(7));
        assert_eq!(
            by_type.get("c"),
            Some(&Traffic {
                bytes: 150,
                responses: 2
            })
        );
        let total: Traffic = by_type.values().copied().sum();
        assert_eq!(
            total,
            Traffic {
                bytes: 157,
                responses: 3
            }
        );
    }

    #[test]
    fn snapshots_subtract_per_type_and_never_go_negative() {
        let mut before = TrafficByType::new();
        record(&mut before, "c", Traffic::response(100));
        let mut after = before.clone();
        record(&mut after, "c", Traffic::response(30));
        record(&mut after, "r", Traffic::response(5));
        let diff = difference(&after, &before);
        assert_eq!(diff.get("c"), Some(&Traffic::response(30)));
        assert_eq!(diff.get("r"), Some(&Traffic::response(5)));
        assert_eq!(
            Traffic::response(1) - Traffic::response(9),
            Traffic::default()
        );
        let mut merged = TrafficByType::new();
        merge(&mut merged, &before);
        merge(&mut merged, &diff);
        assert_eq!(merged, after);
    }
}
