//! Coalescing bursts of changes, for every config source: a change is
//! reported once no other came for `quiet`, and at most `max_delay` after
//! the first one of the burst (Istio's 100 ms and 10 s by default).

use std::time::Duration;

use tokio::sync::mpsc;

/// Receives "something changed" pings and yields settled changes.
#[derive(Debug)]
pub struct Debouncer {
    changes: mpsc::UnboundedReceiver<()>,
    quiet: Duration,
    max_delay: Duration,
}

impl Debouncer {
    pub fn new(changes: mpsc::UnboundedReceiver<()>, quiet: Duration, max_delay: Duration) -> Self {
        Self {
            changes,
            quiet,
            max_delay,
        }
    }

    /// Waits for the next settled change; `None` once every sender is gone.
    pub async fn changed(&mut self) -> Option<()> {
        self.changes.recv().await?;
        let deadline = tokio::time::Instant::now() + self.max_delay;
        loop {
            let quiet_until = (tokio::time::Instant::now() + self.quiet).min(deadline);
            match tokio::time::timeout_at(quiet_until, self.changes.recv()).await {
                Ok(Some(())) if tokio::time::Instant::now() < deadline => continue,
                Ok(None) => return None,
                _ => return Some(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_is_one_change_and_max_delay_bounds_it() {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut debouncer =
            Debouncer::new(rx, Duration::from_millis(100), Duration::from_millis(300));
        let sender = tokio::spawn(async move {
            // A change every 20 ms for 1 s: never quiet for 100 ms.
            for _ in 0..50 {
                let _ = tx.send(());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let start = tokio::time::Instant::now();
        assert_eq!(debouncer.changed().await, Some(()));
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(300) && waited < Duration::from_millis(900),
            "max_delay bounds a burst: {waited:?}"
        );
        let _ = sender.await;
        // Once every sender is gone, the debouncer says so.
        while debouncer.changed().await.is_some() {}
    }
}
