//! When to renew and how long to wait after a failure: pure functions of
//! the certificate's validity, the clock and a jitter sample, so tests pick
//! all three.

use std::time::{Duration, SystemTime};

/// The share of half the lifetime the renewal moves by at most (±10%).
pub const JITTER: f64 = 0.1;

/// How long to wait, from `now` (when the certificate arrived), before
/// renewing a certificate valid from `not_before` to `not_after`: half of
/// the lifetime left from the later of `now` and `not_before`, moved by
/// `jitter * JITTER` of that half, where `jitter` is in `[-1, 1]`. Zero
/// if the certificate has expired (or the validity is inverted).
///
/// The lifetime counts from arrival, not from `not_before` alone, because
/// CAs back-date `not_before` to tolerate clock skew (Weft's by a minute):
/// a 20 s certificate back-dated by 60 s must still be renewed after about
/// 10 s, not at once and again forever.
pub fn renewal_delay(
    not_before: SystemTime,
    not_after: SystemTime,
    now: SystemTime,
    jitter: f64,
) -> Duration {
    let start = not_before.max(now);
    let Ok(lifetime) = not_after.duration_since(start) else {
        return Duration::ZERO;
    };
    let half = lifetime / 2;
    let shift = half.mul_f64(JITTER * jitter.clamp(-1.0, 1.0).abs());
    let offset = if jitter < 0.0 {
        half.saturating_sub(shift)
    } else {
        half + shift
    };
    (start + offset).duration_since(now).unwrap_or_default()
}

/// Exponential backoff between failed attempts: `initial`, doubling, at
/// most `max`; each delay is jittered down by up to 20% so that agents do
/// not retry in lockstep.
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            next: initial,
        }
    }

    /// The delay before the next attempt, given a sample in `[0, 1)`.
    pub fn next_delay(&mut self, sample: f64) -> Duration {
        let delay = self.next.mul_f64(1.0 - 0.2 * sample.clamp(0.0, 1.0));
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// After a success: start again from `initial`.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn renews_at_half_the_lifetime_left_without_jitter() {
        let delay = renewal_delay(at(T0), at(T0 + 100), at(T0), 0.0);
        assert_eq!(delay, Duration::from_secs(50));
        // Arriving late (or a clock behind the CA's): half of what is left.
        let delay = renewal_delay(at(T0), at(T0 + 100), at(T0 + 10), 0.0);
        assert_eq!(delay, Duration::from_secs(45));
    }

    #[test]
    fn a_back_dated_short_certificate_is_renewed_at_half_its_usable_life() {
        let delay = renewal_delay(at(T0 - 60), at(T0 + 20), at(T0), 0.0);
        assert_eq!(delay, Duration::from_secs(10));
        // Not valid yet here: the lifetime counts from `not_before`.
        let delay = renewal_delay(at(T0 + 10), at(T0 + 110), at(T0), 0.0);
        assert_eq!(delay, Duration::from_secs(60));
    }

    #[test]
    fn jitter_moves_the_renewal_by_at_most_a_tenth_of_the_half() {
        let late = renewal_delay(at(T0), at(T0 + 200), at(T0), 1.0);
        let early = renewal_delay(at(T0), at(T0 + 200), at(T0), -1.0);
        assert_eq!(late, Duration::from_secs(110));
        assert_eq!(early, Duration::from_secs(90));
        let beyond = renewal_delay(at(T0), at(T0 + 200), at(T0), 7.0);
        assert_eq!(beyond, late);
    }

    #[test]
    fn an_expired_certificate_or_inverted_validity_means_now() {
        assert_eq!(
            renewal_delay(at(T0), at(T0 + 100), at(T0 + 100), 0.0),
            Duration::ZERO
        );
        assert_eq!(
            renewal_delay(at(T0 + 100), at(T0), at(T0), 0.0),
            Duration::ZERO
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum_and_resets() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let delays: Vec<u64> = (0..5).map(|_| backoff.next_delay(0.0).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 5, 5]);
        assert_eq!(backoff.next_delay(0.5), Duration::from_millis(4500));
        backoff.reset();
        assert_eq!(backoff.next_delay(0.0), Duration::from_secs(1));
    }
}
