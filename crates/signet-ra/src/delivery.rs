//! When to try an outbox message again after the mail relay refused it or could not be
//! reached (with SMTP down, mail waits in the outbox and is sent later).
//!
//! Each wait doubles the last, up to a cap: a short outage delays mail by about as long as it
//! lasted, and a long one costs a few attempts an hour instead of one a minute. The policy is
//! pure; the relay passes the attempt count the store kept and its clock's time.

use time::{Duration, OffsetDateTime};

/// Exponential backoff for outbox delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait after the first failed attempt.
    pub first: Duration,
    /// The longest wait, however many attempts failed.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { first: Duration::minutes(1), max: Duration::hours(4) }
    }
}

impl RetryPolicy {
    /// The wait after `attempts` failed attempts: `first` after one, doubling, at most `max`.
    pub fn delay(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1);
        // 2^30 times any first wait is past any sane cap; a larger shift would overflow.
        let factor = 1_i32 << doublings.min(30);
        self.first.checked_mul(factor).map_or(self.max, |d| d.min(self.max))
    }

    /// When to try again after the `attempts`-th attempt failed at `failed_at`.
    pub fn next_attempt(&self, attempts: u32, failed_at: OffsetDateTime) -> OffsetDateTime {
        failed_at + self.delay(attempts)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn waits_double_up_to_the_cap() {
        let p = RetryPolicy::default();
        let waits: Vec<i64> = (1..=10).map(|n| p.delay(n).whole_minutes()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 240, 240]);
        assert_eq!(p.delay(0), p.first, "a message never tried waits the first delay");
        assert_eq!(p.delay(u32::MAX), p.max, "no overflow however many attempts");
        let at = datetime!(2025-03-03 15:00 UTC);
        assert_eq!(p.next_attempt(3, at), datetime!(2025-03-03 15:04 UTC));
    }
}
