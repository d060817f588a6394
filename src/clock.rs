//! Time in one place: [`Millis`] (milliseconds since the Unix epoch, the unit
//! of every stored time), the [`Clock`] the service and the memory store read,
//! and RFC 3339 formatting. Nothing else reads the wall clock, so tests move a
//! [`ManualClock`] instead of sleeping.
//!
//! (Named `clock` rather than `time` so it does not shadow the `time` crate.)
//!
//! Whose clock decides: the lockout, reservations, sessions and the rate limit
//! are judged by the store's time (Redis `TIME` inside the scripts; the memory
//! store's clock), so replicas with skewed clocks agree. The service's clock
//! only decides coarse things: the census period and today's date for PESEL
//! parsing.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Millis;

    /// Today's date in Poland. Poland is at most two hours ahead of UTC, so a
    /// child born just after local midnight is never "in the future".
    fn poland_today(&self) -> time::Date {
        (to_datetime(self.now()) + time::Duration::hours(2)).date()
    }
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        from_datetime(OffsetDateTime::now_utc())
    }
}

/// A clock that moves only when told; starts at the wall clock's time.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(start: Millis) -> Arc<Self> {
        Arc::new(Self(AtomicI64::new(start)))
    }

    /// A manual clock at the current wall-clock time.
    pub fn at_wall_time() -> Arc<Self> {
        Self::new(SystemClock.now())
    }

    pub fn advance(&self, by: std::time::Duration) {
        self.0.fetch_add(duration_millis(by), Ordering::SeqCst);
    }

    pub fn set(&self, to: Millis) {
        self.0.store(to, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
}

/// The shared wall clock.
pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

pub fn from_datetime(t: OffsetDateTime) -> Millis {
    (t.unix_timestamp_nanos() / 1_000_000) as Millis
}

pub fn to_datetime(ms: Millis) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A duration in milliseconds, saturating far beyond any configured value.
pub fn duration_millis(d: std::time::Duration) -> Millis {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

/// RFC 3339 in UTC, as the API returns times.
pub fn rfc3339(ms: Millis) -> String {
    to_datetime(ms).format(&Rfc3339).unwrap_or_default()
}

/// Seconds from `now` until `until`, at least 1 (a `Retry-After` of 0 invites a hot loop).
pub fn seconds_until(now: Millis, until: Millis) -> u64 {
    let ms = (until - now).max(0) as u64;
    ms.div_ceil(1000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let c = ManualClock::new(1_000);
        assert_eq!(c.now(), 1_000);
        c.advance(std::time::Duration::from_secs(2));
        assert_eq!(c.now(), 3_000);
    }

    #[test]
    fn rfc3339_is_utc_with_a_z() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn poland_today_is_two_hours_ahead_of_utc_at_most() {
        // 2021-04-01T22:30:00Z is already April 2nd in Warsaw (CEST).
        let c = ManualClock::new(from_datetime(time::macros::datetime!(2021-04-01 22:30 UTC)));
        assert_eq!(c.poland_today(), time::macros::date!(2021 - 04 - 02));
    }

    #[test]
    fn retry_after_is_never_zero() {
        assert_eq!(seconds_until(10, 5), 1);
        assert_eq!(seconds_until(0, 1_001), 2);
    }
}
