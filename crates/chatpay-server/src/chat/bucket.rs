//! The per-connection turn limit: a token bucket, `rate` client frames a second sustained and
//! bursts of twice that. The WebSocket transport keeps one per connection and asks it before
//! each turn; the clock is the caller's (`now`), so the rule is tested without waiting.

use std::time::Instant;

/// A token bucket. It starts full; every [`take`](TokenBucket::take) refills it for the time
/// since the last one (never beyond its burst), then spends one token if there is one.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// `rate` frames a second (at least 1), bursts of `2 * rate`, full at `now`.
    pub fn new(rate: u32, now: Instant) -> TokenBucket {
        let rate = f64::from(rate.max(1));
        TokenBucket {
            rate,
            tokens: rate * 2.0,
            at: now,
        }
    }

    fn burst(&self) -> f64 {
        self.rate * 2.0
    }

    /// Whether a frame arriving at `now` may go ahead. A `now` earlier than the last one (a
    /// clock that went back) refills nothing.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = self.at.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst());
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// How many frames in a row are allowed at `now`.
    fn drain(b: &mut TokenBucket, now: Instant) -> usize {
        let mut n = 0;
        while b.take(now) {
            n += 1;
            assert!(n <= 1_000_000, "the bucket never ran dry");
        }
        n
    }

    #[test]
    fn a_full_bucket_allows_a_burst_of_twice_the_rate_then_refuses() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(50, t0);
        assert_eq!(drain(&mut b, t0), 100);
        assert!(!b.take(t0));
    }

    #[test]
    fn it_refills_at_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, t0);
        drain(&mut b, t0);
        // At 10 a second, 50 ms is half a frame: not yet; 100 ms more makes one and a half.
        assert!(!b.take(t0 + Duration::from_millis(50)));
        assert!(b.take(t0 + Duration::from_millis(150)));
        assert!(!b.take(t0 + Duration::from_millis(150)));
        // Half a second later: five more (the half left over stays).
        assert_eq!(drain(&mut b, t0 + Duration::from_millis(650)), 5);
        assert!(b.take(t0 + Duration::from_millis(750)));
    }

    #[test]
    fn a_long_idle_refills_only_up_to_the_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(3, t0);
        drain(&mut b, t0);
        let much_later = t0 + Duration::from_secs(365 * 24 * 3600);
        assert_eq!(drain(&mut b, much_later), 6);
    }

    #[test]
    fn the_largest_rate_neither_overflows_nor_stops_refusing() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(u32::MAX, t0 + Duration::from_secs(1));
        // Far more than any connection sends, and still bounded: take a few and check the
        // bucket is not refilled beyond its burst by an idle year.
        for _ in 0..1000 {
            assert!(b.take(t0 + Duration::from_secs(1)));
        }
        assert!(b.take(t0 + Duration::from_secs(365 * 24 * 3600)));
        assert!(b.tokens <= b.burst());
    }

    #[test]
    fn a_rate_of_zero_is_one_a_second_and_a_clock_going_back_refills_nothing() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut b = TokenBucket::new(0, t0);
        assert_eq!(drain(&mut b, t0), 2);
        assert!(!b.take(t0 - Duration::from_secs(5)));
        // Time is measured from the latest `now` seen, not the one that went back.
        assert!(!b.take(t0 + Duration::from_millis(999)));
        assert!(b.take(t0 + Duration::from_secs(1)));
    }
}
