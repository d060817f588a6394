//! The flows of RULES.md over the domain rules and the store: password
//! definition, login, sessions, the helpline's admin actions and no-PESEL
//! requests. HTTP knows nothing of these rules; it calls [`AuthService`] and
//! maps [`AuthError`] to problem+json.

pub mod admin;
pub mod bench;
pub mod flows;
pub mod handoff;
pub mod hasher;
pub mod session;

use crate::domain::lockout::{LockoutPolicy, Millis};
use crate::domain::window::{CensusPeriod, PeriodError};
use crate::domain::{Pesel, PeselError, Violation};
use crate::keys::Keys;
use crate::metrics::Metrics;
use crate::store::{SessionRecord, Store, StoreError};
use hasher::HashPool;
use std::sync::Arc;
use time::OffsetDateTime;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("validation failed")]
    Validation(Vec<Violation>),
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("identity not verified")]
    IdentityNotVerified,
    #[error("not authenticated")]
    NotAuthenticated,
    #[error("survey window closed")]
    WindowClosed,
    #[error("census not open")]
    CensusNotOpen,
    #[error("census closed")]
    CensusClosed,
    #[error("PESEL reserved")]
    PeselReserved,
    #[error("password already defined")]
    PasswordAlreadyDefined,
    #[error("account locked")]
    Locked { until: Millis, retry_after: u64 },
    #[error("overloaded")]
    Overloaded { retry_after: u64 },
    #[error("store unavailable")]
    StoreUnavailable,
}

impl AuthError {
    /// The `result` label of `census_auth_outcomes_total`.
    pub fn result_label(&self) -> &'static str {
        match self {
            Self::Validation(_) => "validation_failed",
            Self::InvalidCredentials => "invalid_credentials",
            Self::IdentityNotVerified => "identity_not_verified",
            Self::NotAuthenticated => "not_authenticated",
            Self::WindowClosed => "window_closed",
            Self::CensusNotOpen => "census_not_open",
            Self::CensusClosed => "census_closed",
            Self::PeselReserved => "pesel_reserved",
            Self::PasswordAlreadyDefined => "password_already_defined",
            Self::Locked { .. } => "locked",
            Self::Overloaded { .. } => "overloaded",
            Self::StoreUnavailable => "store_unavailable",
        }
    }
}

impl From<StoreError> for AuthError {
    fn from(_: StoreError) -> Self {
        // Details were logged by the instrumented store; the caller fails closed.
        AuthError::StoreUnavailable
    }
}

/// Everything a flow needs, behind one cheap-to-clone handle.
#[derive(Clone)]
pub struct AuthService {
    inner: Arc<Inner>,
}

pub struct AuthSettings {
    pub lockout: LockoutPolicy,
    pub period: CensusPeriod,
    pub window: Millis,
    pub idle: Millis,
    pub min_password_length: usize,
    pub refuse_reserved: bool,
}

struct Inner {
    store: Arc<dyn Store>,
    keys: Keys,
    hasher: HashPool,
    metrics: Arc<Metrics>,
    settings: AuthSettings,
}

/// A created or refreshed session: the cookie value and what the API returns.
#[derive(Debug)]
pub struct SessionGrant {
    pub cookie_value: String,
    pub record: SessionRecord,
}

impl AuthService {
    pub fn new(
        store: Arc<dyn Store>,
        keys: Keys,
        hasher: HashPool,
        metrics: Arc<Metrics>,
        settings: AuthSettings,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                keys,
                hasher,
                metrics,
                settings,
            }),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    pub fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    pub fn hasher(&self) -> &HashPool {
        &self.inner.hasher
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    pub fn settings(&self) -> &AuthSettings {
        &self.inner.settings
    }

    fn check_period(&self, now: Millis) -> Result<(), AuthError> {
        self.inner.settings.period.check(now).map_err(|e| match e {
            PeriodError::NotOpen => AuthError::CensusNotOpen,
            PeriodError::Closed => AuthError::CensusClosed,
        })
    }
}

/// Milliseconds since the epoch, now.
pub fn now_millis() -> Millis {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as Millis
}

/// Parses a PESEL against today's date in Poland. Poland is at most two hours
/// ahead of UTC, so a child born just after local midnight is not "in the future".
pub fn parse_pesel(input: &str) -> Result<Pesel, PeselError> {
    let poland_today = (OffsetDateTime::now_utc() + time::Duration::hours(2)).date();
    Pesel::parse(input, poland_today)
}

/// Seconds from `now` until `until`, at least 1 (a `Retry-After` of 0 invites a hot loop).
pub fn seconds_until(now: Millis, until: Millis) -> u64 {
    let ms = (until - now).max(0) as u64;
    ms.div_ceil(1000).max(1)
}
