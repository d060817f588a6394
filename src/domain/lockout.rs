//! The lockout rules of RULES.md as a pure state machine. Time is passed in
//! (milliseconds since the Unix epoch), never read from a clock, so tests are
//! instant and the memory store and the Redis script (`store/lua/*.lua`) can be
//! checked against this one model.
//!
//! ```text
//!            failure (failures < max)           failure (failures == max)
//!   Clear ─────────────────────────▶ Counting ─────────────────────────▶ Locked(level 1)
//!     ▲                                 │                                   │ block ends
//!     │ success, or forget_after        │                                   ▼
//!     │ since last failure              │                          Cooling(level n)
//!     ├─────────────────────────────────┘                                   │ failure:
//!     │ success, or forget_after since the lock ended      Locked(level n+1, block × multiplier, ≤ max)
//!     └─────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! Concurrency: an attempt first *reserves* a slot (`reserve`), and only then are
//! credentials checked; the result is *settled* (`settle`). Reservations in flight
//! count against the failures still allowed, so however many attempts arrive at
//! once, at most `max_failures` checks can fail before the lock holds. A reservation
//! that is never settled (a replica died mid-request) expires after
//! `reservation_ttl` and then counts as a failure *at its expiry time*, whenever
//! the next attempt comes: unknown outcomes fail closed, and a failure that old
//! is forgotten exactly as a settled one would be.

use std::collections::BTreeMap;
use std::time::Duration;

pub use crate::clock::Millis;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockoutPolicy {
    pub max_failures: u32,
    pub base_block: Millis,
    pub multiplier: u32,
    pub max_block: Millis,
    pub forget_after: Millis,
    pub reservation_ttl: Millis,
}

impl LockoutPolicy {
    pub fn new(
        max_failures: u32,
        base_block: Duration,
        multiplier: u32,
        max_block: Duration,
        forget_after: Duration,
        reservation_ttl: Duration,
    ) -> Self {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4);
        Self {
            max_failures: max_failures.max(1),
            base_block: ms(base_block),
            multiplier: multiplier.max(1),
            max_block: ms(max_block).max(ms(base_block)),
            forget_after: ms(forget_after),
            reservation_ttl: ms(reservation_ttl).max(1),
        }
    }

    /// Length of the lock at `level` (1-based): base × multiplier^(level-1), capped.
    pub fn block_for_level(&self, level: u32) -> Millis {
        let mut block = self.base_block;
        for _ in 1..level {
            if block >= self.max_block {
                break;
            }
            block = block.saturating_mul(i64::from(self.multiplier));
        }
        block.min(self.max_block)
    }
}

/// Per-PESEL lockout state, as stored. All-zero with no reservations means
/// "nothing to remember".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockState {
    /// Failures in the current streak.
    pub failures: u32,
    /// Locks so far in the streak; 0 = never locked.
    pub level: u32,
    /// End of the current or last lock; 0 = none.
    pub locked_until: Millis,
    /// Time of the last failure; 0 = none.
    pub last_failure: Millis,
    /// Reservations in flight: ticket → expiry.
    pub pending: BTreeMap<String, Millis>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// Go ahead and check the credentials, then settle this ticket.
    Allowed,
    /// Locked until the given time; the credentials must not be checked.
    Locked { until: Millis },
    /// Not locked, but the failures still allowed are all taken by attempts in
    /// flight; answered like a lock with a short retry.
    Contended { retry_at: Millis },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The credentials were right.
    Success,
    /// The credentials were wrong.
    Failure,
    /// No verdict on the credentials (overloaded, conflict, reserved PESEL):
    /// release the reservation and change nothing else.
    Neutral,
}

/// A lock that this settlement started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockStarted {
    pub level: u32,
    pub until: Millis,
}

/// How long the contended answer asks a client to wait.
pub const CONTENDED_RETRY: Millis = 1_000;

impl LockState {
    pub fn is_clear(&self) -> bool {
        self.failures == 0 && self.level == 0 && self.locked_until == 0 && self.pending.is_empty()
    }

    pub fn is_locked(&self, now: Millis) -> bool {
        self.locked_until > now
    }

    /// Brings the state up to `now`: each expired reservation becomes a
    /// failure at the time it expired (in order of expiry, then ticket, as the
    /// Redis sorted set orders them), and a streak old enough is forgotten.
    pub fn advance(&mut self, policy: &LockoutPolicy, now: Millis) {
        let mut expired: Vec<(Millis, String)> = self
            .pending
            .iter()
            .filter(|(_, expiry)| **expiry <= now)
            .map(|(ticket, expiry)| (*expiry, ticket.clone()))
            .collect();
        expired.sort();
        for (at, ticket) in expired {
            self.pending.remove(&ticket);
            self.forget_if_quiet(policy, at);
            self.fail(policy, at);
        }
        self.forget_if_quiet(policy, now);
    }

