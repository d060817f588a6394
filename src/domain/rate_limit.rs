//! The per-client rate limit as a pure token bucket (API.md: "a client gets
//! the limit, whatever replica it reaches"). One bucket per client network
//! lives in the store; replicas take tokens from it in batches. Amounts are
//! milli-tokens so the refill (`per_minute / 60` milli-tokens per ms) stays in
//! integers, exactly as `store/lua/rate_take.lua` computes it.

use crate::clock::Millis;

/// The shared token bucket of every client network: `burst` tokens, refilled
/// at `per_minute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatePolicy {
    pub per_minute: u32,
    pub burst: u32,
}

/// A bucket as stored: its milli-tokens at time `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub milli_tokens: i64,
    pub at: Millis,
}

impl RatePolicy {
    pub fn capacity(&self) -> i64 {
        i64::from(self.burst) * 1000
    }

    /// The bucket of a client never seen (or long forgotten): full.
    pub fn full(&self, now: Millis) -> Bucket {
        Bucket {
            milli_tokens: self.capacity(),
            at: now,
        }
    }

    /// `bucket` refilled up to `now`.
    pub fn refill(&self, bucket: Bucket, now: Millis) -> i64 {
        let elapsed = (now - bucket.at).max(0);
        let refill = elapsed.saturating_mul(i64::from(self.per_minute)) / 60;
        bucket
            .milli_tokens
            .saturating_add(refill)
            .min(self.capacity())
    }

    /// Takes `taken` tokens at `now`. Replicas take first and report later, so
    /// the bucket may go into debt, which later refills repay; the debt is
    /// bounded by one burst so a client is never locked out for long.
    pub fn take(&self, bucket: Option<Bucket>, taken: u32, now: Millis) -> Bucket {
        let current = bucket.map_or(self.capacity(), |b| self.refill(b, now));
        Bucket {
            milli_tokens: (current - i64::from(taken) * 1000).max(-self.capacity()),
            at: now,
        }
    }

    /// How long the refill takes to add `milli_tokens`.
    pub fn ms_to_refill(&self, milli_tokens: i64) -> Millis {
        let per = i64::from(self.per_minute.max(1));
        (milli_tokens.max(0) * 60 + per - 1) / per
    }

    /// How long until a bucket at `milli_tokens` is full again (its key can go).
    pub fn ms_until_full(&self, milli_tokens: i64) -> Millis {
        self.ms_to_refill(self.capacity() - milli_tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: RatePolicy = RatePolicy {
        per_minute: 120,
        burst: 30,
    };

    #[test]
    fn a_new_client_has_a_full_burst() {
        let b = P.take(None, 1, 0);
        assert_eq!(b.milli_tokens, 29_000);
    }

    #[test]
    fn tokens_come_back_at_the_configured_rate() {
        let b = P.take(None, 30, 0);
        assert_eq!(b.milli_tokens, 0);
        // 120 a minute = 2 a second.
        assert_eq!(P.refill(b, 1_000), 2_000);
        assert_eq!(P.refill(b, 10 * 60_000), 30_000);
    }

    #[test]
    fn debt_is_bounded_by_one_burst() {
        let b = P.take(None, 500, 0);
        assert_eq!(b.milli_tokens, -30_000);
        assert_eq!(P.ms_until_full(b.milli_tokens), 30_000);
    }
}
