//! Fixed-window counting: the pure core of the quota service.

use std::collections::HashMap;
use std::time::Duration;

use weft_model::Amount;

/// What one call is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Calls left in the window after this one.
    pub remaining: u32,
    /// Time until the window ends.
    pub reset: Duration,
}

/// Calls counted per (quota, override, window start). Time is passed in
/// (`now` since any fixed origin), so the counter is deterministic.
#[derive(Debug, Default)]
pub struct Counter {
    windows: HashMap<(String, Option<usize>), (Duration, u32)>,
}

impl Counter {
    /// Counts one call of `quota` / `override_index` at `now` against
    /// `amount`: windows start at multiples of `valid_duration`.
    pub fn hit(
        &mut self,
        quota: &str,
        override_index: Option<usize>,
        amount: Amount,
        now: Duration,
    ) -> Decision {
        let window = amount.valid_duration.max(Duration::from_millis(1));
        let start = window * u32::try_from(now.as_nanos() / window.as_nanos()).unwrap_or(u32::MAX);
        let reset = (start + window).saturating_sub(now);
        let entry = self
            .windows
            .entry((quota.to_string(), override_index))
            .or_insert((start, 0));
        if entry.0 != start {
            *entry = (start, 0);
        }
        if entry.1 < amount.max_amount {
            entry.1 += 1;
            Decision {
                allowed: true,
                remaining: amount.max_amount - entry.1,
                reset,
            }
        } else {
            Decision {
                allowed: false,
                remaining: 0,
                reset,
            }
        }
    }

    /// Forgets the windows of quotas not in `keep` (deleted quotas).
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.windows.retain(|(quota, _), _| keep(quota));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(n: u32, secs: u64) -> Amount {
        Amount {
            max_amount: n,
            valid_duration: Duration::from_secs(secs),
        }
    }

    #[test]
    fn a_window_admits_its_amount_then_the_next_window_starts_over() {
        let mut c = Counter::default();
        let a = amount(2, 10);
        let at = Duration::from_secs;
        assert_eq!(
            c.hit("ns/q", None, a, at(21)),
            Decision {
                allowed: true,
                remaining: 1,
                reset: at(9)
            }
        );
        assert!(c.hit("ns/q", None, a, at(22)).allowed);
        let refused = c.hit("ns/q", None, a, at(29));
        assert!(!refused.allowed);
        assert_eq!(refused.reset, at(1));
        assert!(c.hit("ns/q", None, a, at(30)).allowed);
    }

    #[test]
    fn overrides_and_quotas_count_apart() {
        let mut c = Counter::default();
        let one = amount(1, 5);
        let now = Duration::from_secs(1);
        assert!(c.hit("ns/q", Some(0), one, now).allowed);
        assert!(!c.hit("ns/q", Some(0), one, now).allowed);
        assert!(c.hit("ns/q", None, one, now).allowed);
        assert!(c.hit("ns/other", Some(0), one, now).allowed);
        c.retain(|q| q == "ns/q");
        assert!(c.hit("ns/other", Some(0), one, now).allowed);
    }
}