    fn forget_if_quiet(&mut self, policy: &LockoutPolicy, now: Millis) {
        let forget_from = if self.level > 0 {
            self.locked_until
        } else {
            self.last_failure
        };
        if (self.failures > 0 || self.level > 0) && forget_from + policy.forget_after <= now {
            self.clear_streak();
        }
    }

    /// Reserves an attempt under `ticket` if the PESEL is neither locked nor
    /// fully contended.
    pub fn reserve(&mut self, policy: &LockoutPolicy, now: Millis, ticket: &str) -> Reservation {
        self.advance(policy, now);
        if self.is_locked(now) {
            return Reservation::Locked {
                until: self.locked_until,
            };
        }
        // After a lock has ended, the next failure locks again at once.
        let budget = if self.level == 0 {
            policy.max_failures.saturating_sub(self.failures)
        } else {
            1
        };
        if self.pending.len() >= budget as usize {
            return Reservation::Contended {
                retry_at: now + CONTENDED_RETRY,
            };
        }
        self.pending
            .insert(ticket.to_owned(), now + policy.reservation_ttl);
        Reservation::Allowed
    }

    /// Settles the reservation `ticket` with the outcome of the credential check.
    pub fn settle(
        &mut self,
        policy: &LockoutPolicy,
        now: Millis,
        ticket: &str,
        outcome: Outcome,
    ) -> Option<LockStarted> {
        // A ticket that already expired was counted as a failure then.
        let was_pending = self.pending.remove(ticket).is_some();
        self.advance(policy, now);
        match outcome {
            Outcome::Success => {
                self.clear_streak();
                None
            }
            Outcome::Failure if was_pending => self.fail(policy, now),
            Outcome::Failure | Outcome::Neutral => None,
        }
    }

    fn fail(&mut self, policy: &LockoutPolicy, now: Millis) -> Option<LockStarted> {
        // Failures during a lock never lengthen it.
        if self.is_locked(now) {
            return None;
        }
        self.failures += 1;
        self.last_failure = now;
        if self.level == 0 && self.failures < policy.max_failures {
            return None;
        }
        self.level += 1;
        self.locked_until = now + policy.block_for_level(self.level);
        Some(LockStarted {
            level: self.level,
            until: self.locked_until,
        })
    }

    fn clear_streak(&mut self) {
        self.failures = 0;
        self.level = 0;
        self.locked_until = 0;
        self.last_failure = 0;
    }

