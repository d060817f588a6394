//! The census period and the survey window (RULES.md, "The survey window"):
//! when password definition and login are possible at all, and for how long
//! after the first login a person may fill in the form.

use super::lockout::Millis;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CensusPeriod {
    pub opens_at: Option<Millis>,
    pub closes_at: Option<Millis>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodError {
    NotOpen,
    Closed,
}

impl CensusPeriod {
    /// Whether password definition and login are possible at `now`.
    pub fn check(&self, now: Millis) -> Result<(), PeriodError> {
        match (self.opens_at, self.closes_at) {
            (Some(open), _) if now < open => Err(PeriodError::NotOpen),
            (_, Some(close)) if now >= close => Err(PeriodError::Closed),
            _ => Ok(()),
        }
    }
}

/// The survey window of a person whose first login was `first_login`:
/// `window` long, ending no later than the census closes.
pub fn window_end(first_login: Millis, window: Millis, closes_at: Option<Millis>) -> Millis {
    let end = first_login.saturating_add(window);
    closes_at.map_or(end, |close| end.min(close))
}

/// A session's expiry after activity at `now`: idle timeout, but never past the window.
pub fn session_expiry(now: Millis, idle: Millis, window_end: Millis) -> Millis {
    now.saturating_add(idle).min(window_end)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Millis = 86_400_000;

    #[test]
    fn the_window_lasts_from_the_first_login() {
        assert_eq!(window_end(1_000, 14 * DAY, None), 1_000 + 14 * DAY);
    }

    #[test]
    fn the_window_ends_no_later_than_the_census() {
        assert_eq!(window_end(0, 14 * DAY, Some(3 * DAY)), 3 * DAY);
    }

    #[test]
    fn sessions_never_outlive_the_window() {
        assert_eq!(session_expiry(100, 1_800_000, 1_000), 1_000);
        assert_eq!(session_expiry(100, 50, 1_000), 150);
    }

    #[test]
    fn either_bound_of_the_census_may_be_unset() {
        let open = CensusPeriod {
            opens_at: Some(10),
            closes_at: Some(20),
        };
        assert_eq!(open.check(9), Err(PeriodError::NotOpen));
        assert_eq!(open.check(10), Ok(()));
        assert_eq!(open.check(20), Err(PeriodError::Closed));
        let unbounded = CensusPeriod {
            opens_at: None,
            closes_at: None,
        };
        assert_eq!(unbounded.check(i64::MAX), Ok(()));
    }
}