    /// How long the stored state must be kept to honour `forget_after`.
    pub fn keep_until(&self, policy: &LockoutPolicy) -> Millis {
        let streak_end = self.locked_until.max(self.last_failure) + policy.forget_after;
        let pending_end = self.pending.values().copied().max().unwrap_or(0);
        streak_end.max(pending_end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Millis = 3_600_000;

    fn policy() -> LockoutPolicy {
        LockoutPolicy {
            max_failures: 5,
            base_block: H,
            multiplier: 2,
            max_block: 24 * H,
            forget_after: 24 * H,
            reservation_ttl: 30_000,
        }
    }

    /// One complete attempt: reserve, then settle with `outcome` if allowed.
    fn attempt(
        s: &mut LockState,
        now: Millis,
        outcome: Outcome,
    ) -> Result<Option<LockStarted>, Reservation> {
        match s.reserve(&policy(), now, "t") {
            Reservation::Allowed => Ok(s.settle(&policy(), now, "t", outcome)),
            other => Err(other),
        }
    }

    #[test]
    fn the_fifth_failure_locks_for_the_base_block() {
        let mut s = LockState::default();
        for i in 0..4 {
            assert_eq!(attempt(&mut s, i, Outcome::Failure), Ok(None));
        }
        assert_eq!(
            attempt(&mut s, 4, Outcome::Failure),
            Ok(Some(LockStarted {
                level: 1,
                until: 4 + H
            }))
        );
    }

    #[test]
    fn attempts_during_a_lock_are_refused_and_do_not_lengthen_it() {
        let mut s = LockState::default();
        for i in 0..5 {
            let _ = attempt(&mut s, i, Outcome::Failure);
        }
        for t in [10, H / 2, H + 3] {
            assert_eq!(
                attempt(&mut s, t, Outcome::Failure),
                Err(Reservation::Locked { until: 4 + H })
            );
        }
    }

    #[test]
    fn each_failure_after_a_lock_escalates_up_to_the_cap() {
        let mut s = LockState::default();
        for i in 0..5 {
            let _ = attempt(&mut s, i, Outcome::Failure);
        }
        let mut now = 4;
        let mut expected = vec![];
        let mut seen = vec![];
        for level in 2..=8 {
            now = s.locked_until; // the instant the lock ends
            let started = attempt(&mut s, now, Outcome::Failure).unwrap().unwrap();
            seen.push(started.until - now);
            expected.push(policy().block_for_level(level));
            assert_eq!(started.level, level);
        }
        assert_eq!(
            seen,
            vec![2 * H, 4 * H, 8 * H, 16 * H, 24 * H, 24 * H, 24 * H]
        );
        assert_eq!(seen, expected);
        assert!(now > 0);
    }

    #[test]
    fn success_clears_failures_and_escalation() {
        let mut s = LockState::default();
        for i in 0..5 {
            let _ = attempt(&mut s, i, Outcome::Failure);
        }
        let after = s.locked_until;
        assert_eq!(attempt(&mut s, after, Outcome::Success), Ok(None));
        assert!(s.is_clear());
        for i in 0..4 {
            assert_eq!(attempt(&mut s, after + i, Outcome::Failure), Ok(None));
        }
    }

    #[test]
    fn a_quiet_streak_is_forgotten() {
        let mut s = LockState::default();
        for i in 0..4 {
            let _ = attempt(&mut s, i, Outcome::Failure);
        }
        // 24 h after the last failure, the four failures are gone.
        let later = 3 + 24 * H;
        for i in 0..4 {
            assert_eq!(attempt(&mut s, later + i, Outcome::Failure), Ok(None));
        }
        // After a lock, the clock starts when the lock ends.
        let mut s = LockState::default();
        for i in 0..5 {
            let _ = attempt(&mut s, i, Outcome::Failure);
        }
        let end = s.locked_until;
        let started = attempt(&mut s, end + 24 * H - 1, Outcome::Failure).unwrap();
        assert_eq!(started.map(|l| l.level), Some(2));
        let mut s2 = LockState::default();
        for i in 0..5 {
            let _ = attempt(&mut s2, i, Outcome::Failure);
        }
        assert_eq!(attempt(&mut s2, end + 24 * H, Outcome::Failure), Ok(None));
        assert_eq!(s2.level, 0);
    }

    #[test]
    fn reservations_in_flight_count_against_the_budget() {
        let p = policy();
        let mut s = LockState::default();
        for i in 0..5 {
            assert_eq!(s.reserve(&p, 0, &format!("t{i}")), Reservation::Allowed);
        }
        assert_eq!(
            s.reserve(&p, 0, "t5"),
            Reservation::Contended {
                retry_at: CONTENDED_RETRY
            }
        );
        for i in 0..5 {
            s.settle(&p, 1, &format!("t{i}"), Outcome::Failure);
        }
        assert!(s.is_locked(1));
        assert_eq!(s.level, 1);
    }

    #[test]
    fn neutral_releases_the_reservation_only() {
        let p = policy();
        let mut s = LockState::default();
        let _ = attempt(&mut s, 0, Outcome::Failure);
        assert_eq!(s.reserve(&p, 1, "n"), Reservation::Allowed);
        assert_eq!(s.settle(&p, 2, "n", Outcome::Neutral), None);
        assert_eq!(s.failures, 1);
        assert!(s.pending.is_empty());
    }

    #[test]
    fn an_abandoned_reservation_expires_as_a_failure() {
        let p = policy();
        let mut s = LockState::default();
        assert_eq!(s.reserve(&p, 0, "lost"), Reservation::Allowed);
        s.advance(&p, p.reservation_ttl);
        assert_eq!(s.failures, 1);
        assert!(s.pending.is_empty());
        assert_eq!(s.last_failure, p.reservation_ttl);
        // Settling it late does not count it twice.
        assert_eq!(
            s.settle(&p, p.reservation_ttl + 1, "lost", Outcome::Failure),
            None
        );
        assert_eq!(s.failures, 1);
    }

    #[test]
    fn an_abandoned_reservation_counts_whenever_the_next_attempt_comes() {
        let p = policy();
        let mut s = LockState::default();
        for i in 0..4 {
            let _ = attempt(&mut s, i, Outcome::Failure);
        }
        assert_eq!(s.reserve(&p, 10, "lost"), Reservation::Allowed);
        // An hour later (well inside forget_after) the lost attempt is the
        // fifth failure: it locks, from the moment it expired.
        let expired_at = 10 + p.reservation_ttl;
        assert_eq!(
            s.reserve(&p, H, "next"),
            Reservation::Locked {
                until: expired_at + H
            }
        );
        // Past forget_after it is forgotten like any other failure.
        let mut s = LockState::default();
        assert_eq!(s.reserve(&p, 0, "lost"), Reservation::Allowed);
        assert_eq!(s.reserve(&p, 30 * H, "next"), Reservation::Allowed);
        assert_eq!(s.failures, 0);
    }

    #[test]
    fn block_lengths_saturate_instead_of_overflowing() {
        let p = LockoutPolicy {
            multiplier: 1000,
            max_block: i64::MAX / 2,
            ..policy()
        };
        assert_eq!(p.block_for_level(100), i64::MAX / 2);
    }
}
